"""The Perfetto timeline: exact events for small cases, structure for a real run.

Hand-made :class:`SpanRecord` objects pin the format exactly (tracks, lanes,
arrows, counters, args).  A traced program, run with a fake clock and
handshakes, goes through the real ``perfetto`` exporter; its file is checked
against the structural rules both viewers need (:func:`check_timeline`) and
for the threads and arrows the program made.  The same spans read back from
the ``json`` exporter's file give the same timeline.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import random
import re
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Optional, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import threadtrace
from threadtrace import exporters
from threadtrace._formats import perfetto as _perfetto
from threadtrace._formats.otlp_jsonl import read_trace_file
from threadtrace._formats.perfetto import timeline, write_timeline
from threadtrace._formats.records import LinkRecord, SpanRecord
from threadtrace._runtime import runtime as _state
from threadtrace.exporters import perfetto as perfetto_exporter
from threadtrace.exporters.perfetto import PerfettoExporter
from threadtrace.testing import FakeClock, wait_for_waiters, wait_until

TRACE = "ab" * 16
BASE = 1_700_000_000 * 10**9  # the epoch ns that times below count from, in µs

# -- building records and expected events -------------------------------------------------


def span(
    name: str,
    span_id: str,
    start_us: int,
    end_us: int,
    thread: Optional[tuple[str, int]] = ("worker", 11),
    *,
    parent: Optional[str] = None,
    links: Sequence[LinkRecord] = (),
    service: str = "bank",
    **attributes: Any,
) -> SpanRecord:
    """A record; ``attributes`` spell dots as ``__`` (``threadtrace__operation``)."""
    attrs = {key.replace("__", "."): value for key, value in attributes.items()}
    if thread is not None:
        attrs["thread.name"], attrs["thread.id"] = thread
    return SpanRecord(
        TRACE,
        span_id,
        parent,
        name,
        BASE + start_us * 1000,
        BASE + end_us * 1000,
        attrs,
        tuple(links),
        None,
        service,
    )


def blocked(
    name: str, span_id: str, start_us: int, end_us: int, primitive: str, **kw: Any
) -> SpanRecord:
    kind, operation = name.partition(" ")[0].split(".")  # "Lock.acquire" or "Lock.acquire A"
    return span(
        name,
        span_id,
        start_us,
        end_us,
        threadtrace__primitive__kind=kind.lower(),
        threadtrace__primitive__name=primitive,
        threadtrace__operation=operation,
        **kw,
    )


def woken_by(span_id: str, thread: str, ident: int) -> LinkRecord:
    return LinkRecord(
        TRACE,
        span_id,
        {"threadtrace.link.type": "woken_by", "thread.id": ident, "thread.name": thread},
    )


def joined(span_id: str) -> LinkRecord:
    return LinkRecord(TRACE, span_id, {"threadtrace.link.type": "joined"})


def process(name: str = "bank", pid: int = 1) -> dict[str, Any]:
    return {"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}}


def thread(tid: int, name: str, pid: int = 1) -> list[dict[str, Any]]:
    return [
        {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}},
        {
            "name": "thread_sort_index",
            "ph": "M",
            "pid": pid,
            "tid": tid,
            "args": {"sort_index": tid},
        },
    ]


def x(
    name: str, cat: str, ts: float, dur: float, tid: int, pid: int = 1, **args: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "cat": cat,
        "ph": "X",
        "ts": ts,
        "dur": dur,
        "pid": pid,
        "tid": tid,
        "args": args,
    }


def flow(phase: str, cat: str, number: int, ts: float, tid: int, pid: int = 1) -> dict[str, Any]:
    event = {"name": cat, "cat": cat, "ph": phase, "id": number, "ts": ts, "pid": pid, "tid": tid}
    if phase == "f":
        event["bp"] = "e"
    return event


def counter(name: str, ts: float, waiters: int, pid: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "cat": "waiters",
        "ph": "C",
        "ts": ts,
        "pid": pid,
        "args": {"waiters": waiters},
    }


# -- the structural checker -------------------------------------------------------------


def ns(us: float) -> int:
    return round(us * 1000)


def check_timeline(data: dict[str, Any]) -> None:
    """The rules every timeline keeps, whatever the spans.

    Every two slices on a tid are nested or disjoint (closed-open intervals,
    as Perfetto has them); every flow id has exactly one start and one end,
    each inside a slice of its tid; every tid with slices is named; counters
    never go negative; timed events are in time order.
    """
    assert data["displayTimeUnit"] == "ms"
    assert isinstance(data["threadtrace.dropped_spans"], int)
    events = data["traceEvents"]
    json.dumps(data, allow_nan=False)  # strict JSON
    named = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    slices: dict[tuple[int, int], list[tuple[int, int, str]]] = collections.defaultdict(list)
    flows: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        if event["ph"] == "X":
            assert event["dur"] >= 0, event
            start = ns(event["ts"])
            slices[event["pid"], event["tid"]].append(
                (start, start + ns(event["dur"]), event["name"])
            )
        elif event["ph"] in ("s", "f"):
            flows[event["id"]].append(event)
        elif event["ph"] == "C":
            assert all(value >= 0 for value in event["args"].values()), event
    assert set(slices) <= named, "a tid with slices has no thread_name"
    for tid, items in slices.items():
        for a, b in itertools.combinations(items, 2):
            disjoint = a[1] <= b[0] or b[1] <= a[0]
            nested = (a[0] <= b[0] and b[1] <= a[1]) or (b[0] <= a[0] and a[1] <= b[1])
            assert disjoint or nested, f"{a} and {b} overlap on {tid}"
    for number, pair in flows.items():
        assert sorted(e["ph"] for e in pair) == ["f", "s"], f"flow {number}: {pair}"
        tail, head = sorted(pair, key=lambda e: e["ph"] != "s")
        assert (tail["name"], tail["cat"]) == (head["name"], head["cat"])
        assert head["bp"] == "e"
        assert tail["ts"] <= head["ts"]
        for event in pair:
            at = ns(event["ts"])
            assert any(lo <= at <= hi for lo, hi, _ in slices[event["pid"], event["tid"]]), event
    times = [e["ts"] for e in events if e["ph"] != "M"]
    assert times == sorted(times)


def thread_names(data: dict[str, Any]) -> dict[tuple[int, int], str]:
    return {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in data["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


def arrows(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(cat, from thread, to thread) of every flow, lanes folded into their thread."""
    names = {key: re.sub(r" \(\d+\)$", "", name) for key, name in thread_names(data).items()}
    ends: dict[int, dict[str, str]] = collections.defaultdict(dict)
    cats = {}
    for event in data["traceEvents"]:
        if event["ph"] in ("s", "f"):
            ends[event["id"]][event["ph"]] = names[event["pid"], event["tid"]]
            cats[event["id"]] = event["cat"]
    return sorted((cats[n], pair["s"], pair["f"]) for n, pair in ends.items())


