"""Spans as a timeline: the Chrome trace-event JSON that Perfetto opens.

:func:`timeline` turns :class:`~threadtrace._traceio.SpanRecord` objects into
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
import dataclasses
import json
import math
import os
import secrets
from typing import Any, Iterable, Optional

from ._traceio import LinkRecord, SpanRecord

__all__ = ["timeline", "write_timeline"]

RUN = "Thread.run"
NO_THREAD = "(no thread)"

# Ranks of the events that share one instant (see "Event order" above).
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

_SpanKey = tuple[str, str]  # (trace id, span id)
#: ("run", trace id, span id), ("thread", service, ident, name) or ("none", service)
_TrackKey = tuple[Any, ...]


@dataclasses.dataclass
class _Track:
    key: _TrackKey
    pid: int
    name: str
    thread_id: Optional[int]
    slices: list[_Slice] = dataclasses.field(default_factory=list)
    tids: list[int] = dataclasses.field(default_factory=list)  # one per lane, the main one first


@dataclasses.dataclass(eq=False)
class _Slice:
    track: _Track
    start_ns: int
    end_ns: int
    name: str
    cat: str
    args: dict[str, Any]
    tiebreak: tuple[int, str, str]  # runs first, then by name and span id
    rank: int = _SLICE
    lane: int = 0

    def order(self) -> tuple[Any, ...]:
        """Layout order on the track, also the file order at one instant."""
        return (self.start_ns, self.rank, self.start_ns - self.end_ns, self.tiebreak)

    @property
    def tid(self) -> int:
        return self.track.tids[self.lane]


@dataclasses.dataclass
class _Flow:
    cat: str  # "wake" or "join"
    source: _Slice
    start_ns: int
    target: _Slice
    end_ns: int


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
    spans = _unique(records)
    base = min((span.start_ns for span in spans), default=0)
    pids = {service: pid for pid, service in enumerate(sorted({s.service_name for s in spans}), 1)}
    threads = _Threads(spans, pids)
    slices: dict[_SpanKey, _Slice] = {}
    for span in spans:
        track = threads.track(threads.key_of(span))
        slices[span.trace_id, span.span_id] = _new_slice(track, span)
    flows = _flows(spans, slices, threads)
    tracks = _lay_out(threads.tracks.values(), len(pids))
    flows.sort(key=lambda f: (f.end_ns, f.start_ns, f.cat, f.target.tiebreak, f.source.tiebreak))

    timed: list[tuple[Any, ...]] = []  # (ns, rank, tiebreak, event)
    for index, track in enumerate(tracks):
        for item in track.slices:
            event = {
                "name": item.name,
                "cat": item.cat,
                "ph": "X",
                "ts": _us(item.start_ns - base),
                "dur": _us(item.end_ns - item.start_ns),
                "pid": track.pid,
                "tid": item.tid,
                "args": item.args,
            }
            tiebreak = (item.start_ns - item.end_ns, item.tiebreak, index, item.lane)
            timed.append((item.start_ns, item.rank, tiebreak, event))
    for number, flow in enumerate(flows, 1):
        for phase, ns, rank, end in (
            ("s", flow.start_ns, _FLOW_START, flow.source),
            ("f", flow.end_ns, _FLOW_END, flow.target),
        ):
            event = {
                "name": flow.cat,
                "cat": flow.cat,
                "ph": phase,
                "id": number,
                "ts": _us(ns - base),
                "pid": end.track.pid,
                "tid": end.tid,
            }
            if phase == "f":
                event["bp"] = "e"
            timed.append((ns, rank, (number,), event))
    for number, (pid, name, points) in enumerate(_counters(spans, pids, base, hot)):
        for ns, value in points:
            event = {
                "name": name,
                "cat": "waiters",
                "ph": "C",
                "ts": _us(ns - base),
                "pid": pid,
                "args": {"waiters": value},
            }
            timed.append((ns, _COUNTER, (number,), event))
    timed.sort(key=lambda item: item[:3])

    return {
        "traceEvents": _metadata(pids, tracks) + [item[3] for item in timed],
        "displayTimeUnit": "ms",
        "threadtrace.epoch_ns": base,
        "threadtrace.dropped_spans": dropped_spans,
    }


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
    data = timeline(records, hot=hot, dropped_spans=dropped_spans)
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


def _dump(data: dict[str, Any], file: Any) -> None:
    """The JSON of ``data``, one trace event per line (diffable, greppable)."""
    file.write('{"traceEvents":[')
    for index, event in enumerate(data["traceEvents"]):
        file.write(",\n" if index else "\n")
        file.write(json.dumps(event, separators=(",", ":"), allow_nan=False))
    file.write("\n]")
    for key, value in data.items():
        if key != "traceEvents":
            file.write(f",{json.dumps(key)}:{json.dumps(value, allow_nan=False)}")
    file.write("}\n")


# -- threads ---------------------------------------------------------------------------


class _Threads:
    """Which track each span goes on (see "Processes and threads" above)."""

    def __init__(self, spans: list[SpanRecord], pids: dict[str, int]) -> None:
        self.pids = pids
        self.by_id: dict[_SpanKey, SpanRecord] = {(s.trace_id, s.span_id): s for s in spans}
        self.tracks: dict[_TrackKey, _Track] = {}
        self._keys: dict[_SpanKey, _TrackKey] = {}
        runs: dict[tuple[str, int], list[SpanRecord]] = collections.defaultdict(list)
        for span in spans:
            ident = _ident(span)
            if span.name == RUN and ident is not None:
                runs[span.service_name, ident].append(span)
        # Runs of one ident never overlap, so sorted by start they are sorted by end too.
        self._runs: dict[tuple[str, int], tuple[list[int], list[SpanRecord]]] = {}
        for key, found in runs.items():
            found.sort(key=lambda run: (run.start_ns, run.span_id))
            self._runs[key] = ([run.start_ns for run in found], found)

    def track(self, key: _TrackKey) -> _Track:
        track = self.tracks.get(key)
        if track is None:
            if key[0] == "run":
                run = self.by_id[key[1], key[2]]
                service, ident, name = run.service_name, _ident(run), run.thread_name
            elif key[0] == "thread":
                _, service, ident, name = key
            else:
                _, service = key
                ident, name = None, NO_THREAD
            if not name:
                name = f"thread {ident}"
            track = self.tracks[key] = _Track(key, self.pids[service], name, ident)
        return track

    def key_of(self, span: SpanRecord) -> _TrackKey:
        """The track key of ``span``; spans without a thread follow their parent."""
        chain: list[SpanRecord] = []
        seen: set[_SpanKey] = set()
        current: Optional[SpanRecord] = span
        key: Optional[_TrackKey] = None
        while current is not None:
            ids = (current.trace_id, current.span_id)
            key = self._keys.get(ids)
            if key is not None or ids in seen:
                break
            seen.add(ids)
            chain.append(current)
            ident = _ident(current)
            if current.name == RUN:
                key = ("run", current.trace_id, current.span_id)
                break
            if ident is not None:
                key = self.thread_key(
                    current.service_name, ident, current.thread_name, current.start_ns,
                    current.end_ns, self._run_ancestor(current, ident),
                )  # fmt: skip
                break
            current = self._parent(current)
        if key is None:
            key = ("none", span.service_name)
        for item in chain:
            self._keys[item.trace_id, item.span_id] = key
        return key

    def thread_key(
        self,
        service: str,
        ident: int,
        name: str,
        start_ns: int,
        end_ns: int,
        run: Optional[SpanRecord] = None,
    ) -> _TrackKey:
        """The track of thread ``ident`` for something from ``start_ns`` to ``end_ns``."""
        if run is None:
            run = self._run_at(service, ident, start_ns, end_ns)
        if run is not None:
            return ("run", run.trace_id, run.span_id)
        return ("thread", service, ident, name)

    def waker_key(
        self, woken: SpanRecord, ident: int, name: str, link: Optional[LinkRecord]
    ) -> _TrackKey:
        """The track of thread ``ident``, which woke ``woken`` when ``woken`` ended."""
        linked = None if link is None else self.by_id.get((link.trace_id, link.span_id))
        if linked is not None:
            # The span that was current in the waker: its track, if it is the waker's.
            key = self.key_of(linked)
            if self.track(key).thread_id == ident:
                return key
        at = woken.end_ns
        return self.thread_key(woken.service_name, ident, name, at, at)

    def _parent(self, span: SpanRecord) -> Optional[SpanRecord]:
        if span.parent_span_id is None:
            return None
        return self.by_id.get((span.trace_id, span.parent_span_id))

    def _run_ancestor(self, span: SpanRecord, ident: int) -> Optional[SpanRecord]:
        """The ``Thread.run`` that ``span`` descends from, if it ran in the same thread."""
        seen: set[str] = set()
        parent = self._parent(span)
        while parent is not None and parent.span_id not in seen:
            if parent.name == RUN:
                return parent if _ident(parent) == ident else None
            seen.add(parent.span_id)
            parent = self._parent(parent)
        return None

    def _run_at(self, service: str, ident: int, start_ns: int, end_ns: int) -> Optional[SpanRecord]:
        """The run of thread ``ident`` that contains the span, or at least its end."""
        found = self._runs.get((service, ident))
        if found is None:
            return None
        starts, runs = found
        for at in (start_ns, end_ns):
            index = bisect.bisect_right(starts, at) - 1
            if index >= 0 and runs[index].end_ns >= end_ns:
                return runs[index]
        return None


# -- slices and flows -----------------------------------------------------------------


def _new_slice(track: _Track, span: SpanRecord) -> _Slice:
    primitive = span.attributes.get("threadtrace.primitive.name")
    operation = span.attributes.get("threadtrace.operation")
    if span.name == RUN:
        cat = "thread"
    elif operation == "hold":
        cat = "hold"
    elif operation is not None:
        cat = "wait"
    else:
        cat = "span"
    item = _Slice(
        track,
        span.start_ns,
        max(span.end_ns, span.start_ns),
        f"{span.name} {primitive}" if primitive is not None else span.name,
        cat,
        _args(span),
        (0 if span.name == RUN else 1, span.name, span.span_id),
    )
    track.slices.append(item)
    return item


def _flows(
    spans: list[SpanRecord], slices: dict[_SpanKey, _Slice], threads: _Threads
) -> list[_Flow]:
    """The wake and join arrows, with the wake markers they leave from."""
    flows: list[_Flow] = []
    markers: dict[tuple[_TrackKey, int], tuple[_Slice, list[SpanRecord]]] = {}
    for span in spans:
        target = slices[span.trace_id, span.span_id]
        waker = _waker(span)
        if waker is not None:
            key = threads.waker_key(span, *waker)
            at = target.end_ns
            if (key, at) not in markers:
                track = threads.track(key)
                marker = _Slice(track, at, at, "wake", "wake", {}, (2, "", ""), _MARKER)
                track.slices.append(marker)
                markers[key, at] = (marker, [])
            marker, woken = markers[key, at]
            woken.append(span)
            if target.start_ns == target.end_ns:
                target.rank = _WOKEN
            flows.append(_Flow("wake", marker, at, target, at))
        for link in span.links:
            if link.attributes.get("threadtrace.link.type") != "joined":
                continue
            run = threads.by_id.get((link.trace_id, link.span_id))
            if (
                run is None
                or run.name != RUN
                or span.attributes.get("threadtrace.timed_out")
                or run.end_ns > target.end_ns
            ):
                continue
            source = slices[run.trace_id, run.span_id]
            flows.append(_Flow("join", source, source.end_ns, target, target.end_ns))
    for marker, woken in markers.values():
        woken.sort(key=lambda s: (s.start_ns, s.thread_name, s.span_id))
        names = {
            f"{_WAKE_ACTION.get(s.name, 'wake')} "
            f"{s.attributes.get('threadtrace.primitive.name', '')}".rstrip()
            for s in woken
        }
        marker.name = names.pop() if len(names) == 1 else "wake"
        marker.args = {"woke": [slices[s.trace_id, s.span_id].track.name for s in woken]}
    return flows


def _lay_out(tracks: Iterable[_Track], processes: int) -> list[_Track]:
    """Lanes for every track's slices, and tids in display order (after the pids)."""
    tracks = [track for track in tracks if track.slices]
    for track in tracks:
        track.slices.sort(key=_Slice.order)
        lanes: list[list[int]] = []  # per lane, the ends of the slices open on it
        for item in track.slices:
            item.lane = _place(lanes, item)
    ordered = sorted(
        tracks,
        key=lambda t: (
            t.pid,
            min(s.start_ns for s in t.slices),
            t.name,
            -1 if t.thread_id is None else t.thread_id,
            repr(t.key),
        ),
    )
    tid = processes
    for track in ordered:
        count = 1 + max(s.lane for s in track.slices)
        track.tids = list(range(tid + 1, tid + 1 + count))
        tid += count
    return ordered


