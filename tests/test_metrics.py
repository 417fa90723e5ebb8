"""Metric series: what they count, and that their cardinality stays bounded."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from helpers import contend, line, named

import threadtrace
from threadtrace._runtime import runtime as _state
from threadtrace._support import originals as _originals
from threadtrace.testing import Capture, FakeClock, capture, wait_for_waiters

FILE = "test_metrics.py"


def point(cap: Capture, metric: str, kind: str, name: str) -> Any:
    key = (("threadtrace.primitive.kind", kind), ("threadtrace.primitive.name", name))
    return cap.metrics()[metric][key]


def test_a_timed_out_semaphore_wait_is_neither_an_acquisition_nor_a_contention(
    clock: FakeClock,
) -> None:
    with capture(clock=clock, wait_threshold=0) as cap:
        sem, sem_line = threading.Semaphore(0), line()
        taker = threading.Thread(target=lambda: sem.acquire(timeout=30))
        taker.start()
        wait_for_waiters(sem, 1)
        clock.advance(0.5)
        sem.release()
        taker.join(10)
        assert sem.acquire(timeout=0.001) is False  # times out: counted as a timeout only
        name = named("sem", FILE, sem_line)
        assert point(cap, "threadtrace.operations", "semaphore", name) == 1
        assert point(cap, "threadtrace.contentions", "semaphore", name) == 1
        stats = sem.statistics()
        assert (stats.acquisitions, stats.contended, stats.timeouts) == (1, 1, 1)


def test_joins_are_one_series_per_thread_function_not_per_thread(clock: FakeClock) -> None:
    """Thread names are unique ("Thread-7 (work)"); the series is the function run."""
    go = threading.Event()

    def work() -> None:
        go.wait(30)

    with capture(clock=clock, wait_threshold=0) as cap:
        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        joiner = threading.Thread(target=lambda: [t.join(30) for t in threads], name="joiner")
        joiner.start()
        wait_for_waiters(threads[0], 1)
        go.set()
        joiner.join(10)
        series = cap.metrics()["threadtrace.wait.duration"]
    thread_series = [
        dict(key)["threadtrace.primitive.name"]
        for key in series
        if ("threadtrace.primitive.kind", "thread") in key
    ]
    # The three workers share one series; the joiner's own join may add its lambda's.
    assert [s for s in thread_series if s.endswith(".work")] == [f"{__name__}.{work.__qualname__}"]
    assert not [s for s in thread_series if s.startswith("Thread-")]


def test_primitives_collected_by_gc_keep_their_counts() -> None:
    """Counts of dead primitives are folded into their series, so counters never go down."""
    import gc

    with capture() as cap:
        for _ in range(3):
            lock, lock_line = threadtrace.Lock(), line()
            with lock:
                pass
        del lock
        gc.collect()
        assert point(cap, "threadtrace.operations", "lock", named("lock", FILE, lock_line)) == 3
        assert len(_state.live) == 0


def test_thousands_of_collected_locks_keep_exact_counts() -> None:
    """Summed as they are collected, in at most a few thousand rows; the rest as before.

    Each lock has a name of its own (an equal string, another object): a row
    each, more than the C core keeps (RETIRED_ROWS), so the last ones take the
    Python path.  Ten series in all.
    """
    import gc

    from threadtrace._primitives import core

    locks = 6000
    expected = {f"series-{k}": 0 for k in range(10)}
    with capture():
        before = dict(_state.retired_now())
        for i in range(locks):
            lock = threadtrace.Lock(name="".join(("series-", str(i % 10))))
            for _ in range(i % 3 + 1):
                with lock:
                    pass
            expected[f"series-{i % 10}"] += i % 3 + 1
        lock = threadtrace.RLock(name="series-0")  # same name, another kind: another series
        with lock, lock:
            pass
        del lock
        gc.collect()
        totals = _state.retired_now()
        for name, acquisitions in expected.items():
            assert totals[("lock", name)][0] - before.get(("lock", name), (0,))[0] == acquisitions
        assert totals[("rlock", "series-0")][0] - before.get(("rlock", "series-0"), (0,))[0] == 2
        if core.SPEEDUPS:
            assert _state.locks.take_retired() == []  # all folded


def test_a_forked_child_reports_none_of_the_parents_collected_locks() -> None:
    """What the parent's collected locks counted is the parent's, however far it got."""
    done = subprocess.run(
        [sys.executable, "-c", FORKED_CHILD],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "child 0 parent True\n", "")


FORKED_CHILD = """\
import gc, os
import threadtrace
from threadtrace._runtime import runtime
lock = threadtrace.Lock(name="parents")
with lock:
    pass
