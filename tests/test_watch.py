"""Deadlocks, lock-order inversions, stuck threads and primitives held by finished threads.

Every scenario is built with handshakes (barriers, ``wait_for_waiters``),
and the watchdog's look is taken by calling ``_watch.scan()`` with the fake
clock moved past the thresholds: no sleeps, no race with the watchdog
thread (``watchdog=False`` keeps it from starting).  Each test asserts the
whole report text, with thread idents and this file's line numbers filled
in.  Deadlocked test threads are let go at the end by releasing a plain
``Lock`` from the main thread (any thread may release a ``Lock``), or by
``on_deadlock="raise"``.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import textwrap
import threading
from typing import Any, Callable, Iterator

import pytest
from helpers import function_name, line

import threadtrace
from threadtrace._detect import watchdog as _watch
from threadtrace._detect.problems import Problem, publish_pending
from threadtrace._detect.state import owner_of
from threadtrace._runtime import runtime
from threadtrace._support import originals as _originals
from threadtrace.testing import Capture, FakeClock, capture, wait_for_waiters, wait_until

HERE = os.path.basename(__file__)


@pytest.fixture
def watch(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """Patched and recording, the watchdog on but its thread never started: tests look with scan()."""
    monkeypatch.setattr(_watch, "ensure_started", lambda: None)
    monkeypatch.setattr(runtime.detect, "manual", True)  # a watchdog thread of an earlier test
    with capture(clock=clock, sample_every=1, deadlock_after=1.0, stuck_after=5.0) as recorded:
        yield recorded


def started(target: Callable[[], Any], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def idents(*threads: threading.Thread) -> dict[str, str]:
    return {f"<{t.name}>": str(t.ident) for t in threads}


def fill(template: str, values: dict[str, str]) -> str:
    text = textwrap.dedent(template).strip("\n")
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def test_an_abba_deadlock_is_reported_once_with_both_stacks(
    watch: Capture, clock: FakeClock
) -> None:
    accounts = threading.Lock(name="accounts_lock")
    ledger, made = threading.Lock(name="ledger_lock"), line()
    both_hold = threading.Barrier(2)

    def transfer() -> None:
        try:
            with accounts:
                both_hold.wait(10)
                with ledger:
                    pass
        except RuntimeError:  # the test released accounts for it, to end the deadlock
            pass

    def audit() -> None:
        with ledger:
            both_hold.wait(10)
            with accounts:
                pass

    first = started(transfer, "transfer")
    second = started(audit, "audit")
    wait_for_waiters(accounts, 1)
    wait_for_waiters(ledger, 1)

    clock.advance(0.5)
    assert _watch.scan() == []  # younger than deadlock_after: not yet
    clock.advance(0.5)
    (problem,) = _watch.scan()
    assert _watch.scan() == []  # reported once

    t = made + 5  # transfer's first `with`
    a = made + 13  # audit's first `with`
    test_name = test_an_abba_deadlock_is_reported_once_with_both_stacks.__name__
    assert problem.kind == "deadlock"
    assert problem.level == logging.ERROR
    assert problem.text == fill(
        f"""
        threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed
          audit waits for Lock accounts_lock, held by transfer
          transfer waits for Lock ledger_lock, held by audit

          audit (thread <audit>)
            blocked for 1.00 s in Lock.acquire on accounts_lock
            holds Lock ledger_lock, acquired at {HERE}:{a} in {function_name(audit)}
            stack (most recent call last):
              File "{__file__}", line {a + 2}, in audit   <-- waits here
                with accounts:

          transfer (thread <transfer>)
            blocked for 1.00 s in Lock.acquire on ledger_lock
            holds Lock accounts_lock, acquired at {HERE}:{t} in {function_name(transfer)}
            stack (most recent call last):
              File "{__file__}", line {t + 2}, in transfer   <-- waits here
                with ledger:

          where they were made:
            Lock accounts_lock made at {HERE}:{made - 1} in {test_name}
            Lock ledger_lock made at {HERE}:{made} in {test_name}
        """,
        idents(first, second),
    )
    spans = [s for s in watch.spans() if s.name == "threadtrace.deadlock"]
    assert len(spans) == 1
    assert spans[0].attributes["threadtrace.problem.threads"] == ("audit", "transfer")
    assert spans[0].events[0].attributes["threadtrace.report"] == problem.text
    assert watch.metrics()["threadtrace.problems"] == {
        (("threadtrace.problem.kind", "deadlock"),): 1
    }

    accounts.release()  # let audit through; transfer's own release then finds it unlocked
    for thread in (first, second):
        thread.join(10)
        assert not thread.is_alive()


def test_a_three_thread_cycle_is_one_deadlock(watch: Capture, clock: FakeClock) -> None:
    locks = [threading.Lock(name=f"lock_{i}") for i in range(3)]
    holding = threading.Barrier(3)

    def take(mine: Any, theirs: Any) -> None:
        try:
            with mine:
                holding.wait(10)
                with theirs:
                    pass
        except RuntimeError:
            pass

    threads = [
        started(lambda i=i: take(locks[i], locks[(i + 1) % 3]), f"worker-{i}") for i in range(3)
    ]
    for lock in locks:
        wait_for_waiters(lock, 1)
    assert _watch.scan() == []  # a cycle is reported only when a second look finds it again
    clock.advance(2)
    (problem,) = _watch.scan()
    assert problem.text.split("\n\n")[0] == textwrap.dedent(
        """\
        threadtrace: DEADLOCK: 3 threads wait for each other and will never proceed
          worker-0 waits for Lock lock_1, held by worker-1
          worker-1 waits for Lock lock_2, held by worker-2
          worker-2 waits for Lock lock_0, held by worker-0"""
    )
    locks[0].release()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def test_on_deadlock_raise_ends_the_youngest_wait_and_the_rest_go_on(
    watch: Capture, clock: FakeClock
) -> None:
    threadtrace.configure(on_deadlock="raise")
    first_lock = threading.Lock(name="first")
    second_lock = threading.Lock(name="second")
    holding = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def one() -> None:
        with first_lock:
            holding.wait(10)
            with second_lock:
                outcome["one"] = "done"

    def two() -> None:
        with second_lock:
            holding.wait(10)
            wait_for_waiters(second_lock, 1)  # one waits first: two's wait is the youngest
            clock.advance(0.001)
            try:
                with first_lock:
                    outcome["two"] = "done"
            except threadtrace.DeadlockError as error:
                outcome["two"] = str(error).splitlines()[0]

    threads = [started(one, "one"), started(two, "two")]
    wait_for_waiters(first_lock, 1)
    wait_for_waiters(second_lock, 1)
    assert _watch.scan() == []
    clock.advance(2)
    assert len(_watch.scan()) == 1
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert outcome == {
        "one": "done",
        "two": "threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed",
    }


def test_on_deadlock_raise_ends_a_join_under_patch(watch: Capture, clock: FakeClock) -> None:
    """A join (of a stdlib Thread, hooked by patch) is waited in slices, so it can be ended."""
    threadtrace.configure(on_deadlock="raise")
    held = threading.Lock(name="held")
    outcome: dict[str, str] = {}

    def blocked() -> None:
        with held:
            outcome["blocked"] = "done"

    def joiner() -> None:
        with held:
            child = started(blocked, "blocked")
            wait_for_waiters(held, 1)
            clock.advance(0.001)  # the join is the youngest wait
            try:
                child.join()
            except threadtrace.DeadlockError as error:
                outcome["joiner"] = str(error).splitlines()[0]
        child.join(10)

    thread = started(joiner, "joiner")
    wait_until(lambda: "blocked" in {t.name for t in threading.enumerate()})
    blocked_thread = next(t for t in threading.enumerate() if t.name == "blocked")
    wait_for_waiters(blocked_thread, 1)
    assert _watch.scan() == []
    clock.advance(2)
    assert len(_watch.scan()) == 1
    thread.join(10)
    assert not thread.is_alive()
    assert outcome == {
        "joiner": "threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed",
        "blocked": "done",
    }


#: Two threads that deadlock (ABBA); main may join the barrier with parties=3.
#: Non-daemon threads keep the process alive (and deadlocked) after main ends.
ABBA_PROGRAM = textwrap.dedent(
    """
    import threading, threadtrace
    threadtrace.patch(exporters=(), {settings})
    a, b = threading.Lock(name="a"), threading.Lock(name="b")
    both = threading.Barrier({parties})
    def one():
        with a:
            both.wait()
            with b: pass
    def two():
        with b:
            both.wait()
            with a: pass
    for f in (one, two):
        threading.Thread(target=f, name=f.__name__, daemon={daemon}).start()
    """
)


def test_on_deadlock_exit_ends_the_process_with_status_3() -> None:
    program = ABBA_PROGRAM.format(
        settings='on_deadlock="exit", deadlock_after=0.2', parties=2, daemon=False
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(
        "threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed\n"
    )


def test_with_defaults_a_deadlock_is_reported_by_the_watchdog_within_5_seconds() -> None:
    """Users run without flags: the real watchdog thread, default settings."""
    program = ABBA_PROGRAM.format(settings="", parties=3, daemon=True) + textwrap.dedent(
        """
        import time
        both.wait()
        start = time.monotonic()
        while time.monotonic() - start < 5:
            if threadtrace._runtime.runtime.detect.reported:
                print("reported after", round(time.monotonic() - start, 1))
                break
            time.sleep(0.01)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reported after"), (done.stdout, done.stderr)
    assert "threadtrace: DEADLOCK: 2 threads wait for each other" in done.stderr


