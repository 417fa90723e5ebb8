"""Common threading bugs, each a small program run under ``threadtrace run``, diagnosed in full.

The programs are in ``tests/programs/``: each is a bug as people write it,
and ends by itself (daemon threads, waits with a timeout, a timer that gives
up).  Each runs with threadtrace's default settings, but for
``--stuck-after 1`` where the diagnosis is a stuck wait: with the default
5 s the suite would wait five times as long for the same report.

What threadtrace prints before its exit summary is asserted whole, with only
what changes from run to run normalised: durations, thread idents, the
directory of the programs, counts the scheduler decides, and the Python
traceback a dying thread prints (its form changes across Python versions).
Primitives are named through :func:`named`, the one place that knows how
reports name them.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
from helpers import child_env

PROGRAMS = Path(__file__).parent / "programs"


class Run:
    """A program's run: exit status, stdout, and stderr split at the exit summary.

    Attributes:
        reports: what threadtrace reported before the summary, normalised.
        died: the first and last lines of each traceback a dying thread
            printed (``Exception in thread loader: ... KeyError: 'port'``),
            taken out of ``reports``: printed by the thread itself, they may
            come a moment before or after a report.
        summary: the summary's lines, normalised.
    """

    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        head, _, tail = done.stderr.partition("threadtrace summary:\n")
        self.died = re.findall(DIED, head)
        self.reports = normalise(re.sub(DIED, "", head))
        self.summary = normalise("threadtrace summary:\n" + tail).splitlines() if tail else []


#: A traceback printed by threading's excepthook: its first line and the exception.
DIED = re.compile(
    r"^(Exception in thread [^\n]*):\nTraceback \(most recent call last\):\n(?: [^\n]*\n)*([^ \n][^\n]*)\n",
    re.MULTILINE,
)


def run(program: str, *options: str) -> Run:
    """``threadtrace run [options] tests/programs/<program>.py``, as a user runs it.

    The programs of :data:`RUNS` are started together the first time one is
    asked for, three at a time: most of each run is waiting for the
    watchdog's verdict, and one after the other they took most of a minute.
    """
    key = (program, *options)
    if key not in RUNS:
        return _run(key)
    if not _RESULTS:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
        _RESULTS.update((each, pool.submit(_run, each)) for each in RUNS)
        pool.shutdown(wait=False)
    return _RESULTS[key].result(timeout=300)


def _run(key: tuple[str, ...]) -> Run:
    program, *options = key
    done = subprocess.run(
        [sys.executable, "-m", "threadtrace", "run", *options, str(PROGRAMS / f"{program}.py")],
        cwd=PROGRAMS.parent,
        env=child_env(THREADTRACE_EXPORTERS=""),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    return Run(done)


STUCK_AFTER = ("--stuck-after", "1")
#: For many_blocked: room for a thousand threads to leave a barrier (see the program).
STUCK_AFTER_MANY = ("--stuck-after", "3")
#: Every run of this module (the program, then its options).
RUNS = [
    ("pool_starvation",),
    ("condition_holding_lock",),
    ("starvation",),
    *(
        (program, *STUCK_AFTER)
        for program in (
            "deadlock_then_exit",
            "queue_join",
            "event_setter_died",
            "lock_held_by_dead_worker",
            "barrier_party_died",
            "stop_event",
            "quiet_rlock_reentry",
            "quiet_busy_joinee",
            "quiet_idle_pool",
            "quiet_idle_consumer",
        )
    ),
    ("many_blocked", *STUCK_AFTER_MANY),
]
_RESULTS: dict[tuple[str, ...], concurrent.futures.Future[Run]] = {}


def normalise(text: str) -> str:
    """Durations as ``<t>``, idents as ``<id>``, the programs' directory as ``<programs>``."""
    text = text.replace(str(PROGRAMS), "<programs>")
    text = re.sub(r"\b\d+(?:\.\d+)? (?:s|ms|µs|ns)\b", "<t>", text)
    text = text.replace("<t> to <t>", "<t>")  # several waits, of different lengths
    return re.sub(r"\(thread \d+\)", "(thread <id>)", text)


