"""Who woke a waiter: every waiter one release wakes is linked to the thread that woke it."""

from __future__ import annotations

import threading

from threadtrace.testing import FakeClock, capture, wait_for_waiters


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
