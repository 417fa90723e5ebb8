"""Who woke a waiter: every waiter one release wakes is linked to the thread that woke it."""

from __future__ import annotations

import threading

from threadtrace.testing import FakeClock, capture, wait_for_waiters, wait_until


def test_every_waiter_a_semaphore_release_wakes_names_the_releaser(clock: FakeClock) -> None:
    with capture(clock=clock, wait_threshold=0) as cap:
        permits = threading.Semaphore(0)
        got = threading.Barrier(3)

        def wait() -> None:
            permits.acquire()
            got.wait(10)

        waiters = [threading.Thread(target=wait, name=f"waiter-{i}") for i in range(2)]
        for waiter in waiters:
            waiter.start()
        wait_for_waiters(permits, 2)
        releaser = threading.Thread(target=lambda: permits.release(2), name="releaser")
        releaser.start()
        releaser.join(10)
        got.wait(10)
        for waiter in waiters:
            waiter.join(10)
    wakers = {
        span.attributes["thread.name"]: span.attributes.get("threadtrace.waker.thread.name")
        for span in cap.spans()
        if span.name.startswith("Semaphore.acquire") and span.attributes is not None
    }
    assert wakers == {"waiter-0": "releaser", "waiter-1": "releaser"}


def test_a_condition_wait_is_settled_before_its_lock_is_taken_back(clock: FakeClock) -> None:
    """Its accounting is not done while holding the lock: that lengthens every other wait for it."""
    with capture(clock=clock):
        cond = threading.Condition(name="ready")

        def wait() -> None:
            with cond:
                cond.wait(10)

        waiter = threading.Thread(target=wait, name="waiter")
        waiter.start()
        wait_for_waiters(cond, 1)
        with cond:
            cond.notify()
            # Woken, the waiter settles its wait, then blocks taking the lock back.
            wait_until(lambda: cond.statistics().blocked == 1, what="the wait settled")
            assert cond.statistics().waiters == 0
            assert waiter.is_alive()
        waiter.join(10)
        assert not waiter.is_alive()


def test_a_timed_out_waiter_a_notify_then_chose_leaves_no_waker_behind() -> None:
    """Timed out, not yet back in the lock, still among the waiters: a notify() may pick it."""

    class HandedOver:
        """A lock that, let go of by the waiting thread, waits until main holds it."""

        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.released = threading.Event()
            self.taken = threading.Event()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            return self.lock.acquire(blocking, timeout)

        def release(self) -> None:
            self.lock.release()
            if threading.current_thread().name == "waiter" and not self.released.is_set():
                self.released.set()
                assert self.taken.wait(10)

        __enter__ = acquire

        def __exit__(self, *exc: object) -> None:
            self.release()

    with capture():
        lock = HandedOver()
        cond = threading.Condition(lock, name="ready")
        results: list[bool] = []

        def wait() -> None:
            with cond:
                results.append(cond.wait(0.01))

        waiter = threading.Thread(target=wait, name="waiter")
        waiter.start()
        assert lock.released.wait(10)
        with cond:
            lock.taken.set()  # the waiter times out while the lock is held here
            wait_until(lambda: cond.statistics().timeouts == 1, what="the wait to time out")
            cond.notify()  # it is still in the condition's list of waiters
            assert cond._tt_wakers  # who notified it, noted for its span
        waiter.join(10)
        assert not waiter.is_alive()
        assert results == [False]
        assert not cond._tt_wakers
