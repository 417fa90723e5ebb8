"""Spans as a timeline: the Chrome trace-event JSON that Perfetto opens.

:func:`timeline` turns :class:`~threadtrace._formats.records.SpanRecord` objects into
the *JSON Object Format* of the Chrome trace-event format, which both
https://ui.perfetto.dev and ``chrome://tracing`` open, and
:func:`write_timeline` writes it to a file atomically.  The records may come
live from the SDK (the ``perfetto`` exporter) or from an OTLP JSON Lines file
(``read_trace_file``); the output depends only on their content, never on
their order.

The format is simple; keeping the viewers happy is not.  The choices:

Times
    ``ts`` and ``dur`` are microseconds, as floats to the nanosecond, counted
    from the earliest span start (kept as ``threadtrace.epoch_ns``).  Relative,
    because Perfetto turns ``ts * 1000`` back into integer nanoseconds and that
    is exact only far below 2**53: epoch times would lose the nanoseconds and
    could make a slice poke out of its parent by one.

Processes and threads
    One process per service name (``pid`` 1, 2, ... in name order), named by
    it.  One track per thread, named by the thread's name.  A thread is
    identified by its ``Thread.run`` span, not by its ident: the OS reuses
    idents, so two successive threads with the same ident *and* name still
    get a track each.  A span belongs to the ``Thread.run`` it descends from
    in the same thread, or else to the run of its ``thread.id`` whose lifetime
    contains it (the ident is read when a span ends, so its end decides).
    Threads without a run span (the main thread, threads started before
    patching) are keyed by (``thread.id``, ``thread.name``); spans with no
    thread at all follow their parent, or go to a ``(no thread)`` track.
    ``pid`` and ``tid`` are small made-up numbers, tids after the pids:
    Perfetto reads both as 32-bit (Python's idents are pointers), and a tid
    equal to a pid would be taken for that process's main thread.  The real
    ident is in each slice's ``args.thread_id``.

Slices and lanes
    Every span is a complete event (``ph: "X"``).  On one ``tid`` both viewers
    need every two slices nested or disjoint; Perfetto drops a slice that
    overlaps its neighbour partially.  Holds are not LIFO (acquire A, acquire
    B, release A, release B), so each thread's slices are laid out first-fit:
    in start order (longest first on ties), a slice goes on the first lane
    where it nests in the innermost open slice or where nothing is open, and
    on a new lane if there is none.  Extra lanes are tids of their own, named
    ``worker-1 (2)``, ``(3)`` ..., with a ``thread_sort_index`` right after
    the thread's.  No slice is dropped or clipped.  Intervals are closed on
    the left and open on the right, as in Perfetto: a slice that ends when
    another starts is disjoint from it.

Flows
    Arrows are legacy flow events: ``ph: "s"`` where the arrow leaves and
    ``ph: "f"`` with ``bp: "e"`` where it arrives, sharing ``id`` (1, 2, ...
    in time order), ``cat`` and ``name``.  Both viewers attach a flow event to
    the innermost slice open on its track at its time, so every arrow has a
    slice at each end:

    * ``wake``: from the thread that woke a span to it, both ends at the
      woken span's end, the moment of the wake.  The waker is the
      ``woken_by`` link's thread, or the ``threadtrace.waker.thread.*``
      attributes' when there is no link (a waker with no current span, such
      as a main thread outside any span, has nothing to link to).  The
      waker's track gets a zero-length marker slice there (``Lock.release
      ledger@bank.py:10``, ``Condition.notify ...``, ``Event.set ...``; one
      per thread and instant, ``args.woke`` lists the threads woken), because
      the waker usually has no span of its own at that instant and a flow
      needs a slice to leave from.
    * ``join``: from the end of the joined thread's ``Thread.run`` slice to
      the end of the ``Thread.join`` slice, when both are present and the join
      did not time out.

Event order
    Perfetto reads events in ``ts`` order, file order on ties, and attaches a
    flow event to whatever slice is innermost at that point.  So events are
    written sorted by time and, at one instant: markers, flow starts,
    zero-length woken slices, flow ends, then the other slices (longest
    first) and counters.  A flow end then finds its woken slice before a
    slice starting at the same instant (the hold after an acquire) covers it.
    Only chains of wakes within one clock tick (a fake clock) can still
    attach an arrow to a neighbouring slice of the right thread.

Counters
    For each of the ``hot`` primitives with the most total wait, a counter
    (``ph: "C"``, named by the primitive, series ``waiters``) of how many
    threads are waiting on it (``acquire``, ``wait`` and ``join`` spans),
    starting at 0 at the beginning of the trace.

Slice ``args`` carry what a reader of the timeline needs: ``primitive``,
``kind``, ``site``, ``function``, ``holder`` and ``holder_site``, ``waker``,
``timed_out``, ``timeout_s``, ``thread_id``, ``error``; spans that are not
threadtrace's keep all their attributes.

Thread-safety: :func:`timeline` is a pure function.  :func:`write_timeline`
writes a temporary file next to ``path`` and renames it over ``path``, so a
reader (or a crash) never sees half a file; concurrent calls for one path
leave one complete file, the last renamed.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import gc
import itertools
import json
import math
import operator
import os
import secrets
from typing import Any, Callable, Iterable, Iterator, Optional

from .records import LinkRecord, SpanRecord

__all__ = ["timeline", "write_timeline"]

RUN = "Thread.run"
NO_THREAD = "(no thread)"

# Ranks of the events that share one instant (see "Event order" above).  Slices
# have the even ones, flows and counters the odd ones.
_MARKER, _FLOW_START, _WOKEN, _FLOW_END, _SLICE, _COUNTER = range(6)

#: What the waker did, by the name of the span it woke.
_WAKE_ACTION = {
    "Lock.acquire": "Lock.release",
    "RLock.acquire": "RLock.release",
    "Semaphore.acquire": "Semaphore.release",
    "BoundedSemaphore.acquire": "BoundedSemaphore.release",
    "Condition.wait": "Condition.notify",
    "Event.wait": "Event.set",
    "Barrier.wait": "Barrier.wait",
}

#: ("run", trace id, span id), ("thread", service, ident, name) or ("none", service)
_TrackKey = tuple[Any, ...]
#: The number of the span with this trace id and span id, if there is one.
_Find = Callable[[str, Optional[str]], Optional[int]]

_LAST = operator.itemgetter(-1)
# Of a record's row (see _unique).
_START = operator.itemgetter(0)
_BY_TIME = operator.itemgetter(0, 1, 2, 3)  # start, end, trace id, span id
_SPAN_ID = operator.itemgetter(3)
#: An ident not read yet.
_UNKNOWN: Any = object()
#: Attribute values that are equal only if their JSON is (unlike 1, 1.0 and True).
_TEXT_OR_INT = frozenset({str, int})
#: The types that :func:`_jsonable` returns as they are.
_PLAIN = frozenset({str, int, bool})
_CHUNK = 4096  # lines written at a time
#: What ``json.dumps(value, separators=(",", ":"), allow_nan=False)`` does.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _fast_encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode`` without its cost per call, when json's C encoder is there.

    The values encoded here never hold themselves, so nothing is lost by not
    checking for that.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        try:
            encode = make(
                None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",",
                False, False, False,
            )  # fmt: skip
            sample = {"a": [1, -0.0, 2.5e-9, '\u00e9\n"', None, True, {"b": [False]}], "": "x"}
            if "".join(encode(sample, 0)) == _ENCODER.encode(sample):
                return lambda value: "".join(encode(value, 0))
        except Exception:  # noqa: BLE001 - anything odd: the plain encoder
            pass
    return _ENCODER.encode


_encode = _fast_encoder()


def timeline(
    records: Iterable[SpanRecord], *, hot: int = 10, dropped_spans: int = 0
) -> dict[str, Any]:
    """The Chrome trace-event JSON object of ``records`` (see the module docstring).

    Args:
        records: finished spans, in any order.
        hot: how many primitives get a counter track of their waiters (those
            with the most total wait).
        dropped_spans: spans lost before they got here, reported as
            ``threadtrace.dropped_spans``.

    Returns:
        ``{"traceEvents": [...], "displayTimeUnit": "ms", ...}``, ready for
        :func:`json.dump`.

    Raises:
        ValueError: ``hot`` is negative.
    """
    if hot < 0:
        raise ValueError(f"hot must be >= 0, got {hot}")
    return _Layout(records, hot, dropped_spans, text=False).as_dict()


def write_timeline(
    records: Iterable[SpanRecord], path: str, *, hot: int = 10, dropped_spans: int = 0
) -> None:
    """Write :func:`timeline` of ``records`` to ``path``, atomically.

    The JSON goes to a temporary file in the same directory, which then
    replaces ``path``: readers see the old file or the new one, never half
    of one, and a crash leaves at most a stray ``*.tmp`` file.

    Raises:
        OSError: the file cannot be written.
        ValueError: ``hot`` is negative.
    """
    if hot < 0:
        raise ValueError(f"hot must be >= 0, got {hot}")
    _write(_Layout(records, hot, dropped_spans, text=True), path)


def _write(data: _Layout, path: str) -> None:
    """Write ``data`` to ``path``, atomically (see :func:`write_timeline`)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    # A name of our own rather than tempfile.mkstemp, so that the file gets
    # the permissions the umask gives, like any file the program writes.
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "x", encoding="utf-8") as file:
            _dump(data, file)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while, if it was on.

    Only for a process of threadtrace's own (``threadtrace convert``): the
    collector is the whole interpreter's, and the exporter lays out inside
    the traced program, whose collector it must not touch.

    A timeline is hundreds of thousands of containers, made in one go, none of
    them in a reference cycle.  Every few hundred of them would start a
    collection, and every so many of those a full one, which scans every
    object in the program: about half the time of :func:`timeline` for
    200,000 spans, for nothing.  Memory is still freed as usual (by reference
    counts); cycles that other threads make meanwhile are collected once it is
    back on.  Nested and concurrent calls leave it on: only the call that
    turned it off turns it back on, and the others find it off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _dump(data: _Layout, file: Any) -> None:
    """The JSON of the timeline, one trace event per line (diffable, greppable).

    Each line is ``json.dumps(event, separators=(",", ":"))`` of that event of
    :func:`timeline`, made without making the event.
    """
    file.write('{"traceEvents":[')
    lines = data.json_lines()
    for start in range(0, len(lines), _CHUNK):
        file.write(("," if start else "") + "\n" + ",\n".join(lines[start : start + _CHUNK]))
    file.write("\n]")
    for key, value in data.trailer().items():
        file.write(f",{json.dumps(key)}:{json.dumps(value, allow_nan=False)}")
    file.write("}\n")


