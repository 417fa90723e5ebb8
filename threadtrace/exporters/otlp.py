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
"""

from __future__ import annotations

import os
from typing import Any, Sequence

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


def _missing_extra(error: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"the otlp exporter needs the otlp extra: pip install 'threadtrace[otlp]' ({error})"
    )


class OtlpExporter(Exporter):
    """Spans and metrics to an OTLP endpoint, through the official exporters."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.protocol = _protocol("TRACES")
        metrics_protocol = _protocol("METRICS")
        self.endpoint = _endpoint("TRACES", self.protocol)
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
        self._spans = OTLPSpanExporter()
        # Jaeger takes traces only: OTEL_METRICS_EXPORTER=none keeps metrics home.
        wanted = os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower()
        self._metrics = None if wanted == "none" else OTLPMetricExporter()

    def export_spans(self, spans: Sequence[Any]) -> bool:
        return bool(self._spans.export(spans) is SpanExportResult.SUCCESS)

    def export_metrics(self, metrics: Any) -> bool:
        assert self._metrics is not None  # not called when handles_metrics() is false
        return bool(self._metrics.export(metrics) is MetricExportResult.SUCCESS)

    def handles_metrics(self) -> bool:
        return self._metrics is not None

    def shutdown(self, timeout: float) -> None:
        self._spans.shutdown()
        if self._metrics is not None:
            self._metrics.shutdown(timeout_millis=timeout * 1000)

    def destination(self) -> str:
        return f"{self.endpoint} ({self.protocol})"
