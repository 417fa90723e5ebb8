"""threadtrace's own OpenTelemetry SDK providers, for apps that set none.

When the application has configured global providers, threadtrace records
into those and none of this is built.
"""

from __future__ import annotations

import sys
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from ._config import Config


class FallbackProviders:
    """A tracer and a meter provider wired to the configured exporters.

    Attributes:
        memory_spans: the in-memory span exporter when ``memory`` is configured.
        memory_metrics: the in-memory metric reader when ``memory`` is configured.
    """

    def __init__(self, config: Config) -> None:
        resource = _resource()
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        readers: list[MetricReader] = []
        self.memory_spans: Any = None
        self.memory_metrics: Any = None
        for name in config.exporters:
            if name == "console":
                # One JSON object per line, not the SDK's indented default: a
                # busy program's stderr stays readable and greppable.
                self.tracer_provider.add_span_processor(
                    BatchSpanProcessor(
                        ConsoleSpanExporter(out=sys.stderr, formatter=_one_line_span)
                    )
                )
                readers.append(
                    PeriodicExportingMetricReader(
                        ConsoleMetricExporter(out=sys.stderr, formatter=_one_line_metrics)
                    )
                )
            elif name == "memory":
                from opentelemetry.sdk.metrics.export import InMemoryMetricReader
                from opentelemetry.sdk.trace.export import SimpleSpanProcessor
                from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                    InMemorySpanExporter,
                )

                self.memory_spans = InMemorySpanExporter()
                self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.memory_spans))
                self.memory_metrics = InMemoryMetricReader()
                readers.append(self.memory_metrics)
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, shutdown_on_exit=False
        )

    def shutdown(self, timeout: float) -> None:
        millis = int(timeout * 1000)
        self.tracer_provider.force_flush(millis)
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown(timeout_millis=millis)


def _one_line_span(span: Any) -> str:
    return f"{span.to_json(indent=None)}\n"


def _one_line_metrics(metrics_data: Any) -> str:
    return f"{metrics_data.to_json(indent=None)}\n"


def _resource() -> Resource:
    """The SDK's default resource, built without ``Resource.create()``.

    ``Resource.create()`` runs its detectors on a thread pool of its own.
    Providers may be built lazily, in whatever thread first records, and
    that thread may hold ``concurrent.futures``' global lock (inside
    ``ThreadPoolExecutor.submit``): a pool submit there would deadlock.
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` are honoured.
    """
    from opentelemetry.sdk.version import __version__ as sdk_version

    return (
        Resource(
            {
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": sdk_version,
            }
        )
        .merge(OTELResourceDetector().detect())
        .merge(Resource({"service.name": _service_name()}))
    )


def _service_name() -> str:
    import os

    name = os.environ.get("OTEL_SERVICE_NAME")
    if name:
        return name
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    return f"threadtrace:{os.path.basename(argv0)}"
