"""The contention report: which primitives cost the most waiting, where, and behind whom.

One report, three ways to get it: :func:`report` in the program, logged on
the ``threadtrace`` logger at exit (:mod:`threadtrace._control.exit`), and
``threadtrace report TRACE.jsonl`` from the files the ``json`` exporter wrote
(:mod:`threadtrace._cli.report`).  All three run :func:`build` on the same
metric points (:mod:`threadtrace._support.points`): live ones, read from the primitives and the
contention profile exactly as a metric collection reads them, or the ones
that collection wrote to the metrics file.  Durations stay integer
nanoseconds until the report's fields are made, so both give equal reports
for the same run, to the last digit.

The presentation follows ``perf lock contention`` (sorted by total wait by
default, units scaled, count/total/max/mean per row) and lockstat (both
sides of each contention: where the waiters blocked, and where the holder
they waited behind had acquired the lock, as Go's mutex profile charges it).

Mutual exclusion comes first whatever the order: a thread that waits for a
lock or a semaphore was kept out by another thread, which is what a
contention report is for, while a thread that waits on a condition (inside
a ``queue.Queue`` or a ``Future``), an event, a barrier or a join is most
often waiting for work or a signal, as designed.  Sorted together, a pool's
idle workers would bury a hot lock; so the primitives are in two groups,
:data:`~threadtrace._support.names.ACQUIRED` first, each sorted by ``sort``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

from .._recording import metrics
from .._recording.profile import OTHER, OTHER_SITE
from .._runtime import runtime
from .._support.attributes import short_function_name
from .._support.config import REPORT_SORTS
from .._support.errors import ConfigurationError
from .._support.names import ACQUIRED
from .._support.points import WAIT_DURATION, HistogramPoint, Points
from . import text as _render

#: What a row stands for when the site or thread was not known.
UNKNOWN = "(unknown)"
#: The kinds whose waits have a holder (others: only when one was recorded).
HOLDER_KINDS = ("lock", "rlock")


@dataclasses.dataclass(frozen=True)
class SiteContention:
    """Waits at one place in the program.

    Attributes:
        label: ``bank.py:42 in Bank.transfer``; ``(other)`` for the sites
            past the profile's cap.
        file: the full path, or ``None`` for ``(other)``.
        line: the line number, or ``None`` for ``(other)``.
        function: the qualified function name, or ``None`` for ``(other)``.
        count: waits.
        total: seconds waited, in total.
        max: the longest of those waits, in seconds.
    """

    label: str
    file: Optional[str]
    line: Optional[int]
    function: Optional[str]
    count: int
    total: float
    max: float


@dataclasses.dataclass(frozen=True)
class ThreadContention:
    """Waits of (or behind) one thread.

    Attributes:
        name: the thread's name; ``(other)`` for those past the profile's cap.
        count: waits.
        total: seconds waited, in total.
        max: the longest of those waits, in seconds.
    """

    name: str
    count: int
    total: float
    max: float


@dataclasses.dataclass(frozen=True)
class PrimitiveContention:
    """What waiting on one primitive cost.  Durations are in seconds.

    Attributes:
        kind: ``lock``, ``rlock``, ``condition``, ``semaphore``,
            ``bounded_semaphore``, ``event``, ``barrier`` or ``thread`` (joins).
        name: the primitive's ``name=``, or the variable it was assigned to
            and where it was created (``cache_lock (app.py:12)``,
            ``jobs (Queue@app.py:12)``, ``app.py:12``); for joins, the
            function the joined threads run.
        operations: acquisitions (locks, semaphores), waits (conditions,
            events, barriers); ``None`` for joins, which are counted only
            when they block.
        contended: of those, the ones that had to block (see
            docs/telemetry.md for what each kind counts); ``None`` for joins.
        share: ``contended / operations``, or ``None``.
        waits: operations that blocked, timed-out ones included.
        timeouts: of those, the ones that gave up when their timeout expired.
        unfinished: of those, the ones still blocked at exit (counted with
            their time until then; a deadlock or a hang shows here).
        total_wait: time blocked, in total.
        mean_wait: ``total_wait / waits``.
        p50_wait: median wait, interpolated in the wait histogram's bucket.
        p99_wait: 99th percentile wait, likewise; never beyond ``max_wait``.
        max_wait: the longest single wait.
        holds_measured: holds of a lock whose length was measured (sampled
            and contended acquisitions); ``0`` for other kinds.
        total_hold: the measured holds' total, or ``None`` when none was.
        max_hold: the longest measured hold, or ``None``.
        waiting_sites: where threads blocked, most costly first.
        holder_sites: where the holder that waiters blocked behind had
            acquired the primitive (or stood, when its acquisition was not
            measured), charged with their waits; empty for kinds without a
            holder.
        waiting_threads: the threads that blocked.
        holding_threads: the threads they blocked behind.
    """

    kind: str
    name: str
    operations: Optional[int]
    contended: Optional[int]
    share: Optional[float]
    waits: int
    timeouts: int
    unfinished: int
    total_wait: float
    mean_wait: float
    p50_wait: float
    p99_wait: float
    max_wait: float
    holds_measured: int
    total_hold: Optional[float]
    max_hold: Optional[float]
    waiting_sites: tuple[SiteContention, ...]
    holder_sites: tuple[SiteContention, ...]
    waiting_threads: tuple[ThreadContention, ...]
    holding_threads: tuple[ThreadContention, ...]


@dataclasses.dataclass(frozen=True)
class ContentionReport:
    """The contention report: the primitives that cost the most waiting.

    Get one from :func:`threadtrace.report`.  ``str(report)`` (or
    :meth:`text`) is for people; :meth:`to_dict` and :meth:`to_json` for
    machines.  Durations are in seconds.

    Attributes:
        sort: ``wait`` (total wait), ``max`` (longest wait) or ``count``
            (number of waits): the order of :attr:`primitives` and of their rows.
        top: how many primitives the report keeps at most.
        primitives_blocked: how many primitives were ever blocked on, listed or not.
        waits: operations that blocked, on all of them.
        total_wait: seconds blocked, on all of them, summed over the threads
            that waited (so it can be more than the run lasted).
        primitives: the first ``top`` of them: locks and semaphores
            (:data:`~threadtrace._support.names.ACQUIRED`) first, then the others, each group in
            ``sort`` order.
    """

    sort: str
    top: int
    primitives_blocked: int
    waits: int
    total_wait: float
    primitives: tuple[PrimitiveContention, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain dicts, lists, strings and numbers (JSON-ready)."""
        return _plain(self)  # type: ignore[no-any-return]

    def to_json(self, indent: Optional[int] = None) -> str:
        """The report as JSON: :meth:`to_dict`, serialized."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def text(self) -> str:
        """The report for people: a header line, then one block per primitive."""
        return _render.text(self)

    def __str__(self) -> str:
        return self.text()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


# -- building --------------------------------------------------------------------------


def report(*, sort: Optional[str] = None, top: Optional[int] = None) -> ContentionReport:
    """The contention report of this process so far.

    Thread-safe; it reads counters without stopping other threads, so a
    report taken while threads are blocking may mix two moments.

    Args:
        sort: ``"wait"`` (total wait), ``"max"`` (longest single wait) or
            ``"count"`` (number of waits); default: the ``report_sort`` setting.
            Locks and semaphores come first in any order (see
            :attr:`ContentionReport.primitives`).
        top: how many primitives to list; default: the ``report_top`` setting.

    Returns:
        A :class:`ContentionReport`.

    Raises:
        ConfigurationError: ``sort`` or ``top`` is not one of the values above.
    """
    sort, top = options(sort, top)
    return build(metrics.live_points(), sort, top)


def options(sort: Optional[str], top: Optional[int]) -> tuple[str, int]:
    """``sort`` and ``top``, or the settings where they are ``None``; checked.

    Raises:
        ConfigurationError: ``sort`` or ``top`` is not a value the report takes.
    """
    config = runtime.config
    sort = config.report_sort if sort is None else sort
    top = config.report_top if top is None else top
    if sort not in REPORT_SORTS:
        raise ConfigurationError(f"sort must be one of {', '.join(REPORT_SORTS)}, got {sort!r}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigurationError(f"top must be a whole number >= 1, got {top!r}")
    return sort, top


def _ns(seconds: Any) -> int:
    """Seconds as exported (a float, or an int) back to the nanoseconds they came from."""
    return round(float(seconds) * 1e9)


def _s(ns: int) -> float:
    return ns / 1e9


class _Tally:
    """count, total ns and max ns of one row, being summed."""

    __slots__ = ("count", "longest", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.longest = 0

    def add(self, count: int, total: int, longest: int) -> None:
        self.count += count
        self.total += total
        self.longest = max(self.longest, longest)


class _Primitive:
    """One primitive's series, being summed."""

    def __init__(self) -> None:
        self.all = _Tally()
        self.waiting_sites: dict[Any, _Tally] = {}
        self.holder_sites: dict[Any, _Tally] = {}
        self.waiting_threads: dict[str, _Tally] = {}
        self.holding_threads: dict[str, _Tally] = {}