# -- the layout -----------------------------------------------------------------------
#
# How this is made fast (a dozen µs a span, where an object per slice and a
# json.dumps per event took fifty):
#
# * Spans are numbered in their canonical order (see _unique), and slice n is
#   span n; the wake markers come after them.  A slice is not an object but a
#   column in parallel lists, and the work is done a column at a time where
#   it can be (comprehensions, map, zip and sort run far faster than loops).
# * The records, and their attribute dicts, are scattered in memory: each
#   visit costs cache misses.  So each record is read once, in the order
#   given (see _unique), and each attribute dict once, for everything taken
#   from it, args included (_slices).
# * A slice's place in the file is its key
#
#       (start, rank, start - end, kind, span name, span id, track index, number)
#
#   (kind: 0 for runs, 1 for other spans, 2 for markers).  The slices of one
#   track, in key order, are in layout order too (by start, longest first),
#   so one sort of every event gives both the file order and the order in
#   which the lanes are filled.  Two slices of a track with equal keys up to
#   the track are the same interval, so they go on the same lane, and their
#   numbers keep them in the order they were made.  Flow events and counter
#   points sort by (ns, rank, number).  When no two slices share an instant
#   and a rank (a clock of ns: the usual case), (ns, rank) as one number,
#   sorted stably, gives that order, far faster than tuples (see _sort).
# * The file's lines are made by formatting, not by json.dumps of each event
#   (only some args go through the encoder), and no event dict is made for it.
# * threadtrace convert also turns the cyclic garbage collector off meanwhile
#   (see collector_paused); the exporter, inside the program, does not.


