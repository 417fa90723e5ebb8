"""patch() and unpatch(): what they change, what they leave alone, and coexistence."""

from __future__ import annotations

import concurrent.futures
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import child_env, line, named

import threadtrace
from threadtrace._support import originals as _originals
from threadtrace.testing import Capture, capture, wait_for_waiters

FILE = "test_patch.py"
PRIMITIVES = ("Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier")


def snapshot() -> dict[str, object]:
    """Everything patch() may touch, by identity."""
    import concurrent.futures.thread as futures_thread

    state: dict[str, object] = {name: getattr(threading, name) for name in PRIMITIVES}
    for name in ("_start_new_thread", "_start_joinable_thread"):
        if hasattr(threading, name):
            state[name] = getattr(threading, name)
    for name in ("_bootstrap_inner", "join", "start", "run"):
        state[f"Thread.{name}"] = threading.Thread.__dict__[name]
    state["_WorkItem"] = futures_thread._WorkItem
    for name in ("fork", "forkpty"):  # wrapped on 3.12 and later (their warning)
        state[f"os.{name}"] = os.__dict__.get(name)
    return state


def test_unpatch_restores_threading_exactly() -> None:
    """Every attribute patch() replaced is the very same object afterwards."""
    before = snapshot()
    handle = threadtrace.patch(exporters=())
    assert snapshot() != before
    assert threading.Lock is threadtrace.Lock
    handle.unpatch()
    assert snapshot() == before


def test_patch_twice_is_harmless_and_returns_the_same_handle() -> None:
    before = snapshot()
    first = threadtrace.patch(exporters=())
    second = threadtrace.patch()
    try:
        assert second is first
        assert threading.Lock is threadtrace.Lock
    finally:
        first.unpatch()
    second.unpatch()  # already undone: harmless
    threadtrace.unpatch()
    assert snapshot() == before


def test_the_handle_is_a_context_manager() -> None:
    with threadtrace.patch(exporters=()) as handle:
        assert threadtrace.is_patched()
        assert repr(handle) == "<threadtrace.PatchHandle active>"
    assert not threadtrace.is_patched()
    assert repr(handle) == "<threadtrace.PatchHandle undone>"


def test_an_invalid_setting_patches_nothing() -> None:
    before = snapshot()
    with pytest.raises(threadtrace.ConfigurationError, match=r"^wait_threshold must be"):
        threadtrace.patch(wait_threshold=-1)
    assert snapshot() == before


def test_isinstance_holds_for_every_primitive_made_before_during_and_after() -> None:
    """Objects made before patch, while patched, and by excluded callers all pass isinstance."""
    old = {name: getattr(threading, name)(*(2,) * (name == "Barrier")) for name in PRIMITIVES}
    with threadtrace.patch(exporters=()):
        new = {name: getattr(threading, name)(*(2,) * (name == "Barrier")) for name in PRIMITIVES}
        for name in PRIMITIVES:
            cls = getattr(threading, name)
            if isinstance(cls, type):
                assert isinstance(old[name], cls), name
                assert isinstance(new[name], cls), name
        assert type(new["Lock"]) is threadtrace.Lock
        assert type(new["Event"]) is threadtrace.Event
        for name in ("Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier"):
            assert isinstance(new[name], getattr(_originals, name)), name


def test_threads_stay_stdlib_threads_and_timer_works() -> None:
    fired = threading.Event()
    with threadtrace.patch(exporters=()):
        timer = threading.Timer(0.001, fired.set)
        timer.start()
        assert fired.wait(10)
        timer.join(10)
        assert type(timer) is _originals.Timer
        assert isinstance(timer, threading.Thread)
        assert threading.Thread is _originals.Thread
        assert threading.Timer is _originals.Timer


def test_a_thread_subclass_defined_before_patch_is_traced() -> None:
    """A user's Thread subclass with its own __init__ and run, made before patch()."""

    class Worker(threading.Thread):
        def __init__(self, results: list[str]) -> None:
            super().__init__(name="custom")
            self.results = results

        def run(self) -> None:
            self.results.append(threading.current_thread().name)

    results: list[str] = []
    with capture(wait_threshold=0) as cap:  # every run a span, however short
        worker = Worker(results)
        worker.start()
        worker.join(10)
    assert results == ["custom"]
    (run,) = [s for s in cap.spans() if s.name == "Thread.run custom"]
    assert run.attributes["thread.name"] == "custom"  # type: ignore[index]
    assert run.attributes["code.function.name"].endswith("Worker.run")  # type: ignore[index,union-attr]


