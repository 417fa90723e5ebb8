"""threadtrace left on in a real program: nothing kept alive, nothing stalled, nothing lost.

Each test here pins one way threadtrace used to hurt its host (memory kept
for good, a thread of its own appearing mid-run, objects kept alive past
their time, files and signals handled unsafely) and fails without its fix.
"""

from __future__ import annotations

import _threading_local
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from helpers import child_env, contend, threadtrace_cmd

import threadtrace
from threadtrace._detect import stuck
from threadtrace._detect.state import Blocked
from threadtrace._formats.otlp_jsonl import read_trace_file
from threadtrace._runtime import runtime
from threadtrace.testing import FakeClock, capture, wait_until


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector off: what is freed, is freed by reference counting."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Target:
    """A thread's target that refers to itself through the thread (CPython's own test)."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.thread = threading.Thread(target=self.run, args=(self,))

    def run(self, me: Any) -> None:
        if self.fail:
            raise SystemExit  # ends the thread quietly, through the traceback machinery


@pytest.mark.parametrize("fail", [False, True], ids=["returns", "raises"])
def test_a_finished_traced_thread_keeps_nothing_of_its_target_alive(
    no_gc: None, fail: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once joined and dropped, a thread's target is freed without the cycle collector."""
    # threading's own hook (pytest's keeps the exception, and so its frames).
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    with capture():
        target = Target(fail)
        target.thread.start()
        target.thread.join(10)
        ref = weakref.ref(target)
        del target
        assert ref() is None


def test_a_finished_thread_is_not_kept_alive_by_the_watchdog(no_gc: None) -> None:
    """Its object, and its pure-Python thread-local values, die when the program drops it."""
    with capture(clock=FakeClock()):  # an injected clock: the watchdog thread does not look
        local = _threading_local.local()  # keyed by the Thread object, as CPython's test uses

        class Value:
            pass

        values = []
        threads = []

        def work() -> None:
            value = Value()
            values.append(weakref.ref(value))
            local.value = value

        for _ in range(5):
            thread = threading.Thread(target=work)
            thread.start()
            thread.join(10)
            threads.append(weakref.ref(thread))
        assert runtime.detect.ended, "the watchdog has a look to take at them"
        del thread
        assert [ref() for ref in threads] == [None] * 5
        gc.collect()  # _threading_local's own structures hold a cycle, with threadtrace or not
        # As CPython's test_local_refs allows: the local keeps the last thread's values.
        assert sum(ref() is None for ref in values) >= 4


def test_configure_starts_the_watchdog_so_no_thread_appears_mid_run() -> None:
    """The thread count a program sees does not change at its first blocking wait."""
    with capture(clock=FakeClock()):  # an injected clock: the watchdog thread only sleeps
        watchdog = runtime.detect.watchdog
        assert watchdog is not None and watchdog.is_alive()
        before = threading.active_count()
        lock = threading.Lock()
        lock.acquire()
        waiter = threading.Thread(target=lambda: lock.acquire(timeout=5) and lock.release())
        waiter.start()
        threadtrace.testing.wait_for_waiters(lock)
        assert threading.active_count() == before + 1  # the waiter, nothing of threadtrace's
        lock.release()
        waiter.join(10)


