"""The spans, links and metrics a small traced app produces, asserted exactly.

Contention is forced with handshakes: the main thread holds a primitive,
starts a worker, waits until the worker is blocked on it, advances the fake
clock, then lets go.  Every wait therefore has an exact, known duration.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread as futures_thread
import queue
import threading
from typing import Any

import pytest
from helpers import contend, line, named, qualified_name
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from threadtrace._control import patch as patch_module
from threadtrace._recording.recorder import CONTEXT_VAR
from threadtrace._support.names import thread_target
from threadtrace.testing import Capture, FakeClock, capture, wait_for_waiters, wait_until

FILE = "test_spans.py"


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def only(spans: list[ReadableSpan], name: str, **attributes: Any) -> ReadableSpan:
    found = [
        s
        for s in by_name(spans, name)
        if all(s.attributes.get(k) == v for k, v in attributes.items())  # type: ignore[union-attr]
    ]
    assert len(found) == 1, f"{len(found)} spans named {name} with {attributes}: {found}"
    return found[0]


def duration(span: ReadableSpan) -> float:
    assert span.start_time is not None and span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


def test_a_small_app_produces_this_exact_trace(cap: Capture, clock: FakeClock) -> None:
    """Threads, a pool, a queue and every primitive, contended on purpose."""
    tracer = cap.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("app") as app:
        lock, lock_line = threading.Lock(), line()
        rlock, rlock_line = threading.RLock(), line()
        cond, cond_line = threading.Condition(), line()
        event, event_line = threading.Event(), line()
        sem, sem_line = threading.BoundedSemaphore(1), line()
        barrier, barrier_line = threading.Barrier(2), line()
        jobs, jobs_line = queue.Queue(), line()
        main_ident = threading.get_ident()

        # 1. Lock: main holds it, the worker blocks for 0.5 s.
        def take_lock() -> None:
            with lock:  # the worker's wait site
                pass

        take_lock_line = take_lock.__code__.co_firstlineno + 1
        lock.acquire()
        acquire_line = line() - 1
        worker = threading.Thread(target=take_lock, name="lock-worker")
        worker.start()
        wait_for_waiters(lock, 1)
        clock.advance(0.5)
        lock.release()
        worker.join(timeout=10)

        # 2. RLock, held twice by main.
        def take_rlock() -> None:
            with rlock:
                pass

        with rlock, rlock:
            worker = threading.Thread(target=take_rlock, name="rlock-worker")
            worker.start()
            wait_for_waiters(rlock, 1)
            clock.advance(0.25)
        worker.join(timeout=10)

        # 3. Condition: the worker waits until main notifies.
        ready = []

        def wait_ready() -> None:
            with cond:
                cond.wait_for(lambda: ready, timeout=30)

        worker = threading.Thread(target=wait_ready, name="cond-worker")
        worker.start()
        wait_for_waiters(cond, 1)
        clock.advance(0.125)
        with cond:
            ready.append(True)
            cond.notify()
        worker.join(timeout=10)

        # 4. Event.
        worker = threading.Thread(target=lambda: event.wait(30), name="event-worker")
        worker.start()
        wait_for_waiters(event, 1)
        clock.advance(2.0)
        event.set()
        worker.join(timeout=10)

        # 5. BoundedSemaphore.
        def take_sem() -> None:
            with sem:
                pass

        sem.acquire()
        worker = threading.Thread(target=take_sem, name="sem-worker")
        worker.start()
        wait_for_waiters(sem, 1)
        clock.advance(1.0)
        sem.release()
        worker.join(timeout=10)

        # 6. Barrier: the worker arrives first and waits for main.
        worker = threading.Thread(target=lambda: barrier.wait(30), name="barrier-worker")
        worker.start()
        wait_for_waiters(barrier, 1)
        clock.advance(0.75)
        assert barrier.wait(30) == 1
        worker.join(timeout=10)

        # 7. Queue: the consumer blocks in get() until main puts.
        got = []
        worker = threading.Thread(target=lambda: got.append(jobs.get(timeout=30)), name="consumer")
        worker.start()
        wait_for_waiters(jobs.not_empty, 1)
        clock.advance(3.0)
        jobs.put("job")
        worker.join(timeout=10)
        assert got == ["job"]

        # 8. Join: main blocks joining a thread that waits for a go signal.
        go = threading.Event()
        sleeper = threading.Thread(target=lambda: go.wait(30), name="sleeper")
        sleeper.start()
        wait_for_waiters(go, 1)
        releaser = threading.Thread(
            target=lambda: (wait_for_waiters(sleeper, 1), clock.advance(4.0), go.set()),
            name="releaser",
        )
        releaser.start()
        sleeper.join(timeout=10)
        releaser.join(timeout=10)

        # 9. A pool: the task's own span is a child of "app".
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pool"
        ) as pool:
            future = pool.submit(lambda: tracer.start_span("task").end())
            wait_until(future.done)  # so result() does not block (that would be a wait too)
            future.result(timeout=10)

    spans = cap.spans()
    app_ctx = app.get_span_context()
    runs = {
        s.attributes["thread.name"]: s  # type: ignore[index]
        for s in spans
        if s.name.startswith("Thread.run")
    }

    # Every thread run is a child of "app", and says what it ran.  Its name's
    # target is the thread's name without a counter ("pool_0": "pool").
    assert {thread: run.name for thread, run in runs.items()} == {
        "lock-worker": "Thread.run lock-worker",
        "rlock-worker": "Thread.run rlock-worker",
        "cond-worker": "Thread.run cond-worker",
        "event-worker": "Thread.run event-worker",
        "sem-worker": "Thread.run sem-worker",
        "barrier-worker": "Thread.run barrier-worker",
        "consumer": "Thread.run consumer",
        "sleeper": "Thread.run sleeper",
        "releaser": "Thread.run releaser",
        "pool_0": "Thread.run pool",
    }
    for run in runs.values():
        assert run.parent is not None and run.parent.span_id == app_ctx.span_id
        assert run.context.trace_id == app_ctx.trace_id
        assert run.status.is_unset
    assert runs["lock-worker"].attributes["code.function.name"] == (
        f"{__name__}.test_a_small_app_produces_this_exact_trace.<locals>.take_lock"
    )
    assert runs["lock-worker"].attributes["code.line.number"] == take_lock_line - 1

    def child_of(span: ReadableSpan, thread: str) -> None:
        assert span.parent is not None
        assert span.parent.span_id == runs[thread].context.span_id
        assert span.attributes["thread.name"] == thread  # type: ignore[index]

    def woken_by_main(span: ReadableSpan) -> None:
        assert span.attributes["threadtrace.waker.thread.id"] == main_ident  # type: ignore[index]
        assert span.attributes["threadtrace.waker.thread.name"] == "MainThread"  # type: ignore[index]
        assert [(link.context.span_id, dict(link.attributes or {})) for link in span.links] == [
            (
                app_ctx.span_id,
                {
                    "threadtrace.link.type": "woken_by",
                    "thread.id": main_ident,
                    "thread.name": "MainThread",
                },
            )
        ]

    # 1. Lock
    span = only(spans, f"Lock.acquire {lock.name}", **{"thread.name": "lock-worker"})
    child_of(span, "lock-worker")
    assert duration(span) == 0.5
    assert dict(span.attributes) == {  # type: ignore[arg-type]
        "threadtrace.primitive.kind": "lock",
        "threadtrace.primitive.name": named("lock", FILE, lock_line),
        "threadtrace.operation": "acquire",
        "threadtrace.timed_out": False,
        "thread.id": span.attributes["thread.id"],  # type: ignore[index]
        "thread.name": "lock-worker",
        "code.function.name": qualified_name(take_lock),
        "code.file.path": __file__,
        "code.line.number": take_lock_line,
        "threadtrace.holder.thread.id": main_ident,
        "threadtrace.holder.thread.name": "MainThread",
        "threadtrace.holder.code.function.name": (
            qualified_name(test_a_small_app_produces_this_exact_trace)
        ),
        "threadtrace.holder.code.file.path": __file__,
        "threadtrace.holder.code.line.number": acquire_line,
        "threadtrace.waker.thread.id": main_ident,
        "threadtrace.waker.thread.name": "MainThread",
    }
    woken_by_main(span)

    # 2. RLock
    span = only(spans, f"RLock.acquire {rlock.name}")
    child_of(span, "rlock-worker")
    assert duration(span) == 0.25
    assert span.attributes["threadtrace.primitive.name"] == named("rlock", FILE, rlock_line)  # type: ignore[index]
    assert span.attributes["threadtrace.holder.thread.id"] == main_ident  # type: ignore[index]
    woken_by_main(span)

    # 3. Condition: one wait, woken by main's notify.
    span = only(spans, f"Condition.wait {cond.name}", **{"thread.name": "cond-worker"})
    child_of(span, "cond-worker")
    assert duration(span) == 0.125
    assert span.attributes["threadtrace.primitive.name"] == named("cond", FILE, cond_line)  # type: ignore[index]
    assert span.attributes["threadtrace.timeout"] == 30.0  # type: ignore[index]
    assert span.attributes["threadtrace.timed_out"] is False  # type: ignore[index]
    woken_by_main(span)

    # 4. Event
    span = only(spans, f"Event.wait {event.name}", **{"thread.name": "event-worker"})
    child_of(span, "event-worker")
    assert duration(span) == 2.0
    assert span.attributes["threadtrace.primitive.name"] == named("event", FILE, event_line)  # type: ignore[index]
    woken_by_main(span)

    # 5. BoundedSemaphore
    span = only(spans, f"BoundedSemaphore.acquire {sem.name}")
    child_of(span, "sem-worker")
    assert duration(span) == 1.0
    assert span.attributes["threadtrace.primitive.name"] == named("sem", FILE, sem_line)  # type: ignore[index]
    woken_by_main(span)

    # 6. Barrier: only the worker waited; main's arrival released it.
    span = only(spans, f"Barrier.wait {barrier.name}")
    child_of(span, "barrier-worker")
    assert duration(span) == 0.75
    assert span.attributes["threadtrace.primitive.name"] == named("barrier", FILE, barrier_line)  # type: ignore[index]
    woken_by_main(span)

    # 7. Queue: the consumer's wait is on the queue's condition, named after the queue's line.
    span = only(spans, f"Condition.wait {jobs.not_empty.name}", **{"thread.name": "consumer"})
    child_of(span, "consumer")
    assert duration(span) == 3.0
    jobs_name = named("jobs", FILE, jobs_line, via="Queue")
    assert span.attributes["threadtrace.primitive.name"] == jobs_name  # type: ignore[index]
    woken_by_main(span)

    # 8. Join: main's join of the sleeper, linked to the sleeper's run.
    span = only(spans, "Thread.join sleeper", **{"threadtrace.primitive.name": "sleeper"})
    assert span.parent is not None and span.parent.span_id == app_ctx.span_id
    assert duration(span) == 4.0
    assert [link.context.span_id for link in span.links] == [runs["sleeper"].context.span_id]
    assert dict(span.links[0].attributes or {}) == {"threadtrace.link.type": "joined"}
    sleeper_wait = only(spans, f"Event.wait {go.name}", **{"thread.name": "sleeper"})
    assert sleeper_wait.links[0].attributes["thread.name"] == "releaser"  # type: ignore[index]

    # 9. The pool's task ran in the submitter's context.
    task = only(spans, "task")
    assert task.parent is not None and task.parent.span_id == app_ctx.span_id

    # Nothing else blocked long enough to be reported, and nothing came from the SDK.
    blocked = sorted(
        (s.name, s.attributes.get("thread.name"))  # type: ignore[union-attr]
        for s in spans
        if not s.name.startswith(("Thread.run", "Thread.join")) and s.name not in ("app", "task")
    )
    assert blocked == sorted([
        # The target is the primitive's name, whatever it is.
        (f"Lock.acquire {lock.name}", "lock-worker"),
        (f"RLock.acquire {rlock.name}", "rlock-worker"),
        (f"Condition.wait {cond.name}", "cond-worker"),
        (f"Event.wait {event.name}", "event-worker"),
        (f"BoundedSemaphore.acquire {sem.name}", "sem-worker"),
        (f"Barrier.wait {barrier.name}", "barrier-worker"),
        (f"Condition.wait {jobs.not_empty.name}", "consumer"),
        (f"Event.wait {go.name}", "sleeper"),
    ])  # fmt: skip

    # Metrics: counts, contentions and wait time per primitive, exactly.
    metrics = cap.metrics()

    def point(metric: str, kind: str, name: str) -> Any:
        key = (("threadtrace.primitive.kind", kind), ("threadtrace.primitive.name", name))
        return metrics[metric][key]

    lock_name = named("lock", FILE, lock_line)
    assert point("threadtrace.operations", "lock", lock_name) == 2
    assert point("threadtrace.contentions", "lock", lock_name) == 1
    assert point("threadtrace.wait.time", "lock", lock_name) == 0.5
    assert point("threadtrace.hold.time", "lock", lock_name) == 0.5
    assert point("threadtrace.wait.duration", "lock", lock_name) == (1, 0.5)
    assert point("threadtrace.operations", "rlock", named("rlock", FILE, rlock_line)) == 3
    assert point("threadtrace.contentions", "rlock", named("rlock", FILE, rlock_line)) == 1
    assert point("threadtrace.wait.duration", "event", named("event", FILE, event_line)) == (1, 2.0)
    assert point("threadtrace.contentions", "bounded_semaphore", named("sem", FILE, sem_line)) == 1
    assert point("threadtrace.operations", "bounded_semaphore", named("sem", FILE, sem_line)) == 2
    assert point("threadtrace.operations", "barrier", named("barrier", FILE, barrier_line)) == 2
    assert point("threadtrace.contentions", "barrier", named("barrier", FILE, barrier_line)) == 1
    assert point(
        "threadtrace.wait.duration", "condition", named("jobs", FILE, jobs_line, via="Queue")
    ) == (1, 3.0)
    assert metrics["threadtrace.thread.started"][()] == 10
    assert metrics["threadtrace.thread.count"][()] == 0
    for name in metrics["threadtrace.operations"]:
        assert "thread.id" not in dict(name)


def test_the_holder_site_is_where_the_holder_acquired_even_unmeasured(clock: FakeClock) -> None:
    """Every acquisition notes its site: the holder's line is exact from the first contention."""
    with capture(clock=clock, wait_threshold=0, sample_every=0) as cap:
        lock = threading.Lock()
        with lock:  # the first acquisition of a lock is always measured: get it out of the way
            pass
        holding, done = threading.Event(), threading.Event()

        def hold() -> None:
            with lock:
                holding.set()
                done.wait(30)  # where the holder is while the first waiter blocks

        hold_wait_line = hold.__code__.co_firstlineno + 3

        def take() -> None:
            with lock:
                pass

        for round_ in range(2):
            holding.clear()
            done.clear()
            holder = threading.Thread(target=hold, name=f"holder-{round_}")
            holder.start()
            holding.wait(30)
            waiter = threading.Thread(target=take, name=f"waiter-{round_}")
            waiter.start()
            wait_for_waiters(lock, 1)
            done.set()
            holder.join(10)
            waiter.join(10)
    first, second = (
        only(cap.spans(), f"Lock.acquire {lock.name}", **{"thread.name": f"waiter-{i}"})
        for i in (0, 1)
    )
    # The line of the holder's `with lock:`, not where it stood when the wait began.
    for round_, span in enumerate((first, second)):
        attributes = span.attributes
        assert attributes is not None
        assert attributes["threadtrace.holder.code.line.number"] == hold_wait_line - 2
        assert attributes["threadtrace.holder.thread.name"] == f"holder-{round_}"


