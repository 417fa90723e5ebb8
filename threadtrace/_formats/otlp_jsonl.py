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
from typing import Any, Callable, Generator, Iterable, Iterator, Optional

from .._support.points import KIND, NAME, REPORT_METRICS, WAIT_DURATION, HistogramPoint, Points, key
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
    return json.dumps(_hex_ids(data), separators=(",", ":"))


def _hex_ids(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (protobuf's JSON mapping of OTLP traces or metrics) with its ids in hex.

    Rewritten in place, where OTLP keeps them: spans, their links, and the
    exemplars of metric points.  What :func:`_ids` does on reading, which
    must look everywhere in a line of any origin, but without visiting every
    attribute: a fifth of the cost of writing a span did that.
    """
    for resource in data.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                _to_hex(span)
                for link in span.get("links", ()):
                    _to_hex(link)
    for resource in data.get("resourceMetrics", ()):
        for scope in resource.get("scopeMetrics", ()):
            for metric in scope.get("metrics", ()):
                for points in metric.values():  # its one data field: sum, gauge, histogram...
                    if isinstance(points, dict):
                        for point in points.get("dataPoints", ()):
                            for exemplar in point.get("exemplars", ()):
                                _to_hex(exemplar)
    return data


def _to_hex(item: dict[str, Any]) -> None:
    for name in _ID_KEYS:
        value = item.get(name)
        if value:
            item[name] = _b64_to_hex(value)


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


#: Deeper than any OTLP/JSON line (attribute values nest, but not this far):
#: refused before protobuf, whose own limit and message differ by version.
MAX_DEPTH = 100


def _ids(data: Any, convert: Any, depth: int = 0) -> Any:
    """``data`` with every trace and span id rewritten by ``convert``.

    Raises:
        ValueError: ``data`` nests deeper than :data:`MAX_DEPTH`.
    """
    if depth > MAX_DEPTH:
        raise ValueError(_TOO_DEEP)
    if isinstance(data, dict):
        return {
            key: (
                convert(value)
                if key in _ID_KEYS and isinstance(value, str) and value
                else _ids(value, convert, depth + 1)
            )
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_ids(item, convert, depth + 1) for item in data]
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
    try:
        data = json.loads(line)
    except RecursionError:  # json's limit is the interpreter's: no OTLP line comes near it
        raise ValueError(_TOO_DEEP) from None
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
    # Ids (of spans, links and exemplars) are hex in OTLP/JSON, base64 in protobuf's.
    data = _ids(data, _hex_to_b64)  # ValueError when nested too deeply
    try:
        return ParseDict(data, Message(), ignore_unknown_fields=True)
    except Exception as error:  # noqa: BLE001 - protobuf's ParseError, or a bad hex id
        raise ValueError(_shortened(str(error))) from None


_TOO_DEEP = "nested too deeply"
#: protobuf's messages quote the value they could not parse, which may be most of the line.
_LONGEST_REASON = 200


def _shortened(text: str) -> str:
    return text if len(text) <= _LONGEST_REASON else text[: _LONGEST_REASON - 3] + "..."


def parse_traces_line(line: str) -> Any:
    """The ``TracesData`` protobuf of one OTLP/JSON line (see :func:`parse_otlp_line`)."""
    return parse_otlp_line(line, "traces")


def read_otlp_file(
    path: str, signal: str, error: type[Exception], warn: Optional[Callable[[str], None]] = None
) -> Generator[tuple[int, Any], None, None]:
    """The number and ``TracesData`` (or ``MetricsData``) of each line of an OTLP JSON Lines file.

    Read a line at a time, as it is consumed.  Blank lines are skipped.
    ``signal`` is ``"traces"`` or ``"metrics"``.

    A last line that ends without a newline and is not OTLP JSON is what a
    writer killed in the middle of a line leaves behind (the ``json``
    exporter writes each line with its newline at once).  With ``warn``, and
    good lines before it, that line is left out and ``warn`` is called with
    a message that names it; the good lines stand.  A bad line anywhere else
    (one that ends with its newline) is not a cut: the file is corrupt.

    Raises:
        error: the file cannot be opened or read, or a line is not OTLP JSON
            of that signal (the message names the file and gives the line's
            number).
    """
    what = "trace" if signal == "traces" else signal
    good = 0
    try:
        with open(path, "rb") as file:
            for number, raw in enumerate(file, 1):
                try:
                    line = raw.decode("utf-8")
                    if not line.strip():
                        continue
                    data = parse_otlp_line(line, signal)
                except ValueError as exc:  # UnicodeDecodeError is one
                    reason = (
                        f"not UTF-8: {exc.reason}" if isinstance(exc, UnicodeDecodeError) else exc
                    )
                    cut = not raw.endswith(b"\n")  # only the last line can end without one
                    if cut and good and warn is not None:
                        warn(
                            f"{path}, line {number} is cut short (the file ends in the middle "
                            "of it, as when its writer is killed); left out"
                        )
                        return
                    message = f"{path}, line {number}: not an OTLP JSON {what} line ({reason})"
                    raise error(message) from None
                good += 1
                yield number, data
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None


def read_trace_file(path: str, warn: Optional[Callable[[str], None]] = None) -> list[SpanRecord]:
    """Every span in an OTLP JSON Lines trace file, in file order.

    Args:
        path: the file.
        warn: called with a message if the last line is cut short and left
            out (see :func:`read_otlp_file`); without it, such a line is an
            error like any other.

    Raises:
        TraceFileError: the file cannot be opened, a line is not OTLP JSON
            traces (the message gives its number), or it holds no spans.
    """
    spans: list[SpanRecord] = []
    for _, data in read_otlp_file(path, "traces", TraceFileError, warn):
        spans.extend(records_of(data))
    if not spans:
        raise TraceFileError(f"{path} holds no spans")
    return spans


def records_of(traces: Any) -> Iterator[SpanRecord]:
    """Records of every span in a ``TracesData`` (or export request) protobuf."""
    for resource_spans in traces.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", ""))
        pid = resource.get("process.pid")
        process = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
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
                    process_id=process,
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


def read_metrics_file(path: str, warn: Optional[Callable[[str], None]] = None) -> Points:
    """The report's metrics as the ``json`` exporter wrote them to ``path``.

    The exporter appends one ``MetricsData`` line per collection, cumulative,
    so the last point of each series holds its totals.

    Args:
        path: the file.
        warn: called with a message if the last line is cut short and left
            out (see :func:`read_otlp_file`): the totals are then those of
            the collection before.  Without it, such a line is an error.

    Raises:
        MetricsFileError: the file cannot be opened, a line is not OTLP JSON
            metrics or holds a point the report cannot use (the message gives
            its number), or it holds no metrics.
    """
    points: Points = {name: {} for name in REPORT_METRICS}
    seen = False
    for number, data in read_otlp_file(path, "metrics", MetricsFileError, warn):
        seen = True
        for name, attributes, value in _points_of(data):
            if name not in points:
                continue
            problem = _problem(name, attributes, value)
            if problem is not None:
                raise MetricsFileError(
                    f"{path}, line {number}: bad {name} point ({_shortened(problem)})"
                )
            points[name][key(attributes)] = value
    if not seen:
        raise MetricsFileError(f"{path} holds no metrics")
    return points


def _points_of(data: Any) -> Iterable[tuple[str, dict[str, Any], Any]]:
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
                        yield metric.name, _attributes(point.attributes), value
                elif which == "histogram":
                    for point in metric.histogram.data_points:
                        yield (
                            metric.name,
                            _attributes(point.attributes),
                            HistogramPoint(
                                tuple(point.explicit_bounds),
                                tuple(point.bucket_counts),
                                point.min if point.HasField("min") else 0.0,
                                point.max if point.HasField("max") else 0.0,
                            ),
                        )


# What the report makes of a point, so what it must be (anything else is
# the file's fault, said with its line, not a crash in the report).
_TEXT = frozenset(
    [KIND, NAME]
    + [
        prefix + name
        for prefix in ("", "threadtrace.holder.")
        for name in ("thread.name", "code.file.path", "code.function.name")
    ]
)
_LINE_NUMBERS = frozenset(["code.line.number", "threadtrace.holder.code.line.number"])
#: The report's metrics in seconds; the others are counts (whole numbers), but the histogram.
_IN_SECONDS = frozenset(
    [
        "threadtrace.hold.time",
        "threadtrace.hold.max",
        "threadtrace.contention.time",
        "threadtrace.contention.max",
    ]
)
#: The longest time a point can hold, in seconds: what int64 nanoseconds hold (292 years).
_MAX_SECONDS = 2**63 / 1e9


def _problem(name: str, attributes: dict[str, Any], value: Any) -> Optional[str]:
    """Why the report cannot use this point of its metric ``name``; None if it can."""
    for needed in (KIND, NAME):
        if needed not in attributes:
            return f"no {needed}"
    for attribute, item in attributes.items():
        if attribute in _LINE_NUMBERS:
            fits = _whole(item)
        elif attribute in _TEXT:
            fits = isinstance(item, str)
        else:  # a part of the key the report looks points up by
            fits = isinstance(item, (str, int, float, bool))
        if not fits:
            return f"{attribute} is {item!r}"
    if (name == WAIT_DURATION) != isinstance(value, HistogramPoint):
        return "a histogram" if name != WAIT_DURATION else "not a histogram"
    if isinstance(value, HistogramPoint):
        return _histogram_problem(value)
    if name in _IN_SECONDS:
        return None if _seconds(value) else f"{value!r} seconds"
    return None if _whole(value) and value >= 0 else f"a count of {value!r}"


def _histogram_problem(histogram: HistogramPoint) -> Optional[str]:
    bounds, counts = histogram.bounds, histogram.counts
    if not all(_seconds(abs(bound)) for bound in bounds):
        return f"bounds {list(bounds)!r}"
    if any(low >= high for low, high in zip(bounds, bounds[1:])):
        return f"bounds not in increasing order: {list(bounds)!r}"
    if len(counts) not in (0, len(bounds) + 1):
        return f"{len(counts)} bucket counts for {len(bounds)} bounds"
    for extreme in (histogram.min, histogram.max):
        if not _seconds(extreme):
            return f"{extreme!r} seconds"
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value: Any) -> bool:
    """Whether ``value`` is a time the report can take: a number of seconds, >= 0."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value <= _MAX_SECONDS  # False for NaN
    )
