"""threadtrace left on in a real program: nothing kept alive, nothing stalled, nothing lost.

Each test here pins one way threadtrace used to hurt its host (memory kept
for good, a thread of its own appearing mid-run, objects kept alive past
their time, files and signals handled unsafely) and fails without its fix.
"""

from __future__ import annotations

import _thread
import _threading_local
import gc
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
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
    # threading's own hook (pytest's keeps the exception, and so its frames);
    # threading.__excepthook__ is 3.10+, _thread's is the same function.
    monkeypatch.setattr(threading, "excepthook", _thread._excepthook)
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
import threading, time
lock = threading.Lock()
def work():
    for _ in range(200):
        with lock:
            pass
    time.sleep(0.002)  # a run long enough (wait_threshold) to be a span
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
    first, second = done.stderr.splitlines()[:2]
    # Four runs, and maybe a few joins and waits that lasted a millisecond.
    dropped = re.fullmatch(
        r"threadtrace: flush_timeout is 0: exited without flushing; (\d+) queued spans and "
        r"the last metrics were dropped",
        first,
    )
    assert dropped is not None and int(dropped.group(1)) >= 4, first
    assert second == "threadtrace summary:"
    assert (
        f"  exported  0 spans to json (threadtrace-trace.jsonl), {dropped.group(1)} lost"
        in done.stderr
    )


def test_a_full_disk_at_exit_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Writes that fail (ENOSPC) are counted; closing the file says so in one line."""
    metrics = tmp_path / "metrics.jsonl"
    done = run(tmp_path, "--json-path", "/dev/full", "--json-metrics-path", str(metrics))
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    # Said once, on one line: when a batch failed, or when closing the file at exit.
    (said,) = [line for line in done.stderr.splitlines() if "No space left" in line]
    assert said.startswith("threadtrace: "), said
    assert "exporter 'json' (/dev/full)" in said, said
    assert re.search(r"^  exported  0 spans to json \(/dev/full\), \d+ lost$", done.stderr, re.M)
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
    return sigterm_once_ready(tmp_path, command)


def sigterm_once_ready(tmp_path: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``python command...`` in ``tmp_path``; once it prints "ready", send SIGTERM;
    collect what it said (at most 30 s later)."""
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
    # The main thread's wait, still going on when stopped (and the threads'
    # runs, those that lasted wait_threshold).
    assert "threadtrace summary:\n  threads   4 started\n  exported  " in done.stderr
    (wait,) = [s for s in read_trace_file(str(tmp_path / "threadtrace-trace.jsonl"))
               if s.name.startswith("Event.wait")]  # fmt: skip
    assert wait.attributes["threadtrace.unfinished"] is True
    report = threadtrace_cmd(["report", "threadtrace-trace.jsonl"], tmp_path)
    assert (report.returncode, report.stderr) == (0, "")
    assert "1 still waiting at exit" in report.stdout


HANG_AT_EXIT = """\
import threading
from threadtrace.testing import wait_for_waiters
ledger = threading.Lock()

def post():
    with ledger:  # blocks for good: the main thread holds it and exits
        pass

ledger.acquire()
threading.Thread(target=post, name="poster", daemon=True).start()
wait_for_waiters(ledger, 1)
"""