def test_the_stuck_look_takes_no_stacks_when_nothing_is_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every thread's frames are read only for a report: they keep the program's objects alive."""
    taken = []
    monkeypatch.setattr(sys, "_current_frames", lambda: taken.append(1) or {})
    lock = threading.Lock()
    young = Blocked(lock, "acquire", 10**9, None, None)
    timed = Blocked(lock, "acquire", 0, 5.0, None)
    with capture(clock=FakeClock(), stuck_after=5.0):
        assert stuck.look({1: young, 2: timed}, now=10**9 + 10**9) == []
    assert taken == []


@pytest.mark.parametrize(
    ("value", "pure", "error"),
    [
        ("", False, None),
        ("1", True, None),
        ("true", True, None),
        ("0", False, None),
        ("false", False, None),
        ("off", False, None),
        ("maybe", False, "THREADTRACE_PURE_PYTHON must be true or false, got 'maybe'"),
    ],
)
def test_pure_python_is_chosen_by_a_true_value_only(
    value: str, pure: bool, error: Optional[str]
) -> None:
    """THREADTRACE_PURE_PYTHON=0 keeps the C core; a value that is neither is an error."""
    program = (
        "import threadtrace\n"
        "from threadtrace._primitives import core\n"
        "from threadtrace._runtime import runtime\n"
        "print(core.SPEEDUPS, core.lockcore is not None, runtime.environment_error)\n"
    )
    env = {**os.environ, "THREADTRACE_PURE_PYTHON": value}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60
    )
    speedups, built, reported = done.stdout.split(" ", 2)
    assert (speedups == "True", reported.strip()) == (
        built == "True" and not pure,
        str(error),
    ), done.stderr


# -- item 2: no writing on the program's threads ------------------------------------------


def test_a_stuck_log_handler_never_stalls_the_program() -> None:
    """threadtrace's one warning is written by its own thread, however slow stderr is."""

    class Stuck(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[str] = []
            self.release = threading.Event()

        def emit(self, record: logging.LogRecord) -> None:
            self.threads.append(threading.current_thread().name)
            self.release.wait(30)  # a pipe nobody reads

    class Broken:  # every recording fails: an internal error on the program's thread
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("broken")

    handler = Stuck()
    logger = logging.getLogger("threadtrace")
    logger.addHandler(handler)
    saved = runtime.internal_errors
    try:
        with capture(patch=False, wait_threshold=0, sample_every=1):
            runtime.recorder = Broken()  # type: ignore[assignment]
            runtime.internal_errors = 0
            lock = threadtrace.Lock()
            contend(lock)  # returns although the handler is stuck
            assert runtime.internal_errors >= 1
            assert threading.current_thread().name not in handler.threads
            wait_until(lambda: bool(handler.threads), what="the warning")
            assert handler.threads == ["threadtrace-watchdog"]
            handler.release.set()
    finally:
        handler.release.set()
        logger.removeHandler(handler)
        runtime.internal_errors = saved


# -- item 13: the exit flush ---------------------------------------------------------------

APP = """\
import threading
lock = threading.Lock()
def work():
    for _ in range(200):
        with lock:
            pass
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def run(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP)
    return threadtrace_cmd(["run", *options, "app.py"], tmp_path)


def test_a_zero_flush_timeout_exits_at_once_with_one_line(tmp_path: Path) -> None:
    """flush_timeout=0: no wait, no traceback; what was queued is dropped and counted."""
    done = run(tmp_path, "--flush-timeout", "0")
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr.splitlines()[:2] == [
        "threadtrace: flush_timeout is 0: exited without flushing; 4 queued spans and the "
        "last metrics were dropped",
        "threadtrace summary:",
    ]
    assert "  exported  0 spans to json (threadtrace-trace.jsonl), 4 lost" in done.stderr


def test_a_full_disk_at_exit_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Writes that fail (ENOSPC) are counted; closing the file says so in one line."""
    metrics = tmp_path / "metrics.jsonl"
    done = run(tmp_path, "--json-path", "/dev/full", "--json-metrics-path", str(metrics))
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    assert (
        "threadtrace: could not flush exporter 'json' (/dev/full) at exit: "
        "OSError: [Errno 28] No space left on device"
    ) in done.stderr.splitlines()
    assert "  exported  0 spans to json (/dev/full), 4 lost" in done.stderr
    assert "timeline" not in done.stderr  # nothing to convert


# -- item 11: SIGTERM ----------------------------------------------------------------------

SERVICE = """\
import signal, sys, threading
{setup}
lock = threading.Lock()
def work():
    for _ in range(100):
        with lock:
            pass
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
stop = threading.Event()

def announce():
    from threadtrace.testing import wait_for_waiters
    wait_for_waiters(stop)  # ready once the main thread waits
    print("ready", flush=True)

threading.Thread(target=announce, name="announce").start()
stop.wait()  # until stopped
"""


def stopped_by_sigterm(
    tmp_path: Path, command: list[str], setup: str = ""
) -> subprocess.CompletedProcess[str]:
    """Start the service, wait until it is ready, send SIGTERM, and collect what it said."""
    (tmp_path / "service.py").write_text(SERVICE.format(setup=setup))
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, "ready\n" + out, err)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_flushes_summarises_and_then_ends_the_process_by_sigterm(tmp_path: Path) -> None:
    """As a service is stopped: the trace, the metrics and the summary are all there."""
    done = stopped_by_sigterm(tmp_path, ["-m", "threadtrace", "run", "service.py"])
    assert done.returncode == -signal.SIGTERM, done.stderr
    # Four threads' runs, and the main thread's wait, still going on when stopped.
    assert "threadtrace summary:\n  threads   4 started\n  exported  5 spans to json" in done.stderr
    (wait,) = [s for s in read_trace_file(str(tmp_path / "threadtrace-trace.jsonl"))
               if s.name == "Event.wait"]  # fmt: skip
    assert wait.attributes["threadtrace.unfinished"] is True
    report = threadtrace_cmd(["report", "threadtrace-trace.jsonl"], tmp_path)
    assert (report.returncode, report.stderr) == (0, "")
    assert "1 still waiting at exit" in report.stdout


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_under_patch_sigterm_flushes_too(tmp_path: Path) -> None:
    """A program that calls patch() itself is stopped the same way."""
    setup = "import threadtrace\nthreadtrace.patch(exporters=('json',))"
    done = stopped_by_sigterm(tmp_path, ["service.py"], setup)
    assert (done.returncode, done.stderr) == (-signal.SIGTERM, "")
    assert (tmp_path / "threadtrace-trace.metrics.jsonl").read_text().count("\n") >= 1


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_a_program_that_handles_sigterm_keeps_its_handler(tmp_path: Path) -> None:
    """Its handler runs, not threadtrace's; the usual exit flush follows its exit."""
    setup = (
        "def stop(signum, frame):\n"
        "    print('stopping', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)"
    )
    done = stopped_by_sigterm(tmp_path, ["-m", "threadtrace", "run", "service.py"], setup)
    assert (done.returncode, done.stdout) == (0, "ready\nstopping\n"), done.stderr
    assert done.stderr.count("threadtrace summary:") == 1