def test_a_long_hold_is_a_span_and_a_timer_runs_in_its_starters_context(clock: FakeClock) -> None:
    with capture(clock=clock, wait_threshold=0, hold_threshold=1.0, sample_every=1) as cap:
        tracer = cap.tracer_provider.get_tracer("app")
        lock, lock_line = threading.Lock(), line()
        with tracer.start_as_current_span("request") as request:
            with lock:
                acquire_line = line() - 1
                clock.advance(1.5)  # held 1.5 s: over the 1 s threshold
            with lock:
                clock.advance(0.5)  # under it: measured, but no span
            fired = threading.Event()
            timer = threading.Timer(0, fired.set)
            timer.start()
            assert fired.wait(10)
            timer.join(10)
    spans = cap.spans()
    hold = only(spans, f"Lock.hold {lock.name}")
    assert duration(hold) == 1.5
    assert hold.parent is not None and hold.parent.span_id == request.get_span_context().span_id
    assert hold.attributes["threadtrace.primitive.name"] == named("lock", FILE, lock_line)  # type: ignore[index]
    assert hold.attributes["code.line.number"] == acquire_line  # type: ignore[index]
    assert hold.attributes["thread.name"] == "MainThread"  # type: ignore[index]
    assert lock.statistics().holds_measured == 2
    assert lock.statistics().total_hold == 2.0
    (run,) = [s for s in spans if s.name.startswith("Thread.run")]
    assert run.parent is not None and run.parent.span_id == request.get_span_context().span_id
    function = run.attributes["code.function.name"]  # type: ignore[index]
    assert function.endswith(".Event.set")  # type: ignore[union-attr]
    # A Timer's made-up name ("Thread-7") says nothing: its target is what it runs.
    assert run.name == f"Thread.run {function}"