def at(program: str, marker: str) -> int:
    """The line of ``tests/programs/<program>.py`` that is ``marker``, or the one that holds it."""
    source = (PROGRAMS / f"{program}.py").read_text(encoding="utf-8").splitlines()
    found = [i for i, text in enumerate(source, 1) if text.strip() == marker.strip()]
    if not found:
        found = [i for i, text in enumerate(source, 1) if marker in text]
    (number,) = found
    return number


def named(program: str, variable: str, marker: Optional[str] = None, via: str = "") -> str:
    """How reports name a primitive: ``cache_lock (app.py:4)``, ``jobs (Queue@app.py:9)``.

    ``marker`` finds the line that made it (by default, ``<variable> = ``).
    """
    line = at(program, marker or f"{variable} = ")
    return f"{variable} ({via + '@' if via else ''}{program}.py:{line})"


def expect(template: str) -> str:
    return textwrap.dedent(template).lstrip("\n")


# -- deadlocks --------------------------------------------------------------------------------


def test_pool_starvation_is_a_deadlock_naming_the_pool_the_tasks_and_the_lines() -> None:
    """A task waiting for a sub-task queued on its own full pool: DEADLOCK, within ~1 s."""
    done = run("pool_starvation")
    p = "pool_starvation"
    pool = named(p, "pool", via="ThreadPoolExecutor")
    fragment = named(p, "fragment", via="Future")
    submitted = f"submitted at {p}.py:{at(p, 'fragment = ')} in render_page"
    waits = at(p, "fragment.result()")
    assert done.returncode == 0
    assert done.stdout == "gave up: the pages never rendered\n"
    assert done.reports == expect(
        f"""
        threadtrace: DEADLOCK: pool starvation: the 2 workers of {pool} all wait for tasks queued on that same pool, which only they could run
          ThreadPoolExecutor-0_0 waits for the result of fetch_fragment ({submitted}), still queued on {pool}, whose 2 workers are all here
          ThreadPoolExecutor-0_1 waits for the result of fetch_fragment ({submitted}), still queued on {pool}, whose 2 workers are all here
          MainThread waits for the result of render_page, which ThreadPoolExecutor-0_0 runs, with a timeout

          2 threads: ThreadPoolExecutor-0_0 and ThreadPoolExecutor-0_1
            blocked for <t> in Future.result on {fragment}
            stack (most recent call last):
              File "<programs>/{p}.py", line {waits}, in render_page   <-- waits here
                return f"<html>{{fragment.result()}}</html>"  # the bug: no worker is left to run it

          MainThread (thread <id>)
            blocked for <t> in Future.result on {named(p, "pages", via="Future")}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "page.result(")}, in <module>   <-- waits here
                print(page.result(timeout=3))

          where they were made:
            {pool} made in <module>, max_workers=2

          A task that waits for another task of its own pool needs a worker to spare: run the sub-tasks on a pool of their own, or have the task return instead of waiting.
        """
    )


def test_waiting_on_a_condition_while_holding_the_lock_its_notifier_needs_is_a_deadlock() -> None:
    """The waiter holds cache_lock; the only thread that would notify waits for cache_lock."""
    done = run("condition_holding_lock")
    p = "condition_holding_lock"
    cache_lock = named(p, "cache_lock")
    refreshed = named(p, "refreshed")
    assert (done.returncode, done.stdout) == (0, "gave up waiting for the prices\n")
    assert done.reports == expect(
        f"""
        threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed
          reader waits on Condition {refreshed} while holding Lock {cache_lock}, which refresher waits for: no other thread is left to notify it
          refresher waits for Lock {cache_lock}, held by reader
          MainThread joins reader, with a timeout

          reader (thread <id>)
            blocked for <t> in Condition.wait on {refreshed}
            holds Lock {cache_lock}, acquired at {p}.py:{at(p, "    with cache_lock:")} in read_prices
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "refreshed.wait()")}, in read_prices   <-- waits here
                refreshed.wait()  # the bug: still holding cache_lock

          refresher (thread <id>)
            blocked for <t> in Lock.acquire on {cache_lock}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "with cache_lock:  #")}, in refresh   <-- waits here
                with cache_lock:  # the reader holds it while it waits

          MainThread (thread <id>)
            blocked for <t> in Thread.join on reader
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "reader.join(")}, in <module>   <-- waits here
                reader.join(timeout=3)

          where they were made:
            Lock {cache_lock} made in <module>
            Condition {refreshed} made in <module>

          Condition.wait() lets go of the condition's own lock only: let go of the others before waiting.
        """
    )


