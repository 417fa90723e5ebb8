"""Processes, threads and tracks: which track each span goes on.

The rules are in "Processes and threads" in the package docstring: a thread
is its ``Thread.run`` span, found by descent or else by lifetime, because the
OS reuses idents; threads without a run are keyed by ident and name; spans
with no thread follow their parent.  Every track is made once, the first time
a span needs it, and looked up by its key after that; the common cases of
:func:`track_of_span` are inline in :func:`.slices.make_slices`, which calls
these functions only for the others.
"""

from __future__ import annotations

import bisect
import collections
from typing import Any, Optional

from .layout import UNKNOWN, Layout, Track, TrackKey

NO_THREAD = "(no thread)"


def ident_of(attributes: Any) -> Optional[int]:
    """The thread ident in a span's ``attributes``, if it has a usable one."""
    value = attributes.get("thread.id")
    return None if value is None else as_int(value)


def as_int(value: Any) -> Optional[int]:
    """``value`` as a thread ident, if it is one (an int, or the text of one)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def index_runs(layout: Layout) -> None:
    """The runs' idents, and the runs of each (service, ident) by start, for :func:`run_at`."""
    runs: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    for number in [n for n, kind in enumerate(layout.kinds) if kind == 0]:
        ident = layout.idents[number] = ident_of(layout.attributes[number])
        if ident is not None:
            runs[layout.services[number], ident].append(number)
    # Runs of one ident never overlap, so sorted by start they are sorted by end too.
    starts, span_ids = layout.starts, layout.span_ids
    for key, found in runs.items():
        found.sort(key=lambda run: (starts[run], span_ids[run]))
        layout.runs[key] = ([starts[run] for run in found], found)


def track_of_key(layout: Layout, key: TrackKey) -> Track:
    """The track of ``key``, made if it is the first time."""
    track = layout.tracks.get(key)
    if track is None:
        if key[0] == "run":
            run: int = layout.find(key[1], key[2])  # type: ignore[assignment]
            service = layout.services[run]
            ident = layout.idents[run]
            name = str(layout.attributes[run].get("thread.name", ""))
        elif key[0] == "thread":
            _, service, ident, name = key
        else:
            _, service = key
            ident, name = None, NO_THREAD
        if not name:
            name = f"thread {ident}"
        track = layout.tracks[key] = Track(key, layout.pids[service], name, ident)
    return track


def run_track(layout: Layout, run: int) -> Track:
    """The track of the thread whose ``Thread.run`` span is ``run``."""
    track = layout.run_tracks.get(run)
    if track is None:
        key = ("run", layout.trace_ids[run], layout.span_ids[run])
        track = layout.run_tracks[run] = track_of_key(layout, key)
    return track


def track_of_span(layout: Layout, number: int) -> Track:
    """The track of span ``number``; spans without a thread follow their parent."""
    keys, later = layout.track_of, layout.later
    chain: list[int] = []
    seen: set[int] = set()
    current: Optional[int] = number
    track: Optional[Track] = None
    while current is not None:
        track = keys[current] if current < len(keys) else later.get(current)
        if track is not None or current in seen:
            break
        seen.add(current)
        chain.append(current)
        ident = layout.idents[current]
        if ident is UNKNOWN:
            ident = layout.idents[current] = ident_of(layout.attributes[current])
        if layout.kinds[current] == 0:
            track = run_track(layout, current)
            break
        if ident is not None:
            track = thread_track(
                layout, layout.services[current], ident,
                str(layout.attributes[current].get("thread.name", "")),
                layout.starts[current], layout.raw_ends[current],
                run_ancestor(layout, current, ident),
            )  # fmt: skip
            break
        current = layout.parents[current]
    if track is None:
        track = track_of_key(layout, ("none", layout.services[number]))
    for item in chain:
        if item < len(keys):
            keys[item] = track
        else:
            later[item] = track
    return track


def thread_track(
    layout: Layout,
    service: str,
    ident: int,
    name: str,
    start_ns: int,
    end_ns: int,
    run: Optional[int] = None,
) -> Track:
    """The track of thread ``ident`` for something from ``start_ns`` to ``end_ns``."""
    if run is None:
        run = run_at(layout, service, ident, start_ns, end_ns)
    if run is not None:
        return layout.run_tracks.get(run) or run_track(layout, run)
    key = ("thread", service, ident, name)
    return layout.tracks.get(key) or track_of_key(layout, key)


def run_ancestor(layout: Layout, number: int, ident: int) -> Optional[int]:
    """The ``Thread.run`` that span ``number`` descends from, if in the same thread."""
    span_ids = layout.span_ids
    seen: set[str] = set()
    parents = layout.parents
    parent = parents[number]
    while parent is not None and span_ids[parent] not in seen:
        if layout.kinds[parent] == 0:
            return parent if layout.idents[parent] == ident else None
        seen.add(span_ids[parent])
        parent = parents[parent]
    return None


def run_at(layout: Layout, service: str, ident: int, start_ns: int, end_ns: int) -> Optional[int]:
    """The run of thread ``ident`` that contains the span, or at least its end."""
    found = layout.runs.get((service, ident))
    if found is None:
        return None
    starts, runs = found
    for at in (start_ns, end_ns):
        index = bisect.bisect_right(starts, at) - 1
        if index >= 0 and layout.raw_ends[runs[index]] >= end_ns:
            return runs[index]
    return None


def display_order(layout: Layout) -> list[Track]:
    """The tracks with slices, in display order; each one's ``index`` set to its place."""
    ordered = sorted(
        (track for track in layout.tracks.values() if track.start_ns is not None),
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