def test_a_wait_still_blocked_at_exit_is_a_span_and_in_the_report(tmp_path: Path) -> None:
    """The hang most worth seeing: ended as an unfinished span, counted in both reports."""
    (tmp_path / "hang.py").write_text(HANG_AT_EXIT)
    done = threadtrace_cmd(["run", "hang.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    (wait,) = read_trace_file(str(tmp_path / "threadtrace-trace.jsonl"))
    lock = wait.attributes["threadtrace.primitive.name"]
    assert (wait.name, wait.attributes["thread.name"]) == (f"Lock.acquire {lock}", "poster")
    assert wait.attributes["threadtrace.unfinished"] is True
    assert wait.attributes["threadtrace.holder.thread.name"] == "MainThread"
    assert "\n  at exit   1 wait still blocked: Lock ledger (hang.py:3)\n" in done.stderr
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


#: Prepended to a program: ``main_asleep_at_the_mark()`` returns once the main
#: thread sleeps at the line that ends with the comment ``# <wait>``.
MAIN_ASLEEP_AT_THE_MARK = """\
import sys, threading, time

def main_asleep_at_the_mark():
    main = threading.main_thread()
    with open(__file__) as source:
        mark = next(n for n, text in enumerate(source, 1) if text.endswith("# <wait>\\n"))

    def asleep():
        with open(f"/proc/self/task/{main.native_id}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "S"

    while not (sys._current_frames()[main.ident].f_lineno == mark and asleep()):
        time.sleep(0.01)
"""

SIGTERM_ON_ANOTHER_THREAD = (
    MAIN_ASLEEP_AT_THE_MARK
    + """\
import _thread, signal

stuck = _thread.allocate_lock()
stuck.acquire()

def take_sigterm():
    # Once the main thread sleeps in the acquire below, this thread takes a
    # SIGTERM, as the kernel may hand one to any thread that does not block it.
    main_asleep_at_the_mark()
    print("ready", flush=True)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

threading.Thread(target=take_sigterm, name="taker", daemon=True).start()
# A C wait: only a signal delivered to this thread interrupts it.
stuck.acquire()  # <wait>
print("not reached")
"""
)


def _signals_routed() -> bool:
    try:
        from threadtrace._support import _signals  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
@pytest.mark.skipif(not _signals_routed(), reason="needs the C extension _support/_signals")
def test_a_sigterm_another_thread_takes_still_ends_a_main_thread_asleep_in_c(
    tmp_path: Path,
) -> None:
    """Python runs the handler on the main thread only: a SIGTERM that one of the
    program's threads took would leave a main thread asleep in a C wait asleep for
    good (a multiprocessing worker in its queue's lock: Pool.terminate() hung),
    where SIGTERM's default action ends the process.  It is passed on to the main
    thread: flushed, then ended by SIGTERM."""
    (tmp_path / "stuck.py").write_text(SIGTERM_ON_ANOTHER_THREAD)
    done = subprocess.run(
        [sys.executable, "-m", "threadtrace", "run", "stuck.py"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (-signal.SIGTERM, "ready\n"), done.stderr
    assert "threadtrace summary:" in done.stderr
    assert "could not flush" not in done.stderr


SIGTERM_IN_AN_ENDLESS_C_WAIT = (
    MAIN_ASLEEP_AT_THE_MARK
    + """\
import ctypes

libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)  # zeroes: PTHREAD_MUTEX_INITIALIZER
libc.pthread_mutex_lock(mutex)

def announce():
    main_asleep_at_the_mark()
    print("ready", flush=True)

threading.Thread(target=announce, name="announce", daemon=True).start()
# A self-deadlock no signal interrupts.
libc.pthread_mutex_lock(mutex)  # <wait>
print("not reached")
"""
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the C handler's timer is Linux's")
@pytest.mark.skipif(not _signals_routed(), reason="needs the C extension _support/_signals")
def test_a_sigterm_ends_a_main_thread_that_never_runs_python_again(tmp_path: Path) -> None:
    """pthread_mutex_lock() goes back to sleep after a signal: python's handler never begins.
    SIGTERM's default action would end the process; with threadtrace's handler it
    still ends, by SIGTERM, once the signal sent again for 3 s found no handler
    (unflushed: the flush needs the main thread)."""
    (tmp_path / "joined.py").write_text(SIGTERM_IN_AN_ENDLESS_C_WAIT)
    done = sigterm_once_ready(tmp_path, ["-m", "threadtrace", "run", "joined.py"])
    assert (done.returncode, done.stdout) == (-signal.SIGTERM, "ready\n"), done.stderr


def test_a_sigterm_during_the_exit_steps_takes_effect_when_they_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGTERM while the exit steps run takes effect when they are done, on the
    main thread (on a thread of threadtrace's own, where the first SIGTERM's steps
    run, it cannot put SIGTERM's default back: that handler ends the process);
    one after they are done takes effect at once, not swallowed."""
    from threadtrace._control import exit as exit_

    deaths: list[str] = []
    monkeypatch.setattr(
        exit_, "_die_of_sigterm", lambda: deaths.append(threading.current_thread().name)
    )
    monkeypatch.setattr(runtime, "exiting", True)
    monkeypatch.setattr(runtime, "exit_done", False)
    monkeypatch.setattr(runtime, "sigterm_pending", False)
    exit_._on_sigterm(signal.SIGTERM, None)  # during the steps: noted
    assert (deaths, runtime.sigterm_pending) == ([], True)
    thread = threading.Thread(target=exit_.exit_steps_done, name="threadtrace-sigterm")
    thread.start()
    thread.join(10)
    assert deaths == []
    runtime.exit_done = False
    exit_.exit_steps_done()  # the steps' end, on the main thread: the process ends now
    assert deaths == ["MainThread"]
    exit_._on_sigterm(signal.SIGTERM, None)  # after the steps: at once
    assert deaths == ["MainThread", "MainThread"]


FORKED_TICKER = """\
import os, signal, threading
from threadtrace._runtime import runtime
from threadtrace._support import originals

runtime.recorder.ensure_ready()  # the exporters' SDK providers: the metric ticker runs

def tickers():
    found = []
    for thread in originals.enumerate():
        if thread.name == "OtelPeriodicExportingMetricReader":
            with open(f"/proc/self/task/{thread.native_id}/status") as status:
                mask = int(next(l for l in status if l.startswith("SigBlk:")).split()[1], 16)
            found.append({
                "listed": thread in threading.enumerate(),
                "traced": getattr(thread, "_tt_traced", False),
                "blocks SIGTERM": bool(mask & 1 << (signal.SIGTERM - 1)),
            })
    return found

print(tickers(), flush=True)
pid = os.fork()
if pid == 0:
    print(tickers(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_the_sdk_ticker_restarted_in_a_forked_child_is_threadtraces_own(tmp_path: Path) -> None:
    """The OpenTelemetry SDK starts its metric ticker anew in a forked child, from its
    own fork handler: that thread is threadtrace's too (not traced, not listed, and
    blocking the program's signals, which would otherwise be handed to it)."""
    (tmp_path / "ticker.py").write_text(FORKED_TICKER)
    done = threadtrace_cmd(["run", "--no-summary", "ticker.py"], tmp_path)
    own = "[{'listed': False, 'traced': False, 'blocks SIGTERM': True}]"
    assert (done.returncode, done.stdout) == (0, f"{own}\n{own}\n"), done.stderr


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
    (wait,) = [
        s
        for s in child_spans
        if s.name.startswith("Lock.acquire ") and s.thread_name == "MainThread"
    ]
    assert wait.attributes["threadtrace.holder.thread.name"] == (
        "keeper (in the parent process, at the fork)"
    )
    assert f"threadtrace contention report (process {child}, forked from {parent}):" in (
        done.stderr
    )
    # One summary, the program's, naming the child's files (a child's would be noise).
    assert done.stderr.count("threadtrace summary") == 1
    assert f"threadtrace-trace.{child}.jsonl" in done.stderr.partition("  children  ")[2]


NO_THREADS_AT_EXIT = """\
import os, sys, threading

def refuse_new_threads():
    # What CPython 3.12.0 to 3.12.2 do from the atexit handlers on (fixed in 3.12.3).
    def refuse(*args, **kwargs):
        raise RuntimeError("can't create new thread at interpreter shutdown")
    name = "_start_joinable_thread" if hasattr(threading, "_start_joinable_thread") else "_start_new_thread"
    setattr(threading, name, refuse)

threading.Event().wait(0.01)
pid = os.fork()
if pid == 0:
    refuse_new_threads()  # the child's exporters are all made at its exit
    threading.Event().wait(0.01)
    sys.exit(0)
os.waitpid(pid, 0)
refuse_new_threads()
print("parent", os.getpid(), "child", pid, flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_the_exit_flush_needs_no_new_thread(tmp_path: Path) -> None:
    """Where the interpreter starts no thread at exit (3.12.0 to 3.12.2), the flush runs on
    the exiting thread: a parent and a forked child that made its exporters only at its
    exit both write their spans and metrics, and say nothing."""
    (tmp_path / "exiting.py").write_text(NO_THREADS_AT_EXIT)
    env = child_env(THREADTRACE_WAIT_THRESHOLD="0")
    done = threadtrace_cmd(["run", "--no-summary", "exiting.py"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    parent, child = (int(word) for word in done.stdout.split()[1::2])
    # Not even python's warning about fork() in a threaded process (3.12+): the
    # program's only other threads are threadtrace's (see test_safety).
    assert done.stderr == ""
    for trace in ("threadtrace-trace.jsonl", f"threadtrace-trace.{child}.jsonl"):
        spans = read_trace_file(str(tmp_path / trace))
        assert [s.name for s in spans if s.name.startswith("Event.wait")], trace
        metrics = tmp_path / trace.replace(".jsonl", ".metrics.jsonl")
        assert metrics.read_text().count("\n") >= 1, metrics
    assert parent != child


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


CHURN = """\
import gc, os, threading

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

serial = 0
for _ in range(4):
    for _ in range(25_000):
        serial += 1
        for lock in (threading.Lock(), threading.RLock(), threading.Lock(name=f"l{serial}")):
            with lock:
                pass
    gc.collect()
    print(round(rss_mb(), 1), flush=True)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_memory_stays_flat_while_a_program_creates_and_drops_locks(tmp_path: Path) -> None:
    """300k locks per round, a third of them named uniquely: RSS flat after the first round.

    No exporter: the json one's first export, a second in, imports the OTLP
    encoders (3.7 MB), in whichever round the machine's speed puts it."""
    (tmp_path / "churn.py").write_text(CHURN)
    done = threadtrace_cmd(["run", "--no-summary", "--exporters", "", "churn.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    rounds = [float(line) for line in done.stdout.split()]
    # Before the fix each round kept ~15 MB of counts of dropped locks.
    assert rounds[-1] - rounds[1] < 2.0, rounds


def test_the_counts_of_dropped_locks_are_kept_in_bounded_series() -> None:
    """Past the cap, a dropped lock of a new name counts under "(other)", exactly."""
    from threadtrace import _runtime

    fresh = _runtime.Runtime()
    for i in range(_runtime.MAX_SERIES + 500):
        fresh.retire("lock", f"l{i}", (1, 0, 0, 0, 0, 0))
    totals = fresh.retired_now()
    assert len(totals) == _runtime.MAX_SERIES + 1
    assert totals[("lock", _runtime.OTHER)][0] == 500
    assert sum(counts[0] for counts in totals.values()) == _runtime.MAX_SERIES + 500


def test_the_counts_of_dropped_primitives_add_up_and_keep_the_longest_hold() -> None:
    """Five sums and a maximum for locks, four sums for the waiting kinds, any widths mixed."""
    from threadtrace import _runtime

    fresh = _runtime.Runtime()
    fresh.retire("lock", "a", (1, 2, 3, 4, 5, 60))
    fresh.retire("lock", "a", (10, 20, 30, 40, 50, 6))
    fresh.retire("lock", "a", (100, 0, 0, 0, 0, 70))
    fresh.retire("condition", "c", (1, 2, 3, 4))
    fresh.retire("condition", "c", (10, 20, 30, 40))
    fresh.retire("event", "e", (1, 2, 3, 0))
    fresh.retire("event", "e", (1, 1, 1, 1, 1, 9))  # widths differ: padded with zeros
    assert fresh.retired_now() == {
        ("lock", "a"): (111, 22, 33, 44, 55, 70),
        ("condition", "c"): (11, 22, 33, 44),
        ("event", "e"): (2, 3, 4, 1, 1, 9),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_contention_profile_counts_the_same_with_its_row_cache(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each place's row is looked up once and then cached: the caps (values per
    side, series per primitive, primitives) must put every wait in the row the
    full lookup would, whatever the order the places come in."""
    import random

    from threadtrace._recording import profile

    monkeypatch.setattr(profile, "MAX_PRIMITIVES", 3)
    rng = random.Random(seed)
    sites = [(f"s{i}.py", i, f"f{i}") for i in range(45)]
    waits = [
        (
            rng.choice(["lock", "condition"]),
            f"p{rng.randrange(5)}",
            rng.randrange(-5, 5_000_000),
            rng.random() < 0.9,
            f"t{rng.randrange(45)}",
            rng.choice([*sites, None]),
            rng.choice([None, *(f"h{i}" for i in range(40))]),
            rng.choice([*sites, None]),
            rng.random() < 0.05,
        )
        for _ in range(6000)
    ]

    def profiled(max_rows: int) -> Any:
        monkeypatch.setattr(profile, "MAX_ROWS", max_rows)
        aggregator = profile.ContentionAggregator()
        for wait in waits:
            aggregator.record(*wait)
        return (
            aggregator.series(),
            aggregator.histograms(),
            aggregator.timeouts(),
            aggregator.unfinished(),
        )

    cached = profiled(10_000)
    assert cached == profiled(0)  # 0: the cache empties at every wait, each is looked up
    series = cached[0]
    assert any(name == profile.OTHER for _, name, *_ in series)  # the caps came into play
    assert any(key[2] == profile.OTHER for _, _, key, *_ in series)


def _short_waits(seed: int) -> list[tuple[Any, ...]]:
    """Waits under wait_threshold: (kind, name, ns, ok, site, holder, holder name, holder site)."""
    import random

    rng = random.Random(seed)
    codes = [compile(f"pass  # {i}", f"w{i}.py", "exec") for i in range(6)]
    sites = [runtime.site_cache.get(code, 0, 3) for code in codes]
    me = threading.get_ident()
    return [
        (
            rng.choice(["lock", "condition", "semaphore"]),
            f"p{rng.randrange(3)}",
            rng.choice([0, 1, 999, 5_000, 80_000, 999_999]),
            rng.random() < 0.8,
            rng.choice(sites),
            *rng.choice([(None, None, None), (me, None, sites[0]), (12345, "holder", None)]),
        )
        for _ in range(3000)
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_short_waits_counted_where_they_happen_add_up_to_a_record_each(seed: int) -> None:
    """A wait under wait_threshold is summed in place (Recorder.count_short) rather
    than queued as a record: the contention profile comes out the same, row for
    row, bucket for bucket."""
    from threadtrace._recording.events import WaitRecord

    waits = _short_waits(seed)

    def profiled(in_place: bool) -> Any:
        with capture(clock=FakeClock()):  # an injected clock: the watchdog leaves the queue be
            recorder = runtime.recorder
            assert recorder is not None
            recorder.counts_short_waits = in_place
            for kind, name, wait, ok, site, holder, holder_name, holder_site in waits:
                if in_place:
                    assert recorder.count_short(
                        kind, name, wait, ok, site, None, holder, holder_name, holder_site
                    )
                else:
                    recorder.defer(
                        WaitRecord(
                            kind, name, "wait", 10, 10 + wait, ok, threading.get_ident(),
                            threading.current_thread().name, site, None,
                            holder=holder, holder_name=holder_name, holder_site=holder_site,
                        )
                    )  # fmt: skip
            assert len(recorder._pending) == (0 if in_place else len(waits))
            recorder.drain()
            profile = runtime.profile
            return (profile.series(), profile.histograms(), profile.timeouts())

    in_place = profiled(True)
    assert in_place == profiled(False)
    assert len(in_place[0]) > 10 and in_place[2]  # many rows, some timeouts


def test_the_c_core_sums_a_short_wait_as_python_does() -> None:
    """_lockcore.sum_short, which the C core installs as Recorder.sum_short, adds
    each wait to the same row as the Python one: bucket bounds, negative waits,
    the longest and shortest, and a new place refused once the sums are full."""
    from threadtrace._primitives import core
    from threadtrace._recording.recorder import Recorder, sum_short
    from threadtrace._support.points import WAIT_BUCKETS
    from threadtrace._support.sites import Site

    if core.lockcore is None:
        pytest.skip("the C core is not built")
    if core.SPEEDUPS:
        assert Recorder.sum_short is core.lockcore.sum_short
    site = Site(None, 7)
    bounds = [int(bound * 1e9) for bound in WAIT_BUCKETS[:12]]
    waits = [-5, 0, 1, 999, *bounds, *(b + 1 for b in bounds), 10**11, 3 * 10**9]
    places = [
        ("lock", "a", True, None, None, None, None),
        ("condition", "b", False, site, 7, "t", site),
    ]
    in_python: dict[Any, Any] = {}
    in_c: dict[Any, Any] = {}
    for index, wait in enumerate(waits):
        kind, name, ok, where, holder, holder_name, holder_site = places[index % 2]
        args = (kind, name, ok, where, holder, holder_name, holder_site, wait)
        assert sum_short(in_python, 2, WAIT_BUCKETS, *args)
        assert core.lockcore.sum_short(in_c, 2, WAIT_BUCKETS, *args)
    assert in_c == in_python
    assert sum(row[0] for row in in_c.values()) == len(waits)
    full = ("lock", "new", True, None, None, None, None, 10)
    assert not sum_short(in_python, 2, WAIT_BUCKETS, *full)
    assert not core.lockcore.sum_short(in_c, 2, WAIT_BUCKETS, *full)
    assert in_c == in_python and len(in_c) == 2


@pytest.mark.parametrize(
    "make", [threadtrace.Lock, threadtrace.RLock, threadtrace.Condition, threadtrace.Semaphore,
             threadtrace.BoundedSemaphore, threadtrace.Event, threading.Thread],
)  # fmt: skip
def test_the_c_core_makes_the_watchdogs_entry_as_python_does(make: Any) -> None:
    """_lockcore.begin_wait, which the C core installs as hooks.begin_wait, makes
    the entry hooks.begin made in Python: every attribute the watchdog reads, on
    top of the wait it interrupts, in the current context, at the injected clock's
    time; and the entry's attributes the watchdog writes take its values."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    from threadtrace._detect import hooks
    from threadtrace._primitives import core

    if not core.SPEEDUPS:  # the C core reads the injected clock only while in use
        pytest.skip("the C core is not in use")
    assert core.lockcore is not None and hooks.begin_wait is core.lockcore.begin_wait
    fields = ("primitive", "operation", "timeout", "context", "notifies", "unheard", "taken",
              "doomed", "recorded", "woken", "timed")  # fmt: skip
    primitive = make()
    if isinstance(primitive, (threadtrace.Lock, threadtrace.Semaphore)):
        primitive.acquire()
        primitive.release()
    if isinstance(primitive, threadtrace.Condition):
        with primitive:
            primitive.notify()  # unheard: nobody waits
    clock = FakeClock()
    with capture(clock=clock), trace.get_tracer("test").start_as_current_span("waiting"):
        entries = []
        for begin_wait in (hooks._begin_wait, core.lockcore.begin_wait):
            blocked: dict[int, Any] = {}
            began = clock.monotonic_ns()
            outer = begin_wait(primitive, "acquire", None, blocked, otel_context.get_current)
            clock.advance(1.5)
            inner = begin_wait(primitive, "wait", 2.0, blocked, otel_context.get_current)
            assert (outer.since, inner.since) == (began, began + 1_500_000_000)
            assert blocked == {threading.get_ident(): inner}
            assert inner.previous is outer and outer.previous is None
            entries.append((outer, inner))
        (py_outer, py_inner), (c_outer, c_inner) = entries
        for py, c in ((py_outer, c_outer), (py_inner, c_inner)):
            assert [getattr(c, field) for field in fields] == [
                getattr(py, field) for field in fields
            ]
        assert c_inner.context is otel_context.get_current()
    c_inner.woken = c_inner.recorded = True
    c_inner.doomed = "the deadlock's report"
    assert (c_inner.woken, c_inner.recorded, c_inner.doomed) == (
        True,
        True,
        "the deadlock's report",
    )


def _count_short_implementations() -> list[Any]:
    """Recorder.count_short as written in Python, and the C core's (when built)."""
    from threadtrace._primitives import core
    from threadtrace._recording.recorder import count_short_in_python

    found = [pytest.param(count_short_in_python, id="python")]
    if core.SPEEDUPS:  # it reads the C core's guard, in use only then
        found.append(pytest.param(core.lockcore.count_short, id="c"))
    return found


@pytest.mark.parametrize("app_provider", [False, True], ids=["own", "app's"])
def test_short_waits_are_summed_in_place_from_the_start_unless_a_provider_takes_each(
    tmp_path: Path, app_provider: bool
) -> None:
    """Settled as patch() makes the instruments, not at the first drain (the
    watchdog's, half a second after the first wait: until then each short wait
    was a record to queue).  The program's own MeterProvider takes a point per
    wait: then never."""
    program = textwrap.dedent(
        """
        import sys
        if sys.argv[1] == "1":
            from opentelemetry import metrics
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        import threadtrace
        threadtrace.patch()
        from threadtrace._runtime import runtime
        print(runtime.recorder.counts_short_waits)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(int(app_provider))],
        env=child_env(THREADTRACE_JSON_PATH=str(tmp_path / "trace.jsonl")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(not app_provider)


@pytest.mark.parametrize("count_short", _count_short_implementations())
def test_a_short_wait_is_queued_when_it_cannot_be_counted_in_place(count_short: Any) -> None:
    """Not counted in place (a provider takes a point per wait), long enough
    for a span, made where instrumentation was suppressed (by either key),
    inside threadtrace's recording, or the counts' lock busy (never waited
    for): the wait is queued.  The threshold is the configuration's of the
    moment."""
    from opentelemetry import context as otel_context

    from threadtrace._primitives import core
    from threadtrace._recording.recorder import _SUPPRESS_KEY, Recorder

    if core.SPEEDUPS:  # the C core installs its own, with what it reads
        assert Recorder.__dict__["count_short"] is core.lockcore.count_short
    with capture(wait_threshold=0.002):
        recorder = runtime.recorder
        assert recorder is not None
        assert not recorder.counts_short_waits  # capture's reader takes a point per wait
        assert not count_short(recorder, "lock", "L", 1000, True, None, None)
        recorder.counts_short_waits = True
        assert count_short(recorder, "lock", "L", 1000, True, None, None)
        assert count_short(recorder, "lock", "L", 1_999_999, True, None, None)
        assert not count_short(recorder, "lock", "L", 2_000_000, True, None, None)
        threadtrace.configure(wait_threshold=0.001)
        # Settled again as configure() made the instruments anew.
        assert not recorder.counts_short_waits
        recorder.counts_short_waits = True
        assert not count_short(recorder, "lock", "L", 1_000_000, True, None, None)
        assert count_short(recorder, "lock", "L", 999_999, True, None, None)
        for key in (_SUPPRESS_KEY, "suppress_instrumentation"):
            suppressed = otel_context.set_value(key, True)
            assert type(suppressed) is not dict  # OpenTelemetry's Context, a dict subclass
            assert not count_short(recorder, "lock", "L", 1000, True, None, suppressed)
            assert count_short(
                recorder, "lock", "L", 1000, True, None, otel_context.set_value(key, False)
            )
        before = runtime.set_recording(True)
        try:
            assert not count_short(recorder, "lock", "L", 1000, True, None, None)
        finally:
            runtime.set_recording(before)
        with recorder._short_lock:  # held by a thread switched out mid-count
            assert not count_short(recorder, "lock", "L", 1000, True, None, None)
        assert count_short(recorder, "lock", "L", 1000, True, None, None, 7, "holder", None)
        sums = recorder._short
        me = threading.current_thread().name
        assert sums[("lock", "L", True, me, None, None, None, None)][0] == 5
        assert sums[("lock", "L", True, me, None, 7, "holder", None)][0] == 1


def test_the_c_core_counts_a_short_wait_as_python_does() -> None:
    """_lockcore.count_short, which the C core installs as Recorder.count_short,
    sums the same waits into the same rows, under a thread's name as threading
    gives it: renamed, or from a class with a name of its own."""
    from threadtrace._primitives import core
    from threadtrace._recording.recorder import count_short_in_python

    if not core.SPEEDUPS:  # it reads the C core's guard, in use only then
        pytest.skip("the C core is not in use")

    class Named(threading.Thread):
        @property
        def name(self) -> str:  # type: ignore[override]
            return "named by its class"

        @name.setter
        def name(self, value: str) -> None:
            pass

    def sums(count_short: Any) -> Any:
        with capture():
            recorder = runtime.recorder
            assert recorder is not None
            recorder.counts_short_waits = True
            waits = [(w, ok) for w in (0, 1, 10**4, 10**5) for ok in (True, False)]

            def count() -> None:
                for wait, ok in waits:
                    assert count_short(recorder, "semaphore", "S", wait, ok, None, None)

            renamed = threading.Thread(target=count)
            renamed.name = "renamed"
            for thread in (renamed, Named(target=count)):
                thread.start()
                thread.join(10)
            count()
            # The semaphore's rows only: a join that blocked on one of the
            # threads is summed too (by the installed count_short), for as
            # long as it happened to wait.
            return {place: row for place, row in recorder._short.items() if place[0] == "semaphore"}

    in_c = sums(core.lockcore.count_short)
    assert in_c == sums(count_short_in_python)
    assert {place[3] for place in in_c} == {
        "renamed",
        "named by its class",
        threading.current_thread().name,
    }


def test_a_join_whose_recording_fails_returns_as_threading_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The join's outcome stands: an error recording it is counted, never raised."""
    release = threading.Event()
    with capture():
        worker = threadtrace.Thread(target=release.wait, args=(10,))
        worker.start()
        recorder = runtime.recorder
        assert recorder is not None

        def broken(*args: Any) -> bool:
            raise RuntimeError("recording is broken")

        monkeypatch.setattr(recorder, "count_short", broken)
        errors = runtime.internal_errors
        try:
            assert worker.join(0.01) is None  # times out: the worker waits for release
            assert worker.is_alive()
            assert runtime.internal_errors == errors + 1
        finally:
            release.set()
            worker.join(10)


def test_the_contention_profile_keeps_bounded_primitives() -> None:
    from threadtrace._recording import profile

    aggregator = profile.ContentionAggregator()
    for i in range(profile.MAX_PRIMITIVES + 10):
        aggregator.record("lock", f"l{i}", 1000, True, "t", None, None, None)
    rows = aggregator.unfinished() or aggregator.timeouts()
    assert len(rows) == profile.MAX_PRIMITIVES + 1
    assert dict(rows)[("lock", profile.OTHER)] == 0


JOIN_ALL = """\
import threading
from concurrent.futures import ThreadPoolExecutor

done = threading.Event()
workers = [threading.Thread(target=done.wait, args=(10,)) for _ in range(3)]
for worker in workers:
    worker.start()
print(threading.active_count(), len(threading.enumerate()))
done.set()
main = threading.main_thread()
for thread in threading.enumerate():  # the tutorial's way to wait for every thread
    if thread is not main:
        thread.join()
print(sorted(thread.name for thread in threading.enumerate()))
"""


def test_threadtraces_own_threads_are_not_the_programs_to_enumerate_or_join(
    tmp_path: Path,
) -> None:
    """Joining every thread but the main one must not wait for threadtrace's daemon threads."""
    (tmp_path / "join_all.py").write_text(JOIN_ALL)
    done = subprocess.run(
        [sys.executable, "-m", "threadtrace", "run", "--no-summary", "join_all.py"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "4 4\n['MainThread']\n"), done.stderr


REENTER = """\
import threading
lock = threading.Lock()

def reenter():
    with lock:
        with lock:  # waits for itself
            pass

worker = threading.Thread(target=reenter, name="reenter", daemon=True)
worker.start()
worker.join(timeout=3)
"""


def test_a_problem_the_watchdog_finds_is_in_the_trace_and_the_metrics(tmp_path: Path) -> None:
    """Found on threadtrace's own thread, recorded all the same: a span and a count."""
    (tmp_path / "reenter.py").write_text(REENTER)
    done = threadtrace_cmd(
        ["run", "--no-summary", "--deadlock-after", "0.2", "reenter.py"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("threadtrace: DEADLOCK: reenter waits for itself"), done.stderr
    (problem,) = [
        s
        for s in read_trace_file(str(tmp_path / "threadtrace-trace.jsonl"))
        if s.name == "threadtrace.deadlock"
    ]
    assert "reenter" in problem.attributes["threadtrace.problem.threads"]
    metrics = (tmp_path / "threadtrace-trace.metrics.jsonl").read_text()
    assert '"threadtrace.problems"' in metrics


ABBA = """\
import threading
a, b = threading.Lock(), threading.Lock()
both = threading.Barrier(2)

def one():
    with a:
        both.wait()
        with b:
            pass

def two():
    with b:
        both.wait()
        with a:
            pass

workers = [threading.Thread(target=f, name=f.__name__) for f in (one, two)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
"""


def test_on_deadlock_exit_leaves_the_deadlock_in_the_trace_and_the_summary(
    tmp_path: Path,
) -> None:
    """Exit status 3, after the exit steps: the waits in the cycle are spans, the files whole."""
    (tmp_path / "abba.py").write_text(ABBA)
    done = threadtrace_cmd(
        ["run", "--on-deadlock", "exit", "--deadlock-after", "0.2", "abba.py"], tmp_path
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("threadtrace: DEADLOCK: ")
    assert "\nthreadtrace summary:\n" in done.stderr
    assert "  at exit   3 waits still blocked: " in done.stderr  # two locks, the main join
    spans = read_trace_file(str(tmp_path / "threadtrace-trace.jsonl"))
    unfinished = sorted(
        s.attributes["thread.name"]
        for s in spans
        if s.name.startswith("Lock.acquire") and s.attributes.get("threadtrace.unfinished")
    )
    assert unfinished == ["one", "two"]
    assert [s for s in spans if s.name == "threadtrace.deadlock"]
    report = threadtrace_cmd(["report", "threadtrace-trace.jsonl"], tmp_path)
    assert "1 still waiting at exit" in report.stdout


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_threadtraces_own_threads_leave_the_programs_signals_to_the_main_thread() -> None:
    """SIGINT and SIGTERM are blocked in threadtrace's threads: the kernel then hands a
    process-directed one to a thread whose wait it interrupts, not to one of ours."""
    from threadtrace._support import originals

    masks: list[set[int]] = []
    thread = originals.own_thread(
        lambda: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])), "probe"
    )
    thread.start()
    thread.join(10)
    assert {signal.SIGINT, signal.SIGTERM} <= masks[0]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # this one: as it was
