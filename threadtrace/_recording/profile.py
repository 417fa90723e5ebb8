"""The contention profile: every blocked operation, aggregated for the report.

What it provides
    For each primitive (kind and name), how many operations blocked and for
    how long, split by four things: where the waiter blocked, which thread
    it was, where the holder was (its acquire site when that was measured,
    else where it stood when the wait began) and which thread held.  Plus a
    histogram of the waits, for quantiles, and how many gave up on a timeout.

Prior art
    Go keeps two profiles of the same events: the block profile, keyed by
    the waiter's stack, and the mutex profile, keyed by the holder's, charged
    with the time others spent waiting behind it.  Linux's lockstat keeps
    both sides per lock class: "contention points" (waiters' sites) and
    "contended points" (the holder's).  This keeps both sides in one series
    per (waiter site, holder site, waiter thread, holder thread), so each
    wait is counted once and any side is a sum over the others.

Cost
    Only operations that really blocked come here, whatever
    ``wait_threshold`` is, from threadtrace's own thread as it drains: each
    queued wait through :meth:`ContentionAggregator.record`, and the waits
    summed in place per place through :meth:`ContentionAggregator.add`
    (``Recorder.count_short``).  Either is a dict lookup or two under a lock
    of its own (the row of each place is looked up once and cached).
    Uncontended operations never come here.

Bounds
    Memory is bounded per primitive: at most :data:`MAX_VALUES` distinct
    sites and thread names on each side (later ones are counted under
    ``(other)``), and at most :data:`MAX_SERIES` series.  Past
    :data:`THREAD_DETAIL_SERIES` series a new combination keeps its sites but
    lumps its threads into ``(other)``; past :data:`MAX_SERIES` it goes to
    the primitive's all-``(other)`` series (one each for waits with and
    without a known holder).  A process-wide cap,
    :data:`MAX_TOTAL_SERIES`, keeps the exported series under the SDK's
    default cardinality limit (2000 per metric), past which the SDK would
    fold series into an overflow series and the offline report would differ
    from the live one.  Primitives themselves are capped too
    (:data:`MAX_PRIMITIVES`): a program that names each of a million locks
    differently has the waits past the cap counted under ``(other)``.

The profile is exported as the ``threadtrace.contention.*`` metrics
(:mod:`threadtrace._recording.metrics`), which is how ``threadtrace report`` gets it
back from the ``json`` exporter's file.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Iterator, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support.attributes import (
    CODE_FILE_PATH,
    CODE_FUNCTION_NAME,
    CODE_LINE_NUMBER,
    THREAD_NAME,
    function_name,
)
from .._support.points import WAIT_BUCKETS
from .._support.sites import Site

#: Distinct values kept on each side (waiter site, holder site, waiter thread,
#: holder thread) of one primitive; later ones are counted as ``(other)``.
MAX_VALUES = 32
#: Series one primitive may have with full thread detail.
THREAD_DETAIL_SERIES = 128
#: Series one primitive may have at all (plus its all-``(other)`` ones).
MAX_SERIES = 256
#: Series of all primitives together, past which new combinations are lumped.
MAX_TOTAL_SERIES = 1500
#: Primitives (distinct kind and name) kept; waits on later ones count under ``(other)``.
MAX_PRIMITIVES = 1500

#: Site keys cached (one per place that blocked); past it the cache starts afresh.
MAX_SITE_KEYS = 10_000
#: Places whose series row is cached; past it the cache starts afresh.
MAX_ROWS = 10_000

#: The prefix of the attributes that say where the holder was.
HOLDER = "threadtrace.holder."

#: The value that stands for everything past a cap.
OTHER = "(other)"
#: A site as (file, line, function); ``OTHER_SITE`` stands for the sites past the cap.
SiteKey = tuple[str, int, str]
OTHER_SITE: SiteKey = (OTHER, 0, OTHER)

#: (waiter site, holder site, waiter thread, holder thread); None = not known.
SeriesKey = tuple[Optional[SiteKey], Optional[SiteKey], str, Optional[str]]
#: Where waits happened, as they come: (kind, name, waiter site, holder site,
#: waiter thread, holder thread), before the caps (see ContentionAggregator._resolve).
Place = tuple[str, str, Optional[SiteKey], Optional[SiteKey], str, Optional[str]]


class _Primitive:
    """What one primitive's blocked operations added up to."""

    __slots__ = ("buckets", "max", "min", "series", "timeouts", "total", "unfinished", "values")

    def __init__(self) -> None:
        self.buckets = [0] * (len(WAIT_BUCKETS) + 1)
        self.total = 0
        self.min: Optional[int] = None
        self.max = 0
        self.timeouts = 0
        #: Waits still going on when they were recorded (at exit).
        self.unfinished = 0
        #: series key -> [count, total ns, max ns]
        self.series: dict[SeriesKey, list[int]] = {}
        #: the values seen on each of the four sides, up to MAX_VALUES each
        self.values: tuple[set[Any], ...] = (set(), set(), set(), set())


