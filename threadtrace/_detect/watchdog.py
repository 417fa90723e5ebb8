"""The watchdog: a thread of threadtrace's own that looks for problems twice a second.

Every traced operation that blocks registers itself in the runtime's wait
table for as long as it blocks (slow path only: an uncontended acquire never
gets there; see :mod:`.hooks`).  The watchdog wakes at least every
:data:`MAX_INTERVAL` seconds, and at once when a thread ends or a problem is
queued, and runs :func:`scan`: the looks for deadlocks (:mod:`.deadlocks`),
stuck threads (:mod:`.stuck`), starved waits (:mod:`.starvation`) and
primitives held by finished threads (:mod:`.finished`).

:func:`scan` does one look, with the clock threadtrace uses, so tests drive
it directly with a fake clock.
"""

from __future__ import annotations

from typing import Callable, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support.clock import SystemClock
from . import deadlocks, finished, starvation, stuck
from .problems import Problem, publish_pending, report

#: Longest pause between two looks, in seconds.
MAX_INTERVAL = 0.5


def ensure_started() -> None:
    """Start the watchdog thread of this process if it is not running.

    It runs with ``watchdog=false`` too: it is also the thread that records
    what the program's threads queued and writes threadtrace's log lines;
    it then only does that.
    """
    state = runtime.detect
    # runtime.pid, not os.getpid(): a system call on every blocked wait.
    if state.watchdog is not None and state.watchdog_pid == runtime.pid:
        return
    with runtime.book:
        if state.watchdog is not None and state.watchdog_pid == runtime.pid:
            return
        state.watchdog_pid = runtime.pid
        state.watchdog = _originals.own_thread(_watch, "threadtrace-watchdog")
    with runtime.guarded():  # threadtrace's own thread: never traced
        started = _originals.start_own(state.watchdog)
    if not started:  # no thread starts now (see start_own): the next wait tries again
        state.watchdog = None
        return
    for hook in list(runtime.watchdog_hooks):  # threads of the layers above start with it
        try:
            hook()
        except Exception as error:  # noqa: BLE001 - never raise into the program
            runtime.internal_error("watchdog", error)


def wake() -> None:
    """Have the watchdog look now (starting it if needed)."""
    ensure_started()
    runtime.detect.wake.set()


def _interval() -> float:
    config = runtime.config
    interval = min(MAX_INTERVAL, config.deadlock_after / 2)
    if config.stuck_after:
        interval = min(interval, config.stuck_after / 4)
    return max(interval, 0.01)


def _watch() -> None:
    while True:
        state = runtime.detect
        state.wake.wait(_interval())
        state.wake.clear()
        if state.manual or not isinstance(runtime.clock, SystemClock):
            continue  # under an injected clock, its owner looks with scan()
        for step in (_record_queued, _publish_notices, _look):
            try:  # one step failing must not stop the others
                step()
            except Exception as error:  # noqa: BLE001 - the watchdog must outlive its bugs
                runtime.internal_error("watchdog", error)


def _record_queued() -> None:
    recorder = runtime.recorder
    if recorder is not None:
        recorder.drain()  # the waits the program's threads queued


def _publish_notices() -> None:
    with runtime.guarded():
        runtime.publish_notices()


def _look() -> None:
    with runtime.guarded(), runtime.detect.looking:
        if runtime.config.watchdog:
            scan()
        else:
            publish_pending()


def scan(now: Optional[int] = None) -> list[Problem]:
    """Look once; report and return what is new (problems found elsewhere first)."""
    problems = publish_pending()
    if now is None:
        now = runtime.clock.monotonic_ns()
    snapshot = dict(runtime.detect.blocked)
    at = now
    looks: list[Callable[[], list[Problem]]] = [
        lambda: finished.look(at),
        lambda: deadlocks.look(snapshot, at),
        # After deadlocks: a deadlocked or starved wait is not also a stuck one.
        lambda: starvation.look(snapshot, at),
        lambda: stuck.look(snapshot, at),
    ]
    for look in looks:
        try:  # one look failing must not lose the others' findings
            found = look()
        except Exception as error:  # noqa: BLE001 - the watchdog must outlive its bugs
            runtime.internal_error("watchdog", error)
            continue
        for problem in found:
            report(problem)
        problems.extend(found)
    return problems