def test_a_deadlock_is_reported_once_never_as_stuck_and_counted_at_exit() -> None:
    """ABBA, left deadlocked until the program gives up: one report, and the summary counts it.

    With ``--stuck-after 1`` the deadlocked threads are as old as a stuck
    report needs, as soon as the deadlock is: still only the deadlock.
    """
    done = run("deadlock_then_exit", *STUCK_AFTER)
    p = "deadlock_then_exit"
    accounts = named(p, "accounts_lock")
    ledger = named(p, "ledger_lock")
    assert (done.returncode, done.stdout) == (0, "gave up\n")
    assert done.reports == expect(
        f"""
        threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed
          audit waits for Lock {accounts}, held by transfer
          transfer waits for Lock {ledger}, held by audit
          MainThread joins transfer, with a timeout

          audit (thread <id>)
            blocked for <t> in Lock.acquire on {accounts}
            holds Lock {ledger}, acquired at {p}.py:{at(p, "    with ledger_lock:")} in audit
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "with accounts_lock:  #")}, in audit   <-- waits here
                with accounts_lock:  # transfer holds it

          transfer (thread <id>)
            blocked for <t> in Lock.acquire on {ledger}
            holds Lock {accounts}, acquired at {p}.py:{at(p, "    with accounts_lock:")} in transfer
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "with ledger_lock:  #")}, in transfer   <-- waits here
                with ledger_lock:  # audit holds it

          MainThread (thread <id>)
            blocked for <t> in Thread.join on transfer
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "threads[0].join(")}, in <module>   <-- waits here
                threads[0].join(timeout=3)

          where they were made:
            Lock {accounts} made in <module>
            Lock {ledger} made in <module>
        """
    )
    # The waits still blocked at exit count: the program was not uncontended.
    assert "  hottest   no lock or semaphore was contended" not in done.summary
    assert f"  hottest   Lock {accounts}: waited <t> in total, 1 of 2 acquisitions blocked" in (
        done.summary
    )
    assert f"  at exit   2 waits still blocked: Lock {accounts}, Lock {ledger}" in done.summary


# -- stuck waits ------------------------------------------------------------------------------


def test_a_queue_join_that_never_returns_names_the_counts_of_put_get_and_task_done() -> None:
    """Workers forget task_done() for skipped jobs: the join is stuck, and the counts say so."""
    done = run("queue_join", *STUCK_AFTER)
    p = "queue_join"
    jobs = named(p, "jobs", via="Queue")
    assert (done.returncode, done.stdout) == (0, "")
    assert done.reports == expect(
        f"""
        threadtrace: STUCK: MainThread has been blocked for <t> in Queue.join on {jobs}, with no timeout
          {jobs} made in <module>
          the queue is empty and 2 threads have waited in get() for <t> or more, but 2 tasks were never marked done
          put() 10 times, get() 10 times, task_done() 8 times: every get() needs its task_done(), on every path (try/finally)

          MainThread (thread <id>)
            blocked for <t> in Queue.join on {jobs}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "jobs.join()")}, in <module>   <-- waits here
                jobs.join()

          other threads:
            Thread-1: waiting, untraced, in threading
            2 threads (worker-0 and worker-1): blocked for <t> in Queue.get on {jobs}, at {p}.py:{at(p, "jobs.get()")} in work
        """
    )


