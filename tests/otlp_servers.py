"""Two real OTLP receivers on loopback, for testing the ``otlp`` exporter end to end.

* :class:`GrpcOtlpServer`: the official generated gRPC services
  (``TraceService`` and ``MetricsService``) on a ``grpc.server``.
* :class:`HttpOtlpServer`: ``POST /v1/traces`` and ``POST /v1/metrics`` with
  ``application/x-protobuf`` bodies (optionally gzip- or deflate-encoded), on
  the standard library's ``ThreadingHTTPServer``.

Both listen on ``127.0.0.1`` on an ephemeral port, decode every request into
the official protobuf messages and keep them in a :class:`Received`, which
the server threads append to and a test waits on (with a timeout, never a
fixed sleep).  The fixtures :func:`grpc_otlp_server` and
:func:`http_otlp_server` start one and stop it at teardown.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import http.server
import threading
import time
import zlib
from typing import Any, Callable, Iterator, Optional

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

#: How long a server waits for its threads when it stops.
STOP_TIMEOUT = 10.0


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as the Python value it encodes."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, which)


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue``\\ s as a dict."""
    return {pair.key: any_value(pair.value) for pair in pairs}


@dataclasses.dataclass(frozen=True)
class ReceivedLink:
    trace_id: str
    span_id: str
    attributes: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived, with its resource and scope; ids in lowercase hex."""

    resource: dict[str, Any]
    scope: str
    scope_version: str
    span: Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> Optional[str]:
        """The parent's id, or None for a root span."""
        return self.span.parent_span_id.hex() or None

    @property
    def links(self) -> list[ReceivedLink]:
        return [
            ReceivedLink(link.trace_id.hex(), link.span_id.hex(), attributes(link.attributes))
            for link in self.span.links
        ]


@dataclasses.dataclass(frozen=True)
class ReceivedMetric:
    resource: dict[str, Any]
    scope: str
    metric: Metric


class Received:
    """Everything a server decoded, in arrival order.  Thread-safe."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        #: Per request: (path or gRPC method, headers or metadata, lower-cased).
        self.request_headers: list[tuple[str, dict[str, str]]] = []
        #: Requests the server could not accept, with the reason.
        self.errors: list[str] = []
        #: Refuse every metrics request, as a backend that takes traces only
        #: does (HTTP 405, gRPC UNIMPLEMENTED); counted in ``metrics_refused``.
        self.refuse_metrics = False
        self.metrics_refused = 0

    def _add(self, items: list[Any], request: Any, what: str, headers: dict[str, str]) -> None:
        with self._changed:
            items.append(request)
            self.request_headers.append((what, headers))
            self._changed.notify_all()

    def add_traces(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        what: str,
        headers: dict[str, str],
    ) -> None:
        self._add(self.trace_requests, request, what, headers)

    def add_metrics(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        what: str,
        headers: dict[str, str],
    ) -> None:
        self._add(self.metric_requests, request, what, headers)

    def refuse(self) -> bool:
        """Whether to refuse this metrics request (counted if so)."""
        with self._changed:
            if self.refuse_metrics:
                self.metrics_refused += 1
                self._changed.notify_all()
            return self.refuse_metrics

    def add_error(self, error: str) -> None:
        with self._changed:
            self.errors.append(error)
            self._changed.notify_all()

    # -- reading ---------------------------------------------------------------------

    def spans(self) -> list[ReceivedSpan]:
        with self._changed:
            requests = list(self.trace_requests)
        return [
            ReceivedSpan(
                attributes(resource_spans.resource.attributes),
                scope_spans.scope.name,
                scope_spans.scope.version,
                span,
            )
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def metrics(self, name: Optional[str] = None) -> list[ReceivedMetric]:
        """Every metric received (named ``name``, if given), in arrival order."""
        with self._changed:
            requests = list(self.metric_requests)
        return [
            ReceivedMetric(
                attributes(resource_metrics.resource.attributes),
                scope_metrics.scope.name,
                metric,
            )
            for request in requests
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if name is None or metric.name == name
        ]

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The latest point of each series of metric ``name``.

        Keyed by the sorted attribute items.  A sum's or gauge's value is its
        number; a histogram's is ``(count, sum)``.  With cumulative
        temporality (threadtrace's default) the latest point is the total.
        """
        latest: dict[tuple[tuple[str, Any], ...], tuple[int, Any]] = {}
        for received in self.metrics(name):
            metric = received.metric
            kind = metric.WhichOneof("data")
            for point in getattr(metric, kind).data_points:
                key = tuple(sorted(attributes(point.attributes).items()))
                if kind == "histogram":
                    value: Any = (point.count, point.sum)
                else:
                    value = getattr(point, point.WhichOneof("value"))
                if key not in latest or point.time_unix_nano >= latest[key][0]:
                    latest[key] = (point.time_unix_nano, value)
        return {key: value for key, (_, value) in latest.items()}

    # -- waiting ---------------------------------------------------------------------

    def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        what: str = "condition",
        poll: Optional[float] = None,
    ) -> None:
        """Wait until ``predicate()`` holds, re-checking whenever a request arrives.

        Args:
            poll: also re-check at least this often, for a predicate that
                depends on more than the requests (say, a process exiting).

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"timed out after {timeout}s waiting for {what}; received "
                        f"{len(self.trace_requests)} trace and {len(self.metric_requests)} "
                        f"metric requests, errors: {self.errors}"
                    )
                self._changed.wait(remaining if poll is None else min(remaining, poll))

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``count`` spans have arrived; return all of them."""
        self.wait_until(lambda: len(self.spans()) >= count, timeout, f"{count} spans")
        return self.spans()

    def wait_for_metric(self, name: str, timeout: float = 10.0) -> list[ReceivedMetric]:
        """Wait until a metric named ``name`` has arrived; return every one so named."""
        self.wait_until(lambda: bool(self.metrics(name)), timeout, f"metric {name!r}")
        return self.metrics(name)


