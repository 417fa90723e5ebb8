"""The metric points the contention report is made of, whoever collected them.

The live report reads them from the primitives and the contention profile
(:func:`threadtrace._recording.metrics.live_points`); ``threadtrace report``
reads them back from the metrics file the ``json`` exporter wrote
(:func:`threadtrace._formats.otlp_json.read_metrics_file`).  Both give the
same :data:`Points` for the same run, and one pure function makes the report
of either.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Union

#: Bucket boundaries for wait durations, in seconds: a 1-2-5 series from 1 µs
#: to 100 s, fine enough for the report's p50/p99 (see _report.model.quantile).
WAIT_BUCKETS = (
    0.000001, 0.000002, 0.000005,
    0.00001, 0.00002, 0.00005,
    0.0001, 0.0002, 0.0005,
    0.001, 0.002, 0.005,
    0.01, 0.02, 0.05,
    0.1, 0.2, 0.5,
    1.0, 2.0, 5.0,
    10.0, 20.0, 50.0,
    100.0,
)  # fmt: skip

KIND = "threadtrace.primitive.kind"
NAME = "threadtrace.primitive.name"

#: The histogram the report's quantiles come from.
WAIT_DURATION = "threadtrace.wait.duration"
#: What the contention report is built from.
REPORT_METRICS = (
    "threadtrace.operations",
    "threadtrace.contentions",
    "threadtrace.wait.timeouts",
    "threadtrace.wait.unfinished",
    "threadtrace.hold.time",
    "threadtrace.hold.count",
    "threadtrace.hold.max",
    "threadtrace.contention.count",
    "threadtrace.contention.time",
    "threadtrace.contention.max",
    WAIT_DURATION,
)

Number = Union[int, float]
#: Attributes as a hashable key: their items, sorted.
Attributes = tuple[tuple[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class HistogramPoint:
    """A cumulative explicit-bucket histogram point, as OTLP carries it.

    ``counts`` has one more entry than ``bounds``; bucket ``i`` holds the
    values ``v`` with ``bounds[i-1] < v <= bounds[i]``.  ``min`` and ``max``
    are the exact extremes, in seconds.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    min: float
    max: float


#: Metric name -> attributes -> value (a number, or a HistogramPoint).
Points = dict[str, dict[Attributes, Any]]


def key(attributes: dict[str, Any]) -> Attributes:
    """``attributes`` as a :data:`Points` key."""
    return tuple(sorted(attributes.items()))


def primitive_attributes(kind: str, name: str) -> dict[str, Any]:
    """The attributes of a primitive's series: its kind and name, never a thread."""
    return {KIND: kind, NAME: name}