def _place(lanes: list[list[int]], item: _Slice) -> int:
    """The first lane where ``item`` nests or stands alone; a new one if none."""
    for lane, open_ends in enumerate(lanes):
        while open_ends and open_ends[-1] <= item.start_ns:
            open_ends.pop()  # ended before this one starts: disjoint
        if not open_ends or open_ends[-1] >= item.end_ns:
            open_ends.append(item.end_ns)
            return lane
    lanes.append([item.end_ns])
    return len(lanes) - 1


def _counters(
    spans: list[SpanRecord], pids: dict[str, int], base: int, hot: int
) -> list[tuple[int, str, list[tuple[int, int]]]]:
    """(pid, primitive, [(ns, waiters)]) for the ``hot`` most waited-on primitives."""
    waits: dict[tuple[int, str], list[SpanRecord]] = collections.defaultdict(list)
    for span in spans:
        operation = span.attributes.get("threadtrace.operation")
        primitive = span.attributes.get("threadtrace.primitive.name")
        if operation is not None and operation != "hold" and primitive is not None:
            waits[pids[span.service_name], str(primitive)].append(span)
    ranked = sorted(
        waits.items(),
        key=lambda item: (-sum(max(0, s.duration_ns) for s in item[1]), item[0]),
    )
    counters = []
    for (pid, name), found in ranked[:hot]:
        deltas: dict[int, int] = collections.defaultdict(int)
        for span in found:
            deltas[span.start_ns] += 1
            deltas[max(span.end_ns, span.start_ns)] -= 1
        points = [(base, 0)] if min(deltas) > base else []
        waiting = 0
        for ns in sorted(deltas):
            if deltas[ns]:
                waiting += deltas[ns]
                points.append((ns, waiting))
        counters.append((pid, name, points))
    return counters


