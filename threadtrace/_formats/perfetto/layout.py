"""The layout's state: spans and slices as columns, read from the records once.

The first phase, and what every later one reads and fills in.  How the
layout is made fast (a dozen µs a span, where an object per slice and a
``json.dumps`` per event took fifty):

* Spans are numbered in their canonical order (see :func:`read`), and slice n
  is span n; the wake markers come after them (:mod:`.flows`).  A slice is
  not an object but a column in parallel lists of :class:`Layout`, and the
  work is done a column at a time where it can be (comprehensions, map, zip
  and sort run far faster than loops).
* The records, and their attribute dicts, are scattered in memory: each
  visit costs cache misses.  So each record is read once, in the order
  given (:func:`read`), and each attribute dict once, for everything taken
  from it, args included (:mod:`.slices`).
* One sort of every event gives both the file order and the order in which
  the lanes are filled (:mod:`.lanes`).
* The file's lines are made by formatting, not by ``json.dumps`` of each
  event, and no event dict is made for them (:mod:`.output`).
* ``threadtrace convert`` also turns the cyclic garbage collector off
  meanwhile (``collector_paused``); the exporter, inside the program, does not.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any, Callable, Iterable, Optional

from ..records import LinkRecord, SpanRecord

RUN = "Thread.run"
#: How a run's span is named since span names carry their target (``Thread.run worker``).
_RUN_WITH_TARGET = RUN + " "

# Ranks of the events that share one instant (see "Event order" in the package
# docstring).  Slices have the even ones, flows and counters the odd ones.
MARKER, FLOW_START, WOKEN, FLOW_END, SLICE, COUNTER = range(6)

#: ("run", trace id, span id), ("thread", service, ident, name) or ("none", service)
TrackKey = tuple[Any, ...]
#: The number of the span with this trace id and span id, if there is one.
Find = Callable[[str, Optional[str]], Optional[int]]

#: An ident not read yet.
UNKNOWN: Any = object()
# Of a record's row (see read).
_START = operator.itemgetter(0)
_BY_TIME = operator.itemgetter(0, 1, 2, 3)  # start, end, trace id, span id
_SPAN_ID = operator.itemgetter(3)


class Track:
    """One thread's track; its lanes are tids of their own."""

    __slots__ = ("index", "key", "lanes", "markers", "name", "pid", "start_ns", "thread_id", "tid")

    def __init__(self, key: TrackKey, pid: int, name: str, thread_id: Optional[int]) -> None:
        self.key = key
        self.pid = pid
        self.name = name
        self.thread_id = thread_id
        self.start_ns: Optional[int] = None  # of its earliest slice; None while it has none
        self.index = 0  # in display order
        self.lanes: list[list[int]] = []  # per lane, the ends of the slices open on it
        self.tid = 0  # lane 0's; lane n is tid + n
        self.markers: dict[int, int] = {}  # the wake marker at each instant


class Layout:
    """Tracks, lanes, flows and counters of some spans, as columns.

    Made with the spans' columns; the phases fill in the rest, in the order
    ``_lay_out`` (in the package) runs them.  Not thread-safe: one thread
    makes and reads a layout.
    """

    def __init__(self, records: Iterable[SpanRecord], dropped_spans: int) -> None:
        columns, self.parents, self.find = read(records)
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
        # Each span's thread ident (see tracks.ident_of): the runs' first, the others'
        # as slices are made.
        self.idents: list[Any] = [UNKNOWN] * count
        self.tracks: dict[TrackKey, Track] = {}
        self.run_tracks: dict[int, Track] = {}
        # Tracks found for spans not reached yet (tracks.track_of_span follows parents).
        self.later: dict[int, Track] = {}
        # The runs of each (service, ident), by start (see tracks.index_runs).
        self.runs: dict[tuple[str, int], tuple[list[int], list[int]]] = {}

        # Slices' columns; the phases fill them in.
        self.ends = [
            start if start > end else end for start, end in zip(self.starts, self.raw_ends)
        ]
        self.kinds = [
            0 if name == RUN or name.startswith(_RUN_WITH_TARGET) else 1 for name in self.span_names
        ]
        self.ranks = [SLICE] * count
        self.track_of: list[Track] = []
        self.names: list[Any] = []
        self.cats: list[str] = []
        self.args: list[Any] = []  # JSON text or dicts (see slices.make_slices)
        self.woke: list[tuple[str, ...]] = []  # each marker's args: whom it woke
        self.lanes: list[int] = []

        # What the later phases make.
        self.flows: list[tuple[Any, ...]] = []
        self.counters: list[tuple[int, str, list[tuple[int, int]]]] = []
        self.ordered: list[Track] = []  # the tracks with slices, in display order
        self.order: list[int] = []  # the place of each event made, in file order


def read(records: Iterable[SpanRecord]) -> tuple[list[list[Any]], list[Optional[int]], Find]:
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
