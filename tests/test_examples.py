"""Every program in ``examples/`` under ``threadtrace run``: its output, its trace, its report.

Each example runs once, as its docstring says to run it, in a directory of
its own, with short delays (``LESSON_DELAY``) and the contention report on.
The runs go two at a time on a small pool, the longest first, while the
tests wait for theirs.  A test then checks what the example is there to
show: its own output, the spans that matter in the trace it wrote (which
primitive, which thread, which line), and the lines of threadtrace's
report and diagnoses.  Durations and thread idents in the report text are
normalised (``<t>``, ``<id>``); what is compared is never a timing.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
from helpers import child_env, named, threadtrace_cmd

from threadtrace._formats.otlp_jsonl import read_trace_file
from threadtrace._formats.records import SpanRecord

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: What each example waits for when it pretends to work (its default is 0.1 s).
DELAY = 0.05
#: The summary's last line, after every run that wrote spans.
TIMELINE_HINT = (
    "  timeline  threadtrace convert threadtrace-trace.jsonl --to perfetto -o timeline.json"
)


@dataclasses.dataclass(frozen=True)
class Example:
    """One program of ``examples/``, and how its docstring says to run it."""

    path: str  # relative to examples/
    options: tuple[str, ...] = ()  # threadtrace run's options
    status: int = 0
    seconds: float = 0.5  # about how long it runs here: the longest start first

    @property
    def command(self) -> str:
        """The command line as the docstring and examples/README.md give it."""
        return " ".join(["threadtrace run", *self.options, f"examples/{self.path}"])


@dataclasses.dataclass(frozen=True)
class Run:
    """What one run of an example left: status, output, and its files in ``cwd``."""

    example: Example
    cwd: Path
    status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def file(self) -> str:
        """The example's file name, as primitive names and report lines give it."""
        return Path(self.example.path).name

    def line(self, text: str) -> int:
        """The number of the one line of the example that is ``text``, or else contains it."""
        source = (EXAMPLES / self.example.path).read_text(encoding="utf-8").splitlines()
        found = [number for number, line in enumerate(source, 1) if line.strip() == text]
        if not found:
            found = [number for number, line in enumerate(source, 1) if text in line]
        assert len(found) == 1, f"{text!r} is on lines {found} of {self.example.path}"
        return found[0]

    def name(self, variable: Optional[str], text: str, via: Optional[str] = None) -> str:
        """The name threadtrace gives the primitive made on the line containing ``text``."""
        return named(variable, self.file, self.line(text), via=via)

    def at(self, text: str, function: str) -> str:
        """A report's place: ``file.py:LINE in function``."""
        return f"{self.file}:{self.line(text)} in {function}"

    def spans(self) -> list[SpanRecord]:
        return read_trace_file(str(self.cwd / "threadtrace-trace.jsonl"))

    @property
    def report(self) -> str:
        """stderr with durations, idents and the examples' directory made stable."""
        text = self.stderr.replace(f"{EXAMPLES}{os.sep}", "examples/")
        text = re.sub(r"\d+(?:\.\d+)? (?:ns|µs|ms|s)\b", "<t>", text)
        return re.sub(r"\(thread \d+\)", "(thread <id>)", text)

    def report_lines(self) -> list[str]:
        return [line.strip() for line in self.report.splitlines()]

    def digest(self) -> str:
        """Everything the run left, to read when a check fails."""
        try:
            spans = [
                f"  {s.name} [{s.attributes.get('thread.name')}] {s.duration_ns / 1e6:.1f} ms "
                + str({k: v for k, v in s.attributes.items() if k.startswith("threadtrace.")})
                for s in self.spans()
            ]
        except Exception as error:  # no spans, or no file: say so and go on
            spans = [f"  ({error})"]
        command = f"$ {self.example.command}  # status {self.status}, {self.seconds:.2f} s"
        return "\n".join(
            [command, "stdout:", self.stdout, "stderr:", self.stderr, "spans:", *spans]
        )


#: The keyword arguments of spans_named, and the attributes they stand for.
ATTRIBUTES = {
    "thread_name": "thread.name",
    "function": "code.function.name",
    "line": "code.line.number",
    "primitive_name": "threadtrace.primitive.name",
    "timed_out": "threadtrace.timed_out",
}


def spans_named(spans: list[SpanRecord], operation: str, **attributes: Any) -> list[SpanRecord]:
    """The spans of ``operation`` (``Lock.acquire``...) whose attributes include ``attributes``.

    The keywords are those of :data:`ATTRIBUTES`.
    """
    wanted = {ATTRIBUTES[key]: value for key, value in attributes.items()}
    return [
        span
        for span in spans
        if span.name.split(" ", 1)[0] == operation
        and all(span.attributes.get(key) == value for key, value in wanted.items())
    ]


def joined_run(spans: list[SpanRecord], join: SpanRecord) -> SpanRecord:
    """The ``Thread.run`` span that a ``Thread.join`` span's ``joined`` link points to."""
    (link,) = [k for k in join.links if k.attributes.get("threadtrace.link.type") == "joined"]
    (run,) = [s for s in spans if s.span_id == link.span_id]
    return run


