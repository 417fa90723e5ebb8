"""Output: the laid-out timeline as event dicts, or as the JSON lines of the file.

The encoding phase, after :mod:`.lanes`.  :func:`as_dict` makes what
``timeline`` returns; :func:`json_lines` makes, for the file, the text
``json.dumps`` (compact) would give of each of those events, without making
the events: the lines are formatted from the columns (only names and args
go through the encoder, and a name's head is made once per name), far
cheaper than a dict and a ``json.dumps`` per event (see :mod:`.layout`).
Both put the events in the order :mod:`.lanes` found.
"""

from __future__ import annotations

from typing import Any

from .encoder import ENCODER, encode
from .layout import Layout


def trailer(layout: Layout) -> dict[str, Any]:
    """The timeline's keys after ``traceEvents``."""
    return {
        "displayTimeUnit": "ms",
        "threadtrace.epoch_ns": layout.base,
        "threadtrace.dropped_spans": layout.dropped_spans,
    }


def _metadata(layout: Layout) -> list[dict[str, Any]]:
    """The process and thread names and thread order."""
    events: list[dict[str, Any]] = [
        {
            "name": "process_name",
            "ph": "M",
            "pid": pid,
            "args": {"name": service or "threadtrace"},
        }
        for service, pid in layout.pids.items()
    ]
    for track in layout.ordered:
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


def _columns(layout: Layout) -> tuple[list[int], list[int], list[float], list[float]]:
    """Each slice's pid, tid, ts and dur."""
    base, track_of, starts = layout.base, layout.track_of, layout.starts
    return (
        [track.pid for track in track_of],
        [track.tid + lane for track, lane in zip(track_of, layout.lanes)],
        [(start - base) / 1000 for start in starts],
        [(end - start) / 1000 for start, end in zip(starts, layout.ends)],
    )


def as_dict(layout: Layout) -> dict[str, Any]:
    """The timeline, as ``timeline`` returns it (of slices made with ``text=False``)."""
    base, flows = layout.base, layout.flows
    pids, tids, tss, durs = _columns(layout)
    layout.args += [{"woke": list(woke)} for woke in layout.woke]
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
            layout.names, layout.cats, tss, durs, pids, tids, layout.args
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
    for pid, name, points in layout.counters:
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
        "traceEvents": _metadata(layout) + list(map(events.__getitem__, layout.order)),
        **trailer(layout),
    }


def json_lines(layout: Layout) -> list[str]:
    """The JSON of each event of :func:`as_dict`, as ``json.dumps`` (compact) gives it
    (of slices made with ``text=True``)."""
    base, flows = layout.base, layout.flows
    pids, tids, tss, durs = _columns(layout)
    layout.args += [encode({"woke": list(woke)}) for woke in layout.woke]
    # '{"name":...,"cat":...,"ph":"X","ts":' by (name, cat): names repeat.  Only
    # for names that are text: 1 == 1.0 == True, but their JSON differs.
    pairs = list(zip(layout.names, layout.cats))
    if set(map(type, layout.names)) <= {str}:
        heads = dict.fromkeys(pairs, "")
        for name, cat in heads:
            heads[name, cat] = f'{{"name":{encode(name)},"cat":"{cat}","ph":"X","ts":'
        starts = list(map(heads.__getitem__, pairs))
    else:
        starts = [
            f'{{"name":{ENCODER.encode(name)},"cat":"{cat}","ph":"X","ts":' for name, cat in pairs
        ]
    del pairs
    lines = [
        f'{head}{ts!r},"dur":{dur!r},"pid":{pid},"tid":{tid},"args":{args}}}'
        for head, ts, dur, pid, tid, args in zip(starts, tss, durs, pids, tids, layout.args)
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
    for pid, name, points in layout.counters:
        head = f'{{"name":{encode(name)},"cat":"waiters","ph":"C","ts":'
        lines += [
            f'{head}{(ns - base) / 1000!r},"pid":{pid},"args":{{"waiters":{value}}}}}'
            for ns, value in points
        ]
    return list(map(encode, _metadata(layout))) + list(map(lines.__getitem__, layout.order))
