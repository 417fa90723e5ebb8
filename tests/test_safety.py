"""threadtrace never hurts the host: no exceptions, no recursion, clear config errors."""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest
from helpers import contend
from opentelemetry.sdk.trace import TracerProvider

import threadtrace
from threadtrace._runtime import runtime as _state
from threadtrace._support import originals as _originals
from threadtrace.testing import FakeClock, capture, wait_for_waiters


class ExplodingTracerProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer exploded")


def test_a_failing_tracer_is_logged_once_and_disabled(caplog: pytest.LogCaptureFixture) -> None:
    with capture(patch=False, wait_threshold=0):
        threadtrace.configure(tracer_provider=ExplodingTracerProvider())
        lock = threadtrace.Lock()
        with caplog.at_level(logging.WARNING, logger="threadtrace"):
            contend(lock)
            contend(lock)
        assert lock.statistics().contended == 2  # the program's behaviour is unchanged
        assert _state.recorder is not None and _state.recorder.spans_enabled is False
    warnings = [r for r in caplog.records if r.name == "threadtrace"]
    assert [r.getMessage() for r in warnings] == [
        "threadtrace disabled its spans after an error while recording; "
        "the program continues untraced for spans"
    ]
    assert warnings[0].exc_info is not None and str(warnings[0].exc_info[1]) == "tracer exploded"