def rows(lines: list[str], heading: str) -> list[str]:
    """The rows under one heading of a report block (``waiting at``, ``holders at``...)."""
    headings = ("waiting at", "holders at", "waiting threads", "holding threads")
    (start,) = [i for i, line in enumerate(lines) if line.startswith(heading)]
    end = start + 1
    while end < len(lines) and not lines[end].startswith(headings):
        end += 1
    return lines[start + 1 : end]


def block(run: Run, title: str) -> list[str]:
    """The lines of the report's block for one primitive (``Lock cache_lock (app.py:4)``)."""
    lines = run.report_lines()
    starts = [i for i, line in enumerate(lines) if re.fullmatch(rf"\d+\. {re.escape(title)}", line)]
    assert len(starts) == 1, f"no block {title!r} in:\n{run.report}"
    end = starts[0] + 1
    while end < len(lines) and lines[end] and not lines[end].startswith("threadtrace "):
        end += 1  # to the blank line before the next block, or the summary
    return lines[starts[0] : end]


# -- the examples and what each must show ----------------------------------------------

CHECKS: dict[str, tuple[Example, Callable[[Run], None]]] = {}


def example(
    path: str, *options: str, status: int = 0, seconds: float = 0.5
) -> Callable[[Callable[[Run], None]], Callable[[Run], None]]:
    """Register the check of ``examples/<path>``, run with ``options``."""

    def register(check: Callable[[Run], None]) -> Callable[[Run], None]:
        CHECKS[path] = (Example(path, options, status, seconds), check)
        return check

    return register


@example("lessons/01_simple_thread.py")
def simple_thread(run: Run) -> None:
    """The worker runs while the main thread waits, and the join is linked to its run."""
    assert run.stdout == (
        "main: starting a worker\nworker: working\nmain: the worker has finished\n"
    )
    spans = run.spans()
    (worker,) = spans_named(spans, "Thread.run", function="__main__.worker")
    assert worker.name == "Thread.run __main__.worker"
    (join,) = spans_named(spans, "Thread.join", thread_name="MainThread")
    assert join.name == "Thread.join __main__.worker"
    assert join.attributes["code.line.number"] == run.line("thread.join()  # the worker")
    assert joined_run(spans, join) == worker
    assert (
        run.at("thread.join()  # the worker", "main")
        in block(run, "Thread __main__.worker (joins)")[3]
    )


@example("lessons/02_arguments.py")
def arguments(run: Run) -> None:
    """Each worker got its own arguments: five runs, five answers in order."""
    assert run.stdout == "".join(f"Worker {n}: {n} ** 3 = {n**3}\n" for n in range(5))
    runs = spans_named(run.spans(), "Thread.run", function="__main__.worker")
    assert len(runs) == 5


@example("lessons/03_naming_threads.py")
def naming_threads(run: Run) -> None:
    """Named threads' spans carry their names; the unnamed one's carries its target."""
    unnamed = "Thread-1" if sys.version_info < (3, 10) else "Thread-1 (worker)"
    assert run.stdout == (
        "main program runs in MainThread\n"
        "my_service saw current_thread().name == 'my_service'\n"
        "worker saw current_thread().name == 'worker'\n"
        f"{unnamed} saw current_thread().name == '{unnamed}'\n"
    )
    spans = run.spans()
    by_thread = {s.attributes["thread.name"]: s.name for s in spans_named(spans, "Thread.run")}
    assert by_thread == {
        "my_service": "Thread.run my_service",
        "worker": "Thread.run worker",
        unnamed: "Thread.run __main__.worker",
    }


@example("lessons/04_logging.py")
def logging_thread_names(run: Run) -> None:
    """%(threadName)s names each line's thread; the report goes through the same handler."""
    assert run.stdout == ""
    logged = [line for line in run.stderr.splitlines() if line.startswith("[DEBUG]")]
    assert logged == [
        "[DEBUG] (my_service) Starting",
        "[DEBUG] (worker    ) Starting",
        "[DEBUG] (worker    ) Exiting",
        "[DEBUG] (my_service) Exiting",
        "[DEBUG] (MainThread) Done",
    ]
    assert "[INFO] (MainThread) threadtrace contention report: " in run.stderr
    spans = run.spans()
    (join,) = spans_named(spans, "Thread.join", thread_name="my_service")
    assert join.name == "Thread.join worker"
    assert join.attributes["code.line.number"] == run.line("helper.join()")
    assert joined_run(spans, join).attributes["thread.name"] == "worker"


@example("lessons/05_daemon_threads.py")
def daemon_threads(run: Run) -> None:
    """The daemon is stopped at exit, still waiting: no run span, and the summary says so."""
    assert run.stdout == "daemon: Starting\nnon-daemon: Starting\nnon-daemon: Exiting\n"
    spans = run.spans()
    (only_run,) = spans_named(spans, "Thread.run")
    assert only_run.attributes["thread.name"] == "non-daemon"
    assert only_run.attributes["threadtrace.thread.daemon"] is False
    never = run.name("never", "never = threading.Event()")
    (wait,) = spans_named(spans, "Event.wait", primitive_name=never)
    assert wait.attributes["thread.name"] == "daemon"
    assert f"at exit   1 wait still blocked: Event {never}" in run.report_lines()


