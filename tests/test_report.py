"""The contention report: exact content for known contention, live equal to offline.

Contention is forced with handshakes (hold, start a thread, wait until it is
blocked, move the fake clock, let go), so every wait has an exact duration
and an exact holder.  The handshake events themselves are threading's own,
untraced, so they never show up in the report.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from helpers import line, named

import threadtrace
from threadtrace._cli.main import COMMANDS, main
from threadtrace._formats.otlp_jsonl import read_trace_file
from threadtrace._recording import profile as _profile
from threadtrace._report.model import quantile
from threadtrace._support.points import HistogramPoint
from threadtrace.testing import FakeClock, capture, wait_for_waiters, wait_until

FILE = "test_report.py"
#: Settings that measure every hold, so holder sites are acquire sites.
MEASURE_ALL = {"wait_threshold": 0, "hold_threshold": 3600, "sample_every": 1}


@pytest.fixture(autouse=True)
def fresh_profile() -> Iterator[None]:
    """A contention profile of the test's own, the process's put back afterwards."""
    previous = _profile.swap(_profile.ContentionAggregator())
    yield
    _profile.swap(previous)


def qualname(function: Callable[..., Any]) -> str:
    return function.__code__.co_qualname if sys.version_info >= (3, 11) else function.__name__


def finish(thread: threading.Thread) -> None:
    """Join a thread once it has ended, so that (patched) the join never blocks."""
    wait_until(lambda: not thread.is_alive(), 10, f"{thread.name} to end")
    thread.join(10)


def contend_for(lock: Any, seconds: float, clock: FakeClock, thread_name: str) -> None:
    """Hold ``lock`` while one thread waits ``seconds`` for it."""
    lock.acquire()
    taker = threading.Thread(target=lambda: (lock.acquire(), lock.release()), name=thread_name)
    taker.start()
    wait_for_waiters(lock, 1)
    clock.advance(seconds)
    lock.release()
    finish(taker)


# -- (a) a hot lock held across slow work ------------------------------------------------


def test_a_lock_held_across_slow_work_ranks_first_with_the_holders_site(
    clock: FakeClock,
) -> None:
    """Two posters wait 0.4 s behind a transfer that holds the ledger across slow work."""
    with capture(patch=False, clock=clock, **MEASURE_ALL):  # type: ignore[arg-type]
        ledger, ledger_line = threadtrace.Lock(), line()
        stats, stats_line = threadtrace.Lock(), line()
        holding, done = threading.Event(), threading.Event()

        def transfer() -> None:
            with ledger:  # the holder's site
                holding.set()
                done.wait(30)  # slow work, with the ledger held

        def post() -> None:
            with ledger:  # where the posters wait
                pass

        def read_stats() -> None:
            with stats:
                pass

        slow = threading.Thread(target=transfer, name="slow-transfer")
        slow.start()
        assert holding.wait(10)
        posters = [threading.Thread(target=post, name=f"poster-{i}") for i in (1, 2)]
        for poster in posters:
            poster.start()
        wait_for_waiters(ledger, 2)
        clock.advance(0.4)
        done.set()
        for thread in (slow, *posters):
            finish(thread)

        # A second lock, contended once and briefly, by the main thread.
        stats.acquire()
        stats_acquire_line = line() - 1
        reader = threading.Thread(target=read_stats, name="reader")
        reader.start()
        wait_for_waiters(stats, 1)
        clock.advance(0.05)
        stats.release()
        finish(reader)

        report = threadtrace.report()

    transfer_line = transfer.__code__.co_firstlineno + 1
    post_line = post.__code__.co_firstlineno + 1
    read_line = read_stats.__code__.co_firstlineno + 1
    this = qualname(test_a_lock_held_across_slow_work_ranks_first_with_the_holders_site)
    at_transfer = f"{FILE}:{transfer_line} in {qualname(transfer)}"
    at_post = f"{FILE}:{post_line} in {qualname(post)}"
    at_read = f"{FILE}:{read_line} in {qualname(read_stats)}"
    at_main = f"{FILE}:{stats_acquire_line} in {this}"
    width = max(len(at_transfer), len(at_post))  # the longest label of the block

    def row(label: str, count: int, total: str, longest: str) -> str:
        return f"     {label:<{width}}{count:>7} {total:>9} {longest:>9}"

    def title(text: str, header: bool = False) -> str:
        return f"   {text:<{width + 2}}{'  waits     total       max' if header else ''}".rstrip()

    first = [
        f"1. Lock {named('ledger', FILE, ledger_line)}",
        "   contended  2 of 3 acquisitions (67%)",
        "   wait       800 ms in 2 waits: mean 400 ms, p50 400 ms, p99 400 ms, max 400 ms",
        "   hold       400 ms in 3 measured holds: max 400 ms",
        title("waiting at", header=True),
        row(at_post, 2, "800 ms", "400 ms"),
        title("holders at"),
        row(at_transfer, 2, "800 ms", "400 ms"),
        title("waiting threads"),
        row("poster-1", 1, "400 ms", "400 ms"),
        row("poster-2", 1, "400 ms", "400 ms"),
        title("holding threads"),
        row("slow-transfer", 2, "800 ms", "400 ms"),
    ]
    width = max(len(at_read), len(at_main))
    second = [
        f"2. Lock {named('stats', FILE, stats_line)}",
        "   contended  1 of 2 acquisitions (50%)",
        "   wait       50.0 ms in 1 wait: mean 50.0 ms, p50 50.0 ms, p99 50.0 ms, max 50.0 ms",
        "   hold       50.0 ms in 2 measured holds: max 50.0 ms",
        title("waiting at", header=True),
        row(at_read, 1, "50.0 ms", "50.0 ms"),
        title("holders at"),
        row(at_main, 1, "50.0 ms", "50.0 ms"),
        title("waiting threads"),
        row("reader", 1, "50.0 ms", "50.0 ms"),
        title("holding threads"),
        row("MainThread", 1, "50.0 ms", "50.0 ms"),
    ]

    assert report.text() == "\n".join([
        "threadtrace contention report: 2 primitives blocked 3 times, 850 ms in total, "
        "summed over the threads that waited; by total wait",
        "",
        "-- mutual exclusion: threads kept out by a holder (locks, semaphores) --",
        "",
        *first,
        "",
        *second,
    ])  # fmt: skip
    assert str(report) == report.text()

    def site(
        line_number: int, function: Callable[..., Any] | str, count: int, seconds: float
    ) -> dict[str, Any]:
        name = function if isinstance(function, str) else qualname(function)
        return {
            "label": f"{FILE}:{line_number} in {name}",
            "file": __file__,
            "line": line_number,
            # code.function.name is fully qualified; the label shortens it.
            "function": f"{__name__}.{name}",
            "count": count,
            "total": seconds * count,
            "max": seconds,
        }

    def thread(name: str, count: int, seconds: float) -> dict[str, Any]:
        return {"name": name, "count": count, "total": seconds * count, "max": seconds}

    assert report.to_dict() == {
        "sort": "wait",
        "top": 10,
        "primitives_blocked": 2,
        "waits": 3,
        "total_wait": 0.85,
        "primitives": [
            {
                "kind": "lock",
                "name": named("ledger", FILE, ledger_line),
                "operations": 3,
                "contended": 2,
                "share": 2 / 3,
                "waits": 2,
                "timeouts": 0,
                "unfinished": 0,
                "total_wait": 0.8,
                "mean_wait": 0.4,
                "p50_wait": 0.4,
                "p99_wait": 0.4,
                "max_wait": 0.4,
                "holds_measured": 3,
                "total_hold": 0.4,
                "max_hold": 0.4,
                "waiting_sites": [site(post_line, post, 2, 0.4)],
                "holder_sites": [site(transfer_line, transfer, 2, 0.4)],
                "waiting_threads": [thread("poster-1", 1, 0.4), thread("poster-2", 1, 0.4)],
                "holding_threads": [thread("slow-transfer", 2, 0.4)],
            },
            {
                "kind": "lock",
                "name": named("stats", FILE, stats_line),
                "operations": 2,
                "contended": 1,
                "share": 0.5,
                "waits": 1,
                "timeouts": 0,
                "unfinished": 0,
                "total_wait": 0.05,
                "mean_wait": 0.05,
                "p50_wait": 0.05,
                "p99_wait": 0.05,
                "max_wait": 0.05,
                "holds_measured": 2,
                "total_hold": 0.05,
                "max_hold": 0.05,
                "waiting_sites": [site(read_line, read_stats, 1, 0.05)],
                "holder_sites": [site(stats_acquire_line, this, 1, 0.05)],
                "waiting_threads": [thread("reader", 1, 0.05)],
                "holding_threads": [thread("MainThread", 1, 0.05)],
            },
        ],
    }
    assert json.loads(report.to_json()) == report.to_dict()


# -- (b) a bounded queue's backpressure --------------------------------------------------


def test_a_producer_blocked_on_a_full_queue_is_reported_at_the_queues_line(
    clock: FakeClock,
) -> None:
    """The wait is the queue's (its creation line), at the user's put(), not in queue.py."""
    with capture(clock=clock, **MEASURE_ALL):  # type: ignore[arg-type]
        jobs, jobs_line = queue.Queue(maxsize=1), line()
        jobs.put("first")

        def produce() -> None:
            jobs.put("second")  # blocks: the queue is full

        producer = threading.Thread(target=produce, name="producer")
        producer.start()
        wait_for_waiters(jobs.not_full, 1)
        clock.advance(0.25)
        assert jobs.get(timeout=10) == "first"
        get_line = line() - 1
        finish(producer)
        report = threadtrace.report()
        # Woken inside get(), the producer may find get() still holding the
        # queue's mutex for an instant: a wait of 0 s on the fake clock,
        # behind main's get().  Whether it did is up to the scheduler.
        mutex_waits = jobs.mutex.statistics().contended  # type: ignore[attr-defined]

    put_line = produce.__code__.co_firstlineno + 1
    at_put = f"{FILE}:{put_line} in {qualname(produce)}"
    condition = {
        "kind": "condition",
        "name": named("jobs", FILE, jobs_line, via="Queue"),
        "operations": 1,
        "contended": 1,
        "share": 1.0,
        "waits": 1,
        "timeouts": 0,
        "unfinished": 0,
        "total_wait": 0.25,
        "mean_wait": 0.25,
        "p50_wait": 0.25,
        "p99_wait": 0.25,
        "max_wait": 0.25,
        "holds_measured": 0,
        "total_hold": None,
        "max_hold": None,
        "waiting_sites": [
            {"label": at_put, "file": __file__, "line": put_line,
             "function": f"{__name__}.{qualname(produce)}", "count": 1, "total": 0.25,
             "max": 0.25}
        ],
        "holder_sites": [],
        "waiting_threads": [{"name": "producer", "count": 1, "total": 0.25, "max": 0.25}],
        "holding_threads": [],
    }  # fmt: skip
    # The queue's mutex, if it was waited on, is a lock: it comes first.
    assert report.to_dict()["primitives"][mutex_waits] == condition
    width = len(at_put)
    header = [
        f"threadtrace contention report: {1 + mutex_waits} primitive{'s' if mutex_waits else ''} "
        f"blocked {1 + mutex_waits} time{'s' if mutex_waits else ''}, 250 ms in total, "
        "summed over the threads that waited; by total wait",
    ]
    waiting = [
        "",
        "-- waiting for work or a signal: conditions (queues, futures), events, barriers, joins --",
        "",
        f"{1 + mutex_waits}. Condition {named('jobs', FILE, jobs_line, via='Queue')}",
        "   contended  1 of 1 waits (100%)",
        "   wait       250 ms in 1 wait: mean 250 ms, p50 250 ms, p99 250 ms, max 250 ms",
        f"   {'waiting at':<{width + 2}}  waits     total       max",
        f"     {at_put}      1    250 ms    250 ms",
        f"   {'waiting threads':<{width + 2}}".rstrip(),
        f"     {'producer':<{width}}      1    250 ms    250 ms",
    ]
    exclusion: list[str] = []
    if mutex_waits:
        (mutex, _) = report.primitives
        assert (mutex.kind, mutex.name, mutex.waits, mutex.total_wait) == (
            "lock", named("jobs", FILE, jobs_line, via="Queue"), 1, 0.0,
        )  # fmt: skip
        assert [s.label for s in mutex.waiting_sites] == [at_put]
        this = qualname(test_a_producer_blocked_on_a_full_queue_is_reported_at_the_queues_line)
        assert [s.label for s in mutex.holder_sites] == [f"{FILE}:{get_line} in {this}"]
        all_lines = report.text().split("\n")
        exclusion = all_lines[1 : len(all_lines) - len(waiting)]
        assert exclusion[:3] == [
            "",
            "-- mutual exclusion: threads kept out by a holder (locks, semaphores) --",
            "",
        ]
    assert report.text() == "\n".join(header + exclusion + waiting)
    assert len(report.primitives) == 1 + mutex_waits


# -- (c) sort orders and top N -----------------------------------------------------------


def test_sort_by_total_wait_longest_wait_or_count_and_keep_the_top_n(clock: FakeClock) -> None:
    """A: one 0.5 s wait.  B: three of 0.25 s.  C: four of 0.01 s."""
    with capture(patch=False, clock=clock, **MEASURE_ALL):  # type: ignore[arg-type]
        a = threadtrace.Lock(name="A")
        b = threadtrace.Lock(name="B")
        c = threadtrace.Lock(name="C")
        contend_for(a, 0.5, clock, "a-1")
        for i in range(3):
            contend_for(b, 0.25, clock, f"b-{i}")
        for i in range(4):
            contend_for(c, 0.01, clock, f"c-{i}")

        def order(**options: Any) -> list[str]:
            return [p.name for p in threadtrace.report(**options).primitives]

        assert order() == ["B", "A", "C"]
        assert order(sort="wait") == ["B", "A", "C"]
        assert order(sort="max") == ["A", "B", "C"]
        assert order(sort="count") == ["C", "B", "A"]
        assert order(sort="count", top=2) == ["C", "B"]
        assert order(top=1) == ["B"]
        threadtrace.configure(report_sort="max", report_top=2)
        assert order() == ["A", "B"]  # the defaults come from the settings
        report = threadtrace.report(sort="count", top=2)

    assert (report.sort, report.top, report.primitives_blocked, report.waits) == ("count", 2, 3, 8)
    c_report = report.primitives[0]
    assert [t.name for t in c_report.waiting_threads] == ["c-0", "c-1", "c-2", "c-3"]
    lines = report.text().split("\n")
    assert lines[0] == (
        "threadtrace contention report: 3 primitives blocked 8 times, 1.29 s in total, "
        "summed over the threads that waited; top 2 of 3 by number of waits"
    )
    assert [text for text in lines if text[:1].isdigit()] == ["1. Lock C", "2. Lock B"]
    assert (
        lines[6]
        == "   wait       40.0 ms in 4 waits: mean 10.0 ms, p50 10.0 ms, p99 10.0 ms, max 10.0 ms"
    )


def test_locks_and_semaphores_come_before_waits_for_a_signal_in_every_order(
    clock: FakeClock,
) -> None:
    """An Event waited on for 2 s is listed after a Lock waited on for 0.1 s, under its own title."""
    with capture(patch=False, clock=clock, **MEASURE_ALL):  # type: ignore[arg-type]
        lock = threadtrace.Lock(name="hot")
        signal = threadtrace.Event(name="signal")
        contend_for(lock, 0.1, clock, "taker")
        for _ in range(3):
            waiter = threading.Thread(target=signal.wait, args=(30,), name="waiter")
            waiter.start()
            wait_for_waiters(signal, 1)
            clock.advance(2)
            signal.set()
            finish(waiter)
            signal.clear()
        reports = {sort: threadtrace.report(sort=sort) for sort in ("wait", "max", "count")}
        top_one = threadtrace.report(top=1)

    for report in reports.values():
        assert [p.name for p in report.primitives] == ["hot", "signal"]
        assert [line for line in report.text().split("\n") if line.startswith("--")] == [
            "-- mutual exclusion: threads kept out by a holder (locks, semaphores) --",
            "-- waiting for work or a signal: conditions (queues, futures), events, barriers, joins --",
        ]
    assert [p.name for p in top_one.primitives] == ["hot"]
    assert top_one.total_wait == 6.1  # summed over the threads that waited: every wait


def test_an_invalid_sort_or_top_is_refused() -> None:
    with pytest.raises(
        threadtrace.ConfigurationError, match=r"^sort must be one of wait, max, count, got 'total'$"
    ):
        threadtrace.report(sort="total")
    with pytest.raises(
        threadtrace.ConfigurationError, match=r"^top must be a whole number >= 1, got 0$"
    ):
        threadtrace.report(top=0)
    with pytest.raises(
        threadtrace.ConfigurationError, match=r"^top must be a whole number >= 1, got True$"
    ):
        threadtrace.report(top=True)


def test_with_nothing_blocked_the_report_says_so() -> None:
    with capture(patch=False):
        report = threadtrace.report()
    assert report.text() == "threadtrace contention report: no operation blocked"
    assert report.to_dict() == {
        "sort": "wait", "top": 10, "primitives_blocked": 0, "waits": 0, "total_wait": 0.0,
        "primitives": [],
    }  # fmt: skip


# -- the profile's bounds, and quantiles -------------------------------------------------


def test_sites_and_threads_past_the_cap_are_counted_as_other() -> None:
    """33 waiting threads: 32 by name, the rest as (other), listed last."""
    profile = _profile.current()
    for i in range(_profile.MAX_VALUES + 3):
        profile.record("lock", "L", 1000, True, f"t-{i:02}", ("a.py", 1, "f"), "holder", None)
    report = threadtrace.report(sort="count")
    (primitive,) = report.primitives
    assert len(primitive.waiting_threads) == _profile.MAX_VALUES + 1
    assert primitive.waiting_threads[-1].name == "(other)"
    assert primitive.waiting_threads[-1].count == 3
    assert primitive.holder_sites[0].label == "(unknown)"
    assert primitive.holding_threads[0].name == "holder"
    # The text shows five, then how many more, then (other): 35 threads must not read as 33.
    text = report.text().splitlines()
    at = text.index("   waiting threads")
    assert [row.split()[0] for row in text[at + 1 : at + 9]] == [
        "t-00", "t-01", "t-02", "t-03", "t-04", "(27", "(other)", "holding"
    ]  # fmt: skip
    assert text[at + 6] == "     (27 more)"
    assert text[at + 7].split()[1:] == ["3", "3.00", "µs", "1.00", "µs"]


def test_past_the_series_cap_threads_are_lumped_before_sites() -> None:
    profile = _profile.current()
    threads = [f"t-{i}" for i in range(_profile.MAX_VALUES)]
    for waiter in threads:
        for holder in threads:
            profile.record(
                "lock", "L", 1000, True, waiter, ("a.py", 1, "f"), holder, ("a.py", 2, "g")
            )
    series = profile.series()
    assert len(series) == _profile.THREAD_DETAIL_SERIES + 1
    lumped = [row for row in series if row[2][2] == "(other)"]
    assert [(key, count) for _, _, key, count, _, _ in lumped] == [
        ((("a.py", 1, "f"), ("a.py", 2, "g"), "(other)", "(other)"),
         len(threads) ** 2 - _profile.THREAD_DETAIL_SERIES),
    ]  # fmt: skip
    (primitive,) = threadtrace.report().primitives
    assert [(s.label, s.count) for s in primitive.holder_sites] == [("a.py:2 in g", 1024)]


def test_quantiles_interpolate_in_their_bucket_within_the_exact_extremes() -> None:
    ms = 1_000_000
    # Ten waits: 1 ms, then nine between 10 ms and 20 ms (max 15 ms).
    bounds = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
    histogram = HistogramPoint(bounds, (1, 0, 0, 0, 9, 0, 0), 0.001, 0.015)
    assert quantile(histogram, 50, 15 * ms) == 10 * ms + (15 * ms - 10 * ms) * 4 // 9
    assert quantile(histogram, 99, 15 * ms) == 10 * ms + (15 * ms - 10 * ms) * 890 // 900
    assert quantile(histogram, 10, 15 * ms) == 1 * ms  # the single smallest wait
    one = HistogramPoint(bounds, (0, 0, 0, 1, 0, 0, 0), 0.007, 0.007)
    assert quantile(one, 50, 7 * ms) == quantile(one, 99, 7 * ms) == 7 * ms


# -- (d) offline equals live ---------------------------------------------------------------

#: A program with every kind of wait, most of them far shorter than the
#: default wait_threshold (1 ms), so they are not spans; it prints its own
#: reports just before exiting, and logs the report at exit.
PROGRAM = """\
import json, logging, queue, sys, threading, time
import threadtrace
from threadtrace.testing import wait_for_waiters

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
threadtrace.patch()