del lock
gc.collect()  # its counts wait to be folded
pid = os.fork()
if pid == 0:
    os._exit(0 if ("lock", "parents") not in runtime.retired_now() else 1)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), "parent", ("lock", "parents") in runtime.retired_now())
"""


def test_a_condition_joins_the_registry_at_its_first_wait() -> None:
    """Futures and queues make Conditions by the thousand; one never waited on is not registered."""
    with capture() as cap:
        cond, cond_line = threading.Condition(), line()
        with cond:
            cond.notify()
        assert cond not in _state.live
        with cond:
            assert cond.wait(0) is False
        assert cond in _state.live
        name = named("cond", FILE, cond_line)
        assert point(cap, "threadtrace.operations", "condition", name) == 1


def test_a_condition_never_waited_on_carries_only_its_birth() -> None:
    """Its counters stay the class's zeros (a Future's Condition would pay a bigger dict each),
    and so do its name while it has none and the count of crashed threads it was made after
    while there are none."""
    with capture():
        _state.detect.crash_count = 0  # (earlier tests' crashes carry over: see DetectorState)
        cond = threading.Condition()
        with cond:
            pass
        stdlib = vars(_originals.Condition())
        assert set(vars(cond)) - set(stdlib) == {"_tt_site"}
        _state.detect.crash_count = 3
        named = vars(threading.Condition(name="named"))
        assert (named["_tt_crashes_before"], named["_tt_name"]) == (3, "named")
        with cond:
            cond.notify()
            assert cond.wait(0) is False
            cond.notify_all()
        stats = cond.statistics()
        assert (stats.waits, stats.blocked, stats.timeouts, cond._tt_unheard) == (1, 1, 1, 2)
        assert "_tt_ops" in vars(cond)  # counted on the instance, the class's zero untouched
        assert type(cond)._tt_ops == 0


def test_a_capture_reports_only_the_waits_of_its_block() -> None:
    """A wait made before the block, still queued for recording, is not the block's."""
    before = threadtrace.Lock(name="before")
    assert _state.recorder is not None
    contend(before)  # recorded later: its record waits in the recorder's queue
    with capture(patch=False):
        during = threadtrace.Lock(name="during")
        contend(during)
        names = [row.name for row in threadtrace.report().primitives]
    assert names == ["during"]


def test_exclude_modules_accepts_a_comma_separated_string() -> None:
    config = threadtrace.Config(exclude_modules="myapp.vendor, other")
    assert config.exclude_modules == ("myapp.vendor", "other")


def test_providers_given_earlier_survive_a_later_configure() -> None:
    # (No hold spans: under load the contended hold can last hold_threshold.)
    with capture(patch=False, wait_threshold=0, hold_threshold=3600) as cap:
        threadtrace.configure(exporters=("memory",))  # must not forget the capture's providers
        lock = threadtrace.Lock()
        contend(lock)
        spans = [s.name for s in cap.spans() if not s.name.startswith("Thread.run")]
        assert spans == [f"Lock.acquire {lock.name}"]


def test_locks_collected_by_gc_keep_their_measured_holds(clock: FakeClock) -> None:
    """The hold count and the longest hold outlive the locks, in the metrics and the report."""
    import gc

    with capture(clock=clock, sample_every=1, hold_threshold=3600) as cap:
        for seconds in (2, 5, 1):  # three locks of one series (one line)
            lock, lock_line = threadtrace.Lock(), line()
            contend(lock)  # two holds of no time, and a wait: the lock is in the report
            with lock:
                clock.advance(seconds)
            del lock
        gc.collect()
        assert len(_state.live) == 0
        name = named("lock", FILE, lock_line)
        assert point(cap, "threadtrace.hold.count", "lock", name) == 9
        assert point(cap, "threadtrace.hold.max", "lock", name) == 5.0
        assert point(cap, "threadtrace.hold.time", "lock", name) == 8.0
        (block,) = [p for p in threadtrace.report().primitives if p.name == name]
        assert (block.holds_measured, block.total_hold, block.max_hold) == (9, 8.0, 5.0)