@example("lessons/06_joining_daemon.py")
def joining_daemon(run: Run) -> None:
    """join() waits for a daemon thread as for any other."""
    assert run.stdout == "daemon: Starting\ndaemon: Exiting\ndaemon finished: alive=False\n"
    spans = run.spans()
    (join,) = spans_named(spans, "Thread.join", thread_name="MainThread")
    daemon_run = joined_run(spans, join)
    assert daemon_run.name == "Thread.run daemon"
    assert daemon_run.attributes["threadtrace.thread.daemon"] is True


@example("lessons/07_join_timeout.py")
def join_timeout(run: Run) -> None:
    """A join with a timeout gives up while the thread runs on; its span says so."""
    assert run.stdout == (
        "after join(timeout): alive=True\ndaemon: Exiting\nafter join(): alive=False\n"
    )
    spans = run.spans()
    (timed,) = spans_named(spans, "Thread.join", timed_out=True)
    assert timed.name == "Thread.join daemon"
    assert timed.attributes["threadtrace.timeout"] == DELAY
    assert timed.attributes["code.line.number"] == run.line("thread.join(timeout=DELAY)")
    release = run.name("release", "release = threading.Event()")
    (wait,) = spans_named(spans, "Event.wait", primitive_name=release)
    assert wait.attributes["thread.name"] == "daemon"
    assert wait.attributes["threadtrace.waker.thread.name"] == "MainThread"
    assert "wait       <t> in 2 waits, 1 timed out: " in run.report


@example("lessons/08_enumerate_threads.py")
def enumerate_threads(run: Run) -> None:
    """The workers are found by enumerate() and joined, threadtrace's own threads left alone."""
    assert run.stdout == "joined worker-0\njoined worker-1\njoined worker-2\n"
    spans = run.spans()
    runs = spans_named(spans, "Thread.run")
    assert sorted(s.attributes["thread.name"] for s in runs) == ["worker-0", "worker-1", "worker-2"]
    assert {s.name for s in runs} == {"Thread.run worker"}
    go = run.name("go", "go = threading.Event()")
    assert f"Event {go}" in run.report


@example("lessons/09_subclass_thread.py")
def subclass_thread(run: Run) -> None:
    """A subclass's thread is traced as its run() method."""
    assert run.stdout == "".join(f"squarer-{n}: {n} ** 2 = {n * n}\n" for n in range(3))
    runs = spans_named(run.spans(), "Thread.run", function="__main__.Squarer.run")
    assert sorted(s.attributes["thread.name"] for s in runs) == [
        "squarer-0",
        "squarer-1",
        "squarer-2",
    ]
    assert {s.name for s in runs} == {"Thread.run squarer"}
    assert {s.attributes["code.line.number"] for s in runs} == {run.line("def run(self):")}


@example("lessons/10_subclass_with_arguments.py")
def subclass_with_arguments(run: Run) -> None:
    """The subclass's own constructor arguments reach run()."""
    assert run.stdout == (
        "downloader-0: https://example.com/ (retries=0): 2000 bytes\n"
        "downloader-1: https://example.org/a (retries=1): 2100 bytes\n"
        "downloader-2: https://example.net/ab (retries=2): 2200 bytes\n"
    )
    runs = spans_named(run.spans(), "Thread.run", function="__main__.Downloader.run")
    assert {s.name for s in runs} == {"Thread.run downloader"}
    assert len(runs) == 3


@example("lessons/11_timer.py")
def timer(run: Run) -> None:
    """The timer that was not cancelled fires; the cancelled one never runs its function."""
    assert run.stdout == "starting both timers; cancelling the alarm\nreminder: ring!\ndone\n"
    spans = run.spans()
    (fired,) = spans_named(spans, "Thread.run", thread_name="reminder")
    assert fired.name == "Thread.run reminder"
    assert fired.attributes["code.function.name"] == "__main__.ring"
    assert fired.duration_ns >= DELAY * 1e9  # the interval, then the call
    # The cancelled alarm's run leaves a span only if a join had to wait for
    # it to wind up (and a join links to it); it never lasts its interval.
    for alarm in spans_named(spans, "Thread.run", thread_name="alarm"):
        assert alarm.duration_ns < 10 * DELAY * 1e9
    joins = spans_named(spans, "Thread.join", thread_name="MainThread")
    assert fired in [joined_run(spans, join) for join in joins]
    assert "threads   2 started" in run.report_lines()