# -- what must stay quiet ------------------------------------------------------------------


def test_rlock_recursion_condition_waits_timeouts_and_slow_threads_are_no_deadlock(
    watch: Capture, clock: FakeClock
) -> None:
    threadtrace.configure(stuck_after=0)
    rlock = threading.RLock()
    cond = threading.Condition()
    gate = threading.Lock()
    gate.acquire()
    release_all = threading.Event()

    def recursive() -> None:  # holds an RLock twice and waits on a condition: no cycle
        with rlock, rlock, cond:
            cond.wait()  # releases cond's lock while waiting

    def timed() -> None:  # a timed wait on a held lock will expire: never a deadlock
        with rlock:  # waits for recursive() to release it: a lock wait on a waiting thread
            pass

    def slow() -> None:
        gate.acquire(timeout=30)  # blocked on the test's own lock, with a timeout
        gate.release()

    waiter = started(recursive, "recursive")
    wait_for_waiters(cond, 1)
    behind = started(timed, "behind")
    wait_for_waiters(rlock, 1)
    slowpoke = started(slow, "slow")
    wait_for_waiters(gate, 1)
    joiner = started(lambda: slowpoke.join(), "joiner")
    wait_for_waiters(slowpoke, 1)
    clock.advance(3600)
    assert _watch.scan() == []

    with cond:
        cond.notify()
    gate.release()
    release_all.set()
    for thread in (waiter, behind, slowpoke, joiner):
        thread.join(10)
        assert not thread.is_alive()


