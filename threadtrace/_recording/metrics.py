"""The metric instruments, all under the ``threadtrace.`` namespace.

Counts that change on every operation (acquisitions, contentions, wait and
hold time) are *observable* instruments: the primitives keep them in their
own fields and the callbacks here read them when a metric reader collects, so
an uncontended acquire never calls the SDK.  Operations that blocked land
in the ``threadtrace.wait.duration`` histogram (a 1-2-5 series of buckets):
recorded through the SDK on the app's providers, and on threadtrace's own
added at each collection from the contention profile, which buckets every
wait the same way (:func:`with_wait_durations`).

The contention profile (:mod:`threadtrace._recording.profile`: who waited
where, behind whom) is exported the same way, as observable counters with
site and thread attributes; its cardinality is bounded there.

:func:`live_points` reads the report's metrics now, by calling the very
functions the callbacks call, so the live report and the offline one
(``threadtrace report``, from the file a collection wrote) are the same
computation on the same numbers.

Per-primitive attributes are the primitive's kind and name; never a thread id.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .._runtime import runtime
from .._support.attributes import SCHEMA_URL
from .._support.points import (
    REPORT_METRICS,
    WAIT_BUCKETS,
    WAIT_DURATION,
    HistogramPoint,
    Number,
    Points,
    primitive_attributes,
)
from .._support.points import key as points_key
from .._support.version import __version__
from . import profile as _profile

#: The instrumentation scope of threadtrace's spans and metrics.
SCOPE = "threadtrace"

Key = tuple[str, str]
WAIT_DURATION_DESCRIPTION = "How long operations that blocked waited."
#: One observation: a value and its attributes.
Observed = list[tuple[Number, dict[str, Any]]]


def _retired_totals() -> dict[Key, tuple[int, ...]]:
    """The counters of collected primitives, by (kind, name)."""
    return runtime.retired_now()


def _members() -> list[Any]:
    return runtime.primitives()


def snapshot_counters() -> dict[Key, tuple[int, ...]]:
    """Sum the counters of every traced primitive, alive or collected, by (kind, name).

    The tuple is ``(operations, contentions, wait_ns, hold_ns)``.
    """
    totals: dict[Key, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    members = _members()
    for key, counts in _retired_totals().items():
        totals[key] = [*counts[:4], *(0,) * (4 - len(counts[:4]))]
    for primitive in members:
        counts = primitive._tt_counters()
        row = totals[(primitive._tt_kind, primitive.name)]
        for i in range(4):
            row[i] += counts[i]
    return {key: tuple(row) for key, row in totals.items()}


def snapshot_holds() -> dict[Key, tuple[int, int]]:
    """``(measured holds, longest hold ns)`` of the locks, by (kind, name).

    Live locks are read from their fields; a collected lock's two fields
    were retired with its counters (the fifth and sixth ``_tt_counters()``).
    """
    totals: dict[Key, list[int]] = {}
    members = _members()
    for key, counts in _retired_totals().items():
        if len(counts) >= 6 and counts[4]:
            totals[key] = [counts[4], counts[5]]
    for primitive in members:
        holds = getattr(primitive, "_holds", 0)
        if not holds:
            continue
        row = totals.setdefault((primitive._tt_kind, primitive.name), [0, 0])
        row[0] += holds
        row[1] = max(row[1], primitive._hold_max)
    return {key: (row[0], row[1]) for key, row in totals.items()}


def _counter(index: int, seconds: bool = False) -> Callable[[], Observed]:
    def read() -> Observed:
        return [
            (counts[index] / 1e9 if seconds else counts[index], primitive_attributes(kind, name))
            for (kind, name), counts in sorted(snapshot_counters().items())
        ]

    return read


def _holds(index: int, seconds: bool = False) -> Callable[[], Observed]:
    def read() -> Observed:
        return [
            (row[index] / 1e9 if seconds else row[index], primitive_attributes(kind, name))
            for (kind, name), row in sorted(snapshot_holds().items())
        ]

    return read


def _contention(field: int) -> Callable[[], Observed]:
    """Observations of one field of the contention profile's series.

    ``field`` 0 is the count of waits, 1 their total, 2 the longest.
    """

    def read() -> Observed:
        _drained()
        out: Observed = []
        for attributes, count, total_ns, max_ns in _profile.series():
            value = (count, total_ns / 1e9, max_ns / 1e9)[field]
            out.append((value, attributes))
        return out

    return read


def _timeouts() -> Observed:
    _drained()
    return [(n, primitive_attributes(kind, name)) for (kind, name), n in _profile.timeouts()]


def _unfinished() -> Observed:
    _drained()
    return [(n, primitive_attributes(kind, name)) for (kind, name), n in _profile.unfinished()]


def _drained() -> None:
    """Record what the primitives queued, so the profile read next is complete."""
    recorder = runtime.recorder
    if recorder is not None:
        recorder.drain()


@dataclasses.dataclass(frozen=True)
class Observable:
    """An observable instrument: what it is, and the function that reads it."""

    name: str
    instrument: str  # "counter", "up_down_counter" or "gauge"
    unit: str
    description: str
    read: Callable[[], Observed]


#: Every observable instrument, in the order they are created.
OBSERVABLES = (
    Observable(
        "threadtrace.operations",
        "counter",
        "{operation}",
        "Acquisitions of locks and semaphores; waits on conditions, events and barriers; "
        "joins of threads.",
        _counter(0),
    ),
    Observable(
        "threadtrace.contentions", "counter", "{contention}", "Operations that had to block.",
        _counter(1),
    ),
    Observable(
        "threadtrace.wait.time", "counter", "s", "Total time spent blocked.", _counter(2, True)
    ),
    Observable(
        "threadtrace.wait.timeouts",
        "counter",
        "{timeout}",
        "Operations that blocked and gave up when their timeout expired.",
        _timeouts,
    ),
    Observable(
        "threadtrace.wait.unfinished",
        "counter",
        "{wait}",
        "Operations still blocked when threadtrace recorded them, at exit (counted in "
        "threadtrace.contention.* too, with their time so far).",
        _unfinished,
    ),
    Observable(
        "threadtrace.hold.time",
        "counter",
        "s",
        "Total measured time locks were held (sampled and contended holds).",
        _counter(3, True),
    ),
    Observable(
        "threadtrace.hold.count",
        "counter",
        "{hold}",
        "Holds of locks whose length was measured (sampled and contended acquisitions).",
        _holds(0),
    ),
    Observable(
        "threadtrace.hold.max", "gauge", "s", "The longest measured hold of a lock.",
        _holds(1, True),
    ),
    Observable(
        "threadtrace.contention.count",
        "counter",
        "{wait}",
        "Operations that blocked, by where and in which thread they waited, and where "
        "and in which thread the holder was.",
        _contention(0),
    ),
    Observable(
        "threadtrace.contention.time",
        "counter",
        "s",
        "Time blocked, with the attributes of threadtrace.contention.count.",
        _contention(1),
    ),
    Observable(
        "threadtrace.contention.max",
        "gauge",
        "s",
        "The longest single wait, with the attributes of threadtrace.contention.count.",
        _contention(2),
    ),
)  # fmt: skip


class Instruments:
    """threadtrace's instruments on one meter.

    ``histogram=False`` leaves out the synchronous ``threadtrace.wait.duration``
    histogram: threadtrace's own providers get it from the contention profile
    at each collection instead (:func:`with_wait_durations`), which spares
    the SDK's ``Histogram.record`` (several microseconds) per blocked
    operation.  The app's providers get every point through the SDK.
    """

    def __init__(self, meter: Meter, active: Callable[[], bool], histogram: bool = True) -> None:
        self.active = active
        self.wait_duration: Any = None
        if histogram:
            try:
                self.wait_duration = meter.create_histogram(
                    WAIT_DURATION,
                    unit="s",
                    description=WAIT_DURATION_DESCRIPTION,
                    explicit_bucket_boundaries_advisory=list(WAIT_BUCKETS),
                )
            except TypeError:  # SDKs before 1.23 take no advisory buckets
                self.wait_duration = meter.create_histogram(
                    WAIT_DURATION, unit="s", description=WAIT_DURATION_DESCRIPTION
                )
        create = {
            "counter": meter.create_observable_counter,
            "up_down_counter": meter.create_observable_up_down_counter,
            "gauge": meter.create_observable_gauge,
        }
        for observable in OBSERVABLES:
            create[observable.instrument](
                observable.name,
                callbacks=[self._observe(observable.read)],
                unit=observable.unit,
                description=observable.description,
            )
        meter.create_observable_up_down_counter(
            "threadtrace.thread.count",
            callbacks=[self._observe_threads(lambda: runtime.threads_live)],
            unit="{thread}",
            description="Traced threads currently running.",
        )
        meter.create_observable_counter(
            "threadtrace.thread.started",
            callbacks=[self._observe_threads(lambda: runtime.threads_started)],
            unit="{thread}",
            description="Traced threads started.",
        )

    def _observe_threads(self, read: Callable[[], int]) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read())] if self.active() else []

        return callback

    def _observe(self, read: Callable[[], Observed]) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            if not self.active():
                return []
            return [Observation(value, attributes) for value, attributes in read()]

        return callback

    def record_wait(self, kind: str, name: str, duration_ns: int) -> None:
        self.wait_duration.record(duration_ns / 1e9, primitive_attributes(kind, name))


def with_wait_durations(data: Any, start_ns: int) -> Any:
    """``data`` (an SDK ``MetricsData``) with the ``threadtrace.wait.duration`` histogram added.

    For threadtrace's own providers, whose instruments record no histogram
    (see :class:`Instruments`): the points are the contention profile's
    histograms, cumulative since ``start_ns`` (epoch ns), in the SDK's own
    data classes, so every exporter encodes them as it would the SDK's.
    The profile buckets each wait as the SDK would (the same boundaries and
    comparison), so the points are the ones the SDK would have made.
    """
    # The SDK is loaded by then: this runs inside its metric reader.
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415 - see above
        AggregationTemporality,
        Histogram,
        HistogramDataPoint,
        Metric,
        ScopeMetrics,
    )
    from opentelemetry.sdk.util.instrumentation import (  # noqa: PLC0415 - see above
        InstrumentationScope,
    )

    _drained()
    rows = _profile.histograms()
    if not rows or not data.resource_metrics:
        return data
    now = time.time_ns()
    metric = Metric(
        name=WAIT_DURATION,
        description=WAIT_DURATION_DESCRIPTION,
        unit="s",
        data=Histogram(
            data_points=[
                HistogramDataPoint(
                    attributes=primitive_attributes(kind, name),
                    start_time_unix_nano=start_ns,
                    time_unix_nano=now,
                    count=sum(buckets),
                    sum=total_ns / 1e9,
                    bucket_counts=list(buckets),
                    explicit_bounds=list(WAIT_BUCKETS),
                    min=min_ns / 1e9,
                    max=max_ns / 1e9,
                )
                for (kind, name), buckets, total_ns, min_ns, max_ns in rows
            ],
            aggregation_temporality=AggregationTemporality.CUMULATIVE,
        ),
    )
    first, *others = data.resource_metrics
    scopes = list(first.scope_metrics)
    for i, scope in enumerate(scopes):
        if scope.scope.name == SCOPE:  # first, where the SDK puts the first instrument made
            scopes[i] = dataclasses.replace(scope, metrics=[metric, *scope.metrics])
            break
    else:
        scopes.append(
            ScopeMetrics(
                scope=InstrumentationScope(SCOPE, __version__, SCHEMA_URL),
                metrics=[metric],
                schema_url=SCHEMA_URL,
            )
        )
    first = dataclasses.replace(first, scope_metrics=scopes)
    return dataclasses.replace(data, resource_metrics=[first, *others])


# -- what the report reads -------------------------------------------------------------


def live_points() -> Points:
    """The report's metrics as a collection would export them now.

    Thread-safe; read without stopping other threads, so points taken while
    threads block may mix two moments.
    """
    _drained()
    readers = {observable.name: observable.read for observable in OBSERVABLES}
    points: Points = {}
    for name in REPORT_METRICS:
        if name == WAIT_DURATION:
            points[name] = {
                points_key(primitive_attributes(kind, primitive)): HistogramPoint(
                    WAIT_BUCKETS, counts, min_ns / 1e9, max_ns / 1e9
                )
                for (kind, primitive), counts, _total_ns, min_ns, max_ns in _profile.histograms()
            }
        else:
            points[name] = {points_key(attributes): value for value, attributes in readers[name]()}
    return points