class _Track:
    """One thread's track; its lanes are tids of their own."""

    __slots__ = ("index", "key", "lanes", "markers", "name", "pid", "start_ns", "thread_id", "tid")

    def __init__(self, key: _TrackKey, pid: int, name: str, thread_id: Optional[int]) -> None:
        self.key = key
        self.pid = pid
        self.name = name
        self.thread_id = thread_id
        self.start_ns: Optional[int] = None  # of its earliest slice; None while it has none
        self.index = 0  # in display order
        self.lanes: list[list[int]] = []  # per lane, the ends of the slices open on it
        self.tid = 0  # lane 0's; lane n is tid + n
        self.markers: dict[int, int] = {}  # the wake marker at each instant


class _Layout:
    """Tracks, lanes, flows and counters of some spans, in file order.

    ``text``: whether the args are wanted as JSON (for :meth:`json_lines`) or
    as dicts (for :meth:`as_dict`).
    """

    def __init__(
        self, records: Iterable[SpanRecord], hot: int, dropped_spans: int, *, text: bool
    ) -> None:
        columns, self.parents, self._find = _unique(records)
        count = len(columns[0])
        self.dropped_spans = dropped_spans
        self.base = columns[0][0] if count else 0
        # Spans' columns; the first four and span_names are slices' too.
        self.starts: list[int] = columns[0]
        self.raw_ends: list[int] = columns[1]
        self.trace_ids: list[str] = columns[2]
        self.span_ids: list[str] = columns[3]
        self.parent_ids: list[Optional[str]] = columns[4]
        self.span_names: list[Any] = columns[5]
        self.services: list[str] = columns[6]
        self.errors: list[Optional[str]] = columns[7]
        self.attributes: list[Any] = columns[8]
        self.links: list[tuple[LinkRecord, ...]] = columns[9]
        self.pids = {service: pid for pid, service in enumerate(sorted(set(self.services)), 1)}
        # Each span's thread ident (see _ident): the runs' now, the others' in _slices.
        self.idents: list[Any] = [_UNKNOWN] * count
        self.tracks: dict[_TrackKey, _Track] = {}
        self._run_tracks: dict[int, _Track] = {}
        # Tracks found for spans not reached yet (_key_of follows parents).
        self._later: dict[int, _Track] = {}

        # Slices' columns; _slices and _flows fill them in.
        self.ends = [
            start if start > end else end for start, end in zip(self.starts, self.raw_ends)
        ]
        self.kinds = [0 if name == RUN else 1 for name in self.span_names]
        self.ranks = [_SLICE] * count
        self.track_of: list[_Track] = []
        self.names: list[Any] = []
        self.cats: list[str] = []
        self.args: list[Any] = []  # JSON text if text, else dicts
        self.woke: list[tuple[str, ...]] = []  # each marker's args: whom it woke
        self.lanes: list[int] = []

        runs: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
        for number in [n for n, kind in enumerate(self.kinds) if kind == 0]:
            ident = self.idents[number] = _ident(self.attributes[number])
            if ident is not None:
                runs[self.services[number], ident].append(number)
        # Runs of one ident never overlap, so sorted by start they are sorted by end too.
        self._runs: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
        starts, span_ids = self.starts, self.span_ids
        for key, found in runs.items():
            found.sort(key=lambda run: (starts[run], span_ids[run]))
            self._runs[key] = ([starts[run] for run in found], found)

        waits, linked = self._slices(text)
        self.flows = self._flows(linked)
        self.counters = _counters(self.starts, self.ends, waits, self.base, hot)
        self.ordered = self._order_tracks()
        self.order = self._sort()
        self._lay_out()

    # -- tracks ----------------------------------------------------------------------

    def _track(self, key: _TrackKey) -> _Track:
        track = self.tracks.get(key)
        if track is None:
            if key[0] == "run":
                run: int = self._find(key[1], key[2])  # type: ignore[assignment]
                service = self.services[run]
                ident = self.idents[run]
                name = str(self.attributes[run].get("thread.name", ""))
            elif key[0] == "thread":
                _, service, ident, name = key
            else:
                _, service = key
                ident, name = None, NO_THREAD
            if not name:
                name = f"thread {ident}"
            track = self.tracks[key] = _Track(key, self.pids[service], name, ident)
        return track

    def _run_track(self, run: int) -> _Track:
        track = self._run_tracks.get(run)
        if track is None:
            key = ("run", self.trace_ids[run], self.span_ids[run])
            track = self._run_tracks[run] = self._track(key)
        return track

    def _key_of(self, number: int) -> _Track:
        """The track of span ``number``; spans without a thread follow their parent."""
        keys, later = self.track_of, self._later
        chain: list[int] = []
        seen: set[int] = set()
        current: Optional[int] = number
        track: Optional[_Track] = None
        while current is not None:
            track = keys[current] if current < len(keys) else later.get(current)
            if track is not None or current in seen:
                break
            seen.add(current)
            chain.append(current)
            ident = self.idents[current]
            if ident is _UNKNOWN:
                ident = self.idents[current] = _ident(self.attributes[current])
            if self.kinds[current] == 0:
                track = self._run_track(current)
                break
            if ident is not None:
                track = self._thread_track(
                    self.services[current], ident,
                    str(self.attributes[current].get("thread.name", "")),
                    self.starts[current], self.raw_ends[current],
                    self._run_ancestor(current, ident),
                )  # fmt: skip
                break
            current = self.parents[current]
        if track is None:
            track = self._track(("none", self.services[number]))
        for item in chain:
            if item < len(keys):
                keys[item] = track
            else:
                later[item] = track
        return track

    def _thread_track(
        self,
        service: str,
        ident: int,
        name: str,
        start_ns: int,
        end_ns: int,
        run: Optional[int] = None,
    ) -> _Track:
        """The track of thread ``ident`` for something from ``start_ns`` to ``end_ns``."""
        if run is None:
            run = self._run_at(service, ident, start_ns, end_ns)
        if run is not None:
            return self._run_tracks.get(run) or self._run_track(run)
        key = ("thread", service, ident, name)
        return self.tracks.get(key) or self._track(key)

    def _run_ancestor(self, number: int, ident: int) -> Optional[int]:
        """The ``Thread.run`` that span ``number`` descends from, if in the same thread."""
        span_ids = self.span_ids
        seen: set[str] = set()
        parents = self.parents
        parent = parents[number]
        while parent is not None and span_ids[parent] not in seen:
            if self.kinds[parent] == 0:
                return parent if self.idents[parent] == ident else None
            seen.add(span_ids[parent])
            parent = parents[parent]
        return None

    def _run_at(self, service: str, ident: int, start_ns: int, end_ns: int) -> Optional[int]:
        """The run of thread ``ident`` that contains the span, or at least its end."""
        found = self._runs.get((service, ident))
        if found is None:
            return None
        starts, runs = found
        for at in (start_ns, end_ns):
            index = bisect.bisect_right(starts, at) - 1
            if index >= 0 and self.raw_ends[runs[index]] >= end_ns:
                return runs[index]
        return None

    # -- slices and flows --------------------------------------------------------------

    def _slices(  # noqa: PLR0912, PLR0915 - one pass, all inline (see "the layout")
        self, text: bool
    ) -> tuple[dict[tuple[int, str], list[int]], list[int]]:
        """Each span's track, thread ident, name, category and args.

        Returns:
            the spans that wait on each (pid, primitive), and the spans that
            may have arrows.
        """
        idents, kinds, pids, parents = self.idents, self.kinds, self.pids, self.parents
        span_names, run_at = self.span_names, self._run_at
        services, starts, raw_ends = self.services, self.starts, self.raw_ends
        later, run_tracks = self._later, self._run_tracks
        track_of, names, cats, all_args = self.track_of, self.names, self.cats, self.args
        run_track, key_of, tracks = self._run_track, self._key_of, self.tracks
        basenames: dict[str, str] = {}
        strings: dict[str, str] = {}  # JSON of text values
        made: dict[tuple[Any, ...], str] = {}  # JSON of args, by the attributes they are of
        waits: dict[tuple[int, str], list[int]] = collections.defaultdict(list)
        linked: list[int] = []
        for number, (attributes, links, error) in enumerate(
            zip(self.attributes, self.links, self.errors)
        ):
            get = attributes.get
            ident = get("thread.id")
            if ident.__class__ is not int and ident is not None:
                ident = _as_int(ident)
            idents[number] = ident
            # The track: _key_of, with the common cases inline.
            track = later.pop(number, None) if later else None
            if track is None:
                if kinds[number] == 0:
                    track = run_tracks.get(number) or run_track(number)
                elif ident is not None:
                    run: Optional[int] = None
                    parent = parents[number]
                    if parent is not None:
                        if kinds[parent] == 0:
                            run = parent if idents[parent] == ident else None
                        else:
                            run = self._run_ancestor(number, ident)
                    if run is None:
                        run = run_at(services[number], ident, starts[number], raw_ends[number])
                    if run is not None:
                        track = run_tracks.get(run) or run_track(run)
                    else:
                        key = ("thread", services[number], ident, str(get("thread.name", "")))
                        track = tracks.get(key) or self._track(key)
                else:
                    track = key_of(number)
                    later.pop(number, None)
            track_of.append(track)

            name = span_names[number]
            operation = get("threadtrace.operation")
            primitive = get("threadtrace.primitive.name")
            if primitive is None:
                names.append(name)
            else:
                names.append(f"{name} {primitive}")
                if operation is not None and operation != "hold":
                    waits[pids[services[number]], str(primitive)].append(number)
            if kinds[number] == 0:
                cats.append("thread")
            elif operation == "hold":
                cats.append("hold")
            elif operation is not None:
                cats.append("wait")
            else:
                cats.append("span")
            if links or get("threadtrace.waker.thread.id") is not None:
                linked.append(number)
            if text:
                # Spans of one site and thread often have the same attributes, and
                # so the same args: made once for each set of (text or int) values.
                values = tuple(attributes.values())
                if error is None and _TEXT_OR_INT.issuperset(map(type, values)):
                    of = (kinds[number], tuple(attributes), values)
                    args = made.get(of)
                    if args is None:
                        args = made[of] = _args_json(
                            attributes, kinds[number] == 0, error, basenames, strings
                        )
                    all_args.append(args)
                else:
                    all_args.append(
                        _args_json(attributes, kinds[number] == 0, error, basenames, strings)
                    )
            else:
                all_args.append(_args(attributes, kinds[number] == 0, error, basenames))
        # Spans come by start: a track's first one is its earliest (markers come later).
        for track, start_ns in dict(zip(reversed(track_of), reversed(starts))).items():
            track.start_ns = start_ns
        return waits, linked

    def _flows(  # noqa: PLR0912, PLR0915 - one pass, all inline (see "the layout")
        self, linked: list[int]
    ) -> list[tuple[Any, ...]]:
        """The wake and join arrows, with the wake markers they leave from.

        Each is (end, start, cat, target tiebreak..., source tiebreak..., made,
        source, target), in file order (``made`` keeps equal ones in the order
        they were made).
        """
        find, track_of, all_attributes = self._find, self.track_of, self.attributes
        starts, ends, ranks, kinds = self.starts, self.ends, self.ranks, self.kinds
        span_names, span_ids, raw_ends = self.span_names, self.span_ids, self.raw_ends
        flows: list[tuple[Any, ...]] = []
        first_woken: dict[int, int] = {}  # by marker
        more_woken: dict[int, list[int]] = {}  # by marker, when it woke several
        marker_tracks: list[_Track] = []
        marker_times: list[int] = []
        count = len(starts)  # the first marker's number
        for target in linked:
            attributes = all_attributes[target]
            links = self.links[target]
            waker = _waker(attributes, links)
            if waker is not None:
                ident, name, link = waker
                # The track of the span that was current in the waker, if it is the
                # waker's; else the waker's track when the span ended.
                track = None
                if link is not None:
                    current = find(link.trace_id, link.span_id)
                    if current is not None and track_of[current].thread_id == ident:
                        track = track_of[current]
                if track is None:
                    at = raw_ends[target]
                    track = self._thread_track(self.services[target], ident, name, at, at)
                at = ends[target]
                marker = track.markers.get(at)
                if marker is None:
                    marker = track.markers[at] = count + len(marker_times)
                    marker_tracks.append(track)
                    marker_times.append(at)
                    if track.start_ns is None or at < track.start_ns:
                        track.start_ns = at
                    first_woken[marker] = target
                else:
                    more_woken.setdefault(marker, [first_woken[marker]]).append(target)
                if starts[target] == at:
                    ranks[target] = _WOKEN
                flows.append(
                    (at, at, "wake", kinds[target], span_names[target], span_ids[target],
                     2, "", "", len(flows), marker, target)
                )  # fmt: skip
            for link in links:
                if link.attributes.get("threadtrace.link.type") != "joined":
                    continue
                run = find(link.trace_id, link.span_id)
                if (
                    run is None
                    or kinds[run] != 0
                    or attributes.get("threadtrace.timed_out")
                    or raw_ends[run] > ends[target]
                ):
                    continue
                flows.append(
                    (ends[target], ends[run], "join", kinds[target], span_names[target],
                     span_ids[target], kinds[run], span_names[run], span_ids[run], len(flows),
                     run, target)
                )  # fmt: skip
        # The markers, as slices (see _Layout), named by what woke whom.
        names, woke = self.names, self.woke

        def thread_name(number: int) -> str:
            return str(all_attributes[number].get("thread.name", ""))

        for marker, target in first_woken.items():
            several = more_woken.get(marker)
            if several is None:
                primitive = all_attributes[target].get("threadtrace.primitive.name", "")
                action = _WAKE_ACTION.get(span_names[target], "wake")
                names.append(f"{action} {primitive}".rstrip())
                woke.append((track_of[target].name,))
                continue
            several.sort(key=lambda s: (starts[s], thread_name(s), span_ids[s]))
            found = {
                f"{_WAKE_ACTION.get(span_names[number], 'wake')} "
                f"{all_attributes[number].get('threadtrace.primitive.name', '')}".rstrip()
                for number in several
            }
            names.append(found.pop() if len(found) == 1 else "wake")
            woke.append(tuple(track_of[number].name for number in several))
        markers = len(marker_times)
        track_of += marker_tracks
        starts += marker_times
        ends += marker_times
        self.cats += ["wake"] * markers
        kinds += [2] * markers
        span_names += [""] * markers
        span_ids += [""] * markers
        ranks += [_MARKER] * markers
        flows.sort()
        return flows

    def _order_tracks(self) -> list[_Track]:
        """The tracks with slices, in display order."""
        ordered = sorted(
            (track for track in self.tracks.values() if track.start_ns is not None),
            key=lambda t: (
                t.pid,
                t.start_ns,
                t.name,
                -1 if t.thread_id is None else t.thread_id,
                repr(t.key),
            ),
        )
        for number, track in enumerate(ordered):
            track.index = number
            track.markers = {}  # done with
        return ordered

    def _sort(self) -> list[int]:
        """The place of each event made, in file order.

        Events are numbered as they are made: the slices, then the flows' starts,
        their ends, and the counters' points.  Slices sort by their key (see
        above), flow events and counter points by (ns, rank, number).
        """
        starts, ranks, flows = self.starts, self.ranks, self.flows
        made = len(starts)
        times = starts + [flow[1] for flow in flows] + [flow[0] for flow in flows]
        ranked = ranks + [_FLOW_START] * len(flows) + [_FLOW_END] * len(flows)
        for _, _, points in self.counters:
            times += [ns for ns, _ in points]
            ranked += [_COUNTER] * len(points)
        # (time, rank) as one number: a float if that is exact, for floats sort fastest.
        base = self.base
        since = map(operator.sub, times, itertools.repeat(base))
        eight: Any = 8.0 if (max(times, default=base) - base) * 8 < 2**52 else 8
        keys = list(map(operator.add, map(operator.mul, since, itertools.repeat(eight)), ranked))
        if len(set(keys[:made])) == made:
            # No two slices at one instant with one rank (with a clock of ns, the
            # usual case): then (time, rank, number) orders them as their whole
            # keys would; the numbers in that order are those sorted by (time,
            # rank), the sort being stable.
            return sorted(range(len(times)), key=keys.__getitem__)
        events: list[tuple[Any, ...]] = list(
            zip(
                starts,
                ranks,
                [start - end for start, end in zip(starts, self.ends)],
                self.kinds,
                self.span_names,
                self.span_ids,
                [track.index for track in self.track_of],
                range(made),
            )
        )
        events += zip(times[made:], ranked[made:], range(made, len(times)))
        events.sort()
        return list(map(_LAST, events))

    def _lay_out(self) -> None:
        """Lanes for every slice (first fit, in layout order), and tids (after the pids)."""
        track_of, starts, ends = self.track_of, self.starts, self.ends
        placed = [0] * len(ends)
        made = len(ends)
        for number in [place for place in self.order if place < made]:
            start_ns = starts[number]
            end_ns = ends[number]
            lanes = track_of[number].lanes
            for lane, open_ends in enumerate(lanes):
                while open_ends and open_ends[-1] <= start_ns:
                    open_ends.pop()  # ended before this one starts: disjoint
                if not open_ends or open_ends[-1] >= end_ns:
                    open_ends.append(end_ns)
                    placed[number] = lane
                    break
            else:
                placed[number] = len(lanes)
                lanes.append([end_ns])
        self.lanes = placed
        tid = len(self.pids)
        for track in self.ordered:
            track.tid = tid + 1
            tid += len(track.lanes)

    # -- output --------------------------------------------------------------------------

    def trailer(self) -> dict[str, Any]:
        """The timeline's keys after ``traceEvents``."""
        return {
            "displayTimeUnit": "ms",
            "threadtrace.epoch_ns": self.base,
            "threadtrace.dropped_spans": self.dropped_spans,
        }

    def _metadata(self) -> list[dict[str, Any]]:
        """The process and thread names and thread order."""
        events: list[dict[str, Any]] = [
            {
                "name": "process_name",
                "ph": "M",
                "pid": pid,
                "args": {"name": service or "threadtrace"},
            }
            for service, pid in self.pids.items()
        ]
        for track in self.ordered:
            for lane in range(len(track.lanes)):
                tid = track.tid + lane
                name = track.name if lane == 0 else f"{track.name} ({lane + 1})"
                events.append(
                    {
                        "name": "thread_name",
                        "ph": "M",
                        "pid": track.pid,
                        "tid": tid,
                        "args": {"name": name},
                    }
                )
                events.append(
                    {
                        "name": "thread_sort_index",
                        "ph": "M",
                        "pid": track.pid,
                        "tid": tid,
                        "args": {"sort_index": tid},
                    }
                )
        return events

    def _columns(self) -> tuple[list[int], list[int], list[float], list[float]]:
        """Each slice's pid, tid, ts and dur."""
        base, track_of, starts = self.base, self.track_of, self.starts
        return (
            [track.pid for track in track_of],
            [track.tid + lane for track, lane in zip(track_of, self.lanes)],
            [(start - base) / 1000 for start in starts],
            [(end - start) / 1000 for start, end in zip(starts, self.ends)],
        )

    def as_dict(self) -> dict[str, Any]:
        """The timeline, as :func:`timeline` returns it (if made with ``text=False``)."""
        base, flows = self.base, self.flows
        pids, tids, tss, durs = self._columns()
        self.args += [{"woke": list(woke)} for woke in self.woke]
        events = [
            {
                "name": name,
                "cat": cat,
                "ph": "X",
                "ts": ts,
                "dur": dur,
                "pid": pid,
                "tid": tid,
                "args": args,
            }
            for name, cat, ts, dur, pid, tid, args in zip(
                self.names, self.cats, tss, durs, pids, tids, self.args
            )
        ]
        events += [
            {
                "name": flow[2],
                "cat": flow[2],
                "ph": "s",
                "id": number,
                "ts": (flow[1] - base) / 1000,
                "pid": pids[flow[-2]],
                "tid": tids[flow[-2]],
            }
            for number, flow in enumerate(flows, 1)
        ]
        events += [
            {
                "name": flow[2],
                "cat": flow[2],
                "ph": "f",
                "id": number,
                "ts": (flow[0] - base) / 1000,
                "pid": pids[flow[-1]],
                "tid": tids[flow[-1]],
                "bp": "e",
            }
            for number, flow in enumerate(flows, 1)
        ]
        for pid, name, points in self.counters:
            events += [
                {
                    "name": name,
                    "cat": "waiters",
                    "ph": "C",
                    "ts": (ns - base) / 1000,
                    "pid": pid,
                    "args": {"waiters": value},
                }
                for ns, value in points
            ]
        return {
            "traceEvents": self._metadata() + list(map(events.__getitem__, self.order)),
            **self.trailer(),
        }

    def json_lines(self) -> list[str]:
        """The JSON of each event of :meth:`as_dict`, as ``json.dumps`` (compact) gives it
        (if made with ``text=True``)."""
        base, flows, encode = self.base, self.flows, _encode
        pids, tids, tss, durs = self._columns()
        self.args += [encode({"woke": list(woke)}) for woke in self.woke]
        # '{"name":...,"cat":...,"ph":"X","ts":' by (name, cat): names repeat.  Only
        # for names that are text: 1 == 1.0 == True, but their JSON differs.
        pairs = list(zip(self.names, self.cats))
        if set(map(type, self.names)) <= {str}:
            heads = dict.fromkeys(pairs, "")
            for name, cat in heads:
                heads[name, cat] = f'{{"name":{encode(name)},"cat":"{cat}","ph":"X","ts":'
            starts = list(map(heads.__getitem__, pairs))
        else:
            starts = [
                f'{{"name":{_ENCODER.encode(name)},"cat":"{cat}","ph":"X","ts":'
                for name, cat in pairs
            ]
        del pairs
        lines = [
            f'{head}{ts!r},"dur":{dur!r},"pid":{pid},"tid":{tid},"args":{args}}}'
            for head, ts, dur, pid, tid, args in zip(starts, tss, durs, pids, tids, self.args)
        ]
        del starts, tss, durs
        lines += [
            f'{{"name":"{flow[2]}","cat":"{flow[2]}","ph":"s","id":{number},'
            f'"ts":{(flow[1] - base) / 1000!r},"pid":{pids[flow[-2]]},"tid":{tids[flow[-2]]}}}'
            for number, flow in enumerate(flows, 1)
        ]
        lines += [
            f'{{"name":"{flow[2]}","cat":"{flow[2]}","ph":"f","id":{number},'
            f'"ts":{(flow[0] - base) / 1000!r},"pid":{pids[flow[-1]]},"tid":{tids[flow[-1]]},'
            f'"bp":"e"}}'
            for number, flow in enumerate(flows, 1)
        ]
        for pid, name, points in self.counters:
            head = f'{{"name":{encode(name)},"cat":"waiters","ph":"C","ts":'
            lines += [
                f'{head}{(ns - base) / 1000!r},"pid":{pid},"args":{{"waiters":{value}}}}}'
                for ns, value in points
            ]
        return list(map(encode, self._metadata())) + list(map(lines.__getitem__, self.order))