def test_spans_and_metrics_name_the_schema_they_follow(cap: Capture) -> None:
    """The tracer and the meter carry a schema_url: the semantic conventions used."""
    contend(threading.Lock())
    (span,) = [s for s in cap.spans() if s.name.startswith("Lock.acquire ")]
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.schema_url == "https://opentelemetry.io/schemas/1.33.0"
    data = cap.reader.get_metrics_data()
    assert data is not None
    scopes = {
        (scope.scope.name, scope.scope.schema_url)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
    }
    assert scopes == {("threadtrace", "https://opentelemetry.io/schemas/1.33.0")}


def test_code_function_name_is_fully_qualified_on_every_span(cap: Capture) -> None:
    """One form everywhere: <module>.<qualname>, on waits, holds and thread runs alike."""
    lock = threading.Lock()

    def take() -> None:
        with lock:
            pass

    lock.acquire()
    worker = threading.Thread(target=take, name="taker-1")
    worker.start()
    wait_for_waiters(lock, 1)
    lock.release()
    worker.join(10)
    spans = {s.name.partition(" ")[0]: s for s in cap.spans()}
    wait, run = spans["Lock.acquire"], spans["Thread.run"]
    assert wait.attributes["code.function.name"] == qualified_name(take)  # type: ignore[index]
    assert wait.attributes["threadtrace.holder.code.function.name"] == (  # type: ignore[index]
        qualified_name(test_code_function_name_is_fully_qualified_on_every_span)
    )
    assert run.attributes["code.function.name"] == (  # type: ignore[index]
        f"{__name__}.{take.__qualname__}"
    )
    assert run.name == "Thread.run taker"


