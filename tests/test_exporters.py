"""The exporter registry, the export queue, and the console, json and memory exporters.

Each exporter is run end to end: a small traced program, threadtrace's own
providers (no application providers), then exact assertions on what was
written.  The otlp exporter has its own file (test_otlp.py), with real
servers; the perfetto exporter is in test_perfetto.py.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from helpers import line, named, qualified_name
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData

import threadtrace
from threadtrace import exporters
from threadtrace._export import queue as _export
from threadtrace._formats.otlp_jsonl import parse_traces_line, read_trace_file, to_otlp_json
from threadtrace._runtime import runtime as _state
from threadtrace.testing import wait_for_waiters, wait_until

BUILT_INS = ("console", "json", "memory", "otlp", "perfetto")


@pytest.fixture
def own_providers() -> Iterator[None]:
    """threadtrace's own exporters for the test, and everything put back after."""
    saved = _state.snapshot()
    gc.collect()  # locks of earlier tests, made on the same lines, must not retire into this one
    _state.start_afresh()
    try:
        yield
    finally:
        threadtrace.shutdown(5)
        _state.restore(saved)


def contended_program() -> tuple[Any, int, int]:
    """Worker "taker" blocks on a Lock main holds, once.  Returns the lock and two lines."""
    lock, made = threading.Lock(), line()
    lock.acquire()
    taker = threading.Thread(target=lambda: (lock.acquire(), lock.release()), name="taker")
    taker.start()
    wait_for_waiters(lock, 1)
    lock.release()
    taker.join(10)
    assert not taker.is_alive()
    return lock, made, made + 2


# -- the registry ----------------------------------------------------------------------


def test_the_built_ins_are_registered_as_entry_points() -> None:
    installed = exporters.installed_exporters()
    assert sorted(installed) == list(BUILT_INS)
    for name in BUILT_INS:
        assert issubclass(exporters.load_exporter(name), exporters.Exporter)


def test_the_built_ins_known_without_the_metadata_are_the_registered_ones() -> None:
    """plugins.BUILT_IN spares a traced program importlib.metadata: it must say
    what pyproject.toml registers, no more and no less."""
    from importlib import metadata

    from threadtrace._support import plugins

    registered = {
        point.name: point.value
        for point in metadata.distribution("threadtrace").entry_points
        if point.group == exporters.ENTRY_POINT_GROUP
    }
    assert plugins.BUILT_IN == registered
    for name, value in registered.items():
        found = plugins.find_exporter(name)
        assert (found.name, found.value) == (name, value)  # type: ignore[attr-defined]
        assert found.load() is exporters.load_exporter(name)  # type: ignore[attr-defined]


def test_another_packages_exporter_is_found_in_the_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name that is not built in is looked up among the installed entry points."""
    from threadtrace._support import plugins

    class Point:
        name, value = "elsewhere", "tests:Elsewhere"

        def load(self) -> object:
            return exporters.Exporter

    monkeypatch.setattr(plugins, "_entry_points", lambda: {"elsewhere": Point()})
    monkeypatch.setattr(plugins, "_cache", {})
    assert plugins.find_exporter("json") == plugins.BuiltIn("json", plugins.BUILT_IN["json"])
    assert plugins._cache == {}  # a built-in name reads no metadata
    assert isinstance(plugins.find_exporter("elsewhere"), Point)
    assert plugins.find_exporter("zipkin") is None
    assert sorted(plugins.installed_exporters()) == sorted([*plugins.BUILT_IN, "elsewhere"])


def test_an_unknown_exporter_lists_the_installed_ones() -> None:
    with pytest.raises(threadtrace.ConfigurationError) as raised:
        exporters.load_exporter("zipkin")
    assert str(raised.value) == (
        "unknown exporter 'zipkin'; installed exporters: console, json, memory, otlp, perfetto"
    )


def test_a_third_party_exporter_registers_like_the_built_ins(tmp_path: Path) -> None:
    """A package with an entry point in threadtrace.exporters runs next to a built-in."""
    (tmp_path / "shouty.py").write_text(
        textwrap.dedent(
            """
            import sys
            from threadtrace.exporters import Exporter

            class Shouty(Exporter):
                def export_spans(self, spans):
                    for span in spans:
                        print("SHOUT", span.name.partition(" ")[0].upper(), file=sys.stderr)
                    return True
            """
        )
    )
    info = tmp_path / "shouty-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shouty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[threadtrace.exporters]\nshouty = shouty:Shouty\n")
    program = textwrap.dedent(
        """
        import threading, threadtrace
        from threadtrace.testing import wait_for_waiters
        threadtrace.patch(exporters="shouty,memory", wait_threshold=0)
        lock = threading.Lock()
        lock.acquire()
        t = threading.Thread(target=lambda: (lock.acquire(), lock.release()), name="t")
        t.start()
        wait_for_waiters(lock, 1)
        lock.release()
        t.join(10)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stderr.split("\n")) == [
        "",
        "SHOUT LOCK.ACQUIRE",
        "SHOUT THREAD.JOIN",
        "SHOUT THREAD.RUN",
    ]