def test_a_thread_subclass_whose_run_is_a_property_runs_traced_and_quietly() -> None:
    """Its ``run`` a property with a setter and no deleter: traced, and nothing raised as it ends."""

    class Job(threading.Thread):
        def __init__(self) -> None:
            super().__init__(name="job")
            self._job = self.work
            self.done: list[str] = []

        @property  # type: ignore[override]
        def run(self) -> Any:
            return self._job

        @run.setter
        def run(self, value: Any) -> None:
            self._job = value

        def work(self) -> None:
            self.done.append(threading.current_thread().name)

    unraisable: list[Any] = []
    original_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with capture(wait_threshold=0) as cap:  # every run a span, however short
            job = Job()
            job.start()
            job.join(10)
    finally:
        sys.unraisablehook = original_hook
    assert job.done == ["job"]
    assert unraisable == []  # the thread's own function raised nothing after its run
    assert [s.name for s in cap.spans() if s.name.startswith("Thread.run")] == ["Thread.run job"]


def test_an_exception_escaping_run_marks_the_span_and_still_reaches_excepthook() -> None:
    seen: list[type[BaseException]] = []
    original_hook = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_type)
    try:
        with capture() as cap:

            def boom() -> None:
                raise ValueError("worker failed")

            worker = threading.Thread(target=boom, name="doomed")
            worker.start()
            worker.join(10)
    finally:
        threading.excepthook = original_hook
    assert seen == [ValueError]
    (run,) = [s for s in cap.spans() if s.name == "Thread.run doomed"]
    assert not run.status.is_ok and not run.status.is_unset
    assert run.status.description == "ValueError: worker failed"
    assert [e.name for e in run.events] == ["exception"]
    assert run.events[0].attributes["exception.message"] == "worker failed"  # type: ignore[index]


def test_queue_and_pool_primitives_are_named_after_the_user_line() -> None:
    with threadtrace.patch(exporters=()):
        jobs, jobs_line = queue.Queue(), line()
        pool, pool_line = concurrent.futures.ThreadPoolExecutor(max_workers=1), line()
        future, future_line = pool.submit(int), line()
        future.result(10)
        pool.shutdown(wait=True)
    assert type(jobs.mutex) is threadtrace.Lock
    assert jobs.mutex.name == named("jobs", FILE, jobs_line, via="Queue")
    assert type(jobs.not_empty) is threadtrace.Condition
    assert jobs.not_empty.name == named("jobs", FILE, jobs_line, via="Queue")
    pool_lock = pool._shutdown_lock  # type: ignore[attr-defined]
    assert pool_lock.name == named("pool", FILE, pool_line, via="ThreadPoolExecutor")
    # the future's own class, not that of the pool that made it
    assert future._condition.name == named("future", FILE, future_line, via="Future")  # type: ignore[attr-defined]


def test_an_explicit_name_wins() -> None:
    assert threadtrace.Lock(name="ledger").name == "ledger"
    assert threadtrace.Condition(name="ready").name == "ready"
    assert threadtrace.Semaphore(3, name="slots").statistics().name == "slots"


def test_threading_internals_and_telemetry_plumbing_stay_untraced() -> None:
    """threading's own building blocks and logging's locks are stdlib objects."""
    import logging

    with threadtrace.patch(exporters=()):
        event = threading.Event()
        thread = threading.Thread(target=int)
        handler = logging.StreamHandler()
        sem = threading.Semaphore()
    assert type(event) is threadtrace.Event
    assert type(event._cond) is _originals.Condition  # type: ignore[attr-defined]
    assert type(thread._started) is _originals.Event  # type: ignore[attr-defined]
    assert type(handler.lock) is type(_originals.RLock())
    assert type(sem._cond) is _originals.Condition  # type: ignore[attr-defined]


def test_opentelemetry_threading_instrumentor_coexists_in_either_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both propagate context; either one's un-instrumenting leaves the other working."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    # Its uninstrument() leaves a wrapper in Timer's own dict, where there was
    # none (opentelemetry-instrumentation-threading 0.5x): gone after the test,
    # or later tests calling Timer.start() see OpenTelemetry's wrapper.
    monkeypatch.setattr(threading.Timer, "start", threading.Timer.start)
    monkeypatch.delattr(threading.Timer, "start")

    def parent_seen_in_thread(cap: Capture) -> bool:
        tracer = cap.tracer_provider.get_tracer("test")
        seen: list[bool] = []
        with tracer.start_as_current_span("parent") as parent:
            worker = threading.Thread(
                target=lambda: seen.append(
                    trace.get_current_span().get_span_context().trace_id
                    == parent.get_span_context().trace_id
                )
            )
            worker.start()
            worker.join(10)
        return seen == [True]

    instrumentor = ThreadingInstrumentor()
    for otel_first in (True, False):
        with capture(patch=False, wait_threshold=0) as cap:  # every run a span
            if otel_first:
                instrumentor.instrument()
                handle = threadtrace.patch()
            else:
                handle = threadtrace.patch()
                instrumentor.instrument()
            assert parent_seen_in_thread(cap)
            instrumentor.uninstrument()
            assert threadtrace.is_patched()
            assert parent_seen_in_thread(cap)  # threadtrace alone still propagates
            runs = [s for s in cap.spans() if s.name.startswith("Thread.run")]
            assert len(runs) == 2
            instrumentor.instrument()
            handle.unpatch()
            assert parent_seen_in_thread(cap)  # OpenTelemetry's alone still propagates
            instrumentor.uninstrument()
        assert threading.Thread.start is _originals.Thread.start