@pytest.mark.parametrize(
    ("thread_name", "target"),
    [
        ("teller-0", "teller"),
        ("db_3", "db"),
        ("ThreadPoolExecutor-0_1", "ThreadPoolExecutor"),
        ("worker (2)", "worker"),
        ("fetch #12", "fetch"),
        ("MainThread", "MainThread"),
        ("http2", "http2"),  # no separator: part of the name, not a counter
        ("Thread-7", "app.fetch"),  # made up by threading: what it runs
        ("Thread-7 (fetch)", "app.fetch"),
        ("42", "app.fetch"),
    ],
)
def test_a_threads_span_target_is_its_name_without_a_counter(thread_name: str, target: str) -> None:
    """Low cardinality: one Thread.run row per role, not per thread."""
    assert thread_target(thread_name, "app.fetch") == target


test_spans_code = (lambda: None).__code__


def _quick_run(recorder: Any) -> Any:
    """A ThreadRun of a thread named "quick", begun now: no span made for it yet."""
    from opentelemetry import context as otel_context

    details = (1, "quick", False, "__main__.quick", test_spans_code)
    return recorder.begin_run(details, otel_context.get_current())


def test_a_short_run_gets_its_span_when_a_join_queued_after_its_end_links_to_it() -> None:
    """A quiet run shorter than ``wait_threshold`` costs no span, unless a record
    links to it. A join that waited while the thread wound up after its run is
    queued after the run's end: the run's span is made then, ended at the run's
    end, and the join links to it (seen missing under load in CI)."""
    from threadtrace._recording.events import WaitRecord
    from threadtrace._recording.recorder import current_context
    from threadtrace._runtime import runtime

    clock = FakeClock()
    with capture(clock=clock) as cap:
        recorder = runtime.recorder
        assert recorder is not None
        run = _quick_run(recorder)
        clock.advance(0.0001)  # 0.1 ms: below wait_threshold
        recorder.end_run(run, None)
        recorder.drain()
        assert by_name(cap.exporter.get_finished_spans(), "Thread.run quick") == []
        joined = clock.monotonic_ns()
        clock.advance(0.002)  # the join waited 2 ms for the thread to wind up
        join = WaitRecord(
            "thread", "quick", "join", joined, clock.monotonic_ns(), True,
            threading.get_ident(), "MainThread", None, current_context(), link_to=run,
        )  # fmt: skip
        recorder.defer(join)
        recorder.drain()
        spans = cap.exporter.get_finished_spans()
    quick = only(spans, "Thread.run quick")
    assert quick.end_time is not None and quick.start_time is not None
    assert quick.end_time - quick.start_time == 100_000  # the run's own end
    (link,) = only(spans, "Thread.join quick").links
    assert link.context.span_id == quick.context.span_id
    assert dict(link.attributes or {}) == {"threadtrace.link.type": "joined"}