# -- timeline(): exact events -----------------------------------------------------------------


def test_a_woken_wait_gets_an_arrow_from_the_thread_that_woke_it() -> None:
    """The waker gets a marker slice at the wake, even with no span of its own."""
    records = [
        span("Thread.run", "r1", 0, 100),
        blocked(
            "Lock.acquire",
            "a1",
            10,
            40,
            "ledger@bank.py:10",
            parent="r1",
            links=[woken_by("f0", "MainThread", 1)],  # the waker's span is not in the records
            threadtrace__timed_out=False,
            code__function__name="transfer",
            code__file__path="/app/bank.py",
            code__line__number=42,
            threadtrace__holder__thread__id=1,
            threadtrace__holder__thread__name="MainThread",
            threadtrace__holder__code__file__path="/app/bank.py",
            threadtrace__holder__code__line__number=30,
            threadtrace__waker__thread__id=1,
            threadtrace__waker__thread__name="MainThread",
        ),
    ]
    assert timeline(records) == {
        "traceEvents": [
            process(),
            *thread(2, "worker"),
            *thread(3, "MainThread"),
            x("Thread.run", "thread", 0.0, 100.0, 2, thread_id=11),
            counter("ledger@bank.py:10", 0.0, 0),
            x(
                "Lock.acquire ledger@bank.py:10",
                "wait",
                10.0,
                30.0,
                2,
                primitive="ledger@bank.py:10",
                kind="lock",
                site="bank.py:42",
                function="transfer",
                holder="MainThread",
                holder_site="bank.py:30",
                waker="MainThread",
                timed_out=False,
                thread_id=11,
            ),
            counter("ledger@bank.py:10", 10.0, 1),
            x("Lock.release ledger@bank.py:10", "wake", 40.0, 0.0, 3, woke=["worker"]),
            flow("s", "wake", 1, 40.0, 3),
            flow("f", "wake", 1, 40.0, 2),
            counter("ledger@bank.py:10", 40.0, 0),
        ],
        "displayTimeUnit": "ms",
        "threadtrace.epoch_ns": BASE,
        "threadtrace.dropped_spans": 0,
    }


def test_holds_released_out_of_order_go_on_a_second_lane() -> None:
    """A acquired, B acquired, A released, B released: B moves to "worker (2)"."""
    records = [
        span("Thread.run", "r1", 0, 100),
        blocked("Lock.hold", "ha", 10, 30, "A", parent="r1"),
        blocked("Lock.hold", "hb", 20, 40, "B", parent="r1"),
        blocked("Lock.hold", "hc", 50, 60, "C", parent="r1"),  # back on the main lane
    ]
    assert timeline(records, hot=0)["traceEvents"] == [
        process(),
        *thread(2, "worker"),
        *thread(3, "worker (2)"),
        x("Thread.run", "thread", 0.0, 100.0, 2, thread_id=11),
        x("Lock.hold A", "hold", 10.0, 20.0, 2, primitive="A", kind="lock", thread_id=11),
        x("Lock.hold B", "hold", 20.0, 20.0, 3, primitive="B", kind="lock", thread_id=11),
        x("Lock.hold C", "hold", 50.0, 10.0, 2, primitive="C", kind="lock", thread_id=11),
    ]


def test_same_named_threads_get_a_track_each_even_with_a_reused_ident() -> None:
    """Threads are told apart by their Thread.run span, not by name or ident."""
    records = [
        span("Thread.run", "r1", 0, 10, ("worker", 7)),
        # No parent: placed by time, in the run of ident 7 that contains it.
        blocked("Lock.hold", "h1", 2, 4, "L", thread=("worker", 7)),
        span("Thread.run", "r3", 5, 25, ("worker", 8)),
        span("Thread.run", "r2", 20, 30, ("worker", 7)),  # ident 7 again, a new thread
        blocked("Lock.acquire", "a2", 22, 24, "L", thread=("worker", 7), parent="r2"),
    ]
    assert timeline(records, hot=0)["traceEvents"] == [
        process(),
        *thread(2, "worker"),
        *thread(3, "worker"),
        *thread(4, "worker"),
        x("Thread.run", "thread", 0.0, 10.0, 2, thread_id=7),
        x("Lock.hold L", "hold", 2.0, 2.0, 2, primitive="L", kind="lock", thread_id=7),
        x("Thread.run", "thread", 5.0, 20.0, 3, thread_id=8),
        x("Thread.run", "thread", 20.0, 10.0, 4, thread_id=7),
        x("Lock.acquire L", "wait", 22.0, 2.0, 4, primitive="L", kind="lock", thread_id=7),
    ]


