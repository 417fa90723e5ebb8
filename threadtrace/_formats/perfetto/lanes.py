"""Event order and lanes: one sort gives the file order and the lanes' order.

The last phase of the layout (see "Slices and lanes" and "Event order" in
the package docstring).  A slice's place in the file is its key

    (start, rank, start - end, kind, span name, span id, track index, number)

(kind: 0 for runs, 1 for other spans, 2 for markers).  The slices of one
track, in key order, are in layout order too (by start, longest first), so
one sort of every event gives both the file order (:func:`file_order`) and
the order in which the lanes are filled, first fit (:func:`fill_lanes`).
Two slices of a track with equal keys up to the track are the same
interval, so they go on the same lane, and their numbers keep them in the
order they were made.  Flow events and counter points sort by (ns, rank,
number).  When no two slices share an instant and a rank (a clock of ns:
the usual case), (ns, rank) as one number, sorted stably, gives that order,
far faster than tuples.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any

from .layout import COUNTER, FLOW_END, FLOW_START, Layout

_LAST = operator.itemgetter(-1)


def file_order(layout: Layout) -> list[int]:
    """The place of each event made, in file order.

    Events are numbered as they are made: the slices, then the flows' starts,
    their ends, and the counters' points.  Slices sort by their key (see
    the module docstring), flow events and counter points by (ns, rank, number).
    """
    starts, ranks, flows = layout.starts, layout.ranks, layout.flows
    made = len(starts)
    times = starts + [flow[1] for flow in flows] + [flow[0] for flow in flows]
    ranked = ranks + [FLOW_START] * len(flows) + [FLOW_END] * len(flows)
    for _, _, points in layout.counters:
        times += [ns for ns, _ in points]
        ranked += [COUNTER] * len(points)
    # (time, rank) as one number: a float if that is exact, for floats sort fastest.
    base = layout.base
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
            [start - end for start, end in zip(starts, layout.ends)],
            layout.kinds,
            layout.span_names,
            layout.span_ids,
            [track.index for track in layout.track_of],
            range(made),
        )
    )
    events += zip(times[made:], ranked[made:], range(made, len(times)))
    events.sort()
    return list(map(_LAST, events))


def fill_lanes(layout: Layout) -> None:
    """Lanes for every slice (first fit, in layout order), and tids (after the pids)."""
    track_of, starts, ends = layout.track_of, layout.starts, layout.ends
    placed = [0] * len(ends)
    made = len(ends)
    for number in [place for place in layout.order if place < made]:
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
    layout.lanes = placed
    tid = len(layout.pids)
    for track in layout.ordered:
        track.tid = tid + 1
        tid += len(track.lanes)
