"""The ``otlp`` exporter, end to end: a traced program in a fresh interpreter
sends its spans and metrics to a real OTLP server on loopback, over gRPC and
over HTTP/protobuf, configured only by the standard ``OTEL_*`` variables.

The program forces its contention with handshakes (``wait_for_waiters``), so
the trace it produces is known exactly; the test asserts it as the server
decoded it.  Nothing sleeps: the test waits for what the server received,
with timeouts.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest
from helpers import named
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from otlp_servers import (  # noqa: F401 - fixtures, looked up by name
    OtlpServer,
    ReceivedSpan,
    grpc_otlp_server,
    http_otlp_server,
)

import threadtrace

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
#: Seconds any single step may take before the test gives up (never a sleep).
TIMEOUT = 60.0
SERVICE = "threadtrace-otlp-test"

# The program below runs its choreography in a "coordinator" thread rather
# than in the main thread: a wake carries a woken_by link only when the
# waking thread has a current span (docs/telemetry.md, Links), and the main
# thread has none (no provider of the program's own, so no span of its own).
# The coordinator's Thread.run span is that span.
#
# Every thread the program waits for is joined only once it has finished
# (``finished``), except the one join under test, so that exactly one
# Thread.join span exists.  After its work it waits for a line on stdin: the
# test sends it once the first periodic export (threadtrace exports every
# second) has arrived, so the export thread has really run while the program
# was still traced, and anything that export recorded would be sent at exit.
PROGRAM = textwrap.dedent(
    """\
    import sys
    import threading

    import threadtrace
    from threadtrace.testing import wait_for_waiters, wait_until

    threadtrace.patch()

    TIMEOUT = 30.0
    lock = threading.Lock()  # <lock>
    ready = threading.Event()  # <ready>
    go = threading.Event()  # <go>


    def take_lock():
        with lock:  # <take-lock>
            pass


    def wait_ready():
        ready.wait(TIMEOUT)  # <wait-ready>


    def finished(thread):
        \"\"\"Wait until ``thread`` has ended, so that joining it is no wait.\"\"\"
        wait_until(lambda: not thread.is_alive(), TIMEOUT, f"{thread.name} to end")
        thread.join(TIMEOUT)
        assert not thread.is_alive()


    def coordinate():
        lock.acquire()  # <hold-lock>
        worker = threading.Thread(target=take_lock, name="lock-worker")
        worker.start()
        wait_for_waiters(lock, 1, timeout=TIMEOUT)  # the worker is blocked on the lock
        lock.release()
        finished(worker)
        waiter = threading.Thread(target=wait_ready, name="event-worker")
        waiter.start()
        wait_for_waiters(ready, 1, timeout=TIMEOUT)
        ready.set()
        finished(waiter)
        go.wait(TIMEOUT)  # <wait-go>


    def release():
        wait_for_waiters(coordinator, 1, timeout=TIMEOUT)  # main is joining it
        wait_for_waiters(go, 1, timeout=TIMEOUT)  # and it is waiting for go
        go.set()


    coordinator = threading.Thread(target=coordinate, name="coordinator")
    coordinator.start()
    releaser = threading.Thread(target=release, name="releaser")
    releaser.start()
    coordinator.join(TIMEOUT)  # <join>
    assert not coordinator.is_alive()
    finished(releaser)
    print("traced work done", flush=True)
    sys.stdin.readline()
    """
)


def line_of(marker: str) -> int:
    """The line of the program that ends with ``# <marker>``."""
    lines = [n for n, text in enumerate(PROGRAM.splitlines(), 1) if f"# <{marker}>" in text]
    assert len(lines) == 1, marker
    return lines[0]


#: Every span the program makes: its operation, and its thread.  Hold spans
#: are deterministic because every acquisition is measured (sample_every=1)
#: and every hold reported (hold_threshold=0).
EXPECTED_SPANS = sorted([
    ("Lock.acquire", "lock-worker"),
    ("Lock.hold", "coordinator"),
    ("Lock.hold", "lock-worker"),
    ("Event.wait", "event-worker"),
    ("Event.wait", "coordinator"),
    ("Thread.join", "MainThread"),
    ("Thread.run", "coordinator"),
    ("Thread.run", "releaser"),
    ("Thread.run", "lock-worker"),
    ("Thread.run", "event-worker"),
])  # fmt: skip