def _metadata(pids: dict[str, int], tracks: list[_Track]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "args": {"name": service or "threadtrace"}}
        for service, pid in pids.items()
    ]
    for track in tracks:
        for lane, tid in enumerate(track.tids):
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


# -- values ----------------------------------------------------------------------------


def _args(span: SpanRecord) -> dict[str, Any]:
    attributes = span.attributes
    if span.name != RUN and "threadtrace.operation" not in attributes:
        args = {str(key): _jsonable(value) for key, value in sorted(attributes.items())}
    else:
        candidates = (
            ("primitive", attributes.get("threadtrace.primitive.name")),
            ("kind", attributes.get("threadtrace.primitive.kind")),
            ("site", _site(attributes, "")),
            ("function", attributes.get("code.function.name")),
            ("holder", attributes.get("threadtrace.holder.thread.name")),
            ("holder_site", _site(attributes, "threadtrace.holder.")),
            ("waker", attributes.get("threadtrace.waker.thread.name")),
            ("timed_out", attributes.get("threadtrace.timed_out")),
            ("timeout_s", attributes.get("threadtrace.timeout")),
            ("daemon", attributes.get("threadtrace.thread.daemon")),
            ("thread_id", attributes.get("thread.id")),
        )
        args = {key: _jsonable(value) for key, value in candidates if value is not None}
    if span.error is not None:
        args["error"] = span.error
    return args