def _counters(
    starts: list[int],
    ends: list[int],
    waits: dict[tuple[int, str], list[int]],
    base: int,
    hot: int,
) -> list[tuple[int, str, list[tuple[int, int]]]]:
    """(pid, primitive, [(ns, waiters)]) for the ``hot`` most waited-on primitives.

    ``waits`` has the slices that wait on each (pid, primitive).
    """
    ranked = sorted(
        waits.items(),
        key=lambda item: (
            -sum(
                map(operator.sub, map(ends.__getitem__, item[1]), map(starts.__getitem__, item[1]))
            ),
            item[0],
        ),
    )
    counters = []
    zero = itertools.repeat(0)
    for (pid, name), found in ranked[:hot]:
        began = collections.Counter(map(starts.__getitem__, found))
        ended = collections.Counter(map(ends.__getitem__, found))
        times = sorted(began.keys() | ended.keys())
        # The change at each instant; where it is not 0, the count after it.
        deltas = list(map(operator.sub, map(began.get, times, zero), map(ended.get, times, zero)))
        points = [(base, 0)] if times[0] > base else []
        points += zip(
            itertools.compress(times, deltas),
            itertools.accumulate(itertools.compress(deltas, deltas)),
        )
        counters.append((pid, name, points))
    return counters


# -- values ----------------------------------------------------------------------------