def target_of(span: ReceivedSpan) -> str:
    """What a span's name should say after its operation: the primitive, or the thread."""
    attributes = span.attributes
    if span.name.startswith("Thread.run"):
        return str(attributes["thread.name"])
    return str(attributes["threadtrace.primitive.name"])


def environment(endpoint: str, protocol: str, **extra: str) -> dict[str, str]:
    """The test's environment without its OTEL_*/THREADTRACE_* variables, plus these."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "THREADTRACE_"))
    }
    env.update(
        THREADTRACE_EXPORTERS="otlp",
        THREADTRACE_WAIT_THRESHOLD="0",
        THREADTRACE_HOLD_THRESHOLD="0",
        THREADTRACE_SAMPLE_EVERY="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_SERVICE_NAME=SERVICE,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def write_program(directory: Path) -> Path:
    path = directory / "traced_program.py"
    path.write_text(PROGRAM)
    return path


def run_to_the_end(program: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``program`` in its folder, letting it exit at once after its work."""
    return subprocess.run(
        [sys.executable, str(program)],
        cwd=program.parent,
        env=env,
        input="exit\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def by_name(spans: list[ReceivedSpan], name: str, thread: str) -> ReceivedSpan:
    found = [
        s
        for s in spans
        if s.name.partition(" ")[0] == name and s.attributes.get("thread.name") == thread
    ]
    assert len(found) == 1, f"{len(found)} {name} spans in {thread}"
    return found[0]


@pytest.fixture(params=["grpc", "http", "http-gzip"])
def otlp_case(request: pytest.FixtureRequest) -> tuple[OtlpServer, Optional[str]]:
    """A running server of the parameter's protocol, and the compression to ask for."""
    protocol, _, compression = request.param.partition("-")
    server = request.getfixturevalue(f"{protocol}_otlp_server")
    return server, compression or None


def test_a_traced_program_exports_its_exact_trace_and_metrics(
    otlp_case: tuple[OtlpServer, Optional[str]], tmp_path: Path
) -> None:
    server, compression = otlp_case
    received = server.received
    program = write_program(tmp_path)
    extra = {"OTEL_EXPORTER_OTLP_COMPRESSION": compression} if compression else {}
    env = environment(server.endpoint, server.protocol, **extra)
    started_ns = time.time_ns()
    process = subprocess.Popen(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Arrives with the first periodic export, while the program still runs
        # (or the program failed, and the assertions below say how).
        received.wait_until(
            lambda: len(received.spans()) >= len(EXPECTED_SPANS) or process.poll() is not None,
            TIMEOUT,
            f"{len(EXPECTED_SPANS)} spans",
            poll=0.05,
        )
        stdout, stderr = process.communicate("exit\n", timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)
    ended_ns = time.time_ns()
    assert process.returncode == 0, stderr
    assert stdout == "traced work done\n"
    assert stderr == ""
    # Metrics go once, at exit (the reader's interval is a minute); the
    # process has exited, so they are here already.
    received.wait_for_metric("threadtrace.operations", timeout=TIMEOUT)
    assert received.errors == []

    # -- transport ------------------------------------------------------------------
    assert received.request_headers, "no requests"
    for what, headers in received.request_headers:
        assert "OTel-OTLP-Exporter-Python" in headers["user-agent"], (what, headers)
        if server.protocol == "http/protobuf":
            assert headers["content-type"] == "application/x-protobuf"
            assert headers.get("content-encoding") == compression, headers

    # -- spans ----------------------------------------------------------------------
    spans = received.spans()
    # Exactly the program's spans: nothing from the exporters' own work on the
    # export thread, which ran (at least once) while the program was traced.
    assert sorted((s.name.partition(" ")[0], s.attributes["thread.name"]) for s in spans) == (
        EXPECTED_SPANS
    )
    # Each name carries its target, as the semantic conventions name spans.
    for span in spans:
        assert span.name == f"{span.name.partition(' ')[0]} {target_of(span)}", span.name
    for span in spans:
        assert span.resource["service.name"] == SERVICE
        assert span.resource["telemetry.sdk.language"] == "python"
        assert (span.scope, span.scope_version) == ("threadtrace", threadtrace.__version__)
        assert span.span.kind == span.span.SPAN_KIND_INTERNAL
        assert started_ns <= span.span.start_time_unix_nano <= span.span.end_time_unix_nano
        assert span.span.end_time_unix_nano <= ended_ns
        assert not span.span.status.code, span  # UNSET: nothing failed
    assert len({s.span_id for s in spans}) == len(spans)

    runs = {name: by_name(spans, "Thread.run", name) for name in ("coordinator", "releaser")}
    runs.update(
        (name, by_name(spans, "Thread.run", name)) for name in ("lock-worker", "event-worker")
    )
    ids = {name: run.attributes["thread.id"] for name, run in runs.items()}

    # Threads started by the main thread, which has no span, are roots of
    # their own traces; threads started by the coordinator are children of
    # its Thread.run span, in its trace.
    coordinator = runs["coordinator"]
    assert coordinator.parent_span_id is None
    assert runs["releaser"].parent_span_id is None
    assert runs["releaser"].trace_id != coordinator.trace_id
    for name in ("lock-worker", "event-worker"):
        assert runs[name].parent_span_id == coordinator.span_id
        assert runs[name].trace_id == coordinator.trace_id
    assert coordinator.attributes["code.function.name"] == "__main__.coordinate"
    assert coordinator.attributes["code.line.number"] == line_of("hold-lock") - 1  # the def
    assert coordinator.attributes["threadtrace.thread.daemon"] is False

    def child_of_run(span: ReceivedSpan, thread: str) -> None:
        assert span.parent_span_id == runs[thread].span_id, (span.name, thread)
        assert span.trace_id == runs[thread].trace_id

    def woken_by(span: ReceivedSpan, thread: str) -> None:
        """One woken_by link, to the waker's current span: its Thread.run, received too."""
        assert [(link.trace_id, link.span_id, link.attributes) for link in span.links] == [
            (
                runs[thread].trace_id,
                runs[thread].span_id,
                {
                    "threadtrace.link.type": "woken_by",
                    "thread.id": ids[thread],
                    "thread.name": thread,
                },
            )
        ]
        assert span.attributes["threadtrace.waker.thread.name"] == thread
        assert span.attributes["threadtrace.waker.thread.id"] == ids[thread]

    # The contended acquire, attribute by attribute.
    acquire = by_name(spans, "Lock.acquire", "lock-worker")
    child_of_run(acquire, "lock-worker")
    lock_name = named("lock", "traced_program.py", line_of("lock"))
    assert acquire.attributes == {
        "threadtrace.primitive.kind": "lock",
        "threadtrace.primitive.name": lock_name,
        "threadtrace.operation": "acquire",
        "threadtrace.timed_out": False,
        "thread.id": ids["lock-worker"],
        "thread.name": "lock-worker",
        "code.function.name": "__main__.take_lock",
        "code.file.path": str(program),
        "code.line.number": line_of("take-lock"),
        "threadtrace.holder.thread.id": ids["coordinator"],
        "threadtrace.holder.thread.name": "coordinator",
        # Exact, because the holder's acquisition was measured (sample_every=1).
        "threadtrace.holder.code.function.name": "__main__.coordinate",
        "threadtrace.holder.code.file.path": str(program),
        "threadtrace.holder.code.line.number": line_of("hold-lock"),
        "threadtrace.waker.thread.id": ids["coordinator"],
        "threadtrace.waker.thread.name": "coordinator",
    }
    woken_by(acquire, "coordinator")

    # The holds: the coordinator's around the contention, then the worker's.
    for thread, site in (("coordinator", "hold-lock"), ("lock-worker", "take-lock")):
        hold = by_name(spans, "Lock.hold", thread)
        child_of_run(hold, thread)
        assert hold.attributes["threadtrace.primitive.name"] == lock_name
        assert hold.attributes["threadtrace.operation"] == "hold"
        assert hold.attributes["code.line.number"] == line_of(site)
        assert hold.links == []
    assert (
        by_name(spans, "Lock.hold", "coordinator").span.end_time_unix_nano
        <= acquire.span.end_time_unix_nano
    )

    # The events: one set by the coordinator, one by the releaser.
    ready_wait = by_name(spans, "Event.wait", "event-worker")
    child_of_run(ready_wait, "event-worker")
    assert ready_wait.attributes["threadtrace.primitive.name"] == (
        named("ready", "traced_program.py", line_of("ready"))
    )
    assert ready_wait.attributes["code.line.number"] == line_of("wait-ready")
    assert ready_wait.attributes["threadtrace.timeout"] == 30.0
    woken_by(ready_wait, "coordinator")
    go_wait = by_name(spans, "Event.wait", "coordinator")
    child_of_run(go_wait, "coordinator")
    assert go_wait.attributes["threadtrace.primitive.name"] == (
        named("go", "traced_program.py", line_of("go"))
    )
    assert go_wait.attributes["code.line.number"] == line_of("wait-go")
    woken_by(go_wait, "releaser")

    # The join: main's wait for the coordinator, linked to the coordinator's run.
    join = by_name(spans, "Thread.join", "MainThread")
    assert join.parent_span_id is None
    assert join.attributes["threadtrace.primitive.kind"] == "thread"
    assert join.attributes["threadtrace.primitive.name"] == "coordinator"
    assert join.attributes["code.function.name"] == "__main__.<module>"
    assert join.attributes["code.line.number"] == line_of("join")
    assert join.attributes["threadtrace.timed_out"] is False
    assert [(link.trace_id, link.span_id, link.attributes) for link in join.links] == [
        (coordinator.trace_id, coordinator.span_id, {"threadtrace.link.type": "joined"})
    ]
    assert join.span.end_time_unix_nano >= coordinator.span.end_time_unix_nano

    # -- metrics --------------------------------------------------------------------
    for metric in received.metrics():
        assert metric.resource["service.name"] == SERVICE
        assert metric.scope == "threadtrace"

    def series(kind: str, name: str) -> tuple[tuple[str, str], ...]:
        return (("threadtrace.primitive.kind", kind), ("threadtrace.primitive.name", name))

    lock = series("lock", lock_name)
    ready = series("event", named("ready", "traced_program.py", line_of("ready")))
    go = series("event", named("go", "traced_program.py", line_of("go")))
    # Exactly the program's primitives: the coordinator's and the worker's
    # acquisitions, one wait on each event.
    assert received.points("threadtrace.operations") == {lock: 2, ready: 1, go: 1}
    assert received.points("threadtrace.contentions") == {lock: 1, ready: 1, go: 1}
    assert received.points("threadtrace.thread.started") == {(): 4}
    assert received.points("threadtrace.thread.count") == {(): 0}
    waits = received.points("threadtrace.wait.duration")
    assert set(waits) == {lock, ready, go, series("thread", "__main__.coordinate")}
    for count, total in waits.values():
        assert count == 1 and total > 0
    assert received.points("threadtrace.wait.time")[lock] == pytest.approx(waits[lock][1])
    # One collection, at exit: cumulative sums and a histogram, with their units.
    (operations,) = received.metrics("threadtrace.operations")
    assert operations.metric.unit == "{operation}"
    assert operations.metric.sum.is_monotonic
    assert operations.metric.sum.aggregation_temporality == CUMULATIVE
    (wait_duration,) = received.metrics("threadtrace.wait.duration")
    assert wait_duration.metric.unit == "s"
    assert wait_duration.metric.histogram.aggregation_temporality == CUMULATIVE


def closed_port() -> int:
    """A loopback port nothing listens on: bound, noted, closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Makes the program act as CPython 3.12.0 to 3.12.2 do: no thread starts at its exit.
NO_THREADS_AT_EXIT = (
    (
        "threadtrace.patch()\n",
        "threadtrace._support.originals.NO_THREADS_AT_EXIT = True\nthreadtrace.patch()\n",
    ),
    (
        "sys.stdin.readline()\n",
        "sys.stdin.readline()\n"
        "def refuse(*args, **kwargs):\n"
        '    raise RuntimeError("can\'t create new thread at interpreter shutdown")\n'
        "for name in ('_start_joinable_thread', '_start_new_thread'):\n"
        "    if hasattr(threading, name):\n"
        "        setattr(threading, name, refuse)\n",
    ),
)


@pytest.mark.parametrize("threads_at_exit", [True, False], ids=["threads-at-exit", "none-at-exit"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_an_unreachable_endpoint_costs_one_warning_and_at_most_the_flush_timeout(
    protocol: str, threads_at_exit: bool, tmp_path: Path
) -> None:
    """Also where no thread starts at exit: the flush's thread was started before."""
    program = write_program(tmp_path)
    if not threads_at_exit:
        text = program.read_text()
        for old, new in NO_THREADS_AT_EXIT:
            assert old in text
            text = text.replace(old, new)
        program.write_text(text)
    env = environment(
        f"http://127.0.0.1:{closed_port()}",
        protocol,
        OTEL_EXPORTER_OTLP_TIMEOUT="30",
        THREADTRACE_FLUSH_TIMEOUT="1",
    )
    started = time.monotonic()
    result = run_to_the_end(program, env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == "traced work done\n"
    # Why 10 s cannot pass by accident: a refused connection is a retryable
    # error for both official exporters, which retry with backoffs of 1, 2, 4,
    # 8 and 16 s (each +-20% jitter) until OTEL_EXPORTER_OTLP_TIMEOUT (30 s)
    # would pass.  They cannot give up before sleeping 1+2+4+8 s less 20%,
    # 12 s, and the span export is followed by the metrics export.  A program
    # that waited for its exporters would take more than 12 s; one that exits
    # in under 10 s was cut off by threadtrace's flush_timeout (1 s).
    assert elapsed < 10.0, f"exit took {elapsed:.1f}s"
    lines = result.stderr.splitlines()
    # One line, from threadtrace: no traceback, and none of the exporters' own
    # "Transient error ... retrying" warnings, which threadtrace filters.
    assert len(lines) == 1, result.stderr
    assert re.match(r"threadtrace: .*(lost|dropped)", lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def test_otel_metrics_exporter_none_sends_spans_only(
    http_otlp_server: OtlpServer,  # noqa: F811 - the fixture, by name
    tmp_path: Path,
) -> None:
    """For Jaeger, which takes no metrics: nothing is sent to /v1/metrics, nothing is lost."""
    program = write_program(tmp_path)
    env = environment(
        http_otlp_server.endpoint, http_otlp_server.protocol, OTEL_METRICS_EXPORTER="none"
    )
    result = run_to_the_end(program, env)
    assert (result.returncode, result.stderr) == (0, "")
    assert http_otlp_server.received.spans()
    assert http_otlp_server.received.metrics() == []


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_backend_that_refuses_metrics_is_warned_about_once_with_the_metrics_url(
    protocol: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Traces arrive; metrics are refused at every export, and that is said once, with why."""
    server: OtlpServer = request.getfixturevalue(f"{protocol}_otlp_server")
    received = server.received
    received.refuse_metrics = True
    env = environment(
        server.endpoint,
        server.protocol,
        OTEL_METRIC_EXPORT_INTERVAL="50",  # ms
    )
    process = subprocess.Popen(
        [sys.executable, str(write_program(tmp_path))],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Several periodic metric exports refused while the program runs.
        received.wait_until(
            lambda: received.metrics_refused >= 3 or process.poll() is not None,
            TIMEOUT,
            "three refused metric exports",
            poll=0.05,
        )
        stdout, stderr = process.communicate("exit\n", timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, stderr
    assert stdout == "traced work done\n"
    assert received.metrics_refused >= 3
    assert len(received.spans()) == len(EXPECTED_SPANS)
    if protocol == "grpc":
        url, reason = server.endpoint, r"gRPC UNIMPLEMENTED( \(metrics are not accepted here\))?"
    else:
        url = f"{server.endpoint}/v1/metrics"
        reason = re.escape("HTTP 405 Method Not Allowed (metrics are not accepted here)")
    (line,) = stderr.splitlines()  # one warning, however many exports were refused
    assert re.fullmatch(
        rf"threadtrace: exporter 'otlp' lost a metrics export to {re.escape(url)}: {reason}; "
        "it takes no metrics there: set OTEL_METRICS_EXPORTER=none to send none; the "
        "program continues, and further losses are counted and reported at exit",
        line,
    ), line


def test_a_refused_span_export_names_the_traces_url_and_the_http_status(
    http_otlp_server: OtlpServer,  # noqa: F811 - the fixture, by name
    tmp_path: Path,
) -> None:
    """A 404 (no such path) is not retried: the warning says where the spans went, and what came back."""
    url = f"{http_otlp_server.endpoint}/no/such/path"
    env = environment(
        http_otlp_server.endpoint,
        http_otlp_server.protocol,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=url,
    )
    result = run_to_the_end(write_program(tmp_path), env)
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(
        rf"threadtrace: exporter 'otlp' lost \d+ spans to {re.escape(url)}: HTTP 404 Not Found; "
        "the program continues, and further losses are counted and reported at exit",
        line,
    ), line
    assert http_otlp_server.received.metrics()  # metrics went to their own URL, and arrived