ledger = threading.Lock()
jobs = queue.Queue(maxsize=1)
go = threading.Event()
slots = threading.Semaphore(1)

def post():
    with ledger:
        pass

with ledger:
    posters = [threading.Thread(target=post, name=f"poster-{i}") for i in range(3)]
    for poster in posters:
        poster.start()
    wait_for_waiters(ledger, 3, timeout=10)
    time.sleep(0.005)  # slow work with the ledger held: these waits are spans
    # Waits far shorter than wait_threshold: counted, but not spans.
    timeouts = [ledger.acquire(timeout=0.0001) for _ in range(20)]
for poster in posters:
    poster.join(10)

# A join that blocks until the releaser sees it, and the event it waits on.
sleeper = threading.Thread(target=lambda: go.wait(10), name="sleeper")
sleeper.start()
wait_for_waiters(go, 1, timeout=10)
releaser = threading.Thread(
    target=lambda: (wait_for_waiters(sleeper, 1, timeout=10), go.set()), name="releaser"
)
releaser.start()
sleeper.join(10)
releaser.join(10)

slots.acquire()
taker = threading.Thread(target=lambda: (slots.acquire(), slots.release()), name="taker")
taker.start()
wait_for_waiters(slots, 1, timeout=10)
slots.release()
taker.join(10)