@example("lessons/12_event.py")
def event(run: Run) -> None:
    """wait() blocks until set(); wait(timeout) returns False when the time is up."""
    assert run.stdout == (
        "blocking: wait() returned True\n"
        "non-blocking, first try: wait() returned False\n"
        "non-blocking, second try: wait() returned True\n"
    )
    spans = run.spans()
    ready = run.name("ready", "ready = threading.Event()")
    (timed_out,) = spans_named(spans, "Event.wait", primitive_name=ready, timed_out=True)
    assert timed_out.attributes["thread.name"] == "non-blocking"
    assert timed_out.attributes["threadtrace.timeout"] == DELAY
    # `blocking` waits from its start to set(): unless it started very late.
    for blocking in spans_named(spans, "Event.wait", primitive_name=ready, thread_name="blocking"):
        assert blocking.attributes["threadtrace.waker.thread.name"] == "MainThread"
        assert "threadtrace.timeout" not in blocking.attributes
    lines = block(run, f"Event {ready}")
    assert re.fullmatch(r"contended  [23] of 3 waits \(\d+%\)", lines[1])
    assert re.match(r"wait       <t> in [23] waits, 1 timed out: ", lines[2])


@example("lessons/13_lock_counter.py")
def lock_counter(run: Run) -> None:
    """The lock makes the workers wait for each other: who waited, behind whom, at which line."""
    assert run.stdout == "counter: 12 (3 workers x 4 increments)\n"
    lock = run.name("self.lock", "self.lock = threading.Lock()")
    spans = run.spans()
    waits = spans_named(spans, "Lock.acquire", primitive_name=lock)
    assert waits, "some worker waited for the lock"
    for wait in waits:
        assert wait.name == f"Lock.acquire {lock}"
        assert re.fullmatch(r"worker-\d", wait.attributes["thread.name"])
        assert wait.attributes["code.line.number"] == run.line("with self.lock:")
        assert wait.attributes["code.function.name"] == "__main__.Counter.increment"
    # A worker takes the lock again right after releasing it, so a wait can
    # begin while the lock is between two owners: holder unknown, no holder.*.
    holders = [w.attributes for w in waits if "threadtrace.holder.thread.name" in w.attributes]
    assert holders
    for holder in holders:
        assert re.fullmatch(r"worker-\d", holder["threadtrace.holder.thread.name"])
        assert holder["threadtrace.holder.thread.name"] != holder["thread.name"]
        assert holder["threadtrace.holder.code.line.number"] == run.line("with self.lock:")
    lines = block(run, f"Lock {lock}")
    assert re.fullmatch(r"contended  \d+ of 12 acquisitions \(\d+%\)", lines[1])
    increment = run.at("with self.lock:", "Counter.increment")
    assert [row.split("  ")[0] for row in rows(lines, "waiting at")] == [increment]
    assert increment in [row.split("  ")[0] for row in rows(lines, "holders at")]
    assert re.search(
        rf"hottest   Lock {re.escape(lock)}: waited <t> in total, \d+ of 12 acquisitions blocked",
        run.report,
    )


@example("lessons/14_nonblocking_acquire.py")
def nonblocking_acquire(run: Run) -> None:
    """A failed try leaves nothing; a timed try that gives up is a span naming the holder."""
    assert run.stdout == (
        "acquire(blocking=False) while held: False\n"
        "acquire(timeout=...) while held: False\n"
        "acquire() once it is let go: True\n"
    )
    lock = run.name("lock", "lock = threading.Lock()")
    (timed,) = spans_named(run.spans(), "Lock.acquire", primitive_name=lock, timed_out=True)
    assert timed.attributes["thread.name"] == "worker"
    assert timed.attributes["threadtrace.timeout"] == DELAY
    assert timed.attributes["code.line.number"] == run.line("lock.acquire(timeout=DELAY)")
    assert timed.attributes["threadtrace.holder.thread.name"] == "holder"
    assert timed.attributes["threadtrace.holder.code.line.number"] == run.line("with lock:")
    lines = block(run, f"Lock {lock}")
    assert "1 timed out" in lines[2]
    assert rows(lines, "holders at")[0].startswith(run.at("with lock:", "holder"))


@example("lessons/15_lock_vs_rlock.py")
def lock_vs_rlock(run: Run) -> None:
    """A Lock taken twice by one thread waits for itself; an RLock does not."""
    assert run.stdout == (
        "Lock, first acquire: True\n"
        "Lock, second acquire: False\n"
        "RLock, first acquire: True\n"
        "RLock, second acquire: True\n"
    )
    spans = run.spans()
    (wait,) = spans_named(spans, "Lock.acquire")
    assert wait.attributes["threadtrace.primitive.name"] == run.name(
        "lock", "lock = threading.Lock()"
    )
    assert wait.attributes["threadtrace.timed_out"] is True
    assert wait.attributes["thread.name"] == "MainThread"
    assert wait.attributes["threadtrace.holder.thread.name"] == "MainThread"
    assert not spans_named(spans, "RLock.acquire")