def test_an_exporter_that_is_not_an_exporter_class_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Point:
        value = "somewhere:thing"

        def load(self) -> object:
            return object

    monkeypatch.setitem(exporters._cache, "odd", Point())
    with pytest.raises(threadtrace.ConfigurationError) as raised:
        exporters.load_exporter("odd")
    assert str(raised.value) == (
        "exporter 'odd' (somewhere:thing) is not a threadtrace.exporters.Exporter"
    )


# -- the export queue ------------------------------------------------------------------


class Gate(exporters.Exporter):
    """Blocks in export until opened; records what it was given."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.entered = threading.Event()
        self.open = threading.Event()
        self.got: list[Any] = []
        self.fail = False

    def export_spans(self, spans: Sequence[Any]) -> bool:
        self.entered.set()
        assert self.open.wait(30)
        if self.fail:
            raise ConnectionError("endpoint down")
        self.got.extend(spans)
        return True


def test_a_full_queue_drops_counts_and_warns_once_from_the_export_thread(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The program's thread only counts; the one warning is written by threadtrace's thread.

    The program's thread may hold the program's locks: a slow (or blocked)
    stderr must never stall it.
    """
    monkeypatch.setattr(_export, "MAX_QUEUE", 4)
    monkeypatch.setattr(_export, "MAX_BATCH", 1)
    gate = Gate()
    stats = _export.ExportStats("gate", "nowhere")
    queue = _export.SpanQueue(gate, stats)
    queue.on_end("first")  # type: ignore[arg-type]
    assert gate.entered.wait(10)  # the export thread took it and is stuck
    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        for i in range(7):
            queue.on_end(f"span {i}")  # type: ignore[arg-type]
        assert stats.spans_dropped == 3
        assert caplog.records == []  # nothing written from this thread
        gate.open.set()
        assert queue.force_flush(10_000)
        wait_until(lambda: bool(caplog.records), what="the warning")
    assert [r.getMessage() for r in caplog.records] == [
        "threadtrace: exporter 'gate' (nowhere) lost spans because its queue was full; "
        "the program continues, and further losses are counted and reported at exit"
    ]
    # Written by one of threadtrace's own threads (the export or the watchdog thread).
    assert caplog.records[0].threadName.startswith("threadtrace-")
    assert gate.got == ["first", "span 0", "span 1", "span 2", "span 3"]
    assert (stats.spans_exported, stats.spans_lost) == (5, 3)
    queue.shutdown()


