"""Helpers for testing threaded code with threadtrace, and for testing threadtrace.

* :func:`capture` records everything into memory (spans and metrics), with
  an optional fake clock, and restores threadtrace's state afterwards.
* :class:`FakeClock` makes durations exact: time moves only when the test
  says so.
* :func:`wait_until` and :func:`wait_for_waiters` wait for a *state*
  ("one thread is blocked on this lock") instead of sleeping and hoping.

These helpers are for tests: they change process-wide state and are not
meant to run concurrently with each other.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
from typing import Any, Callable, Iterator, Optional

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ._control.configure import configure
from ._control.patch import apply as _patch  # patch(), even with OTEL_SDK_DISABLED=true
from ._primitives.threads import thread_statistics
from ._recording.recorder import Recorder
from ._runtime import runtime
from ._support import originals as _originals

__all__ = ["Capture", "FakeClock", "capture", "wait_for_waiters", "wait_until"]


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it.

    Thread-safe.  Starts at an arbitrary fixed instant.
    """

    def __init__(
        self, start_ns: int = 1_000_000_000_000, epoch_ns: int = 1_700_000_000 * 10**9
    ) -> None:
        self._now = start_ns
        self._epoch_offset = epoch_ns - start_ns
        self._lock = _originals.allocate_lock()

    def monotonic_ns(self) -> int:
        return self._now

    def time_ns(self) -> int:
        return self._now + self._epoch_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        with self._lock:
            self._now += round(seconds * 1e9)


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true.

    Raises:
        TimeoutError: it stayed false for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.0005)


def wait_for_waiters(primitive: Any, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until ``count`` threads are blocked on ``primitive``.

    Works for every traced primitive and for any thread (waiters = joiners).
    """

    def waiters() -> int:
        if isinstance(primitive, _originals.Thread) and not hasattr(primitive, "statistics"):
            return thread_statistics(primitive).waiters
        return int(primitive.statistics().waiters)

    wait_until(lambda: waiters() >= count, timeout, f"{count} waiter(s) on {primitive!r}")


@dataclasses.dataclass
class Capture:
    """What :func:`capture` recorded.

    Attributes:
        exporter: the in-memory span exporter.
        reader: the in-memory metric reader.
        tracer_provider: the provider spans go to; use it for the test's own spans.
        clock: the clock in force (a :class:`FakeClock` if one was given).
    """

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    clock: Any

    def spans(self) -> list[ReadableSpan]:
        """The finished spans, in the order they were recorded.

        Records still queued for threadtrace's worker thread are recorded
        first, on this thread, so every wait that has ended is here.
        """
        _drain()
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
        """Collect now: metric name -> sorted attribute items -> point.

        A sum's point is its value; a histogram's is ``(count, sum)``.
        """
        out: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = collections.defaultdict(dict)
        _drain()
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        fields: Any = point
                        if hasattr(fields, "bucket_counts"):
                            out[metric.name][key] = (fields.count, fields.sum)
                        else:
                            out[metric.name][key] = fields.value
        return dict(out)


def _drain() -> None:
    recorder = runtime.recorder
    if isinstance(recorder, Recorder):  # not a stand-in a test put there
        recorder.drain()


@contextlib.contextmanager
def capture(
    *, patch: bool = True, clock: Optional[Any] = None, **settings: Any
) -> Iterator[Capture]:
    """Record threadtrace's spans and metrics into memory for the block.

    Args:
        patch: also :func:`threadtrace.patch` ``threading`` for the block.
        clock: a clock to use instead of the system's (e.g. :class:`FakeClock`).
        **settings: settings for :func:`threadtrace.configure`.

    Yields:
        A :class:`Capture`.  On exit threading is unpatched and threadtrace's
        configuration, clock and registries are what they were before.
    """
    _drain()  # what threads queued before the block is recorded where it belongs, not here
    saved = runtime.snapshot()
    runtime.start_afresh(clock)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    handle = None
    try:
        configure(tracer_provider=tracer_provider, meter_provider=meter_provider, **settings)
        if patch:
            handle = _patch()
        yield Capture(exporter, reader, tracer_provider, meter_provider, runtime.clock)
    finally:
        try:
            if handle is not None:
                handle.unpatch()
            _drain()  # what the block's threads queued is recorded, into this capture
            runtime.publish_notices()  # what the block's threads asked to log, logged by now
        finally:
            runtime.restore(saved)
        tracer_provider.shutdown()
        meter_provider.shutdown()