def test_a_wait_on_an_event_names_the_thread_that_died_instead_of_setting_it() -> None:
    """The loader raised KeyError before setting the event: the stuck report says so."""
    done = run("event_setter_died", *STUCK_AFTER)
    p = "event_setter_died"
    config_ready = named(p, "config_ready")
    assert (done.returncode, done.stdout) == (0, "the server never started\n")
    assert done.died == [("Exception in thread config-loader", "KeyError: 'port'")]
    assert done.reports == expect(
        f"""
        threadtrace: STUCK: server has been blocked for <t> in Event.wait on Event {config_ready}, with no timeout
          Event {config_ready} made in <module>
          it has not been set since the wait began
          1 thread ended with an exception since Event {config_ready} was made:
            config-loader ended with KeyError: 'port' at {p}.py:{at(p, 'settings["port"]')} in load_config

          server (thread <id>)
            blocked for <t> in Event.wait on {config_ready}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "config_ready.wait()")}, in serve   <-- waits here
                config_ready.wait()

          other threads:
            MainThread: blocked for <t> in Thread.join on server, with a timeout, at {p}.py:{at(p, "server.join(")} in <module>
        """
    )


def test_a_worker_that_died_holding_a_lock_and_a_permit_says_how_it_died_and_where_it_took_them() -> (
    None
):
    """The 300th acquisition, unsampled by default, is still named; so is the exception."""
    done = run("lock_held_by_dead_worker", *STUCK_AFTER)
    p = "lock_held_by_dead_worker"
    cache_lock = named(p, "cache_lock")
    connections = named(p, "connections")
    died = f"cache-refresher ended with KeyError: 'user:300' at {p}.py:{at(p, 'source[key]')} in refresh"
    assert (done.returncode, done.stdout) == (0, "gave up waiting for the cache\n")
    assert done.died == [("Exception in thread cache-refresher", "KeyError: 'user:300'")]
    assert done.reports == expect(
        f"""
        threadtrace: HELD BY A FINISHED THREAD: {died}, holding Lock {cache_lock}, acquired at {p}.py:{at(p, "cache_lock.acquire()")} in refresh; every thread that acquires it will wait forever.
          Lock {cache_lock} made in <module>
        threadtrace: HELD BY A FINISHED THREAD: {died}, holding 1 permit of BoundedSemaphore {connections}, acquired at {p}.py:{at(p, "connections.acquire()")} in refresh; nobody gave it back: the semaphore has one fewer to give.
          BoundedSemaphore {connections} made in <module>
        """
    )


def test_threads_stuck_at_a_barrier_are_one_report_naming_the_party_that_died() -> None:
    """Three loaders wait for a fourth that raised: one report, one stack for the three."""
    done = run("barrier_party_died", *STUCK_AFTER)
    p = "barrier_party_died"
    all_loaded = named(p, "all_loaded")
    assert (done.returncode, done.stdout) == (0, "gave up: the shards never merged\n")
    assert done.died == [("Exception in thread shard-2", "ValueError: shard 2 is malformed: 'e;f'")]
    assert done.reports == expect(
        f"""
        threadtrace: STUCK: 3 threads have been blocked for <t> in Barrier.wait on Barrier {all_loaded}, with no timeout
          Barrier {all_loaded} made in <module>
          3 of 4 parties are waiting; the others have not arrived
          1 thread ended with an exception since Barrier {all_loaded} was made:
            shard-2 ended with ValueError: shard 2 is malformed: 'e;f' at {p}.py:{at(p, "raise ValueError")} in load

          3 threads: shard-0, shard-1 and shard-3
            blocked for <t> in Barrier.wait on {all_loaded}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "all_loaded.wait()")}, in load   <-- waits here
                all_loaded.wait()  # waits for every shard, the broken one included

          other threads:
            MainThread: blocked for <t> in Thread.join on shard-0, with a timeout, at {p}.py:{at(p, "loader.join(")} in <module>
        """
    )


def test_a_thousand_threads_blocked_on_one_lock_are_one_report_with_one_stack() -> None:
    """One report, the thousand identical stacks once, the holder in full."""
    done = run("many_blocked", *STUCK_AFTER_MANY)
    p = "many_blocked"
    cache_lock = named(p, "cache_lock")
    assert (done.returncode, done.stdout) == (0, "served 1000\n")
    assert done.reports == expect(
        f"""
        threadtrace: STUCK: 1000 threads have been blocked for <t> in Lock.acquire on Lock {cache_lock}, with no timeout
          Lock {cache_lock} made in <module>
          held by loader, acquired at {p}.py:{at(p, "# held for the whole fetch")} in load

          1000 threads: request-0, request-1, request-2, request-3, request-4 and 995 more
            blocked for <t> in Lock.acquire on {cache_lock}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "# every request waits here")}, in handle   <-- waits here
                with cache_lock:  # every request waits here

          loader (thread <id>)
            holds Lock {cache_lock}, acquired at {p}.py:{at(p, "# held for the whole fetch")} in load
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "time.sleep(5)")}, in load
                time.sleep(5)  # a slow fetch, with the lock held

          other threads:
            MainThread: blocked for <t> in Thread.join on loader, with a timeout, at {p}.py:{at(p, "loader.join(")} in <module>
        """
    )