def _site_of(attributes: dict[str, Any], prefix: str) -> Optional[tuple[str, int, str]]:
    path = attributes.get(f"{prefix}code.file.path")
    if path is None:
        return None
    return (
        str(path),
        int(attributes.get(f"{prefix}code.line.number", 0)),
        str(attributes.get(f"{prefix}code.function.name", "")),
    )


def build(points: Points, sort: str, top: int) -> ContentionReport:
    """The report of ``points`` (live, or read from a metrics file).

    A pure function of its arguments: equal points give equal reports.
    """
    times = points.get("threadtrace.contention.time", {})
    longest = points.get("threadtrace.contention.max", {})
    primitives: dict[tuple[str, str], _Primitive] = {}
    for key, count in points.get("threadtrace.contention.count", {}).items():
        attributes = dict(key)
        total, top_wait = _ns(times.get(key, 0)), _ns(longest.get(key, 0))
        primitive = primitives.setdefault(
            (attributes["threadtrace.primitive.kind"], attributes["threadtrace.primitive.name"]),
            _Primitive(),
        )
        primitive.all.add(count, total, top_wait)
        sides: tuple[tuple[dict[Any, _Tally], Any], ...] = (
            (primitive.waiting_sites, _site_of(attributes, "") or UNKNOWN),
            (primitive.holder_sites, _site_of(attributes, "threadtrace.holder.") or UNKNOWN),
            (primitive.waiting_threads, attributes.get("thread.name", UNKNOWN)),
            (primitive.holding_threads, attributes.get("threadtrace.holder.thread.name", UNKNOWN)),
        )
        for tallies, value in sides:
            tallies.setdefault(value, _Tally()).add(count, total, top_wait)
    for (kind, _), primitive in primitives.items():
        # An unknown holder is worth a row only where holders are known at
        # all: not for waits that have no holder (events, joins, ...).
        for tallies in (primitive.holder_sites, primitive.holding_threads):
            if kind not in HOLDER_KINDS and list(tallies) == [UNKNOWN]:
                tallies.clear()
    rows = [
        _primitive_row(kind, name, primitive, points, sort)
        for (kind, name), primitive in primitives.items()
        if primitive.all.count
    ]
    rows.sort(
        key=lambda row: (
            row.kind not in ACQUIRED,
            *_order(sort, row.waits, row.total_wait, row.max_wait, row.kind, row.name),
        )
    )
    return ContentionReport(
        sort=sort,
        top=top,
        primitives_blocked=len(rows),
        waits=sum(row.waits for row in rows),
        total_wait=_s(sum(primitive.all.total for primitive in primitives.values())),
        primitives=tuple(rows[:top]),
    )


