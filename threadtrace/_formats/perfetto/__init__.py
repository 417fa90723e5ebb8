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

How it is made
    In phases, a module each, over one set of columns that every phase reads
    and fills in (:mod:`.layout`, which says why columns and not objects):

    1. :mod:`.layout` reads the records, each once, into columns, in a
       canonical order;
    2. :mod:`.tracks` finds each thread's runs, then :mod:`.slices`, in one
       pass over the spans, puts each on its track (the rules of
       :mod:`.tracks`, common cases inline) and makes its name, category and
       args (:mod:`.args`);
    3. :mod:`.flows` makes the wake and join arrows and the wake markers;
    4. :mod:`.counters` counts the waiters on the hottest primitives;
    5. :mod:`.tracks` puts the tracks in display order, and :mod:`.lanes`
       sorts every event into file order and lays the slices out in lanes;
    6. :mod:`.output` makes the event dicts, or the file's JSON lines
       (through :mod:`.encoder`), which :func:`write_timeline` writes.

Thread-safety: :func:`timeline` is a pure function.  :func:`write_timeline`
writes a temporary file next to the file and renames it over it, so a
reader (or a crash) never sees half a file; concurrent calls for one path
leave one complete file, the last renamed (:mod:`threadtrace._formats.files`).
"""

from __future__ import annotations

import contextlib
import gc
import json
from typing import Any, Iterable, Iterator

from ..files import write_whole
from ..records import SpanRecord
from .counters import make_counters
from .flows import make_flows
from .lanes import file_order, fill_lanes
from .layout import Layout
from .output import as_dict, json_lines, trailer
from .slices import make_slices
from .tracks import display_order, index_runs

__all__ = ["collector_paused", "timeline", "write_timeline"]

_CHUNK = 4096  # lines written at a time


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
    return as_dict(_lay_out(records, hot, dropped_spans, text=False))


def write_timeline(
    records: Iterable[SpanRecord], path: str, *, hot: int = 10, dropped_spans: int = 0
) -> None:
    """Write :func:`timeline` of ``records`` to ``path``, atomically.

    The JSON goes to a temporary file in the same directory, which then
    replaces the file: readers see the old file or the new one, never half
    of one, and a crash leaves at most a stray ``*.tmp`` file.  A symbolic
    link is followed and the file it leads to replaced
    (:func:`threadtrace._formats.files.write_whole`).

    Raises:
        OSError: the file cannot be written, or ``path`` is (or leads to) a
            directory, a FIFO, a device or a socket
            (:class:`~threadtrace._formats.files.NotRegularFileError`).
        ValueError: ``hot`` is negative.
    """
    if hot < 0:
        raise ValueError(f"hot must be >= 0, got {hot}")
    _write(_lay_out(records, hot, dropped_spans, text=True), path)


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


def _lay_out(records: Iterable[SpanRecord], hot: int, dropped_spans: int, *, text: bool) -> Layout:
    """The layout of ``records``, phase by phase (see "How it is made" above).

    ``text``: whether the slices' args are wanted as JSON (for
    :func:`~.output.json_lines`) or as dicts (for :func:`~.output.as_dict`).
    """
    layout = Layout(records, dropped_spans)
    index_runs(layout)
    waits, linked = make_slices(layout, text)
    layout.flows = make_flows(layout, linked)
    layout.counters = make_counters(layout.starts, layout.ends, waits, layout.base, hot)
    layout.ordered = display_order(layout)
    layout.order = file_order(layout)
    fill_lanes(layout)
    return layout


# The file is written here, not in .output: tests make a write fail half-way
# by replacing this module's _dump.
def _write(data: Layout, path: str) -> None:
    """Write ``data`` to ``path``, atomically (see :func:`write_timeline`)."""
    write_whole(path, lambda file: _dump(data, file))


def _dump(data: Layout, file: Any) -> None:
    """The JSON of the timeline, one trace event per line (diffable, greppable).

    Each line is ``json.dumps(event, separators=(",", ":"))`` of that event of
    :func:`timeline`, made without making the event.
    """
    file.write('{"traceEvents":[')
    lines = json_lines(data)
    for start in range(0, len(lines), _CHUNK):
        file.write(("," if start else "") + "\n" + ",\n".join(lines[start : start + _CHUNK]))
    file.write("\n]")
    for key, value in trailer(data).items():
        file.write(f",{json.dumps(key)}:{json.dumps(value, allow_nan=False)}")
    file.write("}\n")