def test_a_failing_tracer_is_logged_once_however_many_records_were_queued(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Thread runs queued before the failure are dropped quietly, not one warning each."""

    class ExplodingTracer:
        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("span exploded")

    class ExplodingSpansProvider(TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            return ExplodingTracer()

    with capture(patch=False, wait_threshold=0):
        threadtrace.configure(tracer_provider=ExplodingSpansProvider())
        threads = [threadtrace.Thread(target=lambda: None) for _ in range(3)]
        with caplog.at_level(logging.WARNING, logger="threadtrace"):
            for thread in threads:
                thread.start()
                thread.join(timeout=10)
            assert _state.recorder is not None
            _state.recorder.drain()
            _state.publish_notices()
        assert _state.recorder.spans_enabled is False
    assert [r.getMessage() for r in caplog.records if r.name == "threadtrace"] == [
        "threadtrace disabled its spans after an error while recording; "
        "the program continues untraced for spans"
    ]


def test_a_failing_meter_is_logged_once_and_disabled(caplog: pytest.LogCaptureFixture) -> None:
    class ExplodingMeterProvider:
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("meter exploded")

    with capture(patch=False, wait_threshold=0, hold_threshold=3600) as cap:  # no hold spans
        threadtrace.configure(
            meter_provider=ExplodingMeterProvider(), tracer_provider=cap.tracer_provider
        )
        lock = threadtrace.Lock()
        with caplog.at_level(logging.WARNING, logger="threadtrace"):
            contend(lock)
            contend(lock)
        assert _state.recorder is not None and _state.recorder.metrics_enabled is False
        assert [s.name for s in cap.spans()] == [f"Lock.acquire {lock.name}"] * 2  # spans go on
    assert [r.getMessage() for r in caplog.records if r.name == "threadtrace"] == [
        "threadtrace disabled its metrics after an error while recording; "
        "the program continues untraced for metrics"
    ]


def test_primitives_touched_while_recording_are_neither_traced_nor_recorded() -> None:
    """The recursion guard: what the recording path creates or blocks on stays out."""
    with capture(wait_threshold=0, hold_threshold=3600) as cap:  # no hold spans
        with _state.guarded():
            assert type(threading.Lock()) is type(_originals.Lock())
            assert type(threading.Event()) is _originals.Event
        lock = threadtrace.Lock()
        lock.acquire()
        result: list[bool] = []

        def take_while_recording() -> None:
            with _state.guarded():
                result.append(lock.acquire(timeout=30))
                lock.release()

        taker = threading.Thread(target=take_while_recording)
        taker.start()
        wait_for_waiters(lock, 1)
        lock.release()
        taker.join(10)
    assert result == [True]
    assert [
        s.name for s in cap.spans() if not s.name.startswith(("Thread.run", "Thread.join"))
    ] == []
    assert lock.statistics().contended == 1  # counted, but not recorded


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"wait_threshold": -1}, "wait_threshold must be a number of seconds >= 0, got -1"),
        ({"wait_threshold": "1ms"}, "wait_threshold must be a number of seconds >= 0, got '1ms'"),
        ({"hold_threshold": math.nan}, "hold_threshold must be a number of seconds >= 0, got nan"),
        ({"hold_threshold": True}, "hold_threshold must be a number of seconds >= 0, got True"),
        ({"sample_every": -1}, "sample_every must be a whole number >= 0, got -1"),
        ({"sample_every": 1.5}, "sample_every must be a whole number >= 0, got 1.5"),
        (
            {"exporters": ("console", "jaeger")},
            "unknown exporter 'jaeger'; installed exporters: console, json, memory, otlp, perfetto",
        ),
        (
            {"exporter": "console"},
            "unknown setting 'exporter'; settings: deadlock_after, exclude_modules, "
            "exporters, flush_timeout, hold_threshold, json_metrics_path, json_path, "
            "lock_order, on_deadlock, perfetto_path, report, report_sort, report_top, "
            "sample_every, span_limit, stuck_after, wait_threshold, watchdog",
        ),
    ],
)
def test_invalid_settings_fail_with_one_exact_message(
    settings: dict[str, Any], message: str
) -> None:
    before = threadtrace.current_config()
    with pytest.raises(threadtrace.ConfigurationError) as raised:
        threadtrace.configure(**settings)
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)
    assert threadtrace.current_config() is before  # nothing changed


def test_exporters_accept_a_comma_separated_string() -> None:
    assert threadtrace.Config(exporters="console, memory").exporters == ("console", "memory")


def run_script(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_keeps_working() -> None:
    """Fork while another thread holds a traced lock; the child uses threading normally."""
    done = run_script(
        """
        import os, threading, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a threaded parent
        import threadtrace
        threadtrace.patch(exporters=(), wait_threshold=0)
        lock = threading.Lock()
        holding, release = threading.Event(), threading.Event()
        def hold():
            with lock:
                holding.set()
                release.wait(30)
        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(30)
        pid = os.fork()
        if pid == 0:
            fresh = threading.Lock()
            with fresh:
                pass
            worker = threading.Thread(target=lambda: threading.Event().wait(0))
            worker.start()
            worker.join(10)
            os._exit(0 if not worker.is_alive() else 3)
        release.set()
        holder.join(10)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


@pytest.mark.skipif(
    not (sys.version_info >= (3, 12) and sys.platform == "linux"),
    reason="CPython warns at a fork in a multi-threaded process from 3.12 (threadtrace: on Linux)",
)
@pytest.mark.parametrize("action", ["always", "error"])
@pytest.mark.parametrize("fork", ["os.fork()", "pty.fork()[0]"])
@pytest.mark.parametrize("program_thread", [False, True], ids=["alone", "with-a-thread"])
def test_the_fork_warning_counts_the_programs_threads_only(
    program_thread: bool, fork: str, action: str
) -> None:
    """CPython's "is multi-threaded" warning at fork(), under threadtrace, is what the same
    program gets without it: none for a program alone with threadtrace's threads, the same
    line and text (and never an exception) for one with a thread of its own."""
    source = f"""
        import os, pty, sys, threading, warnings
        warnings.simplefilter({action!r}, DeprecationWarning)
        if sys.argv[1] == "traced":
            import threadtrace
            threadtrace.patch()
            with threading.Lock():
                pass
        def threads():
            with open("/proc/self/stat") as stat:
                return int(stat.read().rsplit(")", 1)[1].split()[17])
        stop = threading.Event()
        if {program_thread}:
            threading.Thread(target=stop.wait, args=(30,)).start()
        before = threads()
        pid = {fork}
        if pid == 0:
            os._exit(0)
        stop.set()
        os.waitpid(pid, 0)
        print(before)
    """

    def run(mode: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(source), mode],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout), re.sub(r"pid=\d+", "pid=N", done.stderr)

    bare_threads, bare = run("bare")
    traced_threads, traced = run("traced")
    assert traced_threads > bare_threads  # threadtrace's own threads were there at the fork
    assert traced == bare
    if program_thread and action == "always":
        assert "is multi-threaded, use of fork" in traced


def test_exit_flushes_within_a_bounded_time() -> None:
    """The console exporter flushes at exit, and exit does not hang."""
    done = run_script(
        """
        import threading, threadtrace
        threadtrace.patch(wait_threshold=0, exporters=["console"])
        lock = threading.Lock()
        lock.acquire()
        t = threading.Thread(target=lambda: (lock.acquire(), lock.release()), name="late")
        t.start()
        import threadtrace.testing
        threadtrace.testing.wait_for_waiters(lock, 1)
        lock.release()
        t.join(10)
        """
    )
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"^\[threadtrace\] [0-9:.]{12} late +Lock\.acquire lock \(<string>:4\) +[0-9.]+ [mµn]?s +"
        r"at <string>:6, held by MainThread",
        done.stderr,
        re.MULTILINE,
    ), done.stderr
    assert "Traceback" not in done.stderr


