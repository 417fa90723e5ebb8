"""Moves finished spans and collected metrics to exporters, off the app's threads.

:class:`SpanQueue` is a span processor: ``on_end`` appends to a bounded
deque and returns; one daemon thread of threadtrace's own hands batches to
the exporter.  When the deque is full the span is dropped and counted (not
logged per span, as the SDK's batch processor does).  :class:`MetricAdapter`
lets the SDK's periodic reader feed an exporter.  Every count ends up in
:class:`ExportStats`, which the exit summary and the one warning read.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
from typing import Any, Callable, Iterator, Optional, Sequence

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from .._runtime import runtime
from .._support import originals as _originals
from ..exporters import Exporter

logger = logging.getLogger("threadtrace")

#: Spans waiting for export, per exporter, before new ones are dropped.
MAX_QUEUE = 8192
#: Spans handed to an exporter at once.
MAX_BATCH = 512
#: Seconds between exports when the queue is not filling up.
EXPORT_INTERVAL = 1.0


class ExportStats:
    """What happened to the telemetry sent to one exporter."""

    def __init__(self, name: str, destination: str) -> None:
        self.name = name
        self.destination = destination
        self.spans_exported = 0
        self.spans_failed = 0  # handed over, not delivered
        self.spans_dropped = 0  # never handed over: queue full, or left at exit
        # Taken by the exporter, then not kept by it (Exporter.dropped_spans), and why.
        self.spans_left_out = 0
        self.left_out_reason = ""
        self.metric_exports = 0
        self.metric_failures = 0
        self._warned: set[str] = set()

    @property
    def warned(self) -> bool:
        """Whether a loss was already said (later ones only show in the summary)."""
        return bool(self._warned)

    @property
    def spans_lost(self) -> int:
        return self.spans_failed + self.spans_dropped

    def warn_once(
        self, what: str, error: Optional[BaseException] = None, signal: str = "traces"
    ) -> None:
        """Log the first loss of ``signal`` (traces or metrics) on this exporter.

        Later ones are only counted: a backend that refuses metrics on every
        periodic export is said once per run.  An error that names where it
        was sent and why (the otlp exporter's ``ExportFailed``) is said that
        way: the URL of the signal that failed, and the status it got.
        """
        if signal in self._warned:
            return
        self._warned.add(signal)
        destination = getattr(error, "destination", None)
        reason = getattr(error, "reason", None)
        if isinstance(destination, str) and isinstance(reason, str):
            advice = ""
            if signal == "metrics" and getattr(error, "refused", False):
                advice = "; it takes no metrics there: set OTEL_METRICS_EXPORTER=none to send none"
            # Maybe on a program thread (a full queue is found in on_end):
            # logged from one of threadtrace's own.
            runtime.notice(
                logging.WARNING,
                "threadtrace: exporter %r lost %s to %s: %s%s; the program continues, and "
                "further losses are counted and reported at exit",
                self.name,
                what,
                destination,
                reason,
                advice,
            )
            return
        reason = f": {type(error).__name__}: {error}" if error is not None else ""
        runtime.notice(
            logging.WARNING,
            "threadtrace: exporter %r (%s) lost %s%s; the program continues, and "
            "further losses are counted and reported at exit",
            self.name,
            self.destination,
            what,
            reason,
        )


def deliver(stats: ExportStats, exporter: Exporter, spans: Sequence[ReadableSpan]) -> None:
    """Hand ``spans`` to ``exporter``, counting the outcome; never raises."""
    error: Optional[BaseException] = None
    try:
        with exporting():
            ok = exporter.export_spans(spans)
    except Exception as exc:  # noqa: BLE001 - an exporter never breaks threadtrace
        ok, error = False, exc
    if ok:
        stats.spans_exported += len(spans)
    else:
        stats.spans_failed += len(spans)
        stats.warn_once(f"{len(spans)} spans", error)
    # The exporter counts what it took and did not keep (a cap of its own):
    # copied after every batch, on the thread that handed it over.
    stats.spans_left_out = exporter.dropped_spans
    stats.left_out_reason = exporter.drop_reason


class SpanQueue(SpanProcessor):
    """A bounded, batching span processor that counts what it drops."""

    def __init__(self, exporter: Exporter, stats: ExportStats) -> None:
        self._exporter = exporter
        self._stats = stats
        self._closed = False
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._wake = _originals.Event()
        self._idle = _originals.Event()
        self._idle.set()
        self._in_flight = 0  # spans handed to the exporter and not yet back
        #: Whether the worker runs; if it could not start (see start_own),
        #: force_flush() exports on the caller's thread instead.
        self._working = _originals.start_own(
            _originals.own_thread(self._work, f"threadtrace-export-{self._stats.name}")
        )

    def on_end(self, span: ReadableSpan) -> None:
        if self._closed:
            self._stats.spans_dropped += 1  # ended after the exporter was shut down
            return
        if self._pid != os.getpid():
            return  # a forked child's: it has its own providers; these are the parent's
        queue = self._queue
        if len(queue) >= MAX_QUEUE:
            self._stats.spans_dropped += 1
            self._stats.warn_once("spans because its queue was full")
            return
        queue.append(span)
        if len(queue) >= MAX_BATCH:
            self._wake.set()

    def _work(self) -> None:
        while True:
            self._wake.wait(EXPORT_INTERVAL)
            self._wake.clear()
            self._drain()
            with runtime.guarded():
                runtime.publish_notices()
            if self._closed:
                return

    def _drain(self) -> None:
        self._idle.clear()
        try:
            queue = self._queue
            while queue:
                batch: list[ReadableSpan] = []
                while queue and len(batch) < MAX_BATCH:
                    batch.append(queue.popleft())
                self._in_flight = len(batch)
                deliver(self._stats, self._exporter, batch)
                self._in_flight = 0
        finally:
            self._idle.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._pid != os.getpid():  # a forked child's: the parent exports what it queued
            return True
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._working:
            self._drain()
        while True:
            self._wake.set()
            if (
                not self._queue
                and self._idle.wait(max(0.0, deadline - time.monotonic()))
                and not self._queue
            ):
                return self._exporter.force_flush(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return False
            self._idle.wait(0.01)

    def shutdown(self) -> None:
        self._closed = True
        self._wake.set()

    def abandon(self) -> int:
        """Count what is still queued, or stuck in the exporter, as dropped (time ran out).

        Called once the exit flush gave up; returns how many spans that was.
        A batch still inside the exporter is counted as dropped now; should
        the exporter return after all, before the process ends, it is counted
        again there.
        """
        self._closed = True
        left = 0
        while True:
            try:
                self._queue.popleft()
            except IndexError:
                break
            left += 1
        dropped = left + self._in_flight
        self._stats.spans_dropped += dropped
        return dropped


class MetricAdapter(MetricExporter):
    """Feeds one collection at a time from the SDK's periodic reader to an exporter.

    ``amend`` gets each collection first and returns what to export instead
    (the recorder adds the wait histogram there; see ``FallbackProviders``).
    """

    def __init__(
        self,
        exporter: Exporter,
        stats: ExportStats,
        amend: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        super().__init__()
        self._exporter = exporter
        self._stats = stats
        self._amend = amend
        self._pid = os.getpid()

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self._pid != os.getpid():
            # The SDK restarts its reader in a forked child: this exporter is
            # the parent's (its files too); the child exports through its own.
            return MetricExportResult.SUCCESS
        if self._amend is not None:
            try:
                metrics_data = self._amend(metrics_data)
            except Exception as exc:  # noqa: BLE001 - the SDK's own metrics still go out
                runtime.internal_error("metrics", exc)
        error: Optional[BaseException] = None
        try:
            with exporting():
                ok = self._exporter.export_metrics(metrics_data)
        except Exception as exc:  # noqa: BLE001
            ok, error = False, exc
        if ok:
            self._stats.metric_exports += 1
            return MetricExportResult.SUCCESS
        self._stats.metric_failures += 1
        self._stats.warn_once("a metrics export", error, signal="metrics")
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class _Quiet(logging.Filter):
    """Drops log records emitted while threadtrace itself is exporting.

    The official OTLP exporters log a warning for every failed attempt; with
    an endpoint down that is a line per batch for the rest of the run.
    threadtrace counts those failures and warns once instead.  Only records
    made on a thread inside :func:`exporting` are dropped, so an
    application's own exporters keep their logging.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not runtime.exporting()


_QUIET_PREFIXES = ("opentelemetry.exporter", "grpc")
_filter = _Quiet()


@contextlib.contextmanager
def exporting() -> Iterator[None]:
    """Around every call into an exporter: threadtrace's own work, and quiet.

    Marked as recording (:meth:`threadtrace._runtime.Runtime.guarded`), so nothing the
    exporter does is traced: the HTTP exporter's ``requests`` session makes a
    cookie jar per request, whose RLock (``http.cookiejar``, not excluded by
    module) would otherwise be traced on this thread, its holds exported by
    the next export, and so on.  And its log records are dropped (see
    :class:`_Quiet`).
    """
    runtime.set_exporting(True)
    try:
        with runtime.guarded():
            yield
    finally:
        runtime.set_exporting(False)


def install_log_filter() -> None:
    """Put the filter on every exporter logger that exists now.

    A logger's filters do not apply to its children's records, so each
    module logger gets it; call this after the exporters are imported.
    """
    for name, log in list(logging.Logger.manager.loggerDict.items()):
        if (
            isinstance(log, logging.Logger)
            and name.startswith(_QUIET_PREFIXES)
            and _filter not in log.filters
        ):
            log.addFilter(_filter)