def test_a_failing_exporter_loses_batches_counted_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    gate.fail = True
    gate.open.set()
    stats = _export.ExportStats("gate", "nowhere")
    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        _export.deliver(stats, gate, ["a", "b"])  # type: ignore[list-item]
        _export.deliver(stats, gate, ["c"])  # type: ignore[list-item]
        _state.publish_notices()  # what the export thread does after each batch
    assert (stats.spans_exported, stats.spans_failed) == (0, 3)
    assert [r.getMessage() for r in caplog.records] == [
        "threadtrace: exporter 'gate' (nowhere) lost 2 spans: ConnectionError: endpoint "
        "down; the program continues, and further losses are counted and reported at exit"
    ]


def test_exit_waits_for_a_stuck_exporter_at_most_the_flush_timeout(
    own_providers: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stuck export cannot hold up shutdown; what it still held is counted as dropped."""
    made: list[Gate] = []

    class Stuck(Gate):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            made.append(self)

    class Point:
        value = "tests:Stuck"

        def load(self) -> object:
            return Stuck

    monkeypatch.setitem(exporters._cache, "gate", Point())
    threadtrace.configure(exporters=("gate",), wait_threshold=0)
    with threadtrace.patch():
        contended_program()
    (gate,) = made
    _state.recorder._fallback._queues[0]._wake.set()  # type: ignore[union-attr]
    assert gate.entered.wait(10)
    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        threadtrace.shutdown(0.2)
    gate.open.set()
    assert "exporters did not finish flushing within 0.2 s" in caplog.text
    assert _state.export_stats["gate"].spans_exported == 0


# -- console -----------------------------------------------------------------------------


def test_console_writes_one_readable_line_per_span(
    own_providers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every hold measured, none a span: main's hold spans a thread's start, which
    # took past the 10 ms default on a busy machine.
    threadtrace.configure(
        exporters=("console",), wait_threshold=0, sample_every=1, hold_threshold=60
    )
    with threadtrace.patch():
        lock, made, waited = contended_program()
    threadtrace.shutdown(5)
    err = capsys.readouterr().err
    here = os.path.basename(__file__)
    lines = sorted(err.splitlines(), key=lambda text: text.split()[3])
    assert len(lines) == 3, err
    acquire, join, run = lines
    stamp = r"\[threadtrace\] \d\d:\d\d:\d\d\.\d\d\d "
    took = r" +\d[\d.]* [mµn]?s  "
    # The span's name carries its target, so the detail does not repeat it.
    assert re.fullmatch(
        stamp + r"MainThread +Thread\.join taker" + took + rf"at {here}:{made + 6}", join
    ), join
    assert re.fullmatch(
        stamp
        + rf"taker +Lock\.acquire {re.escape(lock.name)}"
        + took
        + rf"at {here}:{waited}, held by MainThread \(acquired at {here}:{made + 1}\)"
        + ", woken by MainThread",
        acquire,
    ), acquire
    assert re.fullmatch(stamp + r"taker +Thread\.run taker" + took + r"ran .*<lambda>", run), run


# -- json ----------------------------------------------------------------------------------


def test_json_ids_are_hex_wherever_otlp_keeps_them() -> None:
    """Writing converts the ids of spans, links and exemplars, as the walk over everything does."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    from threadtrace._formats.otlp_jsonl import _b64_to_hex, _ids

    trace_id, span_id, parent_id = b"\x01" * 16, b"\x02" * 8, b"\x03" * 8
    traces = TracesData()
    spans = traces.resource_spans.add().scope_spans.add().spans
    child = spans.add(name="child", trace_id=trace_id, span_id=span_id, parent_span_id=parent_id)
    child.attributes.add(key="spanId").value.string_value = "AgICAgICAgI="  # an attribute stays
    child.links.add(trace_id=trace_id, span_id=parent_id)
    spans.add(name="root", trace_id=trace_id, span_id=parent_id)  # no parent: none written
    metrics = MetricsData()
    listed = metrics.resource_metrics.add().scope_metrics.add().metrics
    for kind in ("sum", "gauge", "histogram", "exponential_histogram"):
        point = getattr(listed.add(name=kind), kind).data_points.add()
        point.exemplars.add(trace_id=trace_id, span_id=span_id, as_int=1)

    for message in (traces, metrics):
        data = MessageToDict(message, use_integers_for_enums=True)
        walked = json.dumps(_ids(data, _b64_to_hex), separators=(",", ":"))
        assert to_otlp_json(message) == walked
    written = json.loads(to_otlp_json(traces))
    child_json, root_json = written["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert child_json["parentSpanId"] == "03" * 8
    assert child_json["links"][0] == {"traceId": "01" * 16, "spanId": "03" * 8}
    assert child_json["attributes"][0]["value"] == {"stringValue": "AgICAgICAgI="}
    assert "parentSpanId" not in root_json
    for metric in json.loads(to_otlp_json(metrics))["resourceMetrics"][0]["scopeMetrics"][0][
        "metrics"
    ]:
        (points,) = (value for key, value in metric.items() if key != "name")
        assert points["dataPoints"][0]["exemplars"][0]["spanId"] == "02" * 8


def test_json_writes_otlp_json_lines_that_round_trip(own_providers: None, tmp_path: Path) -> None:
    """One TracesData per line, hex ids, integer enums; the protobuf decoders read it back."""
    path = tmp_path / "out" / "trace.jsonl"
    threadtrace.configure(  # every hold measured, none a span (as for the console's)
        exporters=("json",),
        json_path=str(path),
        wait_threshold=0,
        sample_every=1,
        hold_threshold=60,
    )
    with threadtrace.patch():
        lock, made, waited = contended_program()
    threadtrace.shutdown(5)

    lines = path.read_text().splitlines()
    assert lines
    for text in lines:
        # Decoded by protobuf's own JSON parser into TracesData and written
        # back by the official encoding: byte for byte the same line.
        assert to_otlp_json(parse_traces_line(text)) == text
        data = json.loads(text)
        for span in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            assert re.fullmatch("[0-9a-f]{32}", span["traceId"])
            assert re.fullmatch("[0-9a-f]{16}", span["spanId"])
            assert span["kind"] == 1
            assert isinstance(span["startTimeUnixNano"], str)

    spans = {span.name.partition(" ")[0]: span for span in read_trace_file(str(path))}
    assert sorted(span.name for span in spans.values()) == [
        f"Lock.acquire {lock.name}",
        "Thread.join taker",
        "Thread.run taker",
    ]
    acquire = spans["Lock.acquire"]
    assert {k: v for k, v in acquire.attributes.items() if k != "thread.id"} == {
        "threadtrace.primitive.kind": "lock",
        "threadtrace.primitive.name": named("lock", os.path.basename(__file__), made),
        "threadtrace.operation": "acquire",
        "threadtrace.timed_out": False,
        "thread.name": "taker",
        "code.function.name": (
            f"{__name__}.contended_program.<locals>.<lambda>"
            if sys.version_info >= (3, 11)
            else f"{__name__}.<lambda>"
        ),
        "code.file.path": __file__,
        "code.line.number": waited,
        "threadtrace.holder.thread.id": threading.get_ident(),
        "threadtrace.holder.thread.name": "MainThread",
        "threadtrace.holder.code.function.name": qualified_name(contended_program),
        "threadtrace.holder.code.file.path": __file__,
        "threadtrace.holder.code.line.number": made + 1,
        "threadtrace.waker.thread.id": threading.get_ident(),
        "threadtrace.waker.thread.name": "MainThread",
    }
    assert acquire.parent_span_id == spans["Thread.run"].span_id
    assert spans["Thread.join"].links[0].span_id == spans["Thread.run"].span_id
    assert spans["Thread.join"].links[0].attributes == {"threadtrace.link.type": "joined"}

    metrics_path = tmp_path / "out" / "trace.metrics.jsonl"
    from google.protobuf.json_format import Parse

    points = {}
    for text in metrics_path.read_text().splitlines():
        data = Parse(text, MetricsData(), ignore_unknown_fields=True)
        for metric in data.resource_metrics[0].scope_metrics[0].metrics:
            if metric.name == "threadtrace.operations":
                for point in metric.sum.data_points:
                    attributes = {a.key: a.value.string_value for a in point.attributes}
                    points[attributes["threadtrace.primitive.name"]] = point.as_int
    assert points[named("lock", os.path.basename(__file__), made)] == 2


def test_json_path_that_cannot_be_written_fails_at_configure(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    before = threadtrace.current_config()
    with pytest.raises(threadtrace.ConfigurationError) as raised:
        threadtrace.configure(exporters=("json",), json_path=str(tmp_path / "file" / "t.jsonl"))
    assert str(raised.value) == (
        f"json_path: cannot create directory {tmp_path / 'file'}: File exists"
    )
    assert threadtrace.current_config() == before


# -- memory ----------------------------------------------------------------------------------


def test_memory_keeps_spans_and_metrics(own_providers: None) -> None:
    threadtrace.configure(exporters=("memory",), wait_threshold=0)
    with threadtrace.patch():
        contended_program()
    memory = _state.recorder._fallback.exporters["memory"]  # type: ignore[union-attr]
    wait_until(lambda: len(memory.spans) == 3)
    assert sorted(span.name.partition(" ")[0] for span in memory.spans) == [
        "Lock.acquire",
        "Thread.join",
        "Thread.run",
    ]
    threadtrace.shutdown(5)
    assert memory.metrics  # the final collection at shutdown
    assert _state.export_stats["memory"].spans_exported == 3
    # The wait histogram, which threadtrace's own providers take from the profile.
    (waits,) = [
        metric.data.data_points
        for scope in memory.metrics[-1].resource_metrics[0].scope_metrics
        if scope.scope.name == "threadtrace"
        for metric in scope.metrics
        if metric.name == "threadtrace.wait.duration"
    ]
    lock_waits = [p for p in waits if p.attributes["threadtrace.primitive.kind"] == "lock"]
    assert [p.count for p in lock_waits] == [1]


def test_own_providers_export_the_wait_histogram_the_sdk_would_make() -> None:
    """threadtrace's providers get the histogram from the profile, not per wait from the SDK.

    The same waits recorded through the SDK's histogram (what the app's
    providers get) and through the profile give the same points.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from threadtrace._recording import metrics, profile
    from threadtrace._support.points import WAIT_BUCKETS, primitive_attributes

    reader = InMemoryMetricReader()
    histogram = (
        MeterProvider(metric_readers=[reader])
        .get_meter("threadtrace")
        .create_histogram(
            "threadtrace.wait.duration",
            unit="s",
            explicit_bucket_boundaries_advisory=list(WAIT_BUCKETS),
        )
    )
    waits = [("lock", "a", ns) for ns in (0, 1_000, 1_001, 3_500_000, 7 * 10**9, 999)]
    waits += [("condition", "b", ns) for ns in (20_000, 20_000, 10**12)]
    with threadtrace.testing.capture():  # a profile of its own
        for kind, name, ns in waits:
            histogram.record(ns / 1e9, primitive_attributes(kind, name))
            profile.current().record(kind, name, ns, True, "t", None, None, None)
        amended = metrics.with_wait_durations(reader.get_metrics_data(), start_ns=123)
    ours, sdks = amended.resource_metrics[0].scope_metrics[0].metrics
    assert (ours.name, ours.unit) == (sdks.name, sdks.unit)
    assert ours.data.aggregation_temporality == sdks.data.aggregation_temporality

    def fields(point: Any) -> tuple[Any, ...]:
        return (
            dict(point.attributes),
            point.count,
            list(point.bucket_counts),
            list(point.explicit_bounds),
            point.min,
            point.max,
            round(point.sum, 9),
        )

    def by_name(metric: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (fields(p) for p in metric.data.data_points),
            key=lambda f: f[0]["threadtrace.primitive.name"],
        )

    assert by_name(ours) == by_name(sdks)
    assert {p.start_time_unix_nano for p in ours.data.data_points} == {123}
