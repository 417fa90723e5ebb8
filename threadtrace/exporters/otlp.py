"""``otlp``: the official OpenTelemetry OTLP exporters, over gRPC or HTTP/protobuf.

Needs the ``otlp`` extra: ``pip install "threadtrace[otlp]"``.  Everything
is configured by the standard variables, so pointing threadtrace at Jaeger
or a Collector needs no threadtrace-specific setting:

* ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``..._TRACES_PROTOCOL`` /
  ``..._METRICS_PROTOCOL``): ``http/protobuf`` (the default, as the
  OpenTelemetry specification says) or ``grpc``;
* ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT`` /
  ``..._METRICS_ENDPOINT``), default ``http://localhost:4318`` for HTTP and
  ``http://localhost:4317`` for gRPC;
* ``OTEL_METRICS_EXPORTER=none`` sends spans only (Jaeger, for one, takes
  no metrics);
* ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_TIMEOUT``,
  ``OTEL_EXPORTER_OTLP_COMPRESSION``, ``OTEL_EXPORTER_OTLP_INSECURE`` and
  the certificate variables, read by the exporters themselves.

An export the backend did not take raises :class:`ExportFailed`, which says
why (the HTTP status and the start of the body, the gRPC status code and its
details, or the connection error) and names the URL of that signal: a
backend that takes traces but not metrics is told apart from one that is
down.  The official exporters only log the reason, on every attempt; their
logs are silenced while threadtrace exports (``_export/queue.py``), so the
reason is taken where it arises: an HTTP session that notes each response,
and a log filter that notes the gRPC status code.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any, Optional, Sequence

from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from .._support.errors import ConfigurationError
from . import Exporter

PROTOCOLS = ("http/protobuf", "grpc")
_DEFAULT_ENDPOINTS = {"http/protobuf": "http://localhost:4318", "grpc": "http://localhost:4317"}


def _protocol(signal: str) -> str:
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(variable, "").strip()
        if value:
            if value not in PROTOCOLS:
                raise ConfigurationError(
                    f"{variable} must be one of {', '.join(PROTOCOLS)}, got {value!r}"
                )
            return value
    return "http/protobuf"


def _endpoint(signal: str, protocol: str) -> str:
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip()
    if specific:
        return specific
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or _DEFAULT_ENDPOINTS[protocol]
    if protocol == "grpc":
        return base
    return f"{base.rstrip('/')}/v1/{signal.lower()}"


#: HTTP statuses and gRPC codes that say the endpoint does not take the signal at
#: all (no such path, no such service), as opposed to failing this once.
_REFUSED_STATUSES = frozenset({404, 405, 501})
_REFUSED_CODES = frozenset({"UNIMPLEMENTED"})
#: How much of a response body a warning quotes.
_BODY_CHARS = 120


class ExportFailed(Exception):
    """An export the backend did not take.

    Attributes:
        signal: ``traces`` or ``metrics``.
        destination: the URL that signal is sent to.
        reason: why, for people: ``HTTP 405 Method Not Allowed``, ``gRPC
            UNAVAILABLE (...)``, ``[Errno 111] Connection refused``.
        refused: the endpoint does not take this signal at all (HTTP 404,
            405 or 501, gRPC UNIMPLEMENTED), rather than failing this once.
    """

    def __init__(self, signal: str, destination: str, reason: str, refused: bool) -> None:
        super().__init__(f"{destination}: {reason}")
        self.signal = signal
        self.destination = destination
        self.reason = reason
        self.refused = refused


def _error_reason(error: BaseException) -> str:
    """A connection error in a few words: requests' own text is a paragraph."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
    if found:
        return found.group(0).strip()
    return f"{type(error).__name__}: {text[:_BODY_CHARS]}".rstrip(": ")


class _Outcome:
    """What the last request of one exporter got: a status, or an error."""

    __slots__ = ("reason", "refused")

    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self.refused = False