class OtlpServer:
    """What both servers have in common: where they listen and what they got."""

    #: The ``OTEL_EXPORTER_OTLP_PROTOCOL`` value this server speaks.
    protocol = ""

    def __init__(self) -> None:
        self.received = Received()
        self.port = 0

    @property
    def endpoint(self) -> str:
        """For ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> OtlpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- gRPC ------------------------------------------------------------------------------


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {key.lower(): str(value) for key, value in context.invocation_metadata()}


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(  # the generated service's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._received.add_traces(request, "TraceService/Export", _metadata(context))
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(  # the generated service's method name
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        if self._received.refuse():
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "metrics are not accepted here")
        self._received.add_metrics(request, "MetricsService/Export", _metadata(context))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcOtlpServer(OtlpServer):
    """OTLP/gRPC, served by the official generated service stubs."""

    protocol = "grpc"

    def __init__(self) -> None:
        super().__init__()
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._server: Optional[grpc.Server] = None

    def start(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="otlp-grpc"
        )
        server = grpc.server(self._executor)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self.received), server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsService(self.received), server
        )
        self.port = server.add_insecure_port("127.0.0.1:0")
        assert self.port, "gRPC server could not bind a loopback port"
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            stopped = self._server.stop(grace=None)
            assert stopped.wait(STOP_TIMEOUT), "gRPC server did not stop"
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


# -- HTTP ------------------------------------------------------------------------------

_HTTP_ROUTES: dict[str, tuple[Any, Any, str]] = {
    "/v1/traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "add_traces",
    ),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "add_metrics",
    ),
}


class _OtlpHttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects
    server: _OtlpHttpServer

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding not in ("", "identity"):
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")
        return body

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        received = self.server.received
        route = _HTTP_ROUTES.get(self.path)
        try:
            body = self._body()
        except (ValueError, OSError, EOFError, zlib.error) as error:
            received.add_error(f"{self.path}: unreadable body: {error}")
            self._reply(400, str(error).encode())
            return
        if route is None:
            received.add_error(f"POST to unknown path {self.path}")
            self._reply(404)
            return
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip() != "application/x-protobuf":
            received.add_error(f"{self.path}: Content-Type {content_type!r}")
            self._reply(415)
            return
        request_type, response_type, add = route
        if self.path == "/v1/metrics" and received.refuse():
            self._reply(405, b"metrics are not accepted here\n")
            return
        request = request_type()
        try:
            request.ParseFromString(body)
        except Exception as error:  # protobuf's DecodeError, whatever its module
            received.add_error(f"{self.path}: undecodable body: {error}")
            self._reply(400, str(error).encode())
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        getattr(received, add)(request, self.path, headers)
        self._reply(200, response_type().SerializeToString(), "application/x-protobuf")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows stderr of failing tests, and every request would be a line."""


class _OtlpHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, received: Received) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHttpHandler)
        self.received = received


class HttpOtlpServer(OtlpServer):
    """OTLP/HTTP with binary protobuf bodies, on the standard library's HTTP server."""

    protocol = "http/protobuf"

    def __init__(self) -> None:
        super().__init__()
        self._server: Optional[_OtlpHttpServer] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._server = _OtlpHttpServer(self.received)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # returns once serve_forever has
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            assert not self._thread.is_alive(), "HTTP server thread did not stop"
            self._thread = None


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def grpc_otlp_server() -> Iterator[GrpcOtlpServer]:
    """An OTLP/gRPC receiver on 127.0.0.1, stopped at teardown."""
    server = GrpcOtlpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_otlp_server() -> Iterator[HttpOtlpServer]:
    """An OTLP/HTTP (protobuf) receiver on 127.0.0.1, stopped at teardown."""
    server = HttpOtlpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = [
    "GrpcOtlpServer",
    "HttpOtlpServer",
    "OtlpServer",
    "Received",
    "ReceivedLink",
    "ReceivedMetric",
    "ReceivedSpan",
    "grpc_otlp_server",
    "http_otlp_server",
]