def test_a_stop_event_waited_on_for_the_whole_run_is_reported_once() -> None:
    """Two threads wait on `stop` for the program's whole life: one report, not one a look."""
    done = run("stop_event", *STUCK_AFTER)
    p = "stop_event"
    stop = named(p, "stop")
    assert (done.returncode, done.stdout) == (0, "['stopped']\n")
    assert done.reports == expect(
        f"""
        threadtrace: STUCK: 2 threads have been blocked for <t> in Event.wait on Event {stop}, with no timeout
          Event {stop} made in <module>
          it has not been set since the wait began

          heartbeat (thread <id>)
            blocked for <t> in Event.wait on {stop}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "    stop.wait()")}, in heartbeat   <-- waits here
                stop.wait()  # for the whole run: one stuck report at most

          monitor (thread <id>)
            blocked for <t> in Event.wait on {stop}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "while not stop.wait()")}, in monitor   <-- waits here
                while not stop.wait():

          other threads:
            MainThread: running, at {p}.py:{at(p, "time.sleep(0.5)")} in <module>
        """
    )


# -- starvation -------------------------------------------------------------------------------


def test_a_thread_starved_by_one_that_takes_the_semaphore_back_at_once_is_reported() -> None:
    """The status request waits seconds; the sync took the connection dozens of times meanwhile."""
    done = run("starvation")
    p = "starvation"
    connections = named(p, "connections")
    took = at(p, "with connections:  #")
    reports = re.sub(r"acquired it \d+ times", "acquired it <n> times", done.reports)
    assert (done.returncode, done.stdout) == (0, "status served\n")
    assert reports == expect(
        f"""
        threadtrace: STARVED: status has waited <t> for BoundedSemaphore {connections} while other threads acquired it <n> times; BoundedSemaphore is not fair: a thread that lets it go and takes it again at once goes ahead of the threads waiting
          BoundedSemaphore {connections} made in <module>
          a permit is held now by nightly-sync, acquired at {p}.py:{took} in nightly_sync
          Do the work outside it, or hand it over in turn (a queue, or a Condition and a turn counter): time.sleep(0) after letting go does not make it fair.

          status (thread <id>)
            blocked for <t> in BoundedSemaphore.acquire on {connections}
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, "    with connections:")}, in status   <-- waits here
                with connections:

          nightly-sync (thread <id>)
            holds 1 permit of BoundedSemaphore {connections}, acquired at {p}.py:{took} in nightly_sync
            stack (most recent call last):
              File "<programs>/{p}.py", line {at(p, 'query("UPDATE')}, in nightly_sync
                query("UPDATE totals SET n = n + 1")
              File "<programs>/{p}.py", line {at(p, "time.sleep(0.02)")}, in query
                time.sleep(0.02)  # the database at work

          other threads:
            MainThread: blocked for <t> in Thread.join on nightly-sync, with a timeout, at {p}.py:{at(p, "thread.join(")} in <module>
        """
    )


# -- quiet ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "stdout"),
    [
        ("quiet_rlock_reentry", "registered 150\n"),
        ("quiet_busy_joinee", "worker done\n"),
        ("quiet_idle_pool", "36\n1\n"),
        ("quiet_idle_consumer", "got a\ngot b\n"),
    ],
)
def test_what_is_not_a_bug_is_not_reported(program: str, stdout: str) -> None:
    """RLock re-entry, a busy joinee, idle pool workers, a consumer waiting for work."""
    done = run(program, *STUCK_AFTER)
    assert (done.returncode, done.stdout, done.reports) == (0, stdout, "")
