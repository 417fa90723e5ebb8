"""Lock order with default settings: on with the C lock core, kept in C, bounded."""

from __future__ import annotations

import contextlib
import logging
import os
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import threadtrace_cmd

import threadtrace
from threadtrace._detect import lockorder
from threadtrace._detect.problems import publish_pending
from threadtrace._primitives import core
from threadtrace._runtime import runtime
from threadtrace._support.sites import Site
from threadtrace.testing import capture, wait_until

INVERSION = """\
import threading

cache_lock = threading.Lock()
db_lock = threading.Lock()

def fill():
    with cache_lock:
        with db_lock:
            pass

def flush():
    with db_lock:
        with cache_lock:
            pass

for step in (fill, flush):  # one after the other: this run cannot hang
    worker = threading.Thread(target=step, name=step.__name__)
    worker.start()
    worker.join(10)
"""


def test_an_inversion_that_did_not_hang_is_reported_with_default_settings(
    tmp_path: Path,
) -> None:
    (tmp_path / "inversion.py").write_text(INVERSION)
    done = threadtrace_cmd(["run", "--no-summary", "inversion.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    if not core.SPEEDUPS:  # auto: off with the pure-Python core (see docs/configuration.md)
        assert "POSSIBLE DEADLOCK" not in done.stderr
        return
    assert done.stderr.startswith(
        textwrap.dedent(
            """\
            threadtrace: POSSIBLE DEADLOCK: locks were taken in conflicting orders (this run did not hang, but it can)
              cycle: cache_lock (inversion.py:3) -> db_lock (inversion.py:4) -> cache_lock (inversion.py:3)
              fill took db_lock (inversion.py:4) at inversion.py:8 in fill
                  while holding cache_lock (inversion.py:3), taken at inversion.py:7 in fill
              flush took cache_lock (inversion.py:3) at inversion.py:13 in flush
                  while holding db_lock (inversion.py:4), taken at inversion.py:12 in flush
            """
        )
    ), done.stderr


def test_lock_order_is_auto_by_default_and_can_be_set_either_way() -> None:
    assert threadtrace.Config().lock_order is None
    with capture(patch=False):
        assert runtime.ordering is core.SPEEDUPS
    for setting in (True, False):
        with capture(patch=False, lock_order=setting):
            assert runtime.ordering is setting
    with pytest.raises(threadtrace.ConfigurationError) as raised:
        threadtrace.Config(lock_order="yes")  # type: ignore[arg-type]
    assert str(raised.value) == "lock_order must be true, false or auto, got 'yes'"


def _on_a_fresh_thread(body: Callable[[], object]) -> None:
    """Run ``body`` on a new thread, whose held list is empty.

    This thread's may not be: a test may leave locks held (a deadlock's, a
    leak's), and the C core keeps 32 at most, past which a lock taken is
    checked but not kept, so the orders after it differ.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            body()
        except BaseException as error:  # raised again in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run, name="nesting")
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("setting", [True, None])
def test_nestings_are_recorded_once_each_in_either_core(setting: object) -> None:
    with capture(patch=False, lock_order=setting):
        if not runtime.ordering:
            pytest.skip("auto is off with the pure-Python core")
        outer, inner = threadtrace.Lock(), threadtrace.Lock()

        def nest() -> None:
            for _ in range(3):
                with outer, inner:
                    pass

        _on_a_fresh_thread(nest)
        orders = runtime.lock_order.orders
        assert (("i", outer._tt_serial), ("i", inner._tt_serial)) in orders
        assert (("i", inner._tt_serial), ("i", outer._tt_serial)) not in orders


def _among(*locks: Any) -> set[Any]:
    """The orders recorded between these locks (orders an earlier test left: not ours)."""
    serials = {("i", lock._tt_serial) for lock in locks}
    return {key for key in runtime.lock_order.orders if serials.issuperset(key)}


def test_a_condition_taking_its_lock_back_and_a_trylock_add_no_order() -> None:
    with capture(patch=False, lock_order=True):
        outer, lock = threadtrace.Lock(), threadtrace.RLock()
        condition = threadtrace.Condition(lock)

        def nest() -> None:
            with outer:
                assert lock.acquire(blocking=False)  # a trylock cannot deadlock
                lock.release()
                with condition:
                    condition.wait(0)  # lets go and takes it back

        _on_a_fresh_thread(nest)
        assert _among(outer, lock) == {(("i", outer._tt_serial), ("i", lock._tt_serial))}


def test_a_lock_released_by_another_thread_leaves_the_takers_held_locks() -> None:
    """A Lock may be released by any thread; the taker's next nesting must not name it."""
    with capture(patch=False, lock_order=True):
        handed, later, after = threadtrace.Lock(), threadtrace.Lock(), threadtrace.Lock()

        def nest() -> None:
            handed.acquire()
            _on_a_fresh_thread(handed.release)
            with later, after:
                pass

        _on_a_fresh_thread(nest)
        assert _among(handed, later, after) == {(("i", later._tt_serial), ("i", after._tt_serial))}


def _the_report(caplog: pytest.LogCaptureFixture, body: Callable[[], object]) -> str:
    """The one POSSIBLE DEADLOCK report ``body``, run on a fresh thread, gives rise to."""
    with caplog.at_level(logging.WARNING, logger="threadtrace"):
        _on_a_fresh_thread(body)
        publish_pending()  # here, or by a watchdog thread an earlier test started
        wait_until(lambda: any("POSSIBLE DEADLOCK" in r.getMessage() for r in caplog.records))
    reports = [r.getMessage() for r in caplog.records if "POSSIBLE DEADLOCK" in r.getMessage()]
    assert len(reports) == 1
    return reports[0]


class _Job:
    """A request's object with a lock of its own: one place makes a new lock for each."""

    def __init__(self) -> None:
        self.lock = threadtrace.Lock()


@pytest.mark.parametrize("setting", [True, None])
def test_new_locks_of_one_kind_taken_under_another_make_one_order_between_the_kinds(
    setting: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each job's lock is new, and the nesting is one order (lockdep's classes): the C
    core tells Python of it once, not once a job (a Python call of some 20 us each)."""
    with capture(patch=False, lock_order=setting):
        if not runtime.ordering:
            pytest.skip("auto is off with the pure-Python core")
        told: list[Any] = []
        nested = runtime.lock_order.nested

        def telling(held: tuple[Any, ...], lock: Any) -> None:
            told.append(lock)
            nested(held, lock)

        monkeypatch.setattr(runtime.lock_order, "nested", telling)
        registry = threadtrace.Lock()
        jobs = [_Job() for _ in range(200)]  # alive: their orders cannot be forgotten

        def nest() -> None:
            for job in jobs:
                with registry, job.lock:
                    pass

        _on_a_fresh_thread(nest)
        kinds = {("k", registry._tt_site.kind), ("k", jobs[0].lock._tt_site.kind)}
        assert len(kinds) == 2
        ours = {key for key in runtime.lock_order.orders if kinds.intersection(key)}
        assert ours == {(("k", registry._tt_site.kind), ("k", jobs[0].lock._tt_site.kind))}
        assert all(runtime.lock_order.knows(registry, job.lock) for job in jobs)
        assert not runtime.lock_order.knows(jobs[0].lock, registry)
        if core.SPEEDUPS:
            assert told == [jobs[0].lock]


def test_an_inversion_between_kinds_is_reported_when_every_lock_in_it_is_new(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with capture(patch=False, lock_order=True):
        registry = threadtrace.Lock()
        job = _Job()

        def nest() -> None:
            for _ in range(50):
                with registry, _Job().lock:
                    pass
            with job.lock, registry:  # a job never taken before, then the registry
                pass

        report = _the_report(caplog, nest)
    lines, jobs = report.splitlines(), job.lock.name
    assert lines[1] == f"  cycle: {registry.name} -> {jobs} #1 -> {registry.name}"
    assert lines[3].startswith(f"      while holding {registry.name}, taken at ")
    assert lines[5].startswith(f"      while holding {jobs} #2, taken at ")  # not the first job


def test_a_nesting_seen_before_the_graph_starts_afresh_is_recorded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_ORDERS orders of live locks the graph starts afresh: the C core must
    forget the pairs it has seen with it, or it would never tell them again."""
    monkeypatch.setattr(lockorder, "MAX_ORDERS", 4)
    with capture(patch=False, lock_order=True):
        locks = [threadtrace.Lock() for _ in range(12)]  # one kind: an order per pair
        first, second = locks[0], locks[1]

        def nest(pairs: list[tuple[Any, Any]]) -> None:
            for a, b in pairs:
                with a, b:
                    pass

        _on_a_fresh_thread(lambda: nest([(first, second)]))
        assert runtime.lock_order.knows(first, second)
        _on_a_fresh_thread(lambda: nest(list(zip(locks[2::2], locks[3::2]))))  # the 6th: afresh
        assert not runtime.lock_order.knows(first, second)
        _on_a_fresh_thread(lambda: nest([(first, second)]))
        assert runtime.lock_order.knows(first, second)


def test_locks_taken_one_inside_another_are_ordered_as_a_chain_and_its_inversion_is_caught(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """lockdep's walk: a lock is ordered after the held ones down to the first taken by a
    blocking acquire; the orders to those below are implied (a path), not recorded."""
    with capture(patch=False, lock_order=True):
        locks = [threadtrace.Lock() for _ in range(6)]  # one kind: ordered per lock

        def nest() -> None:
            with contextlib.ExitStack() as holding:
                for lock in locks:
                    holding.enter_context(lock)

        def back() -> None:
            with locks[-1], locks[0]:  # the last, then the first: the chain's way back
                pass

        _on_a_fresh_thread(nest)
        chain = {(("i", a._tt_serial), ("i", b._tt_serial)) for a, b in zip(locks, locks[1:])}
        assert _among(*locks) == chain  # 5 orders, not 15
        report = _the_report(caplog, back)
    name = locks[0].name  # all six share it, numbered in the report
    steps = " -> ".join(f"{name} #{n}" for n in (1, 2, 3, 4, 5, 6, 1))
    assert report.splitlines()[1] == f"  cycle: {steps}"


def test_a_lock_taken_over_a_tried_one_is_ordered_after_it_and_after_the_one_below() -> None:
    """A try records no order of its own, so the walk down the held locks goes on past it."""
    with capture(patch=False, lock_order=True):
        first, tried, last = threadtrace.Lock(), threadtrace.Lock(), threadtrace.Lock()

        def nest() -> None:
            with first:
                assert tried.acquire(blocking=False)
                with last:
                    pass
                tried.release()

        _on_a_fresh_thread(nest)
        assert _among(first, tried, last) == {
            (("i", first._tt_serial), ("i", last._tt_serial)),
            (("i", tried._tt_serial), ("i", last._tt_serial)),
        }


@pytest.mark.skipif(not core.SPEEDUPS, reason="the C core's held list")
def test_a_lock_taken_while_a_kind_is_read_leaves_the_held_list_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading a lock's kind runs Python, which may take a lock (a __del__ in a collection):
    the nesting being checked still gets its order, and nothing is left on the held list."""
    real = Site.kind
    took: list[bool] = []
    lockcore = core.lockcore
    assert lockcore is not None
    with capture(patch=False, lock_order=True):
        other = threadtrace.Lock(name="other")  # named: its own kind is never read

        def kind(site: Site) -> int:
            if not took:
                took.append(True)
                with other:
                    pass
            return real.fget(site)  # type: ignore[attr-defined, no-any-return]

        monkeypatch.setattr(Site, "kind", property(kind))
        outer = threadtrace.Lock()
        inner = threadtrace.Lock()  # another line: another kind

        def nest() -> None:
            with outer, inner:  # inner's kind is read first, with outer held
                assert lockcore.held_locks() == [outer, inner]
            assert lockcore.held_locks() == []

        _on_a_fresh_thread(nest)
        assert took
        assert runtime.lock_order.knows(outer, inner)
        assert runtime.lock_order.knows(outer, other)  # taken while outer was held


CHURN = """\
import gc, os, threading

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

for _ in range(7):
    for _ in range(20_000):
        outer, inner = threading.Lock(), threading.Lock()
        with outer:
            with inner:
                pass
    gc.collect()
    print(round(rss_mb(), 1), flush=True)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_lock_order_keeps_bounded_memory_while_nested_locks_come_and_go(tmp_path: Path) -> None:
    """Every pair is new (new locks each time): the pairs and the graph start afresh when full.

    Kept without bound they grow by some 16 MB a round.  The allocator's arenas take
    a few rounds to settle (three on 3.9 with the pure-Python core), so the growth is
    measured over the last four rounds.  No exporter: the json one's first export, a
    second in, imports the OTLP encoders (3.7 MB), in whichever round a slow machine
    reaches it."""
    (tmp_path / "churn.py").write_text(CHURN)
    done = threadtrace_cmd(
        ["run", "--no-summary", "--exporters", "", "--lock-order", "true", "churn.py"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    rounds = [float(line) for line in done.stdout.split()]
    assert len(rounds) == 7, done.stdout
    assert rounds[-1] - rounds[3] < 3.0, rounds


@pytest.mark.parametrize("options", [["--lock-order"], ["--lock-order", "true"]])
def test_lock_order_alone_or_with_a_value_turns_it_on_on_either_core(
    tmp_path: Path, options: list[str]
) -> None:
    (tmp_path / "inversion.py").write_text(INVERSION)
    done = threadtrace_cmd(["run", "--no-summary", *options, "inversion.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("threadtrace: POSSIBLE DEADLOCK: "), done.stderr