consumer = threading.Thread(target=lambda: jobs.get(timeout=10), name="consumer")
consumer.start()
wait_for_waiters(jobs.not_empty, 1, timeout=10)
jobs.put("job")
consumer.join(10)

print(json.dumps({
    "timeouts": timeouts,
    "default": threadtrace.report().to_dict(),
    "max2": threadtrace.report(sort="max", top=2).to_dict(),
    "text": threadtrace.report().text(),
}))
"""


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADTRACE_")}
    root = str(Path(threadtrace.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def run_python(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=child_env(**env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_the_offline_report_of_a_run_equals_the_live_one(tmp_path: Path) -> None:
    (tmp_path / "program.py").write_text(PROGRAM, encoding="utf-8")
    run = run_python(
        ["program.py"], tmp_path, THREADTRACE_EXPORTERS="json", THREADTRACE_REPORT="true"
    )
    assert run.returncode == 0, run.stderr
    live = json.loads(run.stdout)
    assert live["timeouts"] == [False] * 20

    offline = run_python(
        ["-m", "threadtrace", "report", "threadtrace-trace.jsonl", "--json"], tmp_path
    )
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == live["default"]
    offline = run_python(
        [
            "-m",
            "threadtrace",
            "report",
            "threadtrace-trace.jsonl",
            "--sort",
            "max",
            "--top",
            "2",
            "--json",
        ],
        tmp_path,
    )
    assert json.loads(offline.stdout) == live["max2"]
    offline = run_python(["-m", "threadtrace", "report", "threadtrace-trace.jsonl"], tmp_path)
    assert offline.stdout == live["text"] + "\n"
    # Logged at exit (report=true), computed before the exporters' last export.
    assert live["text"] + "\n" in run.stderr

    # Every kind of wait is there, and most waits were too short to be spans.
    kinds = {p["kind"] for p in live["default"]["primitives"]}
    assert kinds == {"lock", "condition", "semaphore", "event", "thread"}
    spans = [r for r in read_trace_file(str(tmp_path / "threadtrace-trace.jsonl"))
             if r.name.endswith((".acquire", ".wait", ".join"))]  # fmt: skip
    assert len(spans) < live["default"]["waits"]
    (ledger,) = [p for p in live["default"]["primitives"] if p["name"] == "ledger (program.py:8)"]
    assert ledger["timeouts"] == 20


# -- (e) the command, given bad input ------------------------------------------------------


def report_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["report", *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    """A trace and a metrics file as the json exporter leaves them for a run that never waited."""
    (tmp_path / "trace.jsonl").write_text('{"resourceSpans":[]}\n', encoding="utf-8")
    (tmp_path / "trace.metrics.jsonl").write_text('{"resourceMetrics":[]}\n', encoding="utf-8")
    return tmp_path


def test_report_reads_the_metrics_file_beside_the_trace(
    saved_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = str(saved_run / "trace.jsonl")
    assert report_cli([trace], capsys) == (
        0, "threadtrace contention report: no operation blocked\n", ""
    )  # fmt: skip
    status, out, err = report_cli([trace, "--json", "--sort", "count", "--top", "3"], capsys)
    assert (status, err) == (0, "")
    assert json.loads(out) == {
        "sort": "count", "top": 3, "primitives_blocked": 0, "waits": 0, "total_wait": 0.0,
        "primitives": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.jsonl"], "cannot read {dir}/missing.jsonl: No such file or directory"),
        (
            ["trace.metrics.jsonl"],
            "{dir}/trace.metrics.jsonl, line 1: not an OTLP JSON trace line "
            "(it holds metrics, not spans; pass the trace file)",
        ),
        (
            ["trace.jsonl", "--metrics", "trace.jsonl"],
            "{dir}/trace.jsonl, line 1: not an OTLP JSON metrics line (it holds spans, not metrics)",
        ),
        (
            ["trace.jsonl", "--metrics", "garbage.jsonl"],
            "{dir}/garbage.jsonl, line 2: not an OTLP JSON metrics line "
            "(Expecting value: line 1 column 1 (char 0))",
        ),
        (["trace.jsonl", "--metrics", "empty.jsonl"], "{dir}/empty.jsonl holds no metrics"),
        (
            ["other.jsonl"],
            "cannot read {dir}/other.metrics.jsonl: No such file or directory "
            "(the json exporter writes it at exit; give its path with --metrics)",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_one_line_and_status_2(
    saved_run: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    (saved_run / "garbage.jsonl").write_text('{"resourceMetrics":[]}\nnot json\n', encoding="utf-8")
    (saved_run / "empty.jsonl").write_text("\n", encoding="utf-8")
    (saved_run / "other.jsonl").write_text('{"resourceSpans":[]}\n', encoding="utf-8")
    arguments = [str(saved_run / a) if a.endswith(".jsonl") else a for a in arguments]
    expected = "threadtrace report: error: " + message.format(dir=saved_run) + "\n"
    assert report_cli(arguments, capsys) == (2, "", expected)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--top", "0"], "argument --top: must be a whole number >= 1, got '0'"),
        (["--top", "many"], "argument --top: must be a whole number >= 1, got 'many'"),
        (
            ["--sort", "total"],
            "argument --sort: invalid choice: 'total' (choose from 'wait', 'max', 'count')",
        ),
        ([], "the following arguments are required: trace"),
    ],
)
def test_a_bad_option_is_one_line_and_status_2(
    saved_run: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    trace = [str(saved_run / "trace.jsonl")] if arguments else []
    expected = f"threadtrace report: error: {message} (see 'threadtrace report --help')\n"
    assert report_cli([*trace, *arguments], capsys) == (2, "", expected)


def test_help_documents_every_option_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--metrics", "--sort", "--top", "--json"):
        assert f"Example: {option}" in text, option
    assert "threadtrace report threadtrace-trace.jsonl" in text
    assert "report" in COMMANDS