def test_a_span_follows_its_own_thread_run_when_times_tie() -> None:
    """With a clock that stands still, two runs of one ident are told apart by parentage."""
    records = [
        span("Thread.run", "r1", 5, 5, ("worker", 7)),
        span("Thread.run", "r2", 5, 5, ("worker", 7)),
        blocked("Lock.acquire", "a1", 5, 5, "L1", thread=("worker", 7), parent="r1"),
        blocked("Lock.acquire", "a2", 5, 5, "L2", thread=("worker", 7), parent="r2"),
    ]
    events = timeline(records, hot=0)["traceEvents"]
    by_tid: dict[int, list[str]] = collections.defaultdict(list)
    for event in events:
        if event["ph"] == "X":
            by_tid[event["tid"]].append(event["name"])
    assert sorted(by_tid.values()) == [
        ["Thread.run", "Lock.acquire L1"],
        ["Thread.run", "Lock.acquire L2"],
    ]


def test_a_join_is_an_arrow_from_the_end_of_the_joined_run() -> None:
    """From the end of the child's Thread.run to the end of the join; not if it timed out."""
    main = ("MainThread", 1)
    records = [
        span("Thread.run", "c1", 0, 50, ("child", 5)),
        blocked(
            "Thread.join", "j1", 10, 60, "child", thread=main, links=[joined("c1")],
            threadtrace__timed_out=False,
        ),
        span("Thread.run", "c2", 70, 200, ("stuck", 6)),
        blocked(
            "Thread.join", "j2", 80, 90, "stuck", thread=main, links=[joined("c2")],
            threadtrace__timed_out=True,
        ),
    ]  # fmt: skip
    data = timeline(records, hot=0)
    check_timeline(data)
    assert thread_names(data) == {(1, 2): "child", (1, 3): "MainThread", (1, 4): "stuck"}
    assert [e for e in data["traceEvents"] if e["ph"] in ("s", "f")] == [
        flow("s", "join", 1, 50.0, 2),
        flow("f", "join", 1, 60.0, 3),
    ]


def test_one_marker_for_every_thread_woken_at_once() -> None:
    """Event.set waking two threads: one marker, two arrows, both woken named."""
    setter = woken_by("m1", "MainThread", 1)
    records = [
        span("Thread.run", "m1", 0, 100, ("MainThread", 1)),
        blocked("Event.wait", "w1", 10, 50, "go@app.py:3", thread=("a", 2), links=[setter]),
        blocked("Event.wait", "w2", 20, 50, "go@app.py:3", thread=("b", 3), links=[setter]),
    ]
    data = timeline(records, hot=0)
    check_timeline(data)
    markers = [e for e in data["traceEvents"] if e["ph"] == "X" and e["cat"] == "wake"]
    assert markers == [x("Event.set go@app.py:3", "wake", 50.0, 0.0, 2, woke=["a", "b"])]
    assert arrows(data) == [("wake", "MainThread", "a"), ("wake", "MainThread", "b")]


def test_counters_follow_the_primitives_with_the_most_wait() -> None:
    """hot=1: only the most waited-on primitive gets a counter; holds do not count."""
    records = [
        blocked("Lock.acquire", "a1", 0, 30, "busy", thread=("a", 1)),
        blocked("Lock.acquire", "a2", 10, 20, "busy", thread=("b", 2)),
        blocked("Lock.acquire", "a3", 20, 40, "busy", thread=("c", 3)),
        blocked("Lock.acquire", "q1", 0, 45, "quiet", thread=("d", 4)),
        blocked("Lock.hold", "h1", 0, 1000, "quiet", thread=("e", 5)),
    ]
    counters = [e for e in timeline(records, hot=1)["traceEvents"] if e["ph"] == "C"]
    assert [(e["name"], e["ts"], e["args"]["waiters"]) for e in counters] == [
        ("busy", 0.0, 1),
        ("busy", 10.0, 2),  # at 20 one left and one came: no change, no point
        ("busy", 30.0, 1),
        ("busy", 40.0, 0),
    ]
    assert not [e for e in timeline(records, hot=0)["traceEvents"] if e["ph"] == "C"]


def test_spans_without_a_thread_follow_their_parent() -> None:
    """Other instrumentations' spans: in their thread if they have one, all attributes kept."""
    records = [
        span("app", "app", 0, 100, None, http__route="/pay"),
        span("Thread.run", "r1", 10, 90, parent="app"),
        span("task", "t1", 20, 30, None, parent="r1", items=(1, 2), ratio=float("nan")),
    ]
    data = timeline(records, hot=0)
    check_timeline(data)
    assert [e for e in data["traceEvents"] if e["ph"] != "M"] == [
        {**x("app", "span", 0.0, 100.0, 2), "args": {"http.route": "/pay"}},
        x("Thread.run", "thread", 10.0, 80.0, 3, thread_id=11),
        x("task", "span", 20.0, 10.0, 3, items=[1, 2], ratio="nan"),
    ]
    assert thread_names(data) == {(1, 2): "(no thread)", (1, 3): "worker"}


def test_each_service_is_a_process() -> None:
    """One process per service name, in name order; tids come after the pids."""
    records = [
        span("Thread.run", "r1", 0, 10, service="billing"),
        span("Thread.run", "r2", 0, 10, service="api"),
    ]
    events = timeline(records)["traceEvents"]
    assert [e for e in events if e["name"] == "process_name"] == [
        process("api", 1),
        process("billing", 2),
    ]
    assert thread_names({"traceEvents": events}) == {(1, 3): "worker", (2, 4): "worker"}


