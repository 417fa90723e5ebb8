"""A Condition's wait ends as it is woken; taking its lock back is the lock's own acquisition.

Everything threadtrace does when a wait ends (its counts, its sums or its
record) happens before the lock is taken back: with the lock held it would
lengthen every other thread's wait for it.  A wait for the lock then is a
wait of the lock, with who held it, as any other acquisition's.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import pytest

import threadtrace
from threadtrace._support import originals
from threadtrace.testing import Capture, FakeClock, capture, wait_for_waiters, wait_until


def waiting(
    cond: Any, timeout: float = 10, results: Optional[list[bool]] = None
) -> threading.Thread:
    """A thread named "waiter", started, that waits on ``cond`` once (and notes what it got)."""

    def wait() -> None:
        with cond:
            got = cond.wait(timeout)
        if results is not None:
            results.append(got)

    waiter = threading.Thread(target=wait, name="waiter")
    waiter.start()
    return waiter


def test_a_condition_wait_is_settled_before_its_lock_is_taken_back(clock: FakeClock) -> None:
    with capture(clock=clock):
        cond = threading.Condition(threading.Lock(), name="ready")

        waiter = waiting(cond)
        wait_for_waiters(cond, 1)
        with cond:
            cond.notify()
            # Woken, the waiter settles its wait, then blocks taking the lock back.
            wait_until(lambda: cond.statistics().blocked == 1, what="the wait settled")
            assert cond.statistics().waiters == 0
            assert waiter.is_alive()
        waiter.join(10)
        assert not waiter.is_alive()


def test_taking_an_rlock_back_is_its_contended_acquisition_behind_its_holder(cap: Capture) -> None:
    cond = threading.Condition(name="ready")  # over a traced RLock
    lock = cond._lock  # type: ignore[attr-defined]

    waiter = waiting(cond)
    wait_for_waiters(cond, 1)
    with cond:
        before = lock.statistics()
        cond.notify()
        wait_for_waiters(lock, 1)  # woken, and waiting for the lock held here
        assert cond.statistics().blocked == 1
        cap.clock.advance(0.5)  # type: ignore[union-attr]
    waiter.join(10)
    assert not waiter.is_alive()

    after = lock.statistics()
    assert after.acquisitions == before.acquisitions + 1  # the waiter taking it back
    assert after.contended == before.contended + 1
    assert after.max_wait == 0.5
    assert cond.statistics().max_wait == 0.0  # woken at once: the lock's wait is not in it
    (span,) = [s for s in cap.spans() if s.name == f"RLock.acquire {lock.name}"]
    assert span.attributes is not None
    assert span.attributes["thread.name"] == "waiter"
    assert span.attributes["threadtrace.holder.thread.name"] == "MainThread"
    assert (span.end_time - span.start_time) / 1e9 == 0.5  # type: ignore[operator]


def test_a_wait_on_a_lock_threadtrace_does_not_trace_runs_until_the_lock_is_back(
    clock: FakeClock,
) -> None:
    """Nothing else would record that taking back: it stays part of the wait."""
    taking_back = threading.Event()

    class Plain:
        """threading's own lock, telling when the waiting thread blocks on it the second time."""

        def __init__(self) -> None:
            self.lock = originals.allocate_lock()
            self.taken = 0

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if blocking and threading.current_thread().name == "waiter":
                self.taken += 1
                if self.taken == 2:
                    taking_back.set()
            return self.lock.acquire(blocking, timeout)

        def release(self) -> None:
            self.lock.release()

        __enter__ = acquire

        def __exit__(self, *exc: object) -> None:
            self.release()

    with capture(clock=clock):
        cond = threading.Condition(Plain(), name="ready")

        waiter = waiting(cond)
        wait_for_waiters(cond, 1)
        with cond:
            cond.notify()
            assert taking_back.wait(10)
            clock.advance(0.25)
        waiter.join(10)
        assert not waiter.is_alive()
        assert cond.statistics().max_wait == 0.25


def test_a_timed_out_waiter_a_notify_then_chose_leaves_no_waker_behind() -> None:
    """Timed out, not yet back in the lock, still among the waiters: a notify() may pick it."""
    released, taken = threading.Event(), threading.Event()

    with capture():

        class HandedOver(threadtrace.RLock):
            """Let go of by the waiting thread's wait, it waits until main holds it."""

            def _release_save(self) -> Any:
                saved = super()._release_save()
                if threading.current_thread().name == "waiter" and not released.is_set():
                    released.set()
                    assert taken.wait(10)
                return saved

        cond = threading.Condition(HandedOver(), name="ready")
        results: list[bool] = []
        waiter = waiting(cond, 0.01, results)
        assert released.wait(10)
        with cond:
            taken.set()  # the waiter times out while the lock is held here
            wait_until(lambda: cond.statistics().timeouts == 1, what="the wait to time out")
            cond.notify()  # it is still in the condition's list of waiters
            assert cond._tt_wakers  # who notified it, noted for its span
        waiter.join(10)
        assert not waiter.is_alive()
        assert results == [False]
        assert not cond._tt_wakers


def test_a_wait_without_an_entry_of_its_own_marks_no_other_wait_woken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watchdog's entry for a wait could not be made: the wait it interrupts stays watched."""
    from threadtrace._detect import hooks
    from threadtrace._runtime import runtime

    with capture(patch=False):
        cond = threadtrace.Condition(name="ready")
        outer = hooks.begin(threadtrace.Event(name="outer"), "wait", None)
        assert outer is not None
        try:
            made = hooks.begin_wait

            def broken_for_cond(primitive: Any, *args: Any) -> Any:
                if primitive is cond:
                    raise RuntimeError("no entry")
                return made(primitive, *args)

            monkeypatch.setattr(hooks, "begin_wait", broken_for_cond)
            errors = runtime.internal_errors
            with cond:
                assert cond.wait(0) is False
            assert runtime.internal_errors == errors + 1  # the entry that could not be made
            assert runtime.detect.blocked.get(originals.get_ident()) is outer
            assert outer.woken is False  # still waiting, as far as the watchdog can tell
        finally:
            hooks.end(outer)