def _order(sort: str, count: int, total: float, longest: float, *names: str) -> tuple[Any, ...]:
    """Most costly first, by ``sort``; ties broken by the other measures, then by name."""
    if sort == "max":
        return (-longest, -total, -count, *names)
    if sort == "count":
        return (-count, -total, -longest, *names)
    return (-total, -longest, -count, *names)


def _primitive_row(
    kind: str, name: str, primitive: _Primitive, points: Points, sort: str
) -> PrimitiveContention:
    key = (("threadtrace.primitive.kind", kind), ("threadtrace.primitive.name", name))
    operations = points.get("threadtrace.operations", {}).get(key)
    contended = points.get("threadtrace.contentions", {}).get(key)
    if kind == "thread":  # joins are not counted unless they block
        operations = contended = None
    share = contended / operations if operations and contended is not None else None
    holds = int(points.get("threadtrace.hold.count", {}).get(key, 0))
    waits, total, longest = primitive.all.count, primitive.all.total, primitive.all.longest
    histogram = points.get(WAIT_DURATION, {}).get(key)
    return PrimitiveContention(
        kind=kind,
        name=name,
        operations=None if operations is None else int(operations),
        contended=None if contended is None else int(contended),
        share=share,
        waits=waits,
        timeouts=int(points.get("threadtrace.wait.timeouts", {}).get(key, 0)),
        unfinished=int(points.get("threadtrace.wait.unfinished", {}).get(key, 0)),
        total_wait=_s(total),
        mean_wait=_s((2 * total + waits) // (2 * waits)),
        p50_wait=_s(quantile(histogram, 50, longest)),
        p99_wait=_s(quantile(histogram, 99, longest)),
        max_wait=_s(longest),
        holds_measured=holds,
        total_hold=_s(_ns(points["threadtrace.hold.time"].get(key, 0))) if holds else None,
        max_hold=_s(_ns(points["threadtrace.hold.max"].get(key, 0))) if holds else None,
        waiting_sites=_site_rows(primitive.waiting_sites, sort),
        holder_sites=_site_rows(primitive.holder_sites, sort),
        waiting_threads=_thread_rows(primitive.waiting_threads, sort),
        holding_threads=_thread_rows(primitive.holding_threads, sort),
    )


def _site_rows(tallies: dict[Any, _Tally], sort: str) -> tuple[SiteContention, ...]:
    rows = []
    for site, tally in tallies.items():
        if site in (OTHER_SITE, UNKNOWN):
            label, file, line, function = (OTHER if site == OTHER_SITE else site), None, None, None
        else:
            file, line, function = site
            # code.function.name is <module>.<qualname>; beside the file, the qualname says it.
            label = f"{os.path.basename(file)}:{line} in {short_function_name(function, file)}"
        rows.append(
            SiteContention(
                label, file, line, function, tally.count, _s(tally.total), _s(tally.longest)
            )
        )
    return tuple(sorted(rows, key=lambda r: _row_order(sort, r.label, r.count, r.total, r.max)))


def _thread_rows(tallies: dict[str, _Tally], sort: str) -> tuple[ThreadContention, ...]:
    rows = [
        ThreadContention(name, tally.count, _s(tally.total), _s(tally.longest))
        for name, tally in tallies.items()
    ]
    return tuple(sorted(rows, key=lambda r: _row_order(sort, r.name, r.count, r.total, r.max)))


def _row_order(sort: str, label: str, count: int, total: float, longest: float) -> tuple[Any, ...]:
    # "(other)" and "(unknown)" are what is left over, not places: they go last.
    return (label in (OTHER, UNKNOWN), *_order(sort, count, total, longest, label))


def quantile(histogram: Optional[HistogramPoint], percent: int, max_ns: int) -> int:
    """The ``percent`` quantile of a wait histogram, in nanoseconds.

    Linear interpolation inside the bucket the rank falls in (as
    Prometheus' ``histogram_quantile`` does), with the bucket's ends pulled in
    to the exact minimum and maximum, so a single wait is its own median and
    no quantile exceeds ``max_ns``.  Integer arithmetic, so the live and the
    offline report agree exactly.
    """
    if histogram is None or not any(histogram.counts):
        return max_ns
    bounds = [_ns(bound) for bound in histogram.bounds]
    low_end, high_end = _ns(histogram.min), min(_ns(histogram.max), max_ns)
    rank = percent * sum(histogram.counts)  # in hundredths
    below = 0
    for i, count in enumerate(histogram.counts):
        if count and (below + count) * 100 >= rank:
            low = max(bounds[i - 1] if i > 0 else 0, low_end)
            high = min(bounds[i] if i < len(bounds) else high_end, high_end)
            if high <= low:
                return min(high, max_ns)
            return min(low + (high - low) * (rank - below * 100) // (count * 100), max_ns)
        below += count
    return max_ns