@pytest.mark.parametrize("made", ["before the end", "as the end is noted"])
def test_a_short_runs_span_made_before_its_end_is_ended_once_at_the_end(
    made: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The thread notes a short, quiet run's end itself and queues it only if the
    span exists; the recorder, making the span, ends it if the run has ended.
    Both orders, and the one where both see the other, end the span exactly once,
    at the run's end."""
    from threadtrace._recording.events import RunEnd
    from threadtrace._runtime import runtime

    clock = FakeClock()
    with capture(clock=clock) as cap:
        recorder = runtime.recorder
        assert recorder is not None
        run = _quick_run(recorder)
        clock.advance(0.0001)  # 0.1 ms: below wait_threshold
        if made == "before the end":
            # The recorder made the span (a record in the run needed it), then the run ended.
            assert recorder._run_span(run) is not None
            recorder.end_run(run, None)
        else:
            # The thread noted the end; the recorder made the span, saw the end and ended
            # it; then the thread saw the span, and queued the end all the same.
            run.end, run.ended = clock.monotonic_ns(), True
            assert recorder._run_span(run) is not None
            recorder.defer(RunEnd(run, run.end, None), always=True)
        assert recorder.drain() == 1  # the end was queued
        spans = cap.exporter.get_finished_spans()
    quick = only(spans, "Thread.run quick")
    assert quick.end_time is not None and quick.start_time is not None
    assert quick.end_time - quick.start_time == 100_000
    assert "ended span" not in caplog.text


@pytest.mark.parametrize("cls", ["threading.Thread", "threadtrace.Thread"])
def test_a_thread_started_while_patched_runs_in_one_span_and_counts_once(
    cls: str, clock: FakeClock
) -> None:
    """patch() hands a traced thread its bootstrap wrapped in the run's span;
    threadtrace's own Thread wraps its run itself, and is not wrapped twice.
    While the run goes on, the thread counts as running."""
    import threadtrace

    thread_class = threadtrace.Thread if cls == "threadtrace.Thread" else threading.Thread
    inside, leave = threading.Event(), threading.Event()
    counts: list[tuple[int, int]] = []

    def work() -> None:
        inside.set()
        assert leave.wait(10)

    with capture(clock=clock, wait_threshold=0) as cap:
        thread = thread_class(target=work, name="worker")
        thread.start()
        assert inside.wait(10)
        counts.append(
            (
                cap.metrics()["threadtrace.thread.count"][()],
                cap.metrics()["threadtrace.thread.started"][()],
            )
        )
        clock.advance(1.0)
        leave.set()
        thread.join(10)
        assert not thread.is_alive()
        metrics = cap.metrics()
        counts.append(
            (metrics["threadtrace.thread.count"][()], metrics["threadtrace.thread.started"][()])
        )
        spans = cap.spans()
    assert counts == [(1, 1), (0, 1)]
    (run,) = [s for s in spans if s.name.startswith("Thread.run")]
    assert run.attributes["thread.name"] == "worker"  # type: ignore[index]
    assert duration(run) == 1.0


@pytest.fixture(params=["context variable", "attach"])
def task_context(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How a pool's task carries its context: OpenTelemetry's context variable
    set and reset directly (its default runtime context), or, with any other
    runtime context, through ``attach()`` and ``detach()``."""
    if request.param == "attach":
        monkeypatch.setattr(patch_module, "get_current", otel_context.get_current)
        monkeypatch.setattr(patch_module, "enter_context", otel_context.attach)
        monkeypatch.setattr(patch_module, "leave_context", otel_context.detach)
    else:
        assert patch_module.enter_context == CONTEXT_VAR.set  # type: ignore[union-attr]
    return str(request.param)


def test_a_pool_task_runs_in_the_context_it_was_submitted_in(
    cap: Capture, task_context: str
) -> None:
    """Not the context its worker thread was started in: the worker is started
    by the first submit, and serves the second, made in another span."""
    tracer = cap.tracer_provider.get_tracer("app")

    def task() -> None:
        with tracer.start_as_current_span("task"):
            pass

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with tracer.start_as_current_span("first"):
            pool.submit(lambda: None).result(10)  # starts the pool's one worker
        with tracer.start_as_current_span("second") as second:
            pool.submit(task).result(10)
    run = only(cap.spans(), "task")
    assert run.parent is not None and run.parent.span_id == second.get_span_context().span_id


def test_a_pool_task_leaves_its_workers_context_as_it_found_it(
    cap: Capture, task_context: str
) -> None:
    tracer = cap.tracer_provider.get_tracer("app")
    seen = []
    with tracer.start_as_current_span("submitter"):
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        item = futures_thread._WorkItem(
            future, lambda: seen.append(otel_context.get_current()), (), {}
        )
    before = otel_context.get_current()
    item.run()  # as the worker would, here, outside any span
    assert otel_context.get_current() is before
    assert trace.get_current_span(seen[0]).get_span_context().is_valid