@example("lessons/16_lock_with.py")
def lock_with(run: Run) -> None:
    """`with lock:` and acquire()/release() wait alike, behind the same holder."""
    assert run.stdout == (
        "worker_no_with: lock acquired with acquire()\nworker_with: lock acquired with 'with'\n"
    )
    lock = run.name("lock", "lock = threading.Lock()")
    spans = run.spans()
    waits = {
        s.attributes["thread.name"]: s
        for s in spans_named(spans, "Lock.acquire", primitive_name=lock)
    }
    assert sorted(waits) == ["worker_no_with", "worker_with"]
    assert waits["worker_with"].attributes["code.line.number"] == run.line("with lock:  # acquired")
    assert waits["worker_no_with"].attributes["code.line.number"] == run.line("lock.acquire()")
    held = run.line("with lock:  # held while both workers start")
    for wait in waits.values():
        assert wait.attributes["threadtrace.holder.thread.name"] == "MainThread"
        assert wait.attributes["threadtrace.holder.code.line.number"] == held
    (hold,) = spans_named(spans, "Lock.hold", primitive_name=lock)
    assert hold.attributes["thread.name"] == "MainThread"
    assert hold.attributes["code.line.number"] == held
    holders = rows(block(run, f"Lock {lock}"), "holders at")
    assert [row.split("  ")[0] for row in holders] == [f"{run.file}:{held} in main"]


@example("lessons/17_condition.py")
def condition(run: Run) -> None:
    """Consumers wait on the condition and are woken by the producer's notify."""
    assert run.stdout == "consumed 6 items: [0, 1, 2, 3, 4, 5]\n"
    condition = run.name("condition", "condition = threading.Condition()")
    waits = spans_named(run.spans(), "Condition.wait", primitive_name=condition)
    assert waits
    for wait in waits:
        assert re.fullmatch(r"consumer-\d", wait.attributes["thread.name"])
        assert wait.attributes["code.line.number"] == run.line("condition.wait_for(")
    assert {w.attributes.get("threadtrace.waker.thread.name") for w in waits} == {"producer"}


@example("lessons/18_barrier.py")
def barrier(run: Run) -> None:
    """Two runners wait at the barrier until the third arrives, and it wakes them."""
    assert run.stdout == "3 runners passed the barrier together; places [0, 1, 2]\n"
    start_line = run.name("start_line", "start_line = threading.Barrier(3)")
    waits = spans_named(run.spans(), "Barrier.wait", primitive_name=start_line)
    waiters = {w.attributes["thread.name"] for w in waits}
    wakers = {w.attributes["threadtrace.waker.thread.name"] for w in waits}
    assert len(waiters) == 2
    assert len(wakers) == 1
    assert waiters | wakers == {"runner-0", "runner-1", "runner-2"}
    assert block(run, f"Barrier {start_line}")[1] == "contended  2 of 3 waits (67%)"


@example("lessons/19_semaphore.py")
def semaphore(run: Run) -> None:
    """Six workers share two permits: the others wait, woken by a worker giving one back."""
    assert run.stdout == "6 workers done; at most 2 at once\n"
    connections = run.name("connections", "connections = threading.Semaphore(2)")
    waits = spans_named(run.spans(), "Semaphore.acquire", primitive_name=connections)
    assert waits
    for wait in waits:
        assert wait.attributes["code.line.number"] == run.line("with connections:")
    # Two permits given back before the first woken worker runs leave the
    # second without a waker (one slot per semaphore): so "where given".
    wakers = [w.attributes.get("threadtrace.waker.thread.name") for w in waits]
    assert any(wakers)
    assert all(re.fullmatch(r"worker-\d", waker) for waker in wakers if waker)
    lines = block(run, f"Semaphore {connections}")
    assert re.fullmatch(r"contended  [1-4] of 6 acquisitions \(\d+%\)", lines[1])


@example("lessons/20_local.py")
def local(run: Run) -> None:
    """Each thread sees only its own attributes of a threading.local."""
    assert run.stdout == (
        "worker-0: before: no value yet; after setting: 0\n"
        "worker-1: before: no value yet; after setting: 10\n"
        "worker-2: before: no value yet; after setting: 20\n"
        "MainThread: main's\n"
    )
    runs = spans_named(run.spans(), "Thread.run", function="__main__.worker")
    assert len(runs) == 3


@example("lessons/21_local_defaults.py")
def local_defaults(run: Run) -> None:
    """A threading.local subclass starts every thread from its constructor's defaults."""
    assert run.stdout == (
        "worker-0: retries started at 3; set to 0\n"
        "worker-1: retries started at 3; set to 1\n"
        "worker-2: retries started at 3; set to 2\n"
        "MainThread: retries = 99\n"
    )
    runs = spans_named(run.spans(), "Thread.run", function="__main__.worker")
    assert len(runs) == 3


@example("crawler.py")
def crawler(run: Run) -> None:
    """Workers that ask for a robots.txt being fetched wait for that fetch, not the lock."""
    assert run.stdout == (
        "crawled 9 of 12 pages (324 bytes)\n"
        "skipped 3 disallowed by robots.txt\n"
        "fetched robots.txt 3 times for 3 hosts\n"
    )
    spans = run.spans()
    workers = spans_named(spans, "Thread.run")
    assert {s.name for s in workers} == {"Thread.run crawler"}
    assert len(workers) == 4
    fetched = run.name("fetched", "fetched = self._fetching[host] = threading.Event()")
    waits = spans_named(spans, "Event.wait", primitive_name=fetched)
    assert waits
    for wait in waits:
        assert wait.attributes["code.line.number"] == run.line("fetched.wait()")
        waiter, waker = (
            wait.attributes["thread.name"],
            wait.attributes["threadtrace.waker.thread.name"],
        )
        assert re.fullmatch(r"crawler_\d", waker)
        assert waker != waiter
    assert run.at("fetched.wait()", "RobotsCache.rules") in run.report


