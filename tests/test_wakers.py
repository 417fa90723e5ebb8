"""Who woke a waiter: every waiter one release wakes is linked to the thread that woke it."""

from __future__ import annotations

import threading

import pytest
from helpers import line

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


@pytest.mark.parametrize("noted_in", ["C", "Python"])
def test_a_lock_waiter_is_linked_to_the_thread_that_let_go(noted_in: str, clock: FakeClock) -> None:
    """The C core notes the waker as it lets go (ident, context, where it took the
    lock) and the woken thread names it; ``_release_slow`` notes it whole in
    Python (another OpenTelemetry runtime context, the pure-Python core)."""
    from threadtrace._primitives import core

    if not core.SPEEDUPS and noted_in == "C":
        pytest.skip("the pure-Python core notes the waker in Python")
    with capture(clock=clock, wait_threshold=0) as cap:
        if noted_in == "Python" and core.SPEEDUPS:
            core.lockcore.waker_context(None)  # type: ignore[union-attr]
        try:
            tracer = cap.tracer_provider.get_tracer("app")
            lock = threading.Lock()
            held = threading.Event()

            def hold() -> None:
                with tracer.start_as_current_span("work"):
                    with lock:
                        held.set()
                        wait_for_waiters(lock, 1)
                        clock.advance(0.5)

            taken_at = line() - 5
            releaser = threading.Thread(target=hold, name="releaser")
            releaser.start()
            assert held.wait(10)
            with lock:
                pass
            releaser.join(10)
        finally:
            core.sync()
    spans = cap.spans()
    (work,) = [span for span in spans if span.name == "work"]
    (wait,) = [span for span in spans if span.name.startswith("Lock.acquire")]
    attributes = dict(wait.attributes or {})
    assert attributes["threadtrace.waker.thread.name"] == "releaser"
    assert attributes["threadtrace.holder.thread.name"] == "releaser"
    assert attributes["threadtrace.holder.code.line.number"] == taken_at
    assert [link.context.span_id for link in wait.links] == [work.context.span_id]


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_a_waiter_makes_the_next_release_note_its_waker_until_none_is_left(kind: str) -> None:
    """The lock core's waiter count (C, or pure Python under runtime.book) and its hot flag:
    a new waiter makes releases slow (they note who woke it); one with none left, fast."""
    import threadtrace

    lock = getattr(threadtrace, kind)()
    lock._waiting(1)
    lock._waiting(1)
    assert (lock._waiters, lock._hot) == (2, True)
    lock._waiting(-1)
    lock._settle_hot()
    assert (lock._waiters, lock._hot) == (1, True)
    lock._waiting(-1)
    assert (lock._waiters, lock._hot) == (0, True)  # till the next slow release says otherwise
    lock._settle_hot()
    assert (lock._waiters, lock._hot) == (0, False)
