"""threadtrace never traces the OpenTelemetry SDK's own locks and threads.

Each case runs in a fresh interpreter, so the order of ``patch()`` and the
SDK's import is real: patched before the import, the SDK binds threadtrace's
classes (``from threading import Lock``) and only the exclusion logic keeps
its internals out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading

    SETTINGS = dict(exporters=(), wait_threshold=0, hold_threshold=0, sample_every=1)
    if sys.argv[1] == "before":
        import threadtrace
        threadtrace.patch(**SETTINGS)

    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter, MetricExportResult, PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class ListMetricExporter(MetricExporter):
        def __init__(self):
            super().__init__()
            self.batches = []
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            self.batches.append(metrics_data)
            return MetricExportResult.SUCCESS
        def force_flush(self, timeout_millis=10_000):
            return True
        def shutdown(self, timeout_millis=30_000, **kwargs):
            pass

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=10))
    trace.set_tracer_provider(tracer_provider)
    metric_exporter = ListMetricExporter()
    meter_provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=10)]
    )
    metrics.set_meter_provider(meter_provider)

    if sys.argv[1] == "after":
        import threadtrace
        threadtrace.patch(**SETTINGS)

    import threadtrace.testing

    app_lock = threading.Lock()
    for _ in range(5):
        with app_lock:
            pass

    def exported_batches(n):
        threadtrace.testing.wait_until(lambda: len(metric_exporter.batches) >= n, 30, "exports")
        tracer_provider.force_flush()
        return len(spans.get_finished_spans())

    early = exported_batches(20)   # the SDK's threads have cycled 20 times over an idle app
    late = exported_batches(40)    # ... and 20 more

    names = set()
    for batch in metric_exporter.batches:
        for rm in batch.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        name = point.attributes.get("threadtrace.primitive.name")
                        if name is not None:
                            names.add(name)
    print(json.dumps({
        "early": early,
        "late": late,
        "spans": sorted(
            [s.name, s.attributes.get("thread.name"), s.attributes.get("threadtrace.primitive.name")]
            for s in spans.get_finished_spans()
        ),
        "metric_primitives": sorted(names),
        "app_lock_traced": type(app_lock).__module__,
        "lock_line": app_lock.name,
    }))
    """
)


@pytest.mark.parametrize("order", ["before", "after"])
def test_an_idle_app_yields_no_telemetry_from_the_sdks_internals(order: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "idle_app.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), order], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    app_lock = result["lock_line"]
    assert app_lock.startswith("app_lock (idle_app.py:")
    # Exactly the app's five holds, all on the main thread; nothing from the SDK.
    assert result["spans"] == [[f"Lock.hold {app_lock}", "MainThread", app_lock]] * 5
    assert result["early"] == result["late"] == 5
    # Metric points exist for the app's lock only.
    assert result["metric_primitives"] == [app_lock]