@example("pipeline.py")
def pipeline(run: Run) -> None:
    """Bounded queues hold the reader back (put) and keep the writer waiting (get)."""
    assert run.stdout == "read 20, parsed and wrote 20 records; sum of values 2470\n"
    raw = run.name("raw", "raw = queue.Queue(maxsize=4)", via="Queue")
    parsed = run.name("parsed", "parsed = queue.Queue(maxsize=4)", via="Queue")
    spans = run.spans()
    assert spans_named(spans, "Condition.wait", primitive_name=parsed, thread_name="writer")
    raw_block = "\n".join(block(run, f"Condition {raw}"))
    assert run.at("raw.put(f", "reader") in raw_block  # a full queue: backpressure
    assert run.at("record = parsed.get()", "writer") in "\n".join(block(run, f"Condition {parsed}"))


@example("lost_wakeup.py", "--stuck-after", "0.3", seconds=1.8)
def lost_wakeup(run: Run) -> None:
    """The worker waits for a notify that came while it was busy: stuck, wake-up lost."""
    assert run.stdout == "done: ['job-1']; still queued: ['job-2']\n"
    job_added = run.name("job_added", "job_added = threading.Condition()")
    lines = run.report_lines()
    assert (
        f"threadtrace: STUCK: worker has been blocked for <t> in Condition.wait on "
        f"Condition {job_added}, with no timeout"
    ) in lines
    (diagnosis,) = [line for line in lines if "notify() call before it found no waiter" in line]
    assert diagnosis.startswith("nobody has notified it since the wait began; 1 notify() call")
    assert "a wake-up may have been lost" in diagnosis
    wait_line = run.line("job_added.wait()  # the bug")
    assert f'File "examples/lost_wakeup.py", line {wait_line}, in worker   <-- waits here' in lines
    waits = spans_named(run.spans(), "Condition.wait", primitive_name=job_added, line=wait_line)
    assert {w.attributes["thread.name"] for w in waits} == {"worker"}
    wakers = sorted(w.attributes.get("threadtrace.waker.thread.name", "nobody") for w in waits)
    assert wakers in (["nobody"], ["MainThread", "nobody"])  # job-1's wake-up, if it waited long
    assert f"at exit   1 wait still blocked: Condition {job_added}" in lines


@example("transfer_deadlock.py", "--deadlock-after", "0.5", seconds=1.8)
def transfer_deadlock(run: Run) -> None:
    """Two tellers each hold one account's lock and wait for the other's: a deadlock."""
    assert run.stdout == "gave up on teller-1, teller-2; balances: alice 100, bob 100\n"
    lock = run.name("self.lock", "self.lock = threading.Lock()")
    lines = run.report_lines()
    assert "threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed" in lines
    # Both locks were made on one line, so share a name: numbered, to show the crossing.
    number = {}
    for teller, other in (("teller-1", "teller-2"), ("teller-2", "teller-1")):
        edge = rf"{teller} waits for Lock {re.escape(lock)} #(\d), held by {other}"
        (number[teller],) = [m.group(1) for m in map(re.compile(edge).fullmatch, lines) if m]
    assert sorted(number.values()) == ["1", "2"]
    taken = run.at("with source.lock:", "transfer")
    for teller, other in (("teller-1", "teller-2"), ("teller-2", "teller-1")):
        blocked = rf"blocked for .+ in Lock\.acquire on {re.escape(lock)} #{number[teller]}"
        (at,) = [i for i, line in enumerate(lines) if re.fullmatch(blocked, line)]
        assert lines[at - 1].startswith(f"{teller} (thread ")
        assert lines[at + 1] == f"holds Lock {lock} #{number[other]}, acquired at {taken}"
    wait_line = run.line("with target.lock:  # the other")
    assert (
        f'File "examples/transfer_deadlock.py", line {wait_line}, in transfer   <-- waits here'
    ) in lines
    waits = spans_named(run.spans(), "Lock.acquire", primitive_name=lock)
    assert sorted(
        (w.attributes["thread.name"], w.attributes["threadtrace.holder.thread.name"]) for w in waits
    ) == [("teller-1", "teller-2"), ("teller-2", "teller-1")]


