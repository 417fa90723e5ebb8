"""``memory``: keeps every span and metrics collection in lists, for tests."""

from __future__ import annotations

from typing import Any, Sequence

from . import Exporter


class MemoryExporter(Exporter):
    """Keeps what it is given for the life of the process.

    To check telemetry in tests prefer :func:`threadtrace.testing.capture`,
    which also reads metrics on demand.

    Attributes:
        spans: every span exported, in order.
        metrics: every ``MetricsData`` exported, in order.
    """

    synchronous = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.spans: list[Any] = []
        self.metrics: list[Any] = []

    def export_spans(self, spans: Sequence[Any]) -> bool:
        self.spans.extend(spans)
        return True

    def export_metrics(self, metrics: Any) -> bool:
        self.metrics.append(metrics)
        return True

    def destination(self) -> str:
        return "memory"
