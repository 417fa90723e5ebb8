"""OTLP JSON Lines files in and out: traces and metrics.

The ``json`` exporter writes, and ``threadtrace convert``/``report`` read,
the OTLP file format (opentelemetry-specification ``protocol/file-exporter``):
one ``TracesData`` (or ``MetricsData``) JSON object per line, ids in hex,
enums as integers.  Both directions go through the official generated
protobuf classes and protobuf's JSON mapping; the only fix-up is the hex
spelling of ids that OTLP/JSON requires where protobuf's mapping uses base64.

Metrics files are read back into the report's :data:`~threadtrace._support.points.Points`.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterable, Iterator

from .._support.points import REPORT_METRICS, Attributes, HistogramPoint, Points, key
from .records import LinkRecord, SpanRecord

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


class TraceFileError(Exception):
    """A trace file cannot be read; the message names the file and the problem."""


# -- writing ---------------------------------------------------------------------------


def to_otlp_json(message: Any) -> str:
    """One OTLP/JSON line (no newline) for an OTLP protobuf request or data message."""
    # Lazy: protobuf and the generated OTLP classes take ~25 ms to import,
    # and `threadtrace run` loads this module without reading any file.
    from google.protobuf.json_format import MessageToDict  # noqa: PLC0415 - see above

    data = MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(_ids(data, _b64_to_hex), separators=(",", ":"))


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _ids(data: Any, convert: Any) -> Any:
    """``data`` with every trace and span id rewritten by ``convert``."""
    if isinstance(data, dict):
        return {
            key: (
                convert(value)
                if key in _ID_KEYS and isinstance(value, str) and value
                else _ids(value, convert)
            )
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_ids(item, convert) for item in data]
    return data


# -- reading ---------------------------------------------------------------------------


#: signal -> (the top-level key of its OTLP/JSON lines, the other signal's key, hint)
_SIGNALS = {
    "traces": (
        "resourceSpans",
        "resourceMetrics",
        "it holds metrics, not spans; pass the trace file",
    ),
    "metrics": ("resourceMetrics", "resourceSpans", "it holds spans, not metrics"),
}


def parse_otlp_line(line: str, signal: str) -> Any:
    """The ``TracesData`` or ``MetricsData`` protobuf of one OTLP/JSON line.

    ``signal`` is ``"traces"`` or ``"metrics"``.

    Raises:
        ValueError: not JSON, not that signal, or not valid OTLP.
    """
    from google.protobuf.json_format import ParseDict  # noqa: PLC0415 - as in to_otlp_json

    key, other, hint = _SIGNALS[signal]
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if key not in data:
        raise ValueError(hint if other in data else f"no {key}")
    if signal == "traces":
        from opentelemetry.proto.trace.v1.trace_pb2 import (  # noqa: PLC0415 - as in to_otlp_json
            TracesData as Message,
        )
    else:
        from opentelemetry.proto.metrics.v1.metrics_pb2 import (  # type: ignore[assignment]  # noqa: PLC0415 - as above
            MetricsData as Message,
        )
    try:
        # Ids (of spans, links and exemplars) are hex in OTLP/JSON, base64 in protobuf's.
        return ParseDict(_ids(data, _hex_to_b64), Message(), ignore_unknown_fields=True)
    except Exception as error:  # noqa: BLE001 - protobuf's ParseError, or a bad hex id
        raise ValueError(str(error)) from None


def parse_traces_line(line: str) -> Any:
    """The ``TracesData`` protobuf of one OTLP/JSON line (see :func:`parse_otlp_line`)."""
    return parse_otlp_line(line, "traces")


def read_otlp_file(path: str, signal: str, error: type[Exception]) -> Iterator[Any]:
    """The ``TracesData`` or ``MetricsData`` of each line of an OTLP JSON Lines file.

    Blank lines are skipped.  ``signal`` is ``"traces"`` or ``"metrics"``.

    Raises:
        error: the file cannot be opened, or a line is not OTLP JSON of that
            signal (the message names the file and gives the line's number).
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = list(file)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"cannot read {path}: {reason}") from None
    what = "trace" if signal == "traces" else signal
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = parse_otlp_line(line, signal)
        except ValueError as exc:
            raise error(f"{path}, line {number}: not an OTLP JSON {what} line ({exc})") from None
        yield data


def read_trace_file(path: str) -> list[SpanRecord]:
    """Every span in an OTLP JSON Lines trace file, in file order.

    Raises:
        TraceFileError: the file cannot be opened, a line is not OTLP JSON
            traces (the message gives its number), or it holds no spans.
    """
    spans: list[SpanRecord] = []
    for data in read_otlp_file(path, "traces", TraceFileError):
        spans.extend(records_of(data))
    if not spans:
        raise TraceFileError(f"{path} holds no spans")
    return spans


def records_of(traces: Any) -> Iterator[SpanRecord]:
    """Records of every span in a ``TracesData`` (or export request) protobuf."""
    for resource_spans in traces.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield SpanRecord(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() or None,
                    name=span.name,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes=_attributes(span.attributes),
                    links=tuple(
                        LinkRecord(
                            link.trace_id.hex(), link.span_id.hex(), _attributes(link.attributes)
                        )
                        for link in span.links
                    ),
                    error=(span.status.message or "error") if span.status.code == 2 else None,
                    service_name=service,
                )


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which is None:
        return None
    return getattr(value, which)


# -- metrics -----------------------------------------------------------------------------


class MetricsFileError(Exception):
    """A metrics file cannot be read; the message names the file and the problem."""


def read_metrics_file(path: str) -> Points:
    """The report's metrics as the ``json`` exporter wrote them to ``path``.

    The exporter appends one ``MetricsData`` line per collection, cumulative,
    so the last point of each series holds its totals.

    Raises:
        MetricsFileError: the file cannot be opened, a line is not OTLP JSON
            metrics (the message gives its number), or it holds no metrics.
    """
    points: Points = {name: {} for name in REPORT_METRICS}
    seen = False
    for data in read_otlp_file(path, "metrics", MetricsFileError):
        seen = True
        for name, attributes, value in _points_of(data):
            if name in points:
                points[name][attributes] = value
    if not seen:
        raise MetricsFileError(f"{path} holds no metrics")
    return points


def _points_of(data: Any) -> Iterable[tuple[str, Attributes, Any]]:
    """(metric name, attributes, value) of every threadtrace point in a ``MetricsData``."""
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name != "threadtrace":
                continue
            for metric in scope_metrics.metrics:
                which = metric.WhichOneof("data")
                if which in ("sum", "gauge"):
                    for point in getattr(metric, which).data_points:
                        value = getattr(point, point.WhichOneof("value") or "as_int")
                        yield metric.name, key(_attributes(point.attributes)), value
                elif which == "histogram":
                    for point in metric.histogram.data_points:
                        yield (
                            metric.name,
                            key(_attributes(point.attributes)),
                            HistogramPoint(
                                tuple(point.explicit_bounds),
                                tuple(point.bucket_counts),
                                point.min if point.HasField("min") else 0.0,
                                point.max if point.HasField("max") else 0.0,
                            ),
                        )