def test_the_timeline_does_not_depend_on_the_order_of_the_records() -> None:
    """Live spans and spans read from a file arrive in different orders: same timeline."""
    records = [
        span("Thread.run", "r1", 0, 100),
        blocked("Lock.hold", "ha", 10, 30, "A", parent="r1"),
        blocked("Lock.hold", "hb", 20, 40, "B", parent="r1"),
        blocked(
            "Lock.acquire", "a1", 50, 60, "A", parent="r1", links=[woken_by("x", "MainThread", 1)]
        ),
        span("Thread.run", "r2", 0, 100, ("worker", 12)),
    ]
    expected = timeline(records)
    shuffled = list(records)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert timeline(shuffled) == expected


def test_overlapping_holds_are_laid_out_without_loss() -> None:
    """Two hundred random holds on one thread: every slice kept, every lane well nested."""
    chance = random.Random(7)
    records = [span("Thread.run", "run", 0, 10_000)]
    for number in range(200):
        start = chance.randrange(0, 9_000)
        end = start + chance.choice([0, 1, 5, 50, 500])
        records.append(
            blocked("Lock.hold", f"h{number}", start, end, f"L{number % 7}", parent="run")
        )
    data = timeline(records)
    check_timeline(data)
    kept = sorted(
        (e["name"], ns(e["ts"]), ns(e["dur"])) for e in data["traceEvents"] if e["ph"] == "X"
    )
    assert kept == sorted(
        (
            r.name
            if r.name == "Thread.run"
            else f"{r.name} {r.attributes['threadtrace.primitive.name']}",
            (r.start_ns - BASE),
            r.duration_ns,
        )
        for r in records
    )
    assert len(thread_names(data)) > 1  # some did need a lane


def test_hot_must_not_be_negative() -> None:
    """A negative number of counters is refused."""
    with pytest.raises(ValueError, match=r"^hot must be >= 0, got -1$"):
        timeline([], hot=-1)


def test_no_spans_is_an_empty_timeline() -> None:
    """No spans: a valid timeline with no events."""
    assert timeline([]) == {
        "traceEvents": [],
        "displayTimeUnit": "ms",
        "threadtrace.epoch_ns": 0,
        "threadtrace.dropped_spans": 0,
    }


# -- the same timeline as before, for many kinds of records -----------------------------------