def _count(
    primitive: _Primitive,
    row: list[int],
    ok: bool,
    unfinished: bool,
    count: int,
    total: int,
    longest: int,
    shortest: int,
) -> None:
    """Add ``count`` waits to a primitive's totals and to one of its series rows."""
    primitive.total += total
    if primitive.min is None or shortest < primitive.min:
        primitive.min = shortest
    if longest > primitive.max:
        primitive.max = longest
    if not ok:
        primitive.timeouts += count
    if unfinished:
        primitive.unfinished += count
    row[0] += count
    row[1] += total
    if longest > row[2]:
        row[2] = longest


def _bounded(seen: set[Any], value: Any, other: Any) -> Any:
    if value is None or value in seen:
        return value
    if len(seen) < MAX_VALUES:
        seen.add(value)
        return value
    return other


def _site_key(site: Optional[Site]) -> Optional[SiteKey]:
    if site is None or site.code is None:
        return None
    # code.function.name is fully qualified, as on spans; reports shorten it.
    return (site.filename, site.lineno, function_name(site.code) or site.function)


class ContentionAggregator:
    """The contention profile of one process (or of one ``testing.capture()``).

    Thread-safe: every thread that blocked records into it concurrently.
    Its lock is a raw ``_thread`` lock, never a traced primitive, and is
    held only for dict updates, never while calling out.
    """

    def __init__(self) -> None:
        self._lock = _originals.allocate_lock()
        self._primitives: dict[tuple[str, str], _Primitive] = {}
        self._series = 0
        #: Site -> its key, made once per place (sites are shared per place).
        self._site_keys: dict[Site, Optional[SiteKey]] = {}
        #: Place -> the primitive and row its waits count in (see _resolve).
        self._rows: dict[Place, tuple[_Primitive, list[int]]] = {}

    def site_key(self, site: Optional[Site]) -> Optional[SiteKey]:
        """The key of ``site`` in the series (``None`` for none); cached per site."""
        if site is None:
            return None
        keys = self._site_keys
        try:
            return keys[site]
        except KeyError:
            pass
        if len(keys) >= MAX_SITE_KEYS:
            keys.clear()
        key = keys[site] = _site_key(site)
        return key

    def record(
        self,
        kind: str,
        name: str,
        wait_ns: int,
        ok: bool,
        waiter_thread: str,
        waiter_site: Optional[SiteKey],
        holder_thread: Optional[str],
        holder_site: Optional[SiteKey],
        unfinished: bool = False,
    ) -> None:
        """Add one blocked operation (``unfinished``: still blocked when recorded, at exit)."""
        if wait_ns < 0:
            wait_ns = 0
        # The bucket the SDK's histogram puts the same wait in: the same
        # float, the same comparison (bisect_left on the boundaries).
        bucket = bisect_left(WAIT_BUCKETS, wait_ns / 1e9)
        with self._lock:
            primitive, row = self._row_of(
                (kind, name, waiter_site, holder_site, waiter_thread, holder_thread)
            )
            primitive.buckets[bucket] += 1
            _count(primitive, row, ok, unfinished, 1, wait_ns, wait_ns, wait_ns)

    def add(
        self,
        kind: str,
        name: str,
        ok: bool,
        waiter_thread: str,
        waiter_site: Optional[SiteKey],
        holder_thread: Optional[str],
        holder_site: Optional[SiteKey],
        count: int,
        total: int,
        longest: int,
        shortest: int,
        buckets: list[int],
    ) -> None:
        """Add ``count`` finished waits at one place at once: their sum, extremes and buckets.

        What :meth:`record` adds for each, summed where they happened
        (:meth:`threadtrace._recording.recorder.Recorder.count_short`).
        """
        with self._lock:
            primitive, row = self._row_of(
                (kind, name, waiter_site, holder_site, waiter_thread, holder_thread)
            )
            counts = primitive.buckets
            for bucket, waits in enumerate(buckets):
                if waits:
                    counts[bucket] += waits
            _count(primitive, row, ok, False, count, total, longest, shortest)

    def _row_of(self, place: Place) -> tuple[_Primitive, list[int]]:
        """The primitive and row a place's waits count in, looked up once per place (lock held)."""
        found = self._rows.get(place)
        if found is None:
            found = self._resolve(*place)
            if len(self._rows) >= MAX_ROWS:
                self._rows.clear()
            self._rows[place] = found
        return found

    def _resolve(
        self,
        kind: str,
        name: str,
        waiter_site: Optional[SiteKey],
        holder_site: Optional[SiteKey],
        waiter_thread: str,
        holder_thread: Optional[str],
    ) -> tuple[_Primitive, list[int]]:
        """The primitive and the series row a place's waits count in, within the caps.

        Lock held.  The same place always gets the same answer: a value
        admitted stays admitted, one refused is refused for good (its side
        is full), and a row, once made, stays.
        """
        primitive = self._primitives.get((kind, name))
        if primitive is None:
            if len(self._primitives) >= MAX_PRIMITIVES:
                name = OTHER
            primitive = self._primitives.get((kind, name))
            if primitive is None:
                primitive = self._primitives[(kind, name)] = _Primitive()
        ws, hs, wt, ht = primitive.values
        key: SeriesKey = (
            _bounded(ws, waiter_site, OTHER_SITE),
            _bounded(hs, holder_site, OTHER_SITE),
            _bounded(wt, waiter_thread, OTHER),
            _bounded(ht, holder_thread, OTHER),
        )
        row = primitive.series.get(key)
        if row is None:
            key = self._admit(primitive, key)
            row = primitive.series.get(key)
            if row is None:
                row = primitive.series[key] = [0, 0, 0]
                self._series += 1
        return primitive, row

    def _admit(self, primitive: _Primitive, key: SeriesKey) -> SeriesKey:
        """The key a new combination is counted under, within the caps (lock held)."""
        count = len(primitive.series)
        full = self._series >= MAX_TOTAL_SERIES
        if count < THREAD_DETAIL_SERIES and not full:
            return key
        waiter_site, holder_site, _, holder_thread = key
        lumped: SeriesKey = (
            waiter_site,
            holder_site,
            OTHER,
            None if holder_thread is None else OTHER,
        )
        if lumped in primitive.series or (count < MAX_SERIES and not full):
            return lumped
        # Everything lumped, but a side that was not known (no holder) stays so.
        return (
            None if waiter_site is None else OTHER_SITE,
            None if holder_site is None else OTHER_SITE,
            OTHER,
            None if holder_thread is None else OTHER,
        )

    def series(self) -> list[tuple[str, str, SeriesKey, int, int, int]]:
        """``(kind, name, key, count, total ns, max ns)`` of every series, sorted."""
        with self._lock:
            rows = [
                (kind, name, key, row[0], row[1], row[2])
                for (kind, name), primitive in self._primitives.items()
                for key, row in primitive.series.items()
            ]
        return sorted(rows, key=_sort_key)

    def histograms(self) -> list[tuple[tuple[str, str], tuple[int, ...], int, int, int]]:
        """``((kind, name), buckets, total ns, min ns, max ns)`` of every primitive, sorted."""
        with self._lock:
            rows = [
                (key, tuple(p.buckets), p.total, p.min or 0, p.max)
                for key, p in self._primitives.items()
            ]
        return sorted(rows)

    def unfinished(self) -> list[tuple[tuple[str, str], int]]:
        """``((kind, name), waits still going on at exit)`` of every primitive that had one."""
        with self._lock:
            return sorted(
                (key, p.unfinished) for key, p in self._primitives.items() if p.unfinished
            )

    def timeouts(self) -> list[tuple[tuple[str, str], int]]:
        """``((kind, name), waits that timed out)`` of every primitive, sorted."""
        with self._lock:
            return sorted((key, p.timeouts) for key, p in self._primitives.items())

    def fresh(self) -> ContentionAggregator:
        """An empty profile (for a captured block)."""
        return ContentionAggregator()

    def after_fork_in_child(self) -> None:
        # Another thread may have held the lock at the fork; the child has only this one.
        self._lock = _originals.allocate_lock()


