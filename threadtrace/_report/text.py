"""The contention report for people: a header line, then one block per primitive.

The presentation follows ``perf lock contention`` (sorted by total wait by
default, units scaled, count/total/max/mean per row) and lockstat (both
sides of each contention).  The blocks come in two labelled parts, mutual
exclusion first (see :mod:`.model`).  A pure function of the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._recording.profile import OTHER
from .._support import units as _units
from .._support.names import ACQUIRED

if TYPE_CHECKING:
    from .model import ContentionReport, PrimitiveContention

#: Rows shown per list (waiting sites, holder sites, threads) in the text form.
ROWS_SHOWN = 5

#: How each sort order is said in the header.
_SORT_WORDS = {"wait": "total wait", "max": "longest wait", "count": "number of waits"}
#: Display names of the kinds, and what their operations are called.
_KINDS = {
    "lock": ("Lock", "acquisitions"),
    "rlock": ("RLock", "acquisitions"),
    "condition": ("Condition", "waits"),
    "semaphore": ("Semaphore", "acquisitions"),
    "bounded_semaphore": ("BoundedSemaphore", "acquisitions"),
    "event": ("Event", "waits"),
    "barrier": ("Barrier", "waits"),
    "thread": ("Thread", "joins"),
}
#: The line over each part of the report: mutual exclusion, then the rest.
EXCLUSION_TITLE = "-- mutual exclusion: threads kept out by a holder (locks, semaphores) --"
WAITING_TITLE = (
    "-- waiting for work or a signal: conditions (queues, futures), events, barriers, joins --"
)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def text(report: ContentionReport) -> str:
    """The report as :meth:`ContentionReport.text` gives it."""
    if not report.primitives_blocked:
        return "threadtrace contention report: no operation blocked"
    shown = len(report.primitives)
    order = _SORT_WORDS[report.sort]
    scope = (
        f"top {shown} of {report.primitives_blocked} by {order}"
        if shown < report.primitives_blocked
        else f"by {order}"
    )
    # The total is a sum over threads: four threads blocked for 1 s each
    # make 4 s in a run of 1 s, which the header says rather than leave
    # readers to puzzle over.
    lines = [
        f"threadtrace contention report: {_plural(report.primitives_blocked, 'primitive')} "
        f"blocked {_plural(report.waits, 'time')}, {_units.duration(report.total_wait)} "
        f"in total, summed over the threads that waited; {scope}"
    ]
    title = ""
    for number, primitive in enumerate(report.primitives, 1):
        part = EXCLUSION_TITLE if primitive.kind in ACQUIRED else WAITING_TITLE
        if part != title:
            title = part
            lines.extend(("", title))
        lines.append("")
        lines.extend(_block(number, primitive))
    return "\n".join(lines)


def _block(number: int, p: PrimitiveContention) -> list[str]:
    d = _units.duration
    display, operations = _KINDS.get(p.kind, (p.kind, "operations"))
    lines = [f"{number}. {display} {p.name}" + (" (joins)" if p.kind == "thread" else "")]
    if p.operations is not None and p.contended is not None:
        share = f" ({p.share:.0%})" if p.share is not None else ""
        lines.append(f"   contended  {p.contended} of {p.operations} {operations}{share}")
    timed_out = f", {p.timeouts} timed out" if p.timeouts else ""
    if p.unfinished:
        timed_out += f", {p.unfinished} still waiting at exit"
    lines.append(
        f"   wait       {d(p.total_wait)} in {_plural(p.waits, 'wait')}{timed_out}: "
        f"mean {d(p.mean_wait)}, p50 {d(p.p50_wait)}, p99 {d(p.p99_wait)}, max {d(p.max_wait)}"
    )
    if p.holds_measured and p.total_hold is not None and p.max_hold is not None:
        lines.append(
            f"   hold       {d(p.total_hold)} in {_plural(p.holds_measured, 'measured hold')}: "
            f"max {d(p.max_hold)}"
        )
    lists: list[tuple[str, list[tuple[str, int, float, float]]]] = [
        ("waiting at", [(r.label, r.count, r.total, r.max) for r in p.waiting_sites]),
        ("holders at", [(r.label, r.count, r.total, r.max) for r in p.holder_sites]),
        ("waiting threads", [(r.name, r.count, r.total, r.max) for r in p.waiting_threads]),
        ("holding threads", [(r.name, r.count, r.total, r.max) for r in p.holding_threads]),
    ]
    lists = [(title, rows) for title, rows in lists if rows]
    width = max(
        [len(title) + 3 for title, _ in lists]
        + [len(row[0]) + 5 for _, rows in lists for row in _shown(rows)]
    )
    header = f"{'waits':>7} {'total':>9} {'max':>9}"
    for i, (title, rows) in enumerate(lists):
        lines.append(f"   {title:<{width - 3}}{header if i == 0 else ''}".rstrip())
        shown = _shown(rows)
        for label, count, total, longest in shown[:ROWS_SHOWN]:
            lines.append(f"     {label:<{width - 5}}{count:>7} {d(total):>9} {d(longest):>9}")
        if len(rows) > len(shown):
            lines.append(f"     ({len(rows) - len(shown)} more)")
        for label, count, total, longest in shown[ROWS_SHOWN:]:
            lines.append(f"     {label:<{width - 5}}{count:>7} {d(total):>9} {d(longest):>9}")
    return lines


def _shown(rows: list[tuple[str, int, float, float]]) -> list[tuple[str, int, float, float]]:
    """The first rows, and the ``(other)`` row after them if it is not among them.

    ``(other)`` counts every value past the profile's bounds (32 threads or
    places a side): hidden in ``(n more)``, 300 waiting threads would read
    as 33.
    """
    shown = rows[:ROWS_SHOWN]
    return shown + [row for row in rows[ROWS_SHOWN:] if row[0] == OTHER]