def test_start_returns_before_the_thread_span_is_recorded() -> None:
    """Recording in a new thread never delays start(): the starter may hold what it needs.

    ThreadPoolExecutor.submit holds a global lock while start() waits for the
    new thread; a span recorded before the thread reported in would deadlock.
    """
    gate = _originals.allocate_lock()

    class GatedTracerProvider(TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            with gate:
                return super().get_tracer(*args, **kwargs)

    with capture(wait_threshold=0) as cap:  # every run a span, however short
        provider = GatedTracerProvider()
        provider.add_span_processor(cap.tracer_provider._active_span_processor)
        threadtrace.configure(tracer_provider=provider)
        with gate:  # recording cannot proceed while this is held...
            worker = threading.Thread(target=int, name="gated")
            worker.start()  # ...and start() still returns
        worker.join(10)
        assert not worker.is_alive()
    runs = [s for s in cap.spans() if s.name.startswith("Thread.run")]  # (the join may block)
    assert [s.attributes["thread.name"] for s in runs] == ["gated"]  # type: ignore[index]


def test_the_lock_core_in_use_is_the_one_asked_for() -> None:
    """THREADTRACE_PURE_PYTHON=1 selects the pure-Python core; otherwise C when built."""
    import os

    from threadtrace._primitives import core as _locks
    from threadtrace._primitives import pycore as _core

    pure = bool(os.environ.get("THREADTRACE_PURE_PYTHON"))
    assert _locks.SPEEDUPS is (not pure and _locks.lockcore is not None)
    if pure:
        assert threadtrace.Lock.__mro__[-2] is _core.LockCore
        assert threadtrace.RLock.__mro__[-2] is _core.LockCore
    elif _locks.SPEEDUPS:
        for cls in (threadtrace.Lock, threadtrace.RLock):
            assert cls.__mro__[-2].__module__ == "threadtrace._primitives._lockcore"


def test_a_failing_recorder_never_breaks_a_lock(caplog: pytest.LogCaptureFixture) -> None:
    """Bookkeeping errors in the slow paths are swallowed: the lock still works and is released."""

    class BrokenRecorder:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> None:
                raise RuntimeError(f"recorder.{name} failed")

            return fail

    # An injected clock keeps the watchdog thread idle: it would find the
    # broken recorder too (when it records what the lock queued), at its own pace.
    with capture(
        patch=False, wait_threshold=0, hold_threshold=0, sample_every=1, clock=FakeClock()
    ):
        _state.recorder = BrokenRecorder()  # type: ignore[assignment]
        saved_errors, _state.internal_errors = _state.internal_errors, 0
        lock = threadtrace.Lock()
        with caplog.at_level(logging.WARNING, logger="threadtrace"):
            contend(
                lock
            )  # a contended acquire and measured holds, all recorded into the broken recorder
            with lock:
                pass
        assert not lock.locked()
        assert lock.acquire(False) is True
        lock.release()
        assert lock.statistics().acquisitions == 4
        errors, _state.internal_errors = _state.internal_errors, saved_errors
    # Four measured holds (every acquisition is sampled) and one contended acquire.
    assert errors == 5
    (logged,) = [r.getMessage() for r in caplog.records if r.name == "threadtrace"]
    assert re.fullmatch(
        r"threadtrace hit an internal error in Lock\.\w+; the program continues, "
        r"further such errors are counted, not logged",
        logged,
    )


def test_a_broken_clock_keeps_locks_working_and_counts_exact(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An injected clock that raises while holds are measured: locks work, counts stay exact."""

    class ClockThatBreaks:
        def monotonic_ns(self) -> int:
            raise RuntimeError("clock broke")

        def time_ns(self) -> int:
            raise RuntimeError("clock broke")

    with capture(patch=False, sample_every=3):
        lock = threadtrace.Lock()
        for _ in range(2):
            with lock:
                pass
        saved_errors, _state.internal_errors = _state.internal_errors, 0
        with caplog.at_level(logging.WARNING, logger="threadtrace"):
            _state.clock = ClockThatBreaks()  # type: ignore[assignment]
            for _ in range(5):  # the 3rd and the 6th acquisitions are measured
                with lock:
                    pass
            _state.clock = FakeClock()
            errors, _state.internal_errors = _state.internal_errors, saved_errors
            _state.publish_notices()  # what the watchdog would log soon, logged now
        assert errors >= 1
        assert not lock.locked()
        assert lock.acquire(False) is True
        lock.release()
        assert lock.statistics().acquisitions == 8
    assert [r.getMessage() for r in caplog.records if r.name == "threadtrace"] == [
        "threadtrace hit an internal error in clock; the program continues, "
        "further such errors are counted, not logged"
    ]
