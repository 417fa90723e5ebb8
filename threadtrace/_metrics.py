"""The metric instruments, all under the ``threadtrace.`` namespace.

Counts that change on every operation (acquisitions, contentions, wait and
hold time) are *observable* instruments: the primitives keep them in their
own fields and the callbacks here read them when a metric reader collects, so
an uncontended acquire never calls the SDK.  Only contended waits are
recorded synchronously, into a histogram with second-scale buckets.

Attributes are the primitive's kind and name; never a thread id (cardinality).
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from . import _state

#: Bucket boundaries for wait durations, in seconds: 1 µs to 10 s.
WAIT_BUCKETS = (
    0.000001, 0.00001, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

Key = tuple[str, str]


def snapshot_counters() -> dict[Key, tuple[int, ...]]:
    """Sum the counters of every traced primitive, alive or collected, by (kind, name).

    The tuple is ``(operations, contentions, wait_ns, hold_ns)``.
    """
    totals: dict[Key, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    with _state.book:
        members = list(_state.live)
    retired_totals = _state.retired_totals
    while _state.retired:
        kind, name, counts = _state.retired.popleft()
        previous = retired_totals.get((kind, name), (0, 0, 0, 0))
        retired_totals[(kind, name)] = tuple(a + b for a, b in zip(previous, counts))
    for key, counts in retired_totals.items():
        totals[key] = list(counts)
    for primitive in members:
        counts = primitive._tt_counters()
        row = totals[(primitive._tt_kind, primitive.name)]
        for i, value in enumerate(counts):
            row[i] += value
    return {key: tuple(row) for key, row in totals.items()}


class Instruments:
    """threadtrace's instruments on one meter."""

    def __init__(self, meter: Meter, active: Callable[[], bool]) -> None:
        self.active = active
        kwargs: dict[str, Any] = {}
        try:
            self.wait_duration = meter.create_histogram(
                "threadtrace.wait.duration",
                unit="s",
                description="How long operations that blocked waited.",
                explicit_bucket_boundaries_advisory=list(WAIT_BUCKETS),
                **kwargs,
            )
        except TypeError:  # SDKs before 1.23 take no advisory buckets
            self.wait_duration = meter.create_histogram(
                "threadtrace.wait.duration",
                unit="s",
                description="How long operations that blocked waited.",
            )
        meter.create_observable_counter(
            "threadtrace.operations",
            callbacks=[self._observe(0, 1)],
            unit="{operation}",
            description="Acquisitions of locks and semaphores; waits on conditions, "
            "events and barriers; joins of threads.",
        )
        meter.create_observable_counter(
            "threadtrace.contentions",
            callbacks=[self._observe(1, 1)],
            unit="{contention}",
            description="Operations that had to block.",
        )
        meter.create_observable_counter(
            "threadtrace.wait.time",
            callbacks=[self._observe(2, 1e-9)],
            unit="s",
            description="Total time spent blocked.",
        )
        meter.create_observable_counter(
            "threadtrace.hold.time",
            callbacks=[self._observe(3, 1e-9)],
            unit="s",
            description="Total measured time locks were held (sampled and contended holds).",
        )
        meter.create_observable_up_down_counter(
            "threadtrace.thread.count",
            callbacks=[self._observe_threads(lambda: _state.threads_live)],
            unit="{thread}",
            description="Traced threads currently running.",
        )
        meter.create_observable_counter(
            "threadtrace.thread.started",
            callbacks=[self._observe_threads(lambda: _state.threads_started)],
            unit="{thread}",
            description="Traced threads started.",
        )

    def _observe_threads(self, read: Callable[[], int]) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read())] if self.active() else []

        return callback

    def _observe(self, index: int, scale: float) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            if not self.active():
                return []
            rows = snapshot_counters()
            out = []
            for (kind, name), counts in sorted(rows.items()):
                value = counts[index]
                out.append(
                    Observation(
                        value * scale if scale != 1 else value,
                        {"threadtrace.primitive.kind": kind, "threadtrace.primitive.name": name},
                    )
                )
            return out

        return callback

    def record_wait(self, kind: str, name: str, duration_ns: int) -> None:
        self.wait_duration.record(
            duration_ns / 1e9,
            {"threadtrace.primitive.kind": kind, "threadtrace.primitive.name": name},
        )