# -- lock order -------------------------------------------------------------------------------


def test_an_inversion_that_never_hangs_is_reported_with_a_scenario(
    watch: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    threadtrace.configure(lock_order=True)
    accounts = threading.Lock(name="accounts_lock")
    ledger = threading.Lock(name="ledger_lock")
    base = line()

    def transfer() -> None:
        with accounts:
            with ledger:
                pass

    def audit() -> None:
        with ledger:
            with accounts:
                pass

    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        for target, name in ((transfer, "transfer"), (audit, "audit"), (audit, "audit")):
            thread = started(target, name)
            thread.join(10)
            assert not thread.is_alive()
        assert caplog.records == []  # queued inside acquire, not logged there
        publish_pending()  # what the watchdog thread does (it is off here)
    reports = [r.getMessage() for r in caplog.records]
    assert len(reports) == 1  # once, however often the orders repeat
    t, a = base + 3, base + 8
    tf, af = function_name(transfer), function_name(audit)
    assert reports[0] == textwrap.dedent(
        f"""\
        threadtrace: POSSIBLE DEADLOCK: locks were taken in conflicting orders (this run did not hang, but it can)
          cycle: accounts_lock -> ledger_lock -> accounts_lock
          transfer took ledger_lock at {HERE}:{t + 1} in {tf}
              while holding accounts_lock, taken at {HERE}:{t} in {tf}
          audit took accounts_lock at {HERE}:{a + 1} in {af}
              while holding ledger_lock, taken at {HERE}:{a} in {af}

          Possible unsafe scenario:

            transfer                    audit
            --------                    -----
            lock(accounts_lock)
                                        lock(ledger_lock)
            lock(ledger_lock)
                                        lock(accounts_lock)

            *** DEADLOCK ***

          Take these locks in one order everywhere to make this impossible."""
    )
    assert watch.metrics()["threadtrace.problems"] == {
        (("threadtrace.problem.kind", "lock_order_inversion"),): 1
    }


def test_consistent_orders_rlock_recursion_and_condition_waits_add_no_inversion(
    watch: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    threadtrace.configure(lock_order=True)
    outer = threading.RLock()
    inner = threading.Lock()
    cond = threading.Condition(outer)
    notified = threading.Event()

    def waiter() -> None:
        with outer, outer, inner:  # recursion, then a nested lock: outer -> inner
            pass
        with cond:
            notified.set()
            cond.wait(10)  # gives outer up and takes it back: no new order

    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        thread = started(waiter, "waiter")
        assert notified.wait(10)
        wait_for_waiters(cond, 1)
        with cond:
            cond.notify()
        thread.join(10)
        with outer, inner:  # the same order again, from another thread
            pass
        assert not inner.acquire(blocking=False) or inner.release() is None
        assert publish_pending() == []
    assert caplog.records == []


def test_accounts_locked_in_id_order_are_fine_and_out_of_order_is_caught(
    watch: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    """Locks made on one line are one name; their order is checked per instance."""
    threadtrace.configure(lock_order=True)
    accounts = [threading.Lock() for _ in range(3)]

    def transfer(a: int, b: int, ordered: bool) -> None:
        first, second = (min(a, b), max(a, b)) if ordered else (a, b)
        with accounts[first], accounts[second]:
            pass

    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        transfer(0, 1, True)
        transfer(1, 0, True)
        transfer(2, 1, True)
        assert publish_pending() == []
        transfer(1, 0, False)
        assert len(publish_pending()) == 1
    assert len(caplog.records) == 1
    name = accounts[0].name  # all three share it: numbered in the report (0 is #1, 1 is #2)
    assert caplog.records[0].getMessage().splitlines()[1] == (
        f"  cycle: {name} #1 -> {name} #2 -> {name} #1"
    )


def test_publishing_returns_once_what_another_thread_took_from_the_queue_is_told(
    watch: Capture,
) -> None:
    """The pytest plugin asks its listener what was found as soon as publish_pending()
    returns; the watchdog may have taken the finding from the queue a moment before and
    not told it yet (a passing test on 3.12, one run in ten)."""
    problem = Problem("lock_order_inversion", logging.DEBUG, "found", ())
    telling, told = threading.Event(), threading.Event()
    heard: list[Problem] = []
    heard_when_returned: list[list[Problem]] = []

    def listener(found: Problem) -> None:
        if threading.current_thread().name == "watchdog":
            telling.set()
            assert told.wait(10)
        heard.append(found)

    def publish() -> None:
        publish_pending()
        heard_when_returned.append(list(heard))

    runtime.detect.listeners.append(listener)
    try:
        runtime.detect.pending.append(problem)
        watchdog = started(publish_pending, "watchdog")
        assert telling.wait(10)  # taken from the queue, being told
        plugin = started(publish, "plugin")
        # Room for a publish_pending() that does not wait to return (before the
        # fix it did, at once, having heard nothing); one that waits does so
        # until told is set, however long this is.
        plugin.join(0.2)
        told.set()
        for thread in (watchdog, plugin):
            thread.join(10)
            assert not thread.is_alive()
    finally:
        runtime.detect.listeners.remove(listener)
    assert heard_when_returned == [[problem]]


# -- stuck threads ------------------------------------------------------------------------------


def test_a_lost_wakeup_on_a_condition_is_reported_stuck(watch: Capture, clock: FakeClock) -> None:
    items: list[int] = []
    cond, made = threading.Condition(name="items"), line()

    with cond:
        items.append(1)
        cond.notify()  # nobody is waiting yet: this wake-up is lost

    def consume() -> None:
        with cond:
            cond.wait()  # the bug: should have checked `items` first

    consumer = started(consume, "consumer")
    wait_for_waiters(cond, 1)
    clock.advance(4.9)
    assert _watch.scan() == []
    clock.advance(0.1)
    (problem,) = _watch.scan()
    assert problem.kind == "stuck_thread"
    test_name = test_a_lost_wakeup_on_a_condition_is_reported_stuck.__name__
    assert problem.text == fill(
        f"""
        threadtrace: STUCK: consumer has been blocked for 5.00 s in Condition.wait on Condition items, with no timeout
          Condition items made at {HERE}:{made} in {test_name}
          nobody has notified it since the wait began; 1 notify() call before it found no waiter: a wake-up may have been lost (wait in a loop on the state, or use wait_for)

          consumer (thread <consumer>)
            blocked for 5.00 s in Condition.wait on items
            stack (most recent call last):
              File "{__file__}", line {made + 8}, in consume   <-- waits here
                cond.wait()  # the bug: should have checked `items` first

          other threads:
            MainThread: running, at {HERE}:{made + 15} in {test_name}
        """,
        idents(consumer),
    )
    assert _watch.scan() == []  # once per wait
    with cond:
        cond.notify()
    consumer.join(10)
    assert not consumer.is_alive()


def test_a_wait_that_ends_while_the_look_reads_the_stacks_is_not_reported(
    watch: Capture, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stacks are read after the table of waits: a wait that ended meanwhile is not stuck."""
    cond = threading.Condition(name="items")

    def consume() -> None:
        with cond:
            cond.wait()

    first = started(consume, "consumer-a")
    wait_for_waiters(cond, 1)  # consumer-a waits first: notify() wakes it
    second = started(consume, "consumer-b")
    wait_for_waiters(cond, 2)
    clock.advance(5)
    current_frames = sys._current_frames

    def first_woken_meanwhile() -> dict[int, Any]:
        with cond:
            cond.notify()
        first.join(10)
        assert not first.is_alive()
        return current_frames()

    monkeypatch.setattr(sys, "_current_frames", first_woken_meanwhile)
    (problem,) = _watch.scan()
    monkeypatch.setattr(sys, "_current_frames", current_frames)
    headline = problem.text.splitlines()[0]
    assert headline == (
        "threadtrace: STUCK: consumer-b has been blocked for 5.00 s in Condition.wait"
        " on Condition items, with no timeout"
    )
    assert "consumer-a" not in problem.text
    with cond:
        cond.notify()
    second.join(10)
    assert not second.is_alive()


def test_a_permit_handed_to_another_thread_is_no_leak(watch: Capture, clock: FakeClock) -> None:
    """A producer takes permits and a consumer gives them back: not a leak."""
    slots = threading.BoundedSemaphore(2)
    producer = started(lambda: (slots.acquire(), slots.acquire()), "producer")
    producer.join(10)
    assert _watch.scan() == []
    slots.release()
    slots.release()
    clock.advance(3600)
    assert _watch.scan() == []


def test_a_leaked_bounded_semaphore_permit_names_where_it_was_taken(
    watch: Capture, clock: FakeClock
) -> None:
    pool, made = threading.BoundedSemaphore(1, name="connections"), line()

    def leak() -> None:
        pool.acquire()  # and never released
        if False:  # pragma: no cover - the bug: the release is skipped
            pool.release()

    leaker = started(leak, "leaker")
    leaker.join(10)

    def need() -> None:
        with pool:
            pass

    needer = started(need, "needer")
    wait_for_waiters(pool, 1)
    # Another thread might still give the permit back (producer and consumer):
    # a finished holder's permit is a leak once stuck_after has passed.
    assert _watch.scan() == []
    clock.advance(5)
    problem, stuck = _watch.scan()
    assert problem.kind == "held_by_finished_thread"
    assert problem.text == (
        f"threadtrace: HELD BY A FINISHED THREAD: leaker ended holding 1 permit of "
        f"BoundedSemaphore connections, acquired at {HERE}:{made + 3} in {function_name(leak)}; "
        f"nobody gave it back: the semaphore has one fewer to give.\n"
        f"  BoundedSemaphore connections made at {HERE}:{made} in "
        f"{test_a_leaked_bounded_semaphore_permit_names_where_it_was_taken.__name__}"
    )
    assert stuck.text.split("\n\n")[0] == (
        "threadtrace: STUCK: needer has been blocked for 5.00 s in "
        "BoundedSemaphore.acquire on BoundedSemaphore connections, with no timeout\n"
        f"  BoundedSemaphore connections made at {HERE}:{made} in "
        f"{test_a_leaked_bounded_semaphore_permit_names_where_it_was_taken.__name__}\n"
        f"  a permit is held by leaker (finished: the permit leaked), acquired at "
        f"{HERE}:{made + 3} in {function_name(leak)}"
    )
    pool.release()
    needer.join(10)
    assert not needer.is_alive()


def test_a_semaphore_given_back_by_a_thread_that_holds_none_is_a_counter_without_holders(
    watch: Capture, clock: FakeClock
) -> None:
    """A producer's items for a consumer: nobody holds them, and a stuck consumer is told so."""
    items, made = threading.Semaphore(0, name="items"), line()
    items.release()  # nobody holds one yet: nothing to tell
    assert items.acquire(timeout=10)
    assert items.statistics().holders == (threading.get_ident(),)
    producer = started(items.release, "producer")  # gives one back, holding none
    producer.join(10)
    assert items.statistics().holders == ()
    assert items.acquire(timeout=10)  # a counter from now on: no holder noted
    assert items.statistics().holders == ()
    consumer = started(items.acquire, "consumer")
    wait_for_waiters(items, 1)
    clock.advance(5)
    (stuck,) = _watch.scan()
    assert stuck.text.split("\n\n")[0] == (
        "threadtrace: STUCK: consumer has been blocked for 5.00 s in "
        "Semaphore.acquire on Semaphore items, with no timeout\n"
        f"  Semaphore items made at {HERE}:{made} in "
        f"{test_a_semaphore_given_back_by_a_thread_that_holds_none_is_a_counter_without_holders.__name__}\n"
        "  its permits are given back by other threads than take them (a counter, as a "
        "producer's for its consumers): it waits for one to be given"
    )
    items.release()
    consumer.join(10)
    assert not consumer.is_alive()
    assert items.statistics().holders == ()


@pytest.mark.parametrize(
    ("kind", "consequence"),
    [
        ("RLock", "no other thread can release it"),
        ("Lock", "every thread that acquires it will wait forever"),
    ],
)
def test_a_lock_held_by_a_finished_thread_is_reported_at_once(
    watch: Capture, kind: str, consequence: str
) -> None:
    lock, made = getattr(threading, kind)(name="registry"), line()

    def forget() -> None:
        lock.acquire()

    thread = started(forget, "forgetful")
    thread.join(10)
    (problem,) = _watch.scan()
    assert problem.text.splitlines()[0] == (
        f"threadtrace: HELD BY A FINISHED THREAD: forgetful ended holding {kind} registry, "
        f"acquired at {HERE}:{made + 3} in {function_name(forget)}; {consequence}."
    )
    if kind == "Lock":  # a new thread may get the same ident: it is not taken for the holder
        assert owner_of(lock) != thread.ident
        lock.release()


def test_a_deadlock_through_a_conditions_own_lock_is_found(
    watch: Capture, clock: FakeClock
) -> None:
    """A Condition() waiter taking its RLock back waits like any acquire."""
    cond = threading.Condition(name="cond")
    other = threading.Lock(name="other")

    def waiter() -> None:
        try:
            with other:  # held across the wait: a wait releases only cond's lock
                with cond:
                    cond.wait()  # woken by notifier, then needs cond's lock back
        except RuntimeError:  # the test released `other` for it, to end the deadlock
            pass

    def notifier() -> None:
        with cond:
            cond.notify()
            with other:  # waiter holds it, and waits for cond, which this thread holds
                pass

    first = started(waiter, "waiter")
    wait_for_waiters(cond, 1)
    second = started(notifier, "notifier")
    wait_for_waiters(other, 1)
    wait_until(
        lambda: getattr(runtime.detect.blocked.get(first.ident), "primitive", None) is cond._lock
    )
    assert _watch.scan() == []
    clock.advance(2)
    (problem,) = _watch.scan()
    assert problem.text.splitlines()[:3] == [
        "threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed",
        "  notifier waits for Lock other, held by waiter",
        "  waiter waits for RLock cond, held by notifier",
    ]
    other.release()
    for thread in (first, second):
        thread.join(10)
        assert not thread.is_alive()


def test_idle_queue_consumers_and_joins_on_busy_threads_are_not_stuck(
    watch: Capture, clock: FakeClock
) -> None:
    work: queue.Queue[int] = queue.Queue()
    busy = threading.Event()

    def consume() -> None:
        while work.get() >= 0:
            pass

    def run_busy() -> None:
        busy.wait(30)  # timed: working, as far as threadtrace can tell

    consumer = started(consume, "consumer")
    worker = started(run_busy, "busy")
    joiner = started(lambda: worker.join(), "joiner")
    wait_until(lambda: len(runtime.detect.blocked) >= 3)
    clock.advance(3600)
    assert _watch.scan() == []
    work.put(-1)
    busy.set()
    for thread in (consumer, worker, joiner):
        thread.join(10)
        assert not thread.is_alive()


def test_an_inversion_is_not_logged_inside_acquire(watch: Capture) -> None:
    """A logging handler that takes the very lock being acquired must not deadlock."""
    threadtrace.configure(lock_order=True)
    first, second = threading.Lock(name="first"), threading.Lock(name="second")
    seen: list[str] = []

    class Locking(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with second:  # held by the thread whose acquire found the inversion
                seen.append(record.getMessage().splitlines()[0])

    handler = Locking()
    logger = logging.getLogger("threadtrace")
    logger.addHandler(handler)
    try:
        with first, second:
            pass

        def invert() -> None:
            with second, first:
                pass

        thread = started(invert, "inverter")
        thread.join(10)
        assert not thread.is_alive()  # it did not hang in its own log handler
        assert seen == []
        publish_pending()  # the watchdog's thread would do this
    finally:
        logger.removeHandler(handler)
    assert seen == [
        "threadtrace: POSSIBLE DEADLOCK: locks were taken in conflicting orders "
        "(this run did not hang, but it can)"
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_others_record_lock_orders_works() -> None:
    program = textwrap.dedent(
        """
        import os, threading, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a threaded parent
        import threadtrace
        threadtrace.patch(exporters=(), lock_order=True)
        stop = threading.Event()
        def churn():
            while not stop.is_set():
                a, b = threading.Lock(), threading.Lock()
                with a, b:
                    pass
        workers = [threading.Thread(target=churn) for _ in range(2)]
        for w in workers:
            w.start()
        ok = 0
        for _ in range(10):
            pid = os.fork()
            if pid == 0:
                x, y = threading.Lock(), threading.Lock()
                with x, y:
                    pass
                os._exit(0 if threadtrace._runtime.runtime.detect.blocked == {} else 1)
            ok += os.waitpid(pid, 0)[1] == 0
        stop.set()
        for w in workers:
            w.join(10)
        print("children ok", ok)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "children ok 10\n", "")


def test_a_semaphore_acquired_straight_from_c_still_works(watch: Capture) -> None:
    import _thread

    sem = threading.BoundedSemaphore(1)
    _thread.start_new_thread(sem.acquire, ())  # no Python caller to name
    wait_until(lambda: sem._value == 0)  # type: ignore[attr-defined]
    wait_until(lambda: sem.statistics().holders != ())
    sem.release()


def test_a_woken_waiter_on_its_way_back_to_its_lock_is_not_stuck(
    watch: Capture, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Woken, a waiter settles its wait before taking its lock back: the wait is over."""
    # threading's own locks, untraced: the consumer must wait in them unseen.
    settling, go_on = _originals.allocate_lock(), _originals.allocate_lock()
    settling.acquire()
    go_on.acquire()
    recorder = runtime.recorder
    assert recorder is not None
    note_wait = recorder.note_wait

    def slow(*args: Any, **kwargs: Any) -> None:  # the first label of a file: a parse, say
        if threading.current_thread().name == "consumer":
            settling.release()
            assert go_on.acquire(timeout=10)
        note_wait(*args, **kwargs)

    monkeypatch.setattr(recorder, "note_wait", slow)
    cond = threading.Condition(threading.Lock(), name="inbox")

    def consume() -> None:
        with cond:
            cond.wait()

    consumer = started(consume, "consumer")
    wait_for_waiters(cond, 1)
    clock.advance(10.0)
    with cond:
        cond.notify()
    assert settling.acquire(timeout=10)
    assert _watch.scan() == []
    go_on.release()
    consumer.join(10)
    assert not consumer.is_alive()
