"""threadtrace's own OpenTelemetry SDK providers, for apps that set none.

When the application has configured global providers, threadtrace records
into those and none of this is built.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Callable, Optional

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.version import __version__ as sdk_version

from .._runtime import runtime
from .._support import originals as _originals
from .._support.attributes import (
    PROCESS_PARENT_PID,
    PROCESS_PID,
    SERVICE_NAME,
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
)
from .._support.config import Config, sends
from ..exporters import Exporter, load_exporter
from .queue import (
    ExportStats,
    MetricAdapter,
    SpanQueue,
    deliver,
    exporting,
    install_log_filter,
    logger,
)


class FallbackProviders:
    """A tracer and a meter provider wired to the configured exporters.

    ``amend_metrics`` gets each metrics collection before the exporters do
    and returns what they get instead: the recorder adds the
    ``threadtrace.wait.duration`` histogram there, from its contention
    profile, rather than pay the SDK's ``Histogram.record`` per wait.

    Attributes:
        exporters: the exporter instances, by name.
        stats: what happened to the data sent to each, by name.
    """

    def __init__(
        self, config: Config, amend_metrics: Optional[Callable[[Any], Any]] = None
    ) -> None:
        resource = _resource()
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        readers: list[MetricReader] = []
        self.exporters: dict[str, Exporter] = {}
        self.stats: dict[str, ExportStats] = {}
        self._queues: list[SpanQueue] = []
        #: Made during the exit (a forked child that recorded nothing until
        #: then): no ticker thread, which CPython 3.12.0 to 3.12.2 would not
        #: start there; the flush collects their metrics itself instead.
        self._tickless: list[MetricReader] = []
        interval = math.inf if runtime.exiting else None
        for name in config.exporters:
            # OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER say which signals
            # each gets (checked first: an invalid one fails before any is made).
            spans, metrics = sends("traces", name), sends("metrics", name)
            exporter = load_exporter(name)(config)
            stats = ExportStats(name, exporter.destination())
            self.exporters[name] = exporter
            self.stats[name] = stats
            if spans and exporter.handles_spans():
                if exporter.synchronous:
                    self.tracer_provider.add_span_processor(_Synchronous(exporter, stats))
                else:
                    queue = SpanQueue(exporter, stats)
                    self._queues.append(queue)
                    self.tracer_provider.add_span_processor(queue)
            if metrics and exporter.handles_metrics():
                with _originals.program_signals_blocked():  # its ticker thread inherits it
                    reader = PeriodicExportingMetricReader(
                        MetricAdapter(exporter, stats, amend_metrics),
                        export_interval_millis=interval,
                    )
                ticker = getattr(reader, "_daemon_thread", None)  # the SDK's, started for us
                if ticker is not None:
                    _originals.mark_own(ticker)
                else:
                    self._tickless.append(reader)
                runtime.sdk_owners.add(reader)  # and the one it starts in a forked child
                readers.append(reader)
        install_log_filter()
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, shutdown_on_exit=False
        )
        #: Where no thread starts at exit, the flush's thread, started now.
        self._flusher = (
            _originals.Standby("threadtrace-flush")
            if _originals.NO_THREADS_AT_EXIT and not runtime.exiting
            else None
        )

    def shutdown(self, timeout: float) -> None:
        """Flush everything and close the exporters, waiting at most ``timeout`` seconds.

        An exporter stuck on a dead endpoint cannot hold up the exit: the work
        runs on a daemon thread, and what is still queued when time runs out
        is counted as dropped.  ``timeout=0`` does not wait at all: nothing is
        flushed, and what is queued is counted as dropped.  A step that fails
        (a full disk) is said in one line; the others still run.
        """
        if timeout <= 0:
            dropped = sum(queue.abandon() for queue in self._queues)
            logger.warning(
                "threadtrace: flush_timeout is 0: exited without flushing; %d queued %s "
                "and the last metrics were dropped",
                dropped,
                "span" if dropped == 1 else "spans",
            )
            return
        # Where no thread starts, on this one: the exporters' own timeouts bound it then.
        _originals.run_bounded(
            lambda: self._close(timeout), "threadtrace-flush", timeout, self._flusher
        )
        # Whatever is still queued or inside an exporter now is not going out.
        dropped = sum(queue.abandon() for queue in self._queues)
        if dropped:
            logger.warning(
                "threadtrace: exporters did not finish flushing within %s; %d unsent %s dropped",
                _seconds(timeout),
                dropped,
                "span was" if dropped == 1 else "spans were",
            )

    def _close(self, timeout: float) -> None:
        """Flush and close everything, each step on its own: one failing spares the rest."""
        millis = int(timeout * 1000)
        steps: list[tuple[str, Callable[[], object], Optional[ExportStats]]] = [
            ("spans", lambda: self.tracer_provider.force_flush(millis), None),
            ("spans", self.tracer_provider.shutdown, None),
            *[("metrics", _collector(reader, millis), None) for reader in self._tickless],
            ("metrics", lambda: self.meter_provider.shutdown(timeout_millis=millis), None),
        ]
        for name, exporter in self.exporters.items():
            what = f"exporter {name!r} ({exporter.destination()})"
            steps.append((what, _closer(exporter, timeout), self.stats.get(name)))
        for what, step, stats in steps:
            try:
                step()
            except Exception as error:  # noqa: BLE001 - exit goes on regardless
                if stats is not None and stats.warned:
                    continue  # its losses were said once, and the summary counts them
                logger.warning(
                    "threadtrace: could not flush %s at exit: %s", what, _one_line(error)
                )


def _collector(reader: MetricReader, millis: int) -> Callable[[], None]:
    """The last collection of a reader with no ticker (its ticker's would, at shutdown)."""

    def collect() -> None:
        reader.collect(timeout_millis=millis)

    return collect


def _closer(exporter: Exporter, timeout: float) -> Callable[[], None]:
    def close() -> None:
        with exporting():
            exporter.shutdown(timeout)

    return close


def _one_line(error: BaseException) -> str:
    """``OSError: [Errno 28] No space left on device``: the error, without its traceback."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _seconds(value: float) -> str:
    return f"{value:g} s"


class _Synchronous(SpanProcessor):
    """Hands each span over as it ends, for exporters that only keep them in memory."""

    def __init__(self, exporter: Exporter, stats: ExportStats) -> None:
        self._exporter = exporter
        self._stats = stats

    def on_end(self, span: ReadableSpan) -> None:
        deliver(self._stats, self._exporter, (span,))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _resource() -> Resource:
    """The SDK's default resource, built without ``Resource.create()``.

    ``Resource.create()`` runs its detectors on a thread pool of its own.
    Providers may be built lazily, in whatever thread first records, and
    that thread may hold ``concurrent.futures``' global lock (inside
    ``ThreadPoolExecutor.submit``): a pool submit there would deadlock.

    The service name follows the specification's order: ``OTEL_SERVICE_NAME``,
    then a ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` (the SDK's
    detector reads both, in that order), then threadtrace's default,
    ``threadtrace:<program>``.  ``process.pid`` and ``process.parent_pid``
    tell apart the processes of one run (a forked child builds its own).
    """
    detected = OTELResourceDetector().detect()
    resource = Resource(
        {
            TELEMETRY_SDK_LANGUAGE: "python",
            TELEMETRY_SDK_NAME: "opentelemetry",
            TELEMETRY_SDK_VERSION: sdk_version,
            PROCESS_PID: os.getpid(),
            PROCESS_PARENT_PID: os.getppid(),
        }
    ).merge(detected)
    if not detected.attributes.get(SERVICE_NAME):
        resource = resource.merge(Resource({SERVICE_NAME: _default_service_name()}))
    return resource


def _default_service_name() -> str:
    if runtime.service_name:  # threadtrace run names its processes after the program
        return runtime.service_name
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    return f"threadtrace:{os.path.basename(argv0)}"
