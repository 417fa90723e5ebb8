"""The few lines ``threadtrace run`` prints to stderr at exit."""

from __future__ import annotations

import textwrap
from typing import Any, Mapping

from .._control.configure import pure_python_core_note
from .._control.exit import process_label
from .._recording.metrics import snapshot_counters
from .._recording.profile import timeouts, unfinished
from .._runtime import runtime
from .._support import units as _units
from .._support.names import ACQUIRED, DISPLAY

#: How many primitives the summary names.
HOTTEST = 3


def summary(export_stats: Mapping[str, Any]) -> str:
    """Threads seen, where the spans went, and the hottest primitives."""
    lines = [f"threadtrace summary{process_label()}:"]
    lines.append(f"  threads   {runtime.threads_started} started")
    lines.extend(_exported(export_stats))
    lines.extend(_hottest())
    recorder = runtime.recorder
    skipped = recorder.span_budget.skipped if recorder is not None else 0
    if skipped:
        lines.append(
            f"  limited   {skipped} wait or hold span{'' if skipped == 1 else 's'} left out "
            f"(over span_limit, {runtime.config.span_limit} a second per primitive); "
            "counted in the metrics and the report"
        )
    lines.extend(_still_waiting(unfinished()))
    note = pure_python_core_note()
    if note is not None:  # the C core is not built (logged too, but this is what gets read)
        for i, text in enumerate(textwrap.wrap(note, 88)):
            lines.append(f"  {'speed' if i == 0 else '':<9} {text}")
    for name, stats in export_stats.items():
        if name == "json" and stats.spans_exported:
            lines.append(
                f"  timeline  threadtrace convert {stats.destination} --to perfetto "
                "-o timeline.json"
            )
    return "\n".join(lines) + "\n"


def _still_waiting(rows: list[tuple[tuple[str, str], int]]) -> list[str]:
    """The waits still going on at exit (a hang, the thing most worth seeing), by primitive."""
    if not rows:
        return []
    total = sum(count for _, count in rows)
    rows = sorted(rows, key=lambda row: -row[1])
    shown = [
        f"{DISPLAY.get(kind, kind)} {name}" + (f" ({count})" if count > 1 else "")
        for (kind, name), count in rows[:HOTTEST]
    ]
    if len(rows) > HOTTEST:
        shown.append(f"{len(rows) - HOTTEST} more")
    waits = "wait" if total == 1 else "waits"
    return [f"  at exit   {total} {waits} still blocked: {', '.join(shown)}"]


def _exported(export_stats: Mapping[str, Any]) -> list[str]:
    """Where the spans went, per exporter, and what did not make it."""
    if not export_stats:
        return ["  exported  nothing (no exporters, or the program set its own providers)"]
    lines = []
    for name, stats in export_stats.items():
        spans = stats.spans_exported
        left_out = min(stats.spans_left_out, spans)
        of = f"{spans - left_out} of " if left_out else ""
        text = f"{of}{spans} span{'' if spans == 1 else 's'} to {name} ({stats.destination})"
        if left_out:
            text += f", {left_out} dropped"
            if stats.left_out_reason:
                text += f" ({stats.left_out_reason})"
        if stats.spans_lost:
            text += f", {stats.spans_lost} lost"
        if stats.metric_failures:
            text += f", {stats.metric_failures} metric exports failed"
        lines.append(f"  exported  {text}")
    return lines


def _hottest() -> list[str]:
    """The locks and semaphores waited for longest.

    Locks and semaphores only: a wait on a Condition, an Event or a queue is
    often a thread idling for work by design; the contention report has them.
    """
    hottest = sorted(
        (
            (counts[2], kind, name, counts)
            for (kind, name), counts in snapshot_counters().items()
            if kind in ACQUIRED
        ),
        reverse=True,
    )[:HOTTEST]
    hottest = [row for row in hottest if row[0] > 0]
    if not hottest:
        return ["  hottest   no lock or semaphore was contended"]
    timed_out = dict(timeouts())
    lines = []
    for i, (wait_ns, kind, name, counts) in enumerate(hottest):
        operations, contentions = counts[0], counts[1]
        label = "hottest" if i == 0 else ""
        gave_up = timed_out.get((kind, name), 0)
        lines.append(
            f"  {label:<9} {DISPLAY.get(kind, kind)} {name}: waited "
            f"{_units.duration(wait_ns / 1e9)} in total, {contentions} of {operations} "
            f"acquisitions blocked" + (f", {gave_up} timed out" if gave_up else "")
        )
    return lines
