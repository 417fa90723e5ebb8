"""Counters: how many threads wait on each of the most waited-on primitives.

The fourth phase, from the waits that :mod:`.slices` collected (see
"Counters" in the package docstring).  Only the ``hot`` primitives with the
most total wait get one.  A counter has a point at each instant where its
count changes, made a column at a time (the starts and ends at each
instant, counted, then a running sum), not by walking the waits one by one.
"""

from __future__ import annotations

import collections
import itertools
import operator


def make_counters(
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