# -- item 12: fork -------------------------------------------------------------------------

FORKING = """\
import os, sys, threading
lock = threading.Lock()
held, release = threading.Event(), threading.Event()

def holder():
    with lock:
        held.set()
        release.wait(30)

keeper = threading.Thread(target=holder, name="keeper")
keeper.start()
held.wait(30)
pid = os.fork()
if pid == 0:
    other = threading.Lock()
    def work():
        for _ in range(50):
            with other:
                pass
    workers = [threading.Thread(target=work, name=f"child-{i}") for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("child got the lock the parent's keeper holds:", lock.acquire(timeout=0.2), flush=True)
    sys.exit(0)
release.set()
keeper.join()
os.waitpid(pid, 0)
print("parent", os.getpid(), "child", pid, flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_its_own_files_and_reports_its_own_threads(tmp_path: Path) -> None:
    """Parent and child never share a file; the child's holder is the parent's thread, named."""
    (tmp_path / "forking.py").write_text(FORKING)
    env = child_env(THREADTRACE_REPORT="true", THREADTRACE_WAIT_THRESHOLD="0")
    done = threadtrace_cmd(["run", "forking.py"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    child_line, parent_line = done.stdout.splitlines()
    assert child_line == "child got the lock the parent's keeper holds: False"
    parent, child = (int(word) for word in parent_line.split()[1::2])
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == sorted(
        [
            "threadtrace-trace.jsonl",
            "threadtrace-trace.metrics.jsonl",
            f"threadtrace-trace.{child}.jsonl",
            f"threadtrace-trace.{child}.metrics.jsonl",
        ]
    )
    child_spans = read_trace_file(str(tmp_path / f"threadtrace-trace.{child}.jsonl"))
    parent_spans = read_trace_file(str(tmp_path / "threadtrace-trace.jsonl"))
    assert {s.thread_name for s in child_spans} == {"MainThread", "child-0", "child-1"}
    assert "child-0" not in {s.thread_name for s in parent_spans}
    (wait,) = [s for s in child_spans if s.name == "Lock.acquire" and s.thread_name == "MainThread"]
    assert wait.attributes["threadtrace.holder.thread.name"] == (
        "keeper (in the parent process, at the fork)"
    )
    assert f"threadtrace contention report (process {child}, forked from {parent}):" in (
        done.stderr
    )
    assert f"threadtrace summary (process {child}, forked from {parent}):" in done.stderr
    assert done.stderr.count("threadtrace summary") == 2


POOL = """\
import multiprocessing, threading

def square(n):
    lock = threading.Lock()
    with lock:
        return n * n

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        print(sum(pool.map(square, range(10))), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork start method")
def test_multiprocessings_forked_workers_flush_their_own_files(tmp_path: Path) -> None:
    """A pool worker ends with os._exit(): it still writes its trace and metrics, its own."""
    (tmp_path / "pool.py").write_text(POOL)
    done = threadtrace_cmd(["run", "--no-summary", "pool.py"], tmp_path)
    assert (done.returncode, done.stdout) == (0, "285\n"), done.stderr
    workers = list(tmp_path.glob("threadtrace-trace.*.metrics.jsonl"))
    assert len(workers) == 2, sorted(p.name for p in tmp_path.iterdir())
    for metrics in workers:
        assert metrics.read_text().count("\n") >= 1  # the exit flush ran in the worker
