"""The watchdog's diagnoses, one look at a time, under a fake clock.

Pool starvation, stuck ``Queue.join()``, threads that ended with an
exception, starvation, one report per problem (grouped stacks, no STUCK
after a DEADLOCK), and what must stay quiet.  As in ``test_watch.py``: the
scenarios are built with handshakes, the watchdog's thread never starts,
and each look is ``scan()`` with the fake clock moved past the thresholds.
Whole programs run under ``threadtrace run`` are in ``test_diagnoses.py``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any, Iterator

import pytest
from helpers import function_name, line
from test_watch import fill, idents, started

from threadtrace._detect import watchdog as _watch
from threadtrace._detect.dump import dump_threads
from threadtrace._runtime import runtime
from threadtrace.testing import Capture, FakeClock, capture, wait_for_waiters, wait_until

HERE = os.path.basename(__file__)
#: A thread that raises on purpose: threading prints its traceback, as it should.
DIES = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture
def watch(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """Patched and recording, the watchdog on but its thread never started: tests look with scan()."""
    monkeypatch.setattr(_watch, "ensure_started", lambda: None)
    monkeypatch.setattr(runtime.detect, "manual", True)  # a watchdog thread of an earlier test
    with capture(
        clock=clock, sample_every=100, deadlock_after=1.0, stuck_after=5.0, lock_order=False
    ) as recorded:
        yield recorded


def kinds_blocked(count: int, kind: str) -> None:
    """Wait until exactly ``count`` threads are blocked, all on primitives of ``kind``."""
    wait_until(
        lambda: (
            [w.primitive._tt_kind for w in list(runtime.detect.blocked.values())] == [kind] * count
        )
    )


def joined(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


# -- pools ------------------------------------------------------------------------------------


def test_tasks_waiting_for_sub_tasks_queued_on_their_own_full_pool_are_a_deadlock(
    watch: Capture, clock: FakeClock
) -> None:
    """Pool starvation: every worker waits for a task only a worker could run."""
    both_running = threading.Barrier(2)  # else a worker may run a fragment before page 2 comes
    pool, made = ThreadPoolExecutor(max_workers=2, thread_name_prefix="render"), line()

    def fragment() -> str:
        return "<div/>"

    def page() -> str:
        both_running.wait(10)
        part = pool.submit(fragment)
        return part.result()  # both workers wait here

    pages = [pool.submit(page) for _ in range(2)]
    try:
        _pool_starvation_is_found(clock, made, fragment, page)
    finally:  # the queued fragments cancelled: the workers go on, even if a check failed
        pool.shutdown(wait=True, cancel_futures=True)
    for each in pages:
        with pytest.raises(CancelledError):
            each.result(timeout=10)


def _pool_starvation_is_found(clock: FakeClock, made: int, fragment: Any, page: Any) -> None:
    kinds_blocked(2, "condition")
    assert _watch.scan() == []  # a deadlock is reported when a second look finds it again
    clock.advance(1)
    (problem,) = _watch.scan()
    assert _watch.scan() == []  # once
    test_name = test_tasks_waiting_for_sub_tasks_queued_on_their_own_full_pool_are_a_deadlock
    name = f"pool (ThreadPoolExecutor@{HERE}:{made})"
    submitted = f"submitted at {HERE}:{made + 7} in {function_name(page)}"
    assert problem.kind == "deadlock"
    assert problem.threads == ("render_0", "render_1")
    assert problem.text == fill(
        f"""
        threadtrace: DEADLOCK: pool starvation: the 2 workers of {name} all wait for tasks queued on that same pool, which only they could run
          render_0 waits for the result of {fragment.__qualname__} ({submitted}), still queued on {name}, whose 2 workers are all here
          render_1 waits for the result of {fragment.__qualname__} ({submitted}), still queued on {name}, whose 2 workers are all here

          2 threads: render_0 and render_1
            blocked for 1.00 s in Future.result on part (Future@{HERE}:{made + 7})
            stack (most recent call last):
              File "{__file__}", line {made + 8}, in page   <-- waits here
                return part.result()  # both workers wait here

          where they were made:
            {name} made in {test_name.__name__}, max_workers=2

          A task that waits for another task of its own pool needs a worker to spare: run the sub-tasks on a pool of their own, or have the task return instead of waiting.
        """,
        {},
    )


def test_a_task_waiting_for_a_sub_task_a_spare_worker_runs_is_no_deadlock(
    watch: Capture, clock: FakeClock
) -> None:
    """A pool with a worker to spare: the sub-task runs (here, blocked on a gate the test holds)."""
    pool = ThreadPoolExecutor(max_workers=3)
    gate = threading.Event()

    def fragment() -> str:
        gate.wait()  # the test lets it go
        return "<div/>"

    def page() -> str:
        return pool.submit(fragment).result()

    pages = [pool.submit(page) for _ in range(2)]
    wait_for_waiters(gate, 1)  # one fragment runs on the third worker; the other is queued
    wait_until(lambda: len(runtime.detect.blocked) == 3)
    for _ in range(3):
        clock.advance(1)
        assert _watch.scan() == []
    gate.set()
    assert [each.result(timeout=10) for each in pages] == ["<div/>", "<div/>"]
    pool.shutdown(wait=True)


# -- Queue.join -------------------------------------------------------------------------------


def test_a_queue_join_with_idle_consumers_and_tasks_not_done_is_stuck(
    watch: Capture, clock: FakeClock
) -> None:
    """Counts of put(), get() and task_done() say a task_done() was forgotten."""
    jobs: queue.Queue[int] = queue.Queue()
    made = line() - 1

    def work() -> None:
        while (job := jobs.get()) >= 0:
            if job != 3:  # the bug: job 3 is never marked done
                jobs.task_done()

    worker = started(work, "worker")
    for job in range(5):
        jobs.put(job)
    joiner = started(lambda: jobs.join(), "joiner")
    wait_until(lambda: len(runtime.detect.blocked) == 2 and jobs.empty())
    clock.advance(4.9)
    assert _watch.scan() == []
    clock.advance(0.1)
    (problem,) = _watch.scan()
    name = f"jobs (Queue@{HERE}:{made})"
    assert problem.text == fill(
        f"""
        threadtrace: STUCK: joiner has been blocked for 5.00 s in Queue.join on {name}, with no timeout
          {name} made in {test_a_queue_join_with_idle_consumers_and_tasks_not_done_is_stuck.__name__}
          the queue is empty and 1 thread has waited in get() for 5.00 s or more, but 1 task was never marked done
          put() 5 times, get() 5 times, task_done() 4 times: every get() needs its task_done(), on every path (try/finally)

          joiner (thread <joiner>)
            blocked for 5.00 s in Queue.join on {name}
            stack (most recent call last):
              File "{__file__}", line {made + 11}, in <lambda>   <-- waits here
                joiner = started(lambda: jobs.join(), "joiner")

          other threads:
            MainThread: running, at {HERE}:{made + 16} in {test_a_queue_join_with_idle_consumers_and_tasks_not_done_is_stuck.__name__}
            worker: blocked for 5.00 s in Queue.get on {name}, at {HERE}:{made + 4} in {function_name(work)}
        """,
        idents(joiner),
    )
    jobs.task_done()  # what the worker forgot
    joined(joiner)
    jobs.put(-1)
    joined(worker)


def test_a_queue_join_while_a_consumer_works_on_a_task_is_not_stuck(
    watch: Capture, clock: FakeClock
) -> None:
    """A consumer still at work on its task (not waiting in get()): the join is just slow."""
    jobs: queue.Queue[int] = queue.Queue()
    working = threading.Event()

    def work() -> None:
        jobs.get()
        working.wait(30)  # the task takes long (a timed wait: working, as far as we can tell)
        jobs.task_done()

    worker = started(work, "worker")
    jobs.put(1)
    joiner = started(lambda: jobs.join(), "joiner")
    wait_for_waiters(working, 1)
    wait_until(lambda: len(runtime.detect.blocked) == 2)
    clock.advance(3600)
    assert _watch.scan() == []
    working.set()
    joined(worker, joiner)


# -- how threads ended ------------------------------------------------------------------------


@DIES
def test_a_stuck_wait_names_the_threads_that_ended_with_an_exception_since_its_primitive_was_made(
    watch: Capture, clock: FakeClock
) -> None:
    ready, made = threading.Event(name="ready"), line()
    settings: dict[str, str] = {}

    def load() -> None:
        settings["port"] = settings["host"]  # KeyError: ready is never set
        ready.set()

    loader = started(load, "loader")
    loader.join(10)
    clock.advance(1)
    waiter = started(ready.wait, "waiter")
    wait_for_waiters(ready, 1)
    clock.advance(5)
    (problem,) = _watch.scan()
    head = problem.text.split("\n\n")[0]
    assert head == fill(
        f"""
        threadtrace: STUCK: waiter has been blocked for 5.00 s in Event.wait on Event ready, with no timeout
          Event ready made at {HERE}:{made} in {test_a_stuck_wait_names_the_threads_that_ended_with_an_exception_since_its_primitive_was_made.__name__}
          it has not been set since the wait began
          1 thread ended with an exception since Event ready was made:
            loader ended with KeyError: 'host' at {HERE}:{made + 4} in {function_name(load)}
        """,
        {},
    )
    ready.set()
    joined(waiter)


@DIES
def test_a_stuck_wait_leaves_out_the_threads_that_ended_with_an_exception_before_it_was_made(
    watch: Capture, clock: FakeClock
) -> None:
    """Counted, not timed: a crash in the same clock tick as the making still comes before it."""

    def crash(error: str) -> None:
        raise KeyError(error)

    joined(started(lambda: crash("early"), "early"))
    ready = threading.Event(name="ready")  # the fake clock has not moved since the crash
    joined(started(lambda: crash("late"), "late"))
    waiter = started(ready.wait, "waiter")
    wait_for_waiters(ready, 1)
    clock.advance(5)
    (problem,) = _watch.scan()
    crashes = [row for row in problem.text.split("\n") if "ended with" in row]
    assert crashes[0] == "  1 thread ended with an exception since Event ready was made:"
    assert crashes[1].startswith("    late ended with KeyError: 'late' at "), crashes
    assert len(crashes) == 2, crashes
    ready.set()
    joined(waiter)


@DIES
def test_a_lock_left_held_by_a_thread_that_raised_says_how_it_ended(watch: Capture) -> None:
    registry, made = threading.Lock(name="registry"), line()

    def crash() -> None:
        registry.acquire()
        raise ValueError("bad entry")

    thread = started(crash, "loader")
    thread.join(10)
    (problem,) = _watch.scan()
    assert problem.text == (
        f"threadtrace: HELD BY A FINISHED THREAD: loader ended with ValueError: bad entry at "
        f"{HERE}:{made + 4} in {function_name(crash)}, holding Lock registry, acquired at "
        f"{HERE}:{made + 3} in {function_name(crash)}; every thread that acquires it will wait "
        f"forever.\n"
        f"  Lock registry made at {HERE}:{made} in "
        f"{test_a_lock_left_held_by_a_thread_that_raised_says_how_it_ended.__name__}"
    )
    registry.release()


@DIES
def test_a_wait_for_a_lock_a_dead_thread_holds_says_how_that_thread_ended(
    watch: Capture, clock: FakeClock
) -> None:
    registry = threading.Lock(name="registry")
    made = line() - 1

    def crash() -> None:
        registry.acquire()
        raise ValueError("bad entry")

    dead = started(crash, "loader")
    dead.join(10)
    # The held-by-a-finished-thread report: from then on, a new thread given
    # the same ident by the OS is not taken for the holder.
    wait_until(lambda: [p.kind for p in _watch.scan()] == ["held_by_finished_thread"])
    waiter = started(registry.acquire, "waiter")
    wait_for_waiters(registry, 1)
    clock.advance(5)
    (problem,) = _watch.scan()
    assert problem.text.splitlines()[2] == (
        f"  held by loader (ended with ValueError: bad entry at {HERE}:{made + 5} in "
        f"{function_name(crash)}), acquired at {HERE}:{made + 4} in {function_name(crash)}"
    )
    registry.release()
    joined(waiter)


# -- starvation -------------------------------------------------------------------------------


def test_a_wait_overtaken_again_and_again_is_starved(watch: Capture, clock: FakeClock) -> None:
    """The main thread gives the permit back and takes it again at once, 20 times."""
    connections, made = threading.BoundedSemaphore(1, name="connections"), line()
    connections.acquire()
    waiter = started(connections.acquire, "request")
    wait_for_waiters(connections, 1)
    waiting = connections._cond._waiters  # type: ignore[attr-defined]
    for _ in range(20):
        wait_until(lambda: len(waiting) == 1)  # the request waits again
        connections.release()  # wakes it, but we hold the GIL
        connections.acquire()  # and take it back first: it finds none, and waits again
    wait_until(lambda: len(waiting) == 1)
    clock.advance(0.9)
    assert _watch.scan() == []  # not yet a second
    clock.advance(0.1)
    (problem,) = _watch.scan()
    assert problem.kind == "starvation"
    assert problem.level == logging.WARNING
    test_name = test_a_wait_overtaken_again_and_again_is_starved.__name__
    assert problem.text.split("\n\n")[:2] == [
        fill(
            f"""
            threadtrace: STARVED: request has waited 1.00 s for BoundedSemaphore connections while other threads acquired it 20 times; BoundedSemaphore is not fair: a thread that lets it go and takes it again at once goes ahead of the threads waiting
              BoundedSemaphore connections made at {HERE}:{made} in {test_name}
              a permit is held now by MainThread, acquired at {HERE}:{made + 8} in {test_name}
              Do the work outside it, or hand it over in turn (a queue, or a Condition and a turn counter): time.sleep(0) after letting go does not make it fair.
            """,
            {},
        ),
        f"  request (thread {waiter.ident})\n"
        "    blocked for 1.00 s in BoundedSemaphore.acquire on connections",
    ]
    assert _watch.scan() == []  # once per wait
    connections.release()
    joined(waiter)


def test_a_wait_behind_one_long_hold_is_not_starved(watch: Capture, clock: FakeClock) -> None:
    """Taken once and held: a slow holder (stuck at stuck_after), not starvation."""
    lock = threading.Lock(name="ledger")
    lock.acquire()
    waiter = started(lock.acquire, "waiter")
    wait_for_waiters(lock, 1)
    clock.advance(4.9)
    assert _watch.scan() == []
    lock.release()
    joined(waiter)
    lock.release()


# -- one report per problem -------------------------------------------------------------------


def test_threads_stuck_on_one_lock_are_one_report_and_latecomers_join_it_silently(
    watch: Capture, clock: FakeClock
) -> None:
    cache, made = threading.Lock(name="cache"), line()
    cache.acquire()

    def request() -> None:
        with cache:
            pass

    first = [started(request, f"request-{i}") for i in range(12)]
    wait_for_waiters(cache, 12)
    clock.advance(5)
    (problem,) = _watch.scan()
    test_name = test_threads_stuck_on_one_lock_are_one_report_and_latecomers_join_it_silently
    assert problem.threads == tuple(f"request-{i}" for i in range(12))
    # The holder in full, after them (its stack, outside this file, left out here).
    head, group, holder = problem.text.split("\n\n")
    assert [head, group] == fill(
        f"""
        threadtrace: STUCK: 12 threads have been blocked for 5.00 s in Lock.acquire on Lock cache, with no timeout
          Lock cache made at {HERE}:{made} in {test_name.__name__}
          held by MainThread, acquired at {HERE}:{made + 1} in {test_name.__name__}

          12 threads: request-0, request-1, request-2, request-3, request-4 and 7 more
            blocked for 5.00 s in Lock.acquire on cache
            stack (most recent call last):
              File "{__file__}", line {made + 4}, in request   <-- waits here
                with cache:
        """,
        {},
    ).split("\n\n")
    assert holder.splitlines()[:2] == [
        f"  MainThread (thread {threading.get_ident()})",
        f"    holds Lock cache, acquired at {HERE}:{made + 1} in {test_name.__name__}",
    ]
    assert holder.splitlines()[-2:] == [
        f'      File "{__file__}", line {made + 10}, in {test_name.__name__}',
        "        (problem,) = _watch.scan()",
    ]
    late = [started(request, f"late-{i}") for i in range(3)]
    wait_for_waiters(cache, 15)
    clock.advance(5)
    assert _watch.scan() == []  # the same lock, still held by the same thread: already told
    cache.release()
    joined(*first, *late)
    # Over: the next time is a new report.
    cache.acquire()
    again = started(request, "again")
    wait_for_waiters(cache, 1)
    clock.advance(5)
    (problem,) = _watch.scan()
    assert problem.text.startswith("threadtrace: STUCK: again has been blocked for 5.00 s")
    cache.release()
    joined(again)


def test_a_deadlock_is_not_reported_again_as_stuck_threads(
    watch: Capture, clock: FakeClock
) -> None:
    accounts, ledger = threading.Lock(name="accounts"), threading.Lock(name="ledger")
    both = threading.Barrier(2)

    def take(first: Any, second: Any) -> None:
        try:
            with first:
                both.wait(10)
                with second:
                    pass
        except RuntimeError:  # the test released the lock for it, to end the deadlock
            pass

    one = started(lambda: take(accounts, ledger), "one")
    two = started(lambda: take(ledger, accounts), "two")
    wait_for_waiters(accounts, 1)
    wait_for_waiters(ledger, 1)
    assert _watch.scan() == []
    clock.advance(1)
    assert [p.kind for p in _watch.scan()] == ["deadlock"]
    for _ in range(4):
        clock.advance(5)
        assert _watch.scan() == []  # never a STUCK for its threads
    accounts.release()
    joined(one, two)


def test_with_stuck_after_as_short_as_deadlock_after_a_deadlock_is_only_a_deadlock(
    watch: Capture, clock: FakeClock
) -> None:
    """Both thresholds pass at the same look: the deadlock is told, the stuck report is not."""
    import threadtrace

    threadtrace.configure(stuck_after=1.0)
    accounts, ledger = threading.Lock(name="accounts"), threading.Lock(name="ledger")
    both = threading.Barrier(2)

    def take(first: Any, second: Any) -> None:
        try:
            with first:
                both.wait(10)
                with second:
                    pass
        except RuntimeError:
            pass

    one = started(lambda: take(accounts, ledger), "one")
    wait_for_waiters(both, 1)
    clock.advance(0.5)  # two's waits will be younger than one's
    two = started(lambda: take(ledger, accounts), "two")
    wait_for_waiters(accounts, 1)
    wait_for_waiters(ledger, 1)
    found = []
    for _ in range(6):
        found.extend(p.kind for p in _watch.scan())
        clock.advance(0.25)
    assert found == ["deadlock"]
    accounts.release()
    joined(one, two)


# -- quiet ------------------------------------------------------------------------------------


def test_a_join_on_a_thread_briefly_waiting_for_a_lock_is_not_stuck(
    watch: Capture, clock: FakeClock
) -> None:
    """The joined thread is busy; at this look it happens to wait for a lock for a moment."""
    lock = threading.Lock(name="shared")
    working = threading.Event()

    def work() -> None:
        working.wait(30)  # busy, as far as threadtrace can tell (a timed wait)
        with lock:
            pass

    worker = started(work, "worker")
    joiner = started(lambda: worker.join(), "joiner")
    wait_for_waiters(worker, 1)
    clock.advance(3600)  # the join is old...
    lock.acquire()
    working.set()
    wait_for_waiters(lock, 1)  # ...the worker's wait is not
    assert _watch.scan() == []
    lock.release()
    joined(worker, joiner)


# -- the threads, as the stuck report shows them (threadtrace dump) ----------------------------


def test_dump_threads_shows_every_thread_alike_ones_once(watch: Capture, clock: FakeClock) -> None:
    gate, made = threading.Event(name="gate"), line()

    def wait() -> None:
        gate.wait()

    waiters = [started(wait, f"waiter-{i}") for i in range(3)]
    wait_for_waiters(gate, 3)
    clock.advance(2)
    text, here = dump_threads(), line()
    test_name = test_dump_threads_shows_every_thread_alike_ones_once.__name__
    head, main, group = text.split("\n\n")
    assert head == "threadtrace: 4 threads, 3 blocked"
    assert main.splitlines()[0] == f"  MainThread (thread {threading.get_ident()})"
    assert main.splitlines()[-2:] == [
        f'      File "{__file__}", line {here}, in {test_name}',
        "        text, here = dump_threads(), line()",
    ]
    assert group.splitlines() == [
        "  3 threads: waiter-0, waiter-1 and waiter-2",
        "    blocked for 2.00 s in Event.wait on gate",
        "    stack (most recent call last):",
        f'      File "{__file__}", line {made + 3}, in wait   <-- waits here',
        "        gate.wait()",
    ]
    gate.set()
    joined(*waiters)
