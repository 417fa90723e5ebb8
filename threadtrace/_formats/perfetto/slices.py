"""Slices: each span's track, name, category and args, in one pass over the spans.

The second phase.  Each span's attribute dict is visited once here, for
everything taken from it: its thread (and so its track, :mod:`.tracks`),
the primitive it waited on or held (its name, and the waiters counters'
input), whether it may have arrows (:mod:`.flows`), and its args
(:mod:`.args`).  This loop runs once per span, so the common ways of
finding a track are inline (:mod:`.tracks` is called for the rest), the
columns are read through locals, and the args of spans with the same
attributes are made once.
"""

from __future__ import annotations

import collections
from typing import Any, Optional

from .args import args_dict, args_json
from .layout import Layout
from .tracks import as_int, run_ancestor, run_at, run_track, track_of_key, track_of_span

#: Attribute values that are equal only if their JSON is (unlike 1, 1.0 and True).
_TEXT_OR_INT = frozenset({str, int})


def make_slices(  # noqa: PLR0912, PLR0915 - one pass, all inline (see .layout)
    layout: Layout, text: bool
) -> tuple[dict[tuple[int, str], list[int]], list[int]]:
    """Each span's track, thread ident, name, category and args.

    ``text``: whether the args are wanted as JSON (for ``output.json_lines``)
    or as dicts (for ``output.as_dict``).

    Returns:
        the spans that wait on each (pid, primitive), and the spans that
        may have arrows.
    """
    idents, kinds, pids, parents = layout.idents, layout.kinds, layout.pids, layout.parents
    span_names = layout.span_names
    services, starts, raw_ends = layout.services, layout.starts, layout.raw_ends
    later, run_tracks = layout.later, layout.run_tracks
    track_of, names, cats, all_args = layout.track_of, layout.names, layout.cats, layout.args
    tracks = layout.tracks
    basenames: dict[str, str] = {}
    strings: dict[str, str] = {}  # JSON of text values
    made: dict[tuple[Any, ...], str] = {}  # JSON of args, by the attributes they are of
    waits: dict[tuple[int, str], list[int]] = collections.defaultdict(list)
    linked: list[int] = []
    for number, (attributes, links, error) in enumerate(
        zip(layout.attributes, layout.links, layout.errors)
    ):
        get = attributes.get
        ident = get("thread.id")
        if ident.__class__ is not int and ident is not None:
            ident = as_int(ident)
        idents[number] = ident
        # The track: track_of_span, with the common cases inline.
        track = later.pop(number, None) if later else None
        if track is None:
            if kinds[number] == 0:
                track = run_tracks.get(number) or run_track(layout, number)
            elif ident is not None:
                run: Optional[int] = None
                parent = parents[number]
                if parent is not None:
                    if kinds[parent] == 0:
                        run = parent if idents[parent] == ident else None
                    else:
                        run = run_ancestor(layout, number, ident)
                if run is None:
                    run = run_at(layout, services[number], ident, starts[number], raw_ends[number])
                if run is not None:
                    track = run_tracks.get(run) or run_track(layout, run)
                else:
                    key = ("thread", services[number], ident, str(get("thread.name", "")))
                    track = tracks.get(key) or track_of_key(layout, key)
            else:
                track = track_of_span(layout, number)
                later.pop(number, None)
        track_of.append(track)

        name = span_names[number]
        operation = get("threadtrace.operation")
        primitive = get("threadtrace.primitive.name")
        if primitive is None:
            names.append(name)
        else:
            # Spans named before names carried their target ("Lock.acquire")
            # get it here: the timeline shows the same either way.
            names.append(name if " " in name else f"{name} {primitive}")
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
                    args = made[of] = args_json(
                        attributes, kinds[number] == 0, error, basenames, strings
                    )
                all_args.append(args)
            else:
                all_args.append(
                    args_json(attributes, kinds[number] == 0, error, basenames, strings)
                )
        else:
            all_args.append(args_dict(attributes, kinds[number] == 0, error, basenames))
    # Spans come by start: a track's first one is its earliest (markers come later).
    for track, start_ns in dict(zip(reversed(track_of), reversed(starts))).items():
        track.start_ns = start_ns
    return waits, linked
