"""Flows: the wake and join arrows, and the wake markers that arrows leave from.

The third phase, over the spans that :mod:`.slices` found may have arrows.
Both viewers attach a flow event to the innermost slice open on its track at
its time (see "Flows" and "Event order" in the package docstring), so every
arrow needs a slice at each end: a wake arrow leaves from a zero-length
marker slice on the waker's track, one per track and instant, made here and
named by what the waker did (``Lock.release``, ``Event.set``...).  The
markers are slices like the spans' (their columns appended after the
spans'), so the later phases lay them out and sort them with the rest.
"""

from __future__ import annotations

from typing import Any, Optional

from ..._support.names import operation_of
from ..records import LinkRecord
from .layout import MARKER, WOKEN, Layout, Track
from .tracks import as_int, thread_track

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


def make_flows(  # noqa: PLR0912, PLR0915 - one pass, all inline (see .layout)
    layout: Layout, linked: list[int]
) -> list[tuple[Any, ...]]:
    """The wake and join arrows, with the wake markers they leave from.

    Each is (end, start, cat, target tiebreak..., source tiebreak..., made,
    source, target), in file order (``made`` keeps equal ones in the order
    they were made).
    """
    find, track_of, all_attributes = layout.find, layout.track_of, layout.attributes
    starts, ends, ranks, kinds = layout.starts, layout.ends, layout.ranks, layout.kinds
    span_names, span_ids, raw_ends = layout.span_names, layout.span_ids, layout.raw_ends
    flows: list[tuple[Any, ...]] = []
    first_woken: dict[int, int] = {}  # by marker
    more_woken: dict[int, list[int]] = {}  # by marker, when it woke several
    marker_tracks: list[Track] = []
    marker_times: list[int] = []
    count = len(starts)  # the first marker's number
    for target in linked:
        attributes = all_attributes[target]
        links = layout.links[target]
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
                track = thread_track(layout, layout.services[target], ident, name, at, at)
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
                ranks[target] = WOKEN
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
    # The markers, as slices (see .layout), named by what woke whom.
    names, woke = layout.names, layout.woke

    def thread_name(number: int) -> str:
        return str(all_attributes[number].get("thread.name", ""))

    for marker, target in first_woken.items():
        several = more_woken.get(marker)
        if several is None:
            primitive = all_attributes[target].get("threadtrace.primitive.name", "")
            action = _WAKE_ACTION.get(operation_of(span_names[target]), "wake")
            names.append(f"{action} {primitive}".rstrip())
            woke.append((track_of[target].name,))
            continue
        several.sort(key=lambda s: (starts[s], thread_name(s), span_ids[s]))
        found = {
            f"{_WAKE_ACTION.get(operation_of(span_names[number]), 'wake')} "
            f"{all_attributes[number].get('threadtrace.primitive.name', '')}".rstrip()
            for number in several
        }
        names.append(found.pop() if len(found) == 1 else "wake")
        woke.append(tuple(track_of[number].name for number in several))
    markers = len(marker_times)
    track_of += marker_tracks
    starts += marker_times
    ends += marker_times
    layout.cats += ["wake"] * markers
    kinds += [2] * markers
    span_names += [""] * markers
    span_ids += [""] * markers
    ranks += [MARKER] * markers
    flows.sort()
    return flows


def _waker(
    attributes: Any, links: tuple[LinkRecord, ...]
) -> Optional[tuple[int, str, Optional[LinkRecord]]]:
    """(ident, name, link) of the thread that woke a span, if it was woken."""
    for link in links:
        if link.attributes.get("threadtrace.link.type") == "woken_by":
            ident = as_int(link.attributes.get("thread.id"))
            if ident is not None:
                return ident, str(link.attributes.get("thread.name") or ""), link
    ident = as_int(attributes.get("threadtrace.waker.thread.id"))
    if ident is None:
        return None
    return ident, str(attributes.get("threadtrace.waker.thread.name") or ""), None