def _site(attributes: Any, prefix: str) -> Optional[str]:
    path = attributes.get(f"{prefix}code.file.path")
    if not path:
        return None
    name = os.path.basename(str(path))
    line = attributes.get(f"{prefix}code.line.number")
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


def _waker(span: SpanRecord) -> Optional[tuple[int, str, Optional[LinkRecord]]]:
    """(ident, name, link) of the thread that woke ``span``, if it was woken."""
    for link in span.links:
        if link.attributes.get("threadtrace.link.type") == "woken_by":
            ident = _as_int(link.attributes.get("thread.id"))
            if ident is not None:
                return ident, str(link.attributes.get("thread.name") or ""), link
    ident = _as_int(span.attributes.get("threadtrace.waker.thread.id"))
    if ident is None:
        return None
    return ident, str(span.attributes.get("threadtrace.waker.thread.name") or ""), None


def _as_int(value: Any) -> Optional[int]:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _ident(span: SpanRecord) -> Optional[int]:
    value = span.attributes.get("thread.id")
    return None if value is None else _as_int(value)


def _us(ns: int) -> float:
    return ns / 1000


def _unique(records: Iterable[SpanRecord]) -> list[SpanRecord]:
    """The records in a canonical order, each span once (the first one seen)."""
    seen: dict[_SpanKey, SpanRecord] = {}
    for record in records:
        seen.setdefault((record.trace_id, record.span_id), record)
    return sorted(seen.values(), key=lambda r: (r.start_ns, r.end_ns, r.trace_id, r.span_id))