@example("transfer_lock_order.py", "--lock-order", "true")
def transfer_lock_order(run: Run) -> None:
    """Opposite transfers take two account locks in opposite orders: reported once, no hang."""
    assert run.stdout == "balances: alice 110, bob 90, carol 100\n"
    lock = run.name("self.lock", "self.lock = threading.Lock()")
    lines = run.report_lines()
    header = (
        "threadtrace: POSSIBLE DEADLOCK: locks were taken in conflicting orders "
        "(this run did not hang, but it can)"
    )
    assert lines.count(header) == 1  # and none for safe_transfer
    taken = run.at("with source.lock, target.lock:", "transfer")
    # Two locks of one name, numbered: each thread took one while holding the other.
    cycle = f"cycle: {lock} #1 -> {lock} #2 -> {lock} #1"
    assert cycle in lines
    took = {
        (line, lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith(("alice-pays-bob took", "bob-pays-alice took"))
    }
    assert took == {
        (f"{a} took {lock} #{x} at {taken}", f"while holding {lock} #{y}, taken at {taken}")
        for a, x, y in (("alice-pays-bob", 2, 1), ("bob-pays-alice", 1, 2))
    } or took == {
        (f"{a} took {lock} #{x} at {taken}", f"while holding {lock} #{y}, taken at {taken}")
        for a, x, y in (("alice-pays-bob", 1, 2), ("bob-pays-alice", 2, 1))
    }
    assert "*** DEADLOCK ***" in lines


@example("demo.py", seconds=1.0)
def demo(run: Run) -> None:
    """The README's demo: the ledger lock is hot, and the auditor is whom the tellers wait behind."""
    assert re.fullmatch(r"80 transfers posted by 4 tellers in \d+\.\d\d s\n", run.stdout)
    ledger = run.name("ledger_lock", "ledger_lock = threading.Lock()")
    spans = run.spans()
    waits = spans_named(spans, "Lock.acquire", primitive_name=ledger)
    behind = {
        (w.attributes["thread.name"], w.attributes.get("threadtrace.holder.thread.name"))
        for w in waits
    }
    assert any(
        re.fullmatch(r"teller-\d", waiter) and holder == "auditor" for waiter, holder in behind
    )
    holders = [row.split("  ")[0] for row in rows(block(run, f"Lock {ledger}"), "holders at")]
    audit = run.line("while not closing.wait(timeout=0.15):") + 1  # its `with ledger_lock:`
    assert f"{run.file}:{audit} in auditor" in holders
    assert re.search(rf"hottest   Lock {re.escape(ledger)}: waited <t> in total", run.report)


@example("contention.py", seconds=1.0)
def contention(run: Run) -> None:
    """docs/reports.md's example: the ledger's lock, and the export queue's backpressure."""
    assert run.stdout == "100 transfers, 100 exported\n"
    lock = run.name("self._lock", "self._lock = threading.Lock()")
    waits = spans_named(run.spans(), "Lock.acquire", primitive_name=lock)
    transfer = run.line("def transfer(self, source: int, target: int, amount: int) -> None:") + 1
    assert {w.attributes["code.line.number"] for w in waits} == {transfer}
    waiting = [row.split("  ")[0] for row in rows(block(run, f"Lock {lock}"), "waiting at")]
    assert waiting == [f"{run.file}:{transfer} in Ledger.transfer"]
    exports = run.name("exports", "exports: queue.Queue", via="Queue")
    assert run.at("exports.put(entry)", "post") in "\n".join(block(run, f"Condition {exports}"))


@example("deadlock.py", "--on-deadlock", "exit", status=3, seconds=1.8)
def deadlock(run: Run) -> None:
    """docs/reports.md's deadlock: reported with both locks and stacks, then exit status 3."""
    assert run.stdout == ""
    accounts = run.name("accounts_lock", "accounts_lock = threading.Lock()")
    ledger = run.name("ledger_lock", "ledger_lock = threading.Lock()")
    lines = run.report_lines()
    assert "threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed" in lines
    assert f"audit waits for Lock {accounts}, held by transfer" in lines
    assert f"transfer waits for Lock {ledger}, held by audit" in lines
    assert f"holds Lock {ledger}, acquired at {run.at('with ledger_lock:', 'audit')}" in lines
    assert (
        f"holds Lock {accounts}, acquired at {run.at('with accounts_lock:', 'transfer')}" in lines
    )
    assert f"Lock {accounts} made in <module>" in lines


@example("lock_order.py", "--lock-order", "true")
def lock_order(run: Run) -> None:
    """docs/reports.md's inversion: both orders, with the lines that took each lock."""
    assert run.stdout == "finished without hanging\n"
    cache = run.name("cache_lock", "cache_lock = threading.Lock()")
    db = run.name("db_lock", "db_lock = threading.Lock()")
    lines = run.report_lines()
    assert f"cycle: {cache} -> {db} -> {cache}" in lines
    assert f"refresh took {db} at {run.at('with db_lock:  # cache, then db', 'refresh')}" in lines
    assert (
        f"write_through took {cache} at {run.at('with cache_lock:  # db, then cache', 'write_through')}"
        in lines
    )


@example("stuck.py", seconds=7.5)
def stuck(run: Run) -> None:
    """docs/reports.md's stuck consumer (a lost wake-up) and leaked permit."""
    assert run.stdout == "usage reported\ngave up waiting for the consumer\n"
    permits = run.name("connections", "connections = threading.BoundedSemaphore(2)")
    new_order = run.name("new_order", "new_order = threading.Condition()")
    lines = run.report_lines()
    assert (
        f"threadtrace: HELD BY A FINISHED THREAD: usage-reporter ended holding 1 permit of "
        f"BoundedSemaphore {permits}, acquired at {run.at('connections.acquire()', 'report_usage')}"
    ) in " ".join(lines)
    assert (
        f"threadtrace: STUCK: consumer has been blocked for <t> in Condition.wait on "
        f"Condition {new_order}, with no timeout"
    ) in lines
    assert any("a wake-up may have been lost" in line for line in lines)


# -- running them ----------------------------------------------------------------------


def run_example(example: Example, cwd: Path) -> Run:
    """``python -m threadtrace run OPTIONS examples/PATH`` in ``cwd``, with short delays."""
    env = child_env(LESSON_DELAY=str(DELAY), THREADTRACE_REPORT="true")
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "threadtrace",
            "run",
            *example.options,
            str(EXAMPLES / example.path),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    return Run(example, cwd, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, concurrent.futures.Future[Run]]]:
    """The selected examples, started two at a time, the longest first."""
    selected = {
        str(item.callspec.params["path"])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and "runs" in item.fixturenames
    }
    order = sorted(selected, key=lambda path: -CHECKS[path][0].seconds)
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="example") as pool:
        futures = {
            path: pool.submit(
                run_example, CHECKS[path][0], tmp_path_factory.mktemp(Path(path).stem)
            )
            for path in order
        }
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()