def _sort_key(row: tuple[str, str, SeriesKey, int, int, int]) -> tuple[Any, ...]:
    kind, name, (ws, hs, wt, ht), *_ = row
    return (kind, name, ws or ("", 0, ""), hs or ("", 0, ""), wt, ht or "")


runtime.install("profile", ContentionAggregator())


def swap(aggregator: ContentionAggregator) -> ContentionAggregator:
    """Put ``aggregator`` in force and return the one it replaces (for tests)."""
    previous, runtime.profile = runtime.profile, aggregator
    return previous


def current() -> ContentionAggregator:
    """The profile in force."""
    return runtime.profile


def series_attributes(kind: str, name: str, key: SeriesKey) -> dict[str, Any]:
    """The metric attributes of one series: primitive, both sites, both threads."""
    waiter_site, holder_site, waiter_thread, holder_thread = key
    attributes: dict[str, Any] = {
        "threadtrace.primitive.kind": kind,
        "threadtrace.primitive.name": name,
        THREAD_NAME: waiter_thread,
    }
    if waiter_site is not None:
        attributes[CODE_FILE_PATH] = waiter_site[0]
        attributes[CODE_LINE_NUMBER] = waiter_site[1]
        attributes[CODE_FUNCTION_NAME] = waiter_site[2]
    if holder_site is not None:
        attributes[f"{HOLDER}{CODE_FILE_PATH}"] = holder_site[0]
        attributes[f"{HOLDER}{CODE_LINE_NUMBER}"] = holder_site[1]
        attributes[f"{HOLDER}{CODE_FUNCTION_NAME}"] = holder_site[2]
    if holder_thread is not None:
        attributes["threadtrace.holder.thread.name"] = holder_thread
    return attributes


def series() -> Iterator[tuple[dict[str, Any], int, int, int]]:
    """``(attributes, count, total ns, max ns)`` of every series of the profile in force."""
    for kind, name, key, count, total, longest in runtime.profile.series():
        yield series_attributes(kind, name, key), count, total, longest


def histograms() -> list[tuple[tuple[str, str], tuple[int, ...], int, int, int]]:
    """See :meth:`ContentionAggregator.histograms`, for the profile in force."""
    return runtime.profile.histograms()


def timeouts() -> list[tuple[tuple[str, str], int]]:
    """See :meth:`ContentionAggregator.timeouts`, for the profile in force."""
    return runtime.profile.timeouts()


def unfinished() -> list[tuple[tuple[str, str], int]]:
    """See :meth:`ContentionAggregator.unfinished`, for the profile in force."""
    return runtime.profile.unfinished()