def _noting_session(outcome: _Outcome) -> Any:
    """A ``requests`` session that notes each response's status in ``outcome``.

    Given to the official HTTP exporter (its ``session=`` argument, in every
    supported release); whichever way the exporter posts, it goes through
    ``Session.request``.  One session per exporter, used by one thread at a
    time (the spans' export thread, or the metrics reader's).
    """
    import requests  # noqa: PLC0415 - a dependency of the HTTP exporter, loaded with it

    class NotingSession(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                response = super().request(method, url, *args, **kwargs)
            except Exception as error:
                outcome.reason, outcome.refused = _error_reason(error), False
                raise
            status = response.status_code
            if not 200 <= status < 400:
                reason = f"HTTP {status} {response.reason or ''}".rstrip()
                kind = response.headers.get("Content-Type", "")
                if kind.startswith(("text/", "application/json")):
                    body = response.text.strip().splitlines()
                    if body and body[0].strip():
                        reason += f" ({body[0].strip()[:_BODY_CHARS]})"
                outcome.reason, outcome.refused = reason, status in _REFUSED_STATUSES
            return response

    return NotingSession()


class _GrpcCodes(logging.Filter):
    """Notes the status code the gRPC exporter logs when an export fails; drops nothing.

    The code is only in the exporter's log record (its arguments hold the
    ``grpc.StatusCode``, and, from 1.39, the details after it).  Kept per
    thread: spans and metrics are exported on different threads.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def take(self) -> Optional[tuple[str, bool]]:
        """The reason noted on this thread since the last call, and whether it is a refusal."""
        noted: Optional[tuple[str, bool]] = getattr(self._local, "noted", None)
        self._local.noted = None
        return noted

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for i, arg in enumerate(args):
            name = getattr(arg, "name", None)
            if type(arg).__name__ == "StatusCode" and isinstance(name, str):
                details = args[i + 1] if i + 1 < len(args) else None
                reason = f"gRPC {name}"
                if isinstance(details, str) and details and record.levelno >= logging.ERROR:
                    reason += f" ({details[:_BODY_CHARS]})"
                self._local.noted = (reason, name in _REFUSED_CODES)
                break
        return True


_GRPC_CODES = _GrpcCodes()
#: The logger the official gRPC exporters log their failures on.
_GRPC_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"


def _note_grpc_codes() -> None:
    """Put the noting filter first on the gRPC exporter's logger (before any that drop)."""
    log = logging.getLogger(_GRPC_LOGGER)
    if _GRPC_CODES not in log.filters:
        log.filters.insert(0, _GRPC_CODES)


def _missing_extra(error: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"the otlp exporter needs the otlp extra: pip install 'threadtrace[otlp]' ({error})"
    )


class OtlpExporter(Exporter):
    """Spans and metrics to an OTLP endpoint, through the official exporters."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.protocol = _protocol("TRACES")
        metrics_protocol = self.metrics_protocol = _protocol("METRICS")
        self.endpoint = _endpoint("TRACES", self.protocol)
        self.metrics_endpoint = _endpoint("METRICS", metrics_protocol)
        # Lazy: the otlp extra may not be installed, which is an error only
        # for a program that asks for this exporter (said here, at configure()).
        try:
            if self.protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415 - see above
                    OTLPSpanExporter,
                )
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]  # noqa: PLC0415 - see above
                    OTLPSpanExporter,
                )
            if metrics_protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415 - see above
                    OTLPMetricExporter,
                )
            else:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]  # noqa: PLC0415 - see above
                    OTLPMetricExporter,
                )
        except ImportError as error:
            raise _missing_extra(error) from None
        self._span_outcome, self._metric_outcome = _Outcome(), _Outcome()
        if "grpc" in (self.protocol, metrics_protocol):
            _note_grpc_codes()
        self._spans = (
            OTLPSpanExporter()
            if self.protocol == "grpc"
            # The name is bound to the HTTP class here; mypy sees the gRPC one.
            else OTLPSpanExporter(session=_noting_session(self._span_outcome))  # type: ignore[call-arg]
        )
        # Jaeger takes traces only: OTEL_METRICS_EXPORTER=none keeps metrics home
        # (threadtrace's providers then send this exporter none: _export/providers.py).
        self._metrics = (
            OTLPMetricExporter()
            if metrics_protocol == "grpc"
            else OTLPMetricExporter(session=_noting_session(self._metric_outcome))  # type: ignore[call-arg]
        )

    def export_spans(self, spans: Sequence[Any]) -> bool:
        outcome = self._span_outcome
        outcome.reason = None
        _GRPC_CODES.take()
        if self._spans.export(spans) is SpanExportResult.SUCCESS:
            return True
        raise self._failure("traces", self.endpoint, self.protocol, outcome)

    def export_metrics(self, metrics: Any) -> bool:
        outcome = self._metric_outcome
        outcome.reason = None
        _GRPC_CODES.take()
        if self._metrics.export(metrics) is MetricExportResult.SUCCESS:
            return True
        raise self._failure("metrics", self.metrics_endpoint, self.metrics_protocol, outcome)

    @staticmethod
    def _failure(signal: str, url: str, protocol: str, outcome: _Outcome) -> ExportFailed:
        """Why an export of ``signal`` failed, as far as the exporter told."""
        if protocol == "grpc":
            noted = _GRPC_CODES.take()
            reason, refused = noted if noted is not None else ("no reason given", False)
        else:
            reason, refused = outcome.reason or "no reason given", outcome.refused
        return ExportFailed(signal, url, reason, refused)

    def shutdown(self, timeout: float) -> None:
        self._spans.shutdown()
        self._metrics.shutdown(timeout_millis=timeout * 1000)

    def destination(self) -> str:
        return f"{self.endpoint} ({self.protocol})"