@pytest.mark.parametrize("path", sorted(CHECKS))
def test_example(path: str, runs: dict[str, concurrent.futures.Future[Run]]) -> None:
    """The example ends by itself with its status, and shows what it is there to show."""
    example, check = CHECKS[path]
    run = runs[path].result(timeout=120)
    print(run.digest())  # shown if the test fails
    assert run.status == example.status, "exit status"
    assert "Traceback" not in run.stderr, "a traceback on stderr"
    if example.status == 0:  # exit 3 (on_deadlock=exit) prints neither
        assert "threadtrace contention report: " in run.stderr, "no contention report"
        assert "\nthreadtrace summary:\n" in run.stderr, "no summary"
        if (run.cwd / "threadtrace-trace.jsonl").stat().st_size:  # spans: a timeline to make
            assert run.stderr.endswith(TIMELINE_HINT + "\n"), "the summary's last line"
    check(run)


@pytest.mark.parametrize("path", ["lessons/13_lock_counter.py"])
def test_saved_trace_reads_back(path: str, runs: dict[str, concurrent.futures.Future[Run]]) -> None:
    """`threadtrace report` and `convert`, as examples/README.md runs them, on a lesson's files."""
    run = runs[path].result(timeout=120)
    lock = run.name("self.lock", "self.lock = threading.Lock()")
    report = threadtrace_cmd(["report", "threadtrace-trace.jsonl"], cwd=run.cwd)
    assert (report.returncode, report.stderr) == (0, "")
    offline = dataclasses.replace(run, stderr=report.stdout)
    assert block(offline, f"Lock {lock}") == block(run, f"Lock {lock}")  # the report at exit
    timeline = threadtrace_cmd(
        ["convert", "threadtrace-trace.jsonl", "--to", "perfetto", "-o", "timeline.json"],
        cwd=run.cwd,
    )
    assert timeline.returncode == 0, timeline.stderr
    assert "open it in https://ui.perfetto.dev" in timeline.stderr
    events = json.loads((run.cwd / "timeline.json").read_text(encoding="utf-8"))["traceEvents"]
    assert f"Lock.acquire {lock}" in {event.get("name") for event in events}


def test_every_example_is_checked() -> None:
    """Each program under examples/ has its check here: none is left untested."""
    programs = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.py")}
    assert programs == set(CHECKS)


@pytest.mark.parametrize("path", sorted(CHECKS))
def test_example_says_how_it_is_run(path: str) -> None:
    """The docstring and examples/README.md give the command line the test runs."""
    example, _ = CHECKS[path]
    source = (EXAMPLES / path).read_text(encoding="utf-8")
    assert example.command in source
    assert example.command in (EXAMPLES / "README.md").read_text(encoding="utf-8")


def test_quoted_primitive_names_point_at_their_lines() -> None:
    """Every ``name (file.py:N)`` quoted in examples/ names the line that makes that primitive."""
    files = {p.name: p for p in EXAMPLES.rglob("*.py")}
    texts = [EXAMPLES / "README.md", *files.values()]
    quoted = {
        (match[1], int(match[2]))
        for text in texts
        for match in re.finditer(r"\((?:\w+@)?([\w.]+\.py):(\d+)\)", text.read_text("utf-8"))
    }
    assert quoted
    for file, number in sorted(quoted):
        line = files[file].read_text(encoding="utf-8").splitlines()[number - 1]
        assert re.search(r"threading\.\w+\(|queue\.Queue\(|\.map\(", line), (file, number, line)