def test_a_contended_queue_is_reported_under_the_queue() -> None:
    """Backpressure on a full queue is a wait on the queue's condition."""
    with capture(wait_threshold=0) as cap:
        jobs, jobs_line = queue.Queue(maxsize=1), line()
        jobs.put(1)
        producer = threading.Thread(target=lambda: jobs.put(2, timeout=30))
        producer.start()
        wait_for_waiters(jobs.not_full, 1)
        assert jobs.get() == 1
        producer.join(10)
    waits = [s for s in cap.spans() if s.name.startswith("Condition.wait")]
    jobs_name = named("jobs", FILE, jobs_line, via="Queue")
    assert [w.name for w in waits] == [f"Condition.wait {jobs_name}"]
    assert [w.attributes["threadtrace.primitive.name"] for w in waits] == [jobs_name]  # type: ignore[index]


def _starter_in(module_name: str) -> object:
    """A function whose frames count as module ``module_name``'s: starts and joins a thread."""
    namespace: dict[str, object] = {"__name__": module_name, "threading": threading}
    exec(  # a function with a module name of the test's choosing
        "def start_one(via_pool):\n"
        "    if via_pool:\n"
        "        import concurrent.futures\n"
        "        with concurrent.futures.ThreadPoolExecutor(1) as pool:\n"
        "            pool.submit(int).result(10)\n"
        "        return pool._threads.pop()\n"
        "    thread = threading.Thread(target=int)\n"
        "    thread.start()\n"
        "    thread.join(10)\n"
        "    return thread\n",
        namespace,
    )
    return namespace["start_one"]


@pytest.mark.parametrize("walk", ["C", "Python"])
@pytest.mark.parametrize("via_pool", [False, True], ids=["directly", "by a pool"])
@pytest.mark.parametrize(
    ("module", "traced"),
    [
        ("app.jobs", True),  # the program's
        ("opentelemetry.sdk.fake", False),  # telemetry plumbing
        ("threadtrace._fake", False),  # threadtrace's own
    ],
)
def test_a_thread_is_traced_when_the_program_starts_it(
    monkeypatch: pytest.MonkeyPatch, walk: str, via_pool: bool, module: str, traced: bool
) -> None:
    """Started by the program, directly or through a pass-through module such as a
    pool, a thread is traced; by telemetry plumbing or threadtrace itself, not.  The
    C walk and the Python one answer alike."""
    from threadtrace._primitives import core, threads

    if walk == "C":
        if core.starts is None:
            pytest.skip("the C core is not in use")
    else:
        monkeypatch.setattr(threads, "_starts", None)
    start_one = _starter_in(module)
    with threadtrace.patch(exporters=()):
        thread = start_one(via_pool)  # type: ignore[operator]
    assert thread._tt_traced is traced


NOT_IMPORTED = """\
import sys, threadtrace
threadtrace.patch()
print(sorted(m for m in {heavy!r} if m in sys.modules))
threadtrace.Lock().acquire()
"""


def test_patch_leaves_what_only_an_export_needs_unimported(tmp_path: Path) -> None:
    """Memory: a program under patch() does not carry the protobuf encoders until
    its first export (3.7 MB), nor hashlib's OpenSSL (4 MB, via secrets), nor
    asyncio (wrapt 2 imported it), nor importlib.metadata and what it imports
    (zipfile, email, csv: the built-in exporters are known without it); the exit
    flush still writes the trace file."""
    heavy = ("google.protobuf", "opentelemetry.exporter.otlp.proto.common", "secrets", "hmac")
    heavy += ("wrapt", "asyncio", "importlib.metadata")
    if sys.version_info >= (3, 10):  # on 3.9 OpenTelemetry's context imports them (the
        heavy += ("zipfile", "email", "csv")  # importlib_metadata backport)
    done = subprocess.run(
        [sys.executable, "-c", NOT_IMPORTED.format(heavy=heavy)],
        cwd=tmp_path,
        env=child_env(THREADTRACE_JSON_PATH=str(tmp_path / "trace.jsonl")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
    assert (tmp_path / "trace.metrics.jsonl").stat().st_size > 0
