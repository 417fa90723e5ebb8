"""Who held the lock, and where they took it: known for (nearly) every contended wait.

With default settings (``sample_every=100``), the holder's acquire site must be
known for at least 95 % of the contended waits of a tight loop, not only for
the sampled ones: the lock cores note where every acquisition happens.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest
from helpers import line

from threadtrace._recording.profile import OTHER_SITE
from threadtrace._runtime import runtime
from threadtrace.testing import capture, wait_until


def test_the_holders_site_is_known_for_nearly_every_contended_wait_of_a_tight_loop() -> None:
    with capture(patch=True):  # default settings
        counter = threading.Lock()
        total = [0]
        start = threading.Barrier(4)
        done: list[None] = []  # the threads that finished their loop

        def add(value: int) -> int:
            return value + 1

        def bump() -> None:
            start.wait(10)
            for i in range(20_000):
                forced = i % 2000 == 0  # now and then, a contended wait for sure:
                with counter:
                    total[0] = add(total[0])  # a call: a thread switch may happen in here
                    if forced:  # held until another thread waits,
                        wait_until(lambda: counter.statistics().waiters or len(done) == 3, 30)
                        before = counter.statistics().contended
                if forced:  # and not taken again before that thread has it
                    wait_until(
                        lambda b=before: counter.statistics().contended > b or len(done) == 3, 30
                    )
            done.append(None)

        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)  # switch often: many contended waits
        try:
            workers = [threading.Thread(target=bump, name=f"bump-{i}") for i in range(4)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(60)
        finally:
            sys.setswitchinterval(previous)
        runtime.recorder.drain()  # what the waits queued, recorded now
        rows = [row for row in runtime.profile.series() if row[0] == "lock"]
    assert total[0] == 80_000
    waits = sum(row[3] for row in rows)
    known = sum(row[3] for row in rows if row[2][1] not in (None, OTHER_SITE))
    assert waits >= 20, f"only {waits} contended waits: the test did not contend"
    assert known / waits >= 0.95, (known, waits)
    sites = {row[2][1] for row in rows if row[2][1] is not None}
    assert {site[1] for site in sites} == {bump.__code__.co_firstlineno + 4}


def test_a_hold_span_names_where_its_own_holder_took_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hold is told after the release, and by then the next holder may have
    taken the lock at a line of its own: the span still names the line where
    the hold it measures began (seen wrong under load in CI)."""
    with capture(hold_threshold=0, sample_every=1) as cap:
        lock = threading.Lock()
        taken, release = threading.Event(), threading.Event()
        others: list[threading.Thread] = []

        def next_holder() -> None:
            with lock:  # the next holder's line
                taken.set()
                release.wait(10)

        told = type(lock)._held

        def held(self: Any, *args: Any) -> None:
            if threading.current_thread() is threading.main_thread() and not others:
                others.append(threading.Thread(target=next_holder, name="next-holder"))
                others[0].start()
                assert taken.wait(10)  # the lock is the next holder's now
            told(self, *args)

        monkeypatch.setattr(type(lock), "_held", held)
        with lock:
            first_line = line() - 1
        release.set()
        others[0].join(10)
        runtime.recorder.drain()
        holds = {
            s.attributes["thread.name"]: s.attributes["code.line.number"]
            for s in cap.spans()
            if s.name.startswith("Lock.hold")
        }
    assert holds == {
        "MainThread": first_line,
        "next-holder": next_holder.__code__.co_firstlineno + 1,
    }