def random_records(  # noqa: PLR0912 - a branch for each kind of span
    seed: int, count: int, *, fine_clock: bool, clashing: bool
) -> list[SpanRecord]:
    """About ``count`` records of a made-up traced program, shuffled.

    With every case the layout handles: reused idents, threads without runs,
    spans without threads (following parents, orphans, a cycle of parents),
    nested and crossed holds, waits woken by a link (to the waker's span, to
    another thread's, to nothing) or by attributes only, several at one
    instant, joins, odd attribute values, errors, several services.

    ``fine_clock``: times to the ns (hardly any ties) rather than to the µs (many,
    as with a fake clock).  ``clashing``: some span ids in two traces, and some
    records twice (the first one counts).
    """
    chance = random.Random(seed)

    def ns(us: int) -> int:
        return BASE + us * 1000 + (chance.randrange(1000) if fine_clock else 0)

    traces = [f"{number:032x}" for number in (1, 2, 3)]
    records: list[SpanRecord] = []
    made = itertools.count(1)

    def new_id() -> str:
        if clashing and records and chance.random() < 0.05:
            return chance.choice(records).span_id  # in another trace, most likely
        return f"{next(made):016x}"

    def add(
        name: str,
        start: int,
        end: int,
        attributes: dict[str, Any],
        parent: Optional[SpanRecord],
        service: str,
        links: Sequence[LinkRecord] = (),
        error: Optional[str] = None,
        end_ns: Optional[int] = None,
    ) -> SpanRecord:
        record = SpanRecord(
            parent.trace_id if parent is not None else chance.choice(traces),
            new_id(),
            parent.span_id if parent is not None else None,
            name,
            ns(start),
            ns(end) if end_ns is None else end_ns,
            attributes,
            tuple(links),
            error,
            service,
        )
        records.append(record)
        return record

    # (name, ident, service, start, end): ident 11 twice, one run after the other.
    threads = [
        ("worker-1", 11, "bank", 0, 40_000),
        ("worker-1", 11, "bank", 40_000, 100_000),
        ("worker-2", 12, "bank", 100, 90_000),
        ("", 13, "bank", 5_000, 95_000),
        ('pool-\u00e9"},{\n', 14, "billing", 0, 100_000),
        ("io", 15, "", 0, 100_000),
        ("MainThread", 1, "bank", 0, 100_000),  # no run
        ("MainThread", 1, "billing", 0, 100_000),  # no run
    ]
    runs = [
        add(
            "Thread.run",
            start,
            end,
            {
                "thread.name": name,
                "thread.id": ident,
                "threadtrace.thread.daemon": ident == 15,
                "code.function.name": "work",
                "code.file.path": "/app/bank.py",
                "code.line.number": 7,
            },
            None,
            service,
        )
        for name, ident, service, start, end in threads[:6]
    ]
    primitives = [f"lock{number}@bank.py:{10 + number}" for number in range(14)]
    kinds = ["Lock", "RLock", "Condition", "Event", "Semaphore", "BoundedSemaphore", "Barrier"]
    by_thread: dict[int, list[SpanRecord]] = collections.defaultdict(list)
    waits: list[SpanRecord] = []
    while len(records) < count:
        which = chance.randrange(len(threads))
        name, ident, service, start, end = threads[which]
        run = runs[which] if which < len(runs) else None
        mine = by_thread[ident]
        parent = run
        if mine and chance.random() < 0.2:
            parent = chance.choice(mine[-20:])
        if chance.random() < 0.03:
            parent = chance.choice(runs)  # maybe another thread's
        thread_id: Any = ident
        if chance.random() < 0.03:
            thread_id = chance.choice([str(ident), True, float(ident), "x"])
        own = {"thread.name": name, "thread.id": thread_id}
        at = chance.randrange(start, end)
        length = chance.choice([0, 0, 1, 2, 5, 50, 500, 5_000, chance.randrange(20_000)])
        if chance.random() < 0.01:
            length = -chance.randrange(1, 50)  # ends before it starts
        what = chance.random()
        if what < 0.35:
            kind = chance.choice(["Lock", "RLock"])
            for _ in range(chance.choice([1, 1, 2, 3])):  # nested or crossed
                attributes = {
                    **own,
                    "threadtrace.primitive.kind": kind.lower(),
                    "threadtrace.primitive.name": chance.choice(primitives),
                    "threadtrace.operation": "hold",
                    "code.function.name": chance.choice(["pay", "audit"]),
                    "code.file.path": chance.choice(["/app/bank.py", "", "/app/l\u00e9dger.py"]),
                    "code.line.number": chance.choice([3, 4, True, 5.0]),
                }
                mine.append(add(f"{kind}.hold", at, at + length, attributes, parent, service))
                at += chance.choice([0, 0, 1, length // 2, length])
                length = chance.choice([0, length, length * 2, 3])
        elif what < 0.75:
            kind = chance.choice(kinds)
            operation = "acquire" if "Lock" in kind or "Semaphore" in kind else "wait"
            attributes = {
                **own,
                "threadtrace.primitive.kind": kind.lower(),
                "threadtrace.primitive.name": chance.choice(primitives),
                "threadtrace.operation": operation,
                "threadtrace.timed_out": chance.random() < 0.1,
                "code.file.path": "/app/bank.py",
                "code.line.number": chance.randrange(20, 30),
            }
            if chance.random() < 0.5:
                timeouts = [0.5, 30.0, 0.0, -0.0, float("inf"), float("nan")]
                attributes["threadtrace.timeout"] = chance.choice(timeouts)
            if chance.random() < 0.5:
                attributes["threadtrace.holder.thread.id"] = 12
                attributes["threadtrace.holder.thread.name"] = "worker-2"
                attributes["threadtrace.holder.code.file.path"] = "/app/bank.py"
                attributes["threadtrace.holder.code.line.number"] = 30
            links: list[LinkRecord] = []
            waker = chance.choice([1, 11, 12, 13, 14, 15, 99])
            waker_name = chance.choice(["", "worker", "MainThread"])
            end_ns = None
            how = chance.random()
            if waits and not fine_clock and chance.random() < 0.3:
                # Woken with another, at the same instant, often by the same thread.
                other = chance.choice(waits[-30:])
                end_ns = other.end_ns
                at = (end_ns - BASE) // 1000 - length
                if chance.random() < 0.7:
                    for key in ("threadtrace.waker.thread.id", "threadtrace.waker.thread.name"):
                        attributes.pop(key, None)
                        if key in other.attributes:
                            attributes[key] = other.attributes[key]
                    links.extend(other.links)
                    how = 1
            if how < 0.6:
                attributes["threadtrace.waker.thread.id"] = waker
                attributes["threadtrace.waker.thread.name"] = waker_name
            if how < 0.45:
                current = chance.choice((by_thread.get(waker) or records)[-30:])
                trace_id, span_id = current.trace_id, current.span_id
                if chance.random() < 0.1:
                    trace_id, span_id = traces[0], "feed" * 4  # a span not in the records
                link_attributes = {
                    "threadtrace.link.type": "woken_by",
                    "thread.id": chance.choice([waker, waker, str(waker), None]),
                    "thread.name": waker_name,
                }
                links.append(LinkRecord(trace_id, span_id, link_attributes))
            wait = add(
                f"{kind}.{operation}",
                at,
                at + length,
                attributes,
                parent,
                service,
                links,
                end_ns=end_ns,
            )
            mine.append(wait)
            waits.append(wait)
        elif what < 0.82:
            joined_run = chance.choice(runs)
            attributes = {
                **own,
                "threadtrace.primitive.kind": "thread",
                "threadtrace.primitive.name": joined_run.attributes["thread.name"],
                "threadtrace.operation": "join",
                "threadtrace.timed_out": chance.random() < 0.2,
            }
            link_to = joined_run if chance.random() < 0.9 else chance.choice(records)
            link = LinkRecord(
                link_to.trace_id, link_to.span_id, {"threadtrace.link.type": "joined"}
            )
            joined_at = (joined_run.end_ns - BASE) // 1000 + chance.choice([-10, 0, 3])
            mine.append(
                add(
                    "Thread.join",
                    min(at, joined_at),
                    joined_at,
                    attributes,
                    parent,
                    service,
                    [link],
                )
            )
        elif what < 0.95:
            # Other instrumentations' spans: one in the thread, then two with none.
            outer = add(
                chance.choice(["handle", "pay \u20ac"]),
                at,
                at + length,
                {
                    **own,
                    "http.route": "/pay",
                    "items": (1, 2.5, "a"),
                    "ratio": chance.choice([0.5, float("nan"), float("-inf")]),
                    "nested": {"a": [1, {"b": None}], 2: "two"},
                    "path": PurePosixPath("/app/x.py"),
                },
                parent,
                service,
                error=chance.choice([None, None, "boom", '\u00e9"},{']),
            )
            mine.append(outer)
            inner = add(
                "db", at, at + max(length, 0) // 2, {"db.statement": "select 1"}, outer, service
            )
            add("db.row", at, at, {}, inner, service)
        else:
            # No thread: a parent that is not there, or a cycle of parents.
            add("orphan", at + 2, at + length, {"k": 1}, None, service)
            records[-1] = dataclasses.replace(records[-1], parent_span_id="dead" * 4)
            first, second = new_id(), new_id()
            trace = chance.choice(traces)
            for span_id, parent_id in ((first, second), (second, first)):
                records.append(
                    SpanRecord(
                        trace,
                        span_id,
                        parent_id,
                        "loop",
                        ns(at),
                        ns(at + 1),
                        {},
                        (),
                        None,
                        chance.choice(["bank", "zoo"]),
                    )
                )
    if clashing:
        for record in records[:3] + records[-3:]:
            # The same span again, different: ignored, the first one counts.
            at = ns(chance.randrange(100_000))
            records.append(SpanRecord(record.trace_id, record.span_id, None, "again", at, at, {}))
    chance.shuffle(records)
    return records


#: For each case of test_the_timeline_is_the_same_as_before: the sha256 of repr() of
#: timeline() and of the file write_timeline() writes, as made by the implementation
#: before the fast one (the straightforward one, an object per slice).
BEFORE = {
    (1, True, False, 10): (
        "fd62525b3d0a84c77264f104f3b415df47706053b98f2ed808449870eb826473",
        "739d49be3c0264b9a2329aed3e4b51de8e78ed602ebd87f7be82f676a54dce8f",
    ),
    (2, True, True, 0): (
        "0f7288af241541a762293082af83243b7f03fbe4b0dcf7e95bb45d50c2242a99",
        "016b0cccd8a8cca9c7c13eef3ba5f9679bc5ab6f3c84acac12fa36b908671fb9",
    ),
    (3, False, False, 3): (
        "c5a2a7a229bb3820fff7803cc1d46f17750565d71413f4aa1059017739bc2a34",
        "a3dc046e6f49dd334cc356cd17dda35961ac9fa716644988240aa969b0940f7a",
    ),
    (4, False, True, 10): (
        "e65f153a4ac8700b64d6179ca919eb7146dd04b1b66c8915497c17ec20c02ecd",
        "d1c49e8da4ddf6a0e97aa712e9ae31ea9274f0bf5ac0b781917f43615df41c5d",
    ),
}


@pytest.mark.parametrize(("seed", "fine_clock", "clashing", "hot"), sorted(BEFORE))
def test_the_timeline_is_the_same_as_before(
    tmp_path: Path, seed: int, fine_clock: bool, clashing: bool, hot: int
) -> None:
    """Thousands of random-ish records: exactly the timeline and file there were before."""
    records = random_records(seed, 3000, fine_clock=fine_clock, clashing=clashing)
    data = timeline(records, hot=hot, dropped_spans=seed)
    path = tmp_path / "t.json"
    write_timeline(records, str(path), hot=hot, dropped_spans=seed)
    assert json.loads(path.read_text()) == data
    assert (
        hashlib.sha256(repr(data).encode()).hexdigest(),
        hashlib.sha256(path.read_bytes()).hexdigest(),
    ) == BEFORE[seed, fine_clock, clashing, hot]


# -- write_timeline() ------------------------------------------------------------------------


def test_write_timeline_writes_the_json_of_timeline(tmp_path: Path) -> None:
    """The file holds exactly timeline(), and nothing else is left in the directory."""
    records = [span("Thread.run", "r1", 0, 100), blocked("Lock.hold", "h", 1, 2, "A", parent="r1")]
    path = tmp_path / "deep" / "t.json"
    write_timeline(records, str(path), dropped_spans=3)
    assert json.loads(path.read_text()) == timeline(records, dropped_spans=3)
    assert os.listdir(path.parent) == ["t.json"]


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half-way leaves the previous file as it was, and no temporary file."""
    path = tmp_path / "t.json"
    write_timeline([span("Thread.run", "r1", 0, 100)], str(path))
    before = path.read_text()

    def crash(data: dict[str, Any], file: Any) -> None:
        file.write('{"traceEvents":[')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_perfetto, "_dump", crash)
    with pytest.raises(OSError, match="No space left"):
        write_timeline([span("Thread.run", "r2", 0, 50)], str(path))
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["t.json"]


# -- the exporter ---------------------------------------------------------------------------


def sdk_spans(count: int) -> list[ReadableSpan]:
    """``count`` finished SDK spans "s0", "s1", ... on MainThread, 1 µs apart."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for number in range(count):
        tracer.start_span(
            f"s{number}",
            start_time=BASE + number * 1000,
            attributes={"thread.id": 1, "thread.name": "MainThread"},
        ).end(end_time=BASE + number * 1000 + 500)
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_perfetto_is_a_span_exporter_registered_by_name(tmp_path: Path) -> None:
    """ "perfetto" loads PerfettoExporter, which takes spans only."""
    cls = exporters.load_exporter("perfetto")
    assert cls is PerfettoExporter
    exporter = cls(threadtrace.current_config().replace(perfetto_path=str(tmp_path / "t.json")))
    assert exporter.handles_spans()
    assert not exporter.handles_metrics()
    assert exporter.destination() == str(tmp_path / "t.json")


def test_the_exporter_counts_and_reports_what_it_drops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Past MAX_SPANS spans are dropped, logged once, and counted in the file."""
    path = tmp_path / "t.json"
    exporter = PerfettoExporter(threadtrace.current_config().replace(perfetto_path=str(path)))
    assert exporter.destination() == str(path)
    monkeypatch.setattr(perfetto_exporter, "MAX_SPANS", 2)
    spans = sdk_spans(5)
    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        assert exporter.export_spans(spans[:3])
        assert exporter.export_spans(spans[3:])
    assert [r.getMessage() for r in caplog.records] == [
        f"threadtrace: the perfetto exporter keeps at most 2 spans; later ones are dropped "
        f"and counted in {path}"
    ]
    assert exporter.force_flush(5)
    data = json.loads(path.read_text())
    assert data["threadtrace.dropped_spans"] == 3
    assert [e["name"] for e in data["traceEvents"] if e["ph"] == "X"] == ["s0", "s1"]


def test_force_flush_rewrites_the_file_and_shutdown_writes_it_last(tmp_path: Path) -> None:
    """Every force_flush rewrites the file with all spans so far; shutdown writes the rest."""
    path = tmp_path / "t.json"
    exporter = PerfettoExporter(threadtrace.current_config().replace(perfetto_path=str(path)))
    spans = sdk_spans(3)
    exporter.export_spans(spans[:1])
    assert exporter.force_flush(5)
    assert [e["name"] for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"] == [
        "s0"
    ]
    exporter.export_spans(spans[1:])
    exporter.shutdown(5)
    names = [e["name"] for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
    assert names == ["s0", "s1", "s2"]


def test_the_file_is_written_only_when_there_is_something_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exit flush (force_flush, then shutdown) lays the timeline out once."""
    writes: list[int] = []

    def counting(records: Any, path: str, **kw: Any) -> None:
        writes.append(len(list(records)))
        write_timeline(records, path, **kw)

    monkeypatch.setattr(perfetto_exporter, "write_timeline", counting)
    path = tmp_path / "t.json"
    exporter = PerfettoExporter(threadtrace.current_config().replace(perfetto_path=str(path)))
    assert exporter.force_flush(5)  # nothing yet: still a valid, empty timeline
    assert json.loads(path.read_text())["traceEvents"] == []
    exporter.export_spans(sdk_spans(2))
    assert exporter.force_flush(5)
    exporter.shutdown(5)
    assert writes == [0, 2]


def test_an_unwritable_timeline_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that cannot be written is logged once; nothing raises, nothing is left behind."""
    path = tmp_path / "a-directory"
    exporter = PerfettoExporter(threadtrace.current_config().replace(perfetto_path=str(path)))
    path.mkdir()  # after the exporter was made, which refuses a directory (test_files)
    exporter.export_spans(sdk_spans(1))
    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        assert not exporter.force_flush(5)
        exporter.shutdown(5)
    assert len(caplog.records) == 1  # logged once
    assert (
        caplog.records[0]
        .getMessage()
        .startswith(f"threadtrace: cannot write the timeline {path}: ")
    )
    assert os.listdir(tmp_path) == ["a-directory"]


def test_a_timeline_path_that_cannot_be_made_is_a_configuration_error(tmp_path: Path) -> None:
    """A directory that cannot be made fails when the exporter is made, not at exit."""
    (tmp_path / "file").write_text("")
    config = threadtrace.current_config().replace(perfetto_path=str(tmp_path / "file" / "t.json"))
    with pytest.raises(
        threadtrace.ConfigurationError, match=r"^perfetto_path: cannot write .*t\.json: "
    ):
        PerfettoExporter(config)


# -- end to end -----------------------------------------------------------------------------


@pytest.fixture
def own_providers(clock: FakeClock) -> Iterator[None]:
    """threadtrace's own exporters and a fake clock for the test; everything put back after."""
    saved = _state.snapshot()
    _state.start_afresh(clock)
    try:
        yield
    finally:
        threadtrace.shutdown(5)
        threadtrace.configure(exporters=())
        _state.restore(saved)


def finish(*threads: threading.Thread) -> None:
    """Join threads that are ending anyway, without a join that might block (and be traced)."""
    for thread in threads:

        def ended(thread: threading.Thread = thread) -> bool:
            return not thread.is_alive()

        wait_until(ended, 10, f"{thread.name} to end")
        thread.join(10)


def traced_program(clock: FakeClock) -> None:
    """Contention on a Lock, a Condition notify, an Event set and a join, by handshakes."""
    lock = threading.Lock()
    cond = threading.Condition()
    event = threading.Event()

    # 1. MainThread holds the lock for 1 s while two takers queue for it.
    def take() -> None:
        with lock:
            pass

    lock.acquire()
    takers = [threading.Thread(target=take, name=f"taker-{n}") for n in (1, 2)]
    for taker in takers:
        taker.start()
    wait_for_waiters(lock, 2)
    clock.advance(1.0)
    lock.release()
    finish(*takers)

    # 2. A condition waiter, notified by MainThread.
    ready: list[bool] = []

    def wait_ready() -> None:
        with cond:
            cond.wait_for(lambda: ready, timeout=30)

    waiter = threading.Thread(target=wait_ready, name="cond-waiter")
    waiter.start()
    wait_for_waiters(cond, 1)
    clock.advance(0.25)
    with cond:
        ready.append(True)
        cond.notify()
    finish(waiter)

    # 3. Two event waiters, both woken by one set().
    waiters = [
        threading.Thread(target=lambda: event.wait(30), name=f"event-waiter-{n}") for n in (1, 2)
    ]
    for thread in waiters:
        thread.start()
    wait_for_waiters(event, 2)
    clock.advance(0.5)
    event.set()
    finish(*waiters)

    # 4. MainThread joins a sleeper that a releaser wakes once the join is blocked.
    go = threading.Event()
    sleeper = threading.Thread(target=lambda: go.wait(30), name="sleeper")
    sleeper.start()
    wait_for_waiters(go, 1)

    def release() -> None:
        wait_for_waiters(sleeper, 1)  # MainThread is blocked in join()
        clock.advance(2.0)
        go.set()

    releaser = threading.Thread(target=release, name="releaser")
    releaser.start()
    sleeper.join(10)
    assert not sleeper.is_alive()
    finish(releaser)


SETTINGS = {"wait_threshold": 0, "hold_threshold": 0.5, "sample_every": 1}


def test_the_exporter_writes_the_timeline_of_a_traced_program(
    own_providers: None, clock: FakeClock, tmp_path: Path
) -> None:
    """A lock handed on twice, a notify, a set, a join: those threads and arrows, well formed."""
    path = tmp_path / "t.json"
    threadtrace.configure(exporters=("perfetto",), perfetto_path=str(path), **SETTINGS)
    with threadtrace.patch():
        traced_program(clock)
    threadtrace.shutdown(5)

    data = json.loads(path.read_text())
    check_timeline(data)
    assert data["threadtrace.dropped_spans"] == 0
    names = {re.sub(r" \(\d+\)$", "", name) for name in thread_names(data).values()}
    assert names == {
        "MainThread", "taker-1", "taker-2", "cond-waiter", "event-waiter-1", "event-waiter-2",
        "sleeper", "releaser",
    }  # fmt: skip

    # The lock went from MainThread to one taker, and from that taker to the other.
    found = arrows(data)
    lock_arrows = [a for a in found if a[0] == "wake" and a[2].startswith("taker-")]
    (first,) = [a[2] for a in lock_arrows if a[1] == "MainThread"]
    second = "taker-2" if first == "taker-1" else "taker-1"
    assert sorted(lock_arrows) == sorted([("wake", "MainThread", first), ("wake", first, second)])
    assert sorted(set(found) - set(lock_arrows)) == [
        ("join", "sleeper", "MainThread"),
        ("wake", "MainThread", "cond-waiter"),
        ("wake", "MainThread", "event-waiter-1"),
        ("wake", "MainThread", "event-waiter-2"),
        ("wake", "releaser", "sleeper"),
    ]
    assert len(found) == 7

    # Each arrow ends on the slice that waited, at its end.
    tids = {name: key for key, name in thread_names(data).items()}
    ended = collections.defaultdict(set)
    for e in data["traceEvents"]:
        if e["ph"] == "X":
            ended[e["pid"], e["tid"]].add((ns(e["ts"] + e["dur"]), e["name"].split()[0]))
    for e in data["traceEvents"]:
        if e["ph"] == "f":
            kinds = {name for at, name in ended[e["pid"], e["tid"]] if at == ns(e["ts"])}
            expected = (
                {"Thread.join"}
                if e["cat"] == "join"
                else {"Lock.acquire", "Condition.wait", "Event.wait"}
            )
            assert kinds & expected, e

    # MainThread's 1 s hold of the lock, and a counter of the lock's waiters.
    main = [
        e
        for e in data["traceEvents"]
        if e["ph"] == "X" and (e["pid"], e["tid"]) == tids["MainThread"]
    ]
    (hold,) = [e for e in main if e["name"].startswith("Lock.hold")]
    assert hold["dur"] == 1_000_000.0
    primitive = hold["args"]["primitive"]
    assert re.fullmatch(r"lock \(test_perfetto\.py:\d+\)", primitive)
    waiting = [
        e["args"]["waiters"]
        for e in data["traceEvents"]
        if e["ph"] == "C" and e["name"] == primitive
    ]
    assert max(waiting) == 2 and waiting[-1] == 0


def test_the_json_file_gives_the_same_timeline_as_the_live_spans(
    own_providers: None, clock: FakeClock, tmp_path: Path
) -> None:
    """Spans -> json exporter -> read_trace_file -> timeline() == the perfetto exporter's file."""
    json_path, perfetto_path = tmp_path / "t.jsonl", tmp_path / "t.json"
    threadtrace.configure(
        exporters=("json", "perfetto"),
        json_path=str(json_path),
        perfetto_path=str(perfetto_path),
        **SETTINGS,
    )
    with threadtrace.patch():
        traced_program(clock)
    threadtrace.shutdown(5)

    live = json.loads(perfetto_path.read_text())
    from_file = json.loads(json.dumps(timeline(read_trace_file(str(json_path)))))
    assert from_file == live
    assert sum(e["ph"] == "X" for e in live["traceEvents"]) > 10


def test_spans_named_with_their_target_make_the_timeline_of_spans_named_without() -> None:
    """Traces saved before span names carried targets, and those after, lay out the same."""

    def records(named: bool) -> list[SpanRecord]:
        def name(operation: str, target: str) -> str:
            return f"{operation} {target}" if named else operation

        return [
            span(name("Thread.run", "main"), "r1", 0, 100),
            blocked(name("Lock.hold", "A"), "ha", 10, 30, "A", parent="r1"),
            blocked(
                name("Lock.acquire", "A"),
                "a1",
                50,
                60,
                "A",
                parent="r2",
                thread=("worker", 12),
                links=[woken_by("r1", "MainThread", 11)],
            ),
            span(name("Thread.run", "worker"), "r2", 0, 100, ("worker", 12)),
        ]

    old, new = timeline(records(named=False)), timeline(records(named=True))
    # Only the runs' slices differ: they now say whose run they are.
    renamed = {"Thread.run": None}
    for event in new["traceEvents"]:
        if event["name"].startswith("Thread.run "):
            renamed["Thread.run"] = event["name"]
            event["name"] = "Thread.run"
    assert renamed["Thread.run"] is not None
    assert new == old
    names = sorted(e["name"] for e in old["traceEvents"] if e["ph"] == "X")
    assert names == ["Lock.acquire A", "Lock.hold A", "Lock.release A", "Thread.run", "Thread.run"]