def _args(  # noqa: PLR0912 - a branch per arg, inline: once per span
    attributes: Any, run: bool, error: Optional[str], basenames: dict[str, str]
) -> dict[str, Any]:
    """The args of the slice of a span (a run or not) with these attributes and error;
    ``basenames`` caches file names by path."""
    if not run and "threadtrace.operation" not in attributes:
        args = {str(key): _jsonable(value) for key, value in sorted(attributes.items())}
    else:
        # Each value as _jsonable makes it, the common types inline.
        get = attributes.get
        args = {}
        value = get("threadtrace.primitive.name")
        if value is not None:
            args["primitive"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.primitive.kind")
        if value is not None:
            args["kind"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("code.file.path")
        if value:
            args["site"] = _site(attributes, value, "code.line.number", basenames)
        value = get("code.function.name")
        if value is not None:
            args["function"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.holder.thread.name")
        if value is not None:
            args["holder"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.holder.code.file.path")
        if value:
            args["holder_site"] = _site(
                attributes, value, "threadtrace.holder.code.line.number", basenames
            )
        value = get("threadtrace.waker.thread.name")
        if value is not None:
            args["waker"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.timed_out")
        if value is not None:
            args["timed_out"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.timeout")
        if value is not None:
            args["timeout_s"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.thread.daemon")
        if value is not None:
            args["daemon"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("thread.id")
        if value is not None:
            args["thread_id"] = value if value.__class__ in _PLAIN else _jsonable(value)
    if error is not None:
        args["error"] = error
    return args


def _args_json(  # noqa: PLR0912, PLR0915 - a branch per arg, inline: once per span
    attributes: Any,
    run: bool,
    error: Optional[str],
    basenames: dict[str, str],
    strings: dict[str, str],
) -> str:
    """``_encode(_args(attributes, run, error, basenames))``, made directly.

    ``strings`` caches the JSON of text values: they repeat (names, sites).
    """
    # The error is the only value not made by _jsonable: the plain encoder for odd
    # ones (which could even hold themselves).
    plain = error is None or error.__class__ is str
    if not run and "threadtrace.operation" not in attributes:
        return (_encode if plain else _ENCODER.encode)(_args(attributes, run, error, basenames))
    get = attributes.get
    parts = []
    value = get("threadtrace.primitive.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"primitive":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"primitive":{_json_value(value)}')
    value = get("threadtrace.primitive.kind")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"kind":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"kind":{_json_value(value)}')
    value = get("code.file.path")
    if value:
        value = _site(attributes, value, "code.line.number", basenames)
        parts.append(f'"site":{strings.get(value) or _string(value, strings)}')
    value = get("code.function.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"function":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"function":{_json_value(value)}')
    value = get("threadtrace.holder.thread.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"holder":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"holder":{_json_value(value)}')
    value = get("threadtrace.holder.code.file.path")
    if value:
        value = _site(attributes, value, "threadtrace.holder.code.line.number", basenames)
        parts.append(f'"holder_site":{strings.get(value) or _string(value, strings)}')
    value = get("threadtrace.waker.thread.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"waker":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"waker":{_json_value(value)}')
    value = get("threadtrace.timed_out")
    if value is not None:
        parts.append(f'"timed_out":{_json_value(value)}')
    value = get("threadtrace.timeout")
    if value is not None:
        parts.append(f'"timeout_s":{_json_value(value)}')
    value = get("threadtrace.thread.daemon")
    if value is not None:
        parts.append(f'"daemon":{_json_value(value)}')
    value = get("thread.id")
    if value is not None:
        parts.append(f'"thread_id":{_json_value(value)}')
    if error is not None:
        parts.append(f'"error":{_encode(error) if plain else _ENCODER.encode(error)}')
    return "{" + ",".join(parts) + "}"


def _string(value: str, strings: dict[str, str]) -> str:
    """The JSON of text ``value``, kept in ``strings``."""
    text = strings[value] = _encode(value)
    return text


def _json_value(value: Any) -> str:
    """The JSON of ``_jsonable(value)``, as the encoder writes it inside an object."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value.__class__ is int:
        return str(value)
    return _encode(_jsonable(value))


def _site(attributes: Any, path: Any, line_key: str, basenames: dict[str, str]) -> str:
    """``file:line`` of the site at ``path`` (not empty), its line in ``attributes``."""
    text = str(path)
    name = basenames.get(text)
    if name is None:
        name = basenames[text] = os.path.basename(text)
    line = attributes.get(line_key)
    return f"{name}:{line}" if line is not None else name


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: sequences as lists, odd floats and objects as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


def _waker(
    attributes: Any, links: tuple[LinkRecord, ...]
) -> Optional[tuple[int, str, Optional[LinkRecord]]]:
    """(ident, name, link) of the thread that woke a span, if it was woken."""
    for link in links:
        if link.attributes.get("threadtrace.link.type") == "woken_by":
            ident = _as_int(link.attributes.get("thread.id"))
            if ident is not None:
                return ident, str(link.attributes.get("thread.name") or ""), link
    ident = _as_int(attributes.get("threadtrace.waker.thread.id"))
    if ident is None:
        return None
    return ident, str(attributes.get("threadtrace.waker.thread.name") or ""), None


def _ident(attributes: Any) -> Optional[int]:
    """The thread ident in a span's ``attributes``, if it has a usable one."""
    value = attributes.get("thread.id")
    return None if value is None else _as_int(value)


def _as_int(value: Any) -> Optional[int]:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _unique(records: Iterable[SpanRecord]) -> tuple[list[list[Any]], list[Optional[int]], _Find]:
    """The records in a canonical order, each span once (the first one seen).

    Returns:
        their columns (start, end, trace id, span id, parent span id, name,
        service, error, attributes, links), the number of each one's parent (if
        there), and how to find a span's number by its ids.

    Each record is read once, in the order given, which is about the order they
    were made in, and so in memory: much cheaper than reading them in any other.
    The rows that hold what was read are sorted, then split into columns.
    """
    rows = [
        (r.start_ns, r.end_ns, r.trace_id, r.span_id, r.parent_span_id, r.name, r.service_name,
         r.error, r.attributes, r.links)
        for r in records
    ]  # fmt: skip
    unique = len(set(map(_SPAN_ID, rows))) == len(rows)
    if not unique:
        first: dict[tuple[str, str], tuple[Any, ...]] = {}
        for row in rows:
            first.setdefault((row[2], row[3]), row)
        rows = list(first.values())
    # By start alone, which is much cheaper; then the runs of equal starts by the
    # whole key, or everything if there are many (it is nearly sorted now).
    rows.sort(key=_START)
    starts = list(map(_START, rows))
    if not all(map(operator.lt, starts, itertools.islice(starts, 1, None))):  # ties
        ties = [n for n, (a, b) in enumerate(zip(starts, starts[1:])) if a == b]
        if len(ties) > len(rows) // 64:
            rows.sort(key=_BY_TIME)
            ties = []
        end = -1
        for tied in ties:
            if tied <= end:
                continue  # in the last run
            end = tied + 1
            while end + 1 < len(starts) and starts[end + 1] == starts[tied]:
                end += 1
            rows[tied : end + 1] = sorted(rows[tied : end + 1], key=_BY_TIME)
    columns = [list(map(operator.itemgetter(n), rows)) for n in range(10)]
    del rows
    trace_ids, span_ids, parent_ids = columns[2], columns[3], columns[4]
    if unique:
        # No span id twice (the common case): a span id is enough to find a span.
        by_span_id = dict(zip(span_ids, range(len(span_ids))))

        def find(trace_id: str, span_id: Optional[str]) -> Optional[int]:
            number = by_span_id.get(span_id)
            return number if number is not None and trace_ids[number] == trace_id else None

        # Each one's parent by its span id, then only if in the same trace: the
        # same-trace test is done a column at a time, with len(span_ids) for none.
        none = len(span_ids)
        found = list(map(by_span_id.get, parent_ids, itertools.repeat(none)))
        same = map(operator.eq, map([*trace_ids, None].__getitem__, found), trace_ids)
        parents = [parent if ok else None for parent, ok in zip(found, same)]
        return columns, parents, find
    by_ids = dict(zip(zip(trace_ids, span_ids), range(len(span_ids))))
    parents = [
        None if parent_id is None else by_ids.get((trace_id, parent_id))
        for trace_id, parent_id in zip(trace_ids, parent_ids)
    ]
    return columns, parents, lambda trace_id, span_id: by_ids.get((trace_id, span_id))
