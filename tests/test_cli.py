"""The ``threadtrace`` command, run in subprocesses exactly as a user runs it.

``threadtrace run`` must run a program as ``python`` would (argv, ``__main__``,
``sys.path[0]``, exit status, tracebacks, SIGINT), with threading patched from
the start, and report at exit; bad command lines fail with one line and
status 2.  Every ordering in the scripts is a handshake, never a sleep.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional

import pytest
from helpers import child_env, named, threadtrace_cmd

import threadtrace
from threadtrace._cli.main import _main_help
from threadtrace._formats.otlp_jsonl import read_trace_file
from threadtrace._formats.records import SpanRecord
from threadtrace._primitives.core import SPEEDUPS
from threadtrace._support.config import env_var, setting_names
from threadtrace._support.originals import NO_THREADS_AT_EXIT
from threadtrace.exporters import installed_exporters

POSIX = os.name == "posix"
TRACE = "threadtrace-trace.jsonl"
METRICS = "threadtrace-trace.metrics.jsonl"
TIMELINE_HINT = f"  timeline  threadtrace convert {TRACE} --to perfetto -o timeline.json"
#: The summary of a program that started no thread and never waited (no
#: span, so no timeline to make).
QUIET_SUMMARY = (
    "threadtrace summary:\n"
    "  threads   0 started\n"
    f"  exported  0 spans to json ({TRACE})\n"
    "  hottest   no lock or semaphore was contended\n"
)
DURATION = r"[0-9.]+ (?:s|ms|µs|ns)"


def write(path: Path, source: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def line_of(path: Path, marker: str) -> int:
    """The number of the line of ``path`` that contains ``marker``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    (number,) = [i for i, text in enumerate(lines, 1) if marker in text]
    return number


def summary_of(stderr: str) -> list[str]:
    """The summary's lines: everything from "threadtrace summary:" on."""
    assert stderr.count("threadtrace summary:\n") == 1, stderr
    return stderr[stderr.index("threadtrace summary:\n") :].splitlines()


def traced(records: list[SpanRecord]) -> list[tuple[str, str, str]]:
    """(thread name, span name, primitive name) of every span, sorted."""
    return sorted(
        (r.thread_name, r.name, str(r.attributes.get("threadtrace.primitive.name", "")))
        for r in records
    )


# -- threadtrace run script.py ------------------------------------------------------------

#: Two workers block on a Lock main holds; each then waits until main joins it,
#: so every contended acquire and every join really blocks.  No sleeps.
CONTENTION_SCRIPT = """\
import json, os, sys, threading
import threadtrace
from threadtrace.testing import wait_for_waiters
import helper  # next to this script, found through sys.path[0]

def f():
    return "f"

facts = {
    "argv": sys.argv,
    "name": __name__,
    "main_module_is_this_one": getattr(sys.modules["__main__"], "f", None) is f,
    "path0": sys.path[0],
    "helper": helper.hello(),
    "helper_file": os.path.realpath(helper.__file__),
    "is_patched": threadtrace.is_patched(),
    "lock_type": [type(threading.Lock()).__module__, type(threading.Lock()).__name__],
    "lock_is_traced": type(threading.Lock()) is threadtrace.Lock,
}

lock = threading.Lock()  # the contended lock

def work():
    with lock:
        pass
    wait_for_waiters(threading.current_thread(), 1, timeout=10)  # main is joining me

lock.acquire()
workers = [threading.Thread(target=work, name=f"worker-{i}") for i in (1, 2)]
for worker in workers:
    worker.start()
wait_for_waiters(lock, 2, timeout=10)
lock.release()
for worker in workers:
    worker.join(10)
facts["workers_alive"] = [worker.is_alive() for worker in workers]
print(json.dumps(facts), flush=True)
"""


def make_contention_app(directory: Path) -> Path:
    write(directory / "app" / "helper.py", 'def hello():\n    return "hello from helper"\n')
    return write(directory / "app" / "script.py", CONTENTION_SCRIPT)


@pytest.fixture(scope="module")
def contention_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``threadtrace run --wait-threshold 0 app/script.py a b``, run once for the module."""
    cwd = tmp_path_factory.mktemp("contention")
    make_contention_app(cwd)
    done = threadtrace_cmd(
        ["run", "--wait-threshold", "0", "--hold-threshold", "3600", "app/script.py", "a", "b"],
        cwd,
    )
    return cwd, done


def test_run_gives_the_script_what_python_gives_it(
    contention_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, done = contention_run
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    app = os.path.realpath(cwd / "app")
    assert facts == {
        "argv": ["app/script.py", "a", "b"],
        "name": "__main__",
        "main_module_is_this_one": True,
        "path0": app,
        "helper": "hello from helper",
        "helper_file": os.path.join(app, "helper.py"),
        "is_patched": True,
        "lock_type": ["threadtrace", "Lock"],
        "lock_is_traced": True,
        "workers_alive": [False, False],
    }


def test_run_prints_the_summary_at_exit(
    contention_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, done = contention_run
    lock = named("lock", "script.py", line_of(cwd / "app" / "script.py", "the contended lock"))
    lines = done.stderr.splitlines()  # the summary is all there is on stderr
    assert lines[:3] == [
        "threadtrace summary:",
        "  threads   2 started",
        f"  exported  6 spans to json ({TRACE})",
    ]
    assert re.fullmatch(
        rf"  hottest   Lock {re.escape(lock)}: waited {DURATION} in total, 2 of 3 acquisitions blocked",
        lines[3],
    ), lines[3]
    assert lines[4:] == [TIMELINE_HINT]


def test_run_writes_the_trace_file_in_the_working_directory(
    contention_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, done = contention_run
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in cwd.iterdir()) == ["app", TRACE, METRICS]
    records = read_trace_file(str(cwd / TRACE))
    lock = named("lock", "script.py", line_of(cwd / "app" / "script.py", "the contended lock"))
    # Span names carry their target: the lock's name, the thread's without its counter.
    assert traced(records) == [
        ("MainThread", "Thread.join worker", "worker-1"),
        ("MainThread", "Thread.join worker", "worker-2"),
        ("worker-1", f"Lock.acquire {lock}", lock),
        ("worker-1", "Thread.run worker", ""),
        ("worker-2", f"Lock.acquire {lock}", lock),
        ("worker-2", "Thread.run worker", ""),
    ]
    for record in records:
        if record.name.startswith("Lock.acquire "):
            assert record.attributes["threadtrace.holder.thread.name"] == "MainThread"
            assert record.attributes["threadtrace.timed_out"] is False


def test_run_passes_every_argument_after_the_script_to_it(tmp_path: Path) -> None:
    write(tmp_path / "argv.py", "import sys\nprint(sys.argv)\n")
    done = threadtrace_cmd(
        ["run", "--no-summary", "argv.py", "a", "--b", "-m", "c", "--", "--help"], tmp_path
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "['argv.py', 'a', '--b', '-m', 'c', '--', '--help']\n"
    done = threadtrace_cmd(["run", "--no-summary", "--", "argv.py", "--no-summary"], tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "['argv.py', '--no-summary']\n")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_run_puts_the_real_directory_of_the_script_first_on_sys_path(tmp_path: Path) -> None:
    write(tmp_path / "real" / "script.py", "import sys\nprint(sys.path[0])\n")
    try:
        (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    except OSError as error:  # e.g. Windows without the privilege
        pytest.skip(f"cannot create a symlink: {error}")
    done = threadtrace_cmd(["run", "--no-summary", "link/script.py"], tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == os.path.realpath(tmp_path / "real") + "\n"


def test_the_script_stays_main_after_its_body_ends(tmp_path: Path) -> None:
    """Threads still running and atexit handlers see the script as __main__, as in python."""
    write(
        tmp_path / "script.py",
        """\
        import atexit, sys, threading
        def f():
            pass
        def check(where):
            main = sys.modules["__main__"]
            print(where, getattr(main, "f", None) is f, flush=True)
        atexit.register(check, "atexit")
        def late():
            threading.main_thread().join(30)  # returns when the main body has ended
            check("late thread")
        threading.Thread(target=late).start()
        check("body")
        """,
    )
    done = threadtrace_cmd(["run", "--no-summary", "script.py"], tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "body True\nlate thread True\natexit True\n"


def test_the_script_file_is_absolute_as_in_python(tmp_path: Path) -> None:
    write(
        tmp_path / "app" / "script.py",
        "import os\nprint(__file__ == os.path.join(os.getcwd(), 'app', 'script.py'))\n",
    )
    done = threadtrace_cmd(["run", "--no-summary", "app/script.py"], tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "True\n")


def test_run_runs_a_directory_with_a_main_module(tmp_path: Path) -> None:
    write(tmp_path / "app" / "__main__.py", "import sys, helper\nprint(sys.path[0], __name__)\n")
    write(tmp_path / "app" / "helper.py")
    done = threadtrace_cmd(["run", "--no-summary", "app"], tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{os.path.realpath(tmp_path / 'app')} __main__\n"


# -- threadtrace run -m module -------------------------------------------------------------

MODULE_FACTS = """\
import json, sys, threading
import threadtrace
print(json.dumps({
    "argv": sys.argv,
    "name": __name__,
    "spec": __spec__.name,
    "path0": sys.path[0],
    "is_patched": threadtrace.is_patched(),
    "lock_is_traced": type(threading.Lock()) is threadtrace.Lock,
}))
"""


@pytest.mark.parametrize(
    ("target", "file", "spec"),
    [("pkg.mod", "mod.py", "pkg.mod"), ("pkg", "__main__.py", "pkg.__main__")],
)
def test_run_m_runs_a_module_as_python_m_would(
    tmp_path: Path, target: str, file: str, spec: str
) -> None:
    write(tmp_path / "pkg" / "__init__.py")
    write(tmp_path / "pkg" / file, MODULE_FACTS)
    done = threadtrace_cmd(["run", "-m", target, "x"], tmp_path)
    assert done.returncode == 0, done.stderr
    cwd = os.path.realpath(tmp_path)
    assert json.loads(done.stdout) == {
        "argv": [os.path.join(cwd, "pkg", file), "x"],
        "name": "__main__",
        "spec": spec,
        "path0": cwd,
        "is_patched": True,
        "lock_is_traced": True,
    }
    assert done.stderr == QUIET_SUMMARY


def test_run_m_accepts_the_module_glued_to_the_option(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "__init__.py")
    write(tmp_path / "pkg" / "mod.py", "import sys\nprint(sys.argv[1:], __name__)\n")
    done = threadtrace_cmd(["run", "--no-summary", "-mpkg.mod", "-m", "y"], tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "['-m', 'y'] __main__\n")


def test_run_m_patches_before_the_parent_package_is_imported(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "__init__.py", "import threading\nLOCK = threading.Lock()\n")
    write(
        tmp_path / "pkg" / "mod.py",
        "import threadtrace, pkg\nprint(type(pkg.LOCK) is threadtrace.Lock)\n",
    )
    done = threadtrace_cmd(["run", "--no-summary", "-m", "pkg.mod"], tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "True\n")


# -- exit status, tracebacks and SIGINT ------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "status", "stderr"),
    [
        ("pass\n", 0, ""),
        ("import sys\nsys.exit()\n", 0, ""),
        ("import sys\nsys.exit(3)\n", 3, ""),
        ("raise SystemExit(4)\n", 4, ""),
        ("import sys\nsys.exit('message')\n", 1, "message\n"),
    ],
)
def test_the_exit_status_is_the_programs(
    tmp_path: Path, source: str, status: int, stderr: str
) -> None:
    write(tmp_path / "script.py", source)
    done = threadtrace_cmd(["run", "script.py"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (status, "", stderr + QUIET_SUMMARY)


def test_an_uncaught_exception_prints_the_scripts_traceback_then_the_summary(
    tmp_path: Path,
) -> None:
    script = write(
        tmp_path / "script.py",
        """\
        def g():
            raise ValueError("boom")
        g()
        """,
    )
    done = threadtrace_cmd(["run", "script.py"], tmp_path)
    assert done.returncode == 1
    paths = set(re.findall(r'^  File "([^"]+)"', done.stderr, re.MULTILINE))
    assert len(paths) == 1, done.stderr  # the script's frames only: no _cli.py, no runpy
    (path,) = paths
    assert os.path.realpath(os.path.join(tmp_path, path)) == os.path.realpath(script)
    # Python 3.13 underlines the call with carets where 3.9-3.12 do not.
    stderr = re.sub(r"^ +[~^]+\n", "", done.stderr, flags=re.MULTILINE)
    assert stderr == (
        "Traceback (most recent call last):\n"
        f'  File "{path}", line 3, in <module>\n'
        "    g()\n"
        f'  File "{path}", line 2, in g\n'
        '    raise ValueError("boom")\n'
        "ValueError: boom\n" + QUIET_SUMMARY
    )


def test_the_scripts_own_excepthook_reports_an_uncaught_exception(tmp_path: Path) -> None:
    write(
        tmp_path / "script.py",
        """\
        import os, sys, traceback
        def hook(kind, error, tb):
            files = [os.path.basename(frame.filename) for frame in traceback.extract_tb(tb)]
            print(f"hook: {kind.__name__}: {error} {files}", file=sys.stderr)
        sys.excepthook = hook
        raise ValueError("boom")
        """,
    )
    done = threadtrace_cmd(["run", "script.py"], tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "hook: ValueError: boom ['script.py']\n" + QUIET_SUMMARY


def console_summary(spans: int) -> str:
    return (
        "threadtrace summary:\n"
        "  threads   0 started\n"
        f"  exported  {spans} spans to console (stderr)\n"
    )


#: The interpreter's exit after an uncaught KeyboardInterrupt is reset when
#: anything at exit imports protobuf's upb backend, as the json exporter does.
EXPORTERS = ["json", "console"]


@pytest.mark.skipif(not POSIX, reason="death by a signal is POSIX")
@pytest.mark.parametrize("exporters", EXPORTERS)
def test_an_uncaught_keyboard_interrupt_dies_of_sigint_after_the_summary(
    tmp_path: Path, exporters: str
) -> None:
    write(tmp_path / "script.py", "raise KeyboardInterrupt\n")
    done = threadtrace_cmd(["run", "--exporters", exporters, "script.py"], tmp_path)
    assert done.returncode == -signal.SIGINT, done.stderr
    traceback, _, _ = done.stderr.partition("threadtrace summary:\n")
    assert traceback.startswith("Traceback (most recent call last):\n"), done.stderr
    assert traceback.endswith("\n    raise KeyboardInterrupt\nKeyboardInterrupt\n"), done.stderr
    assert summary_of(done.stderr)[:3] == [
        "threadtrace summary:",
        "  threads   0 started",
        f"  exported  0 spans to {exporters} ({TRACE if exporters == 'json' else 'stderr'})",
    ]


def test_a_keyboard_interrupt_traceback_shows_the_scripts_frames_only(tmp_path: Path) -> None:
    write(tmp_path / "script.py", "raise KeyboardInterrupt\n")
    done = threadtrace_cmd(["run", "--exporters", "console", "script.py"], tmp_path)
    path = re.findall(r'^  File "([^"]+)"', done.stderr, re.MULTILINE)[-1]
    assert done.stderr == (
        "Traceback (most recent call last):\n"
        f'  File "{path}", line 1, in <module>\n'
        "    raise KeyboardInterrupt\n"
        "KeyboardInterrupt\n"
        + console_summary(0)
        + "  hottest   no lock or semaphore was contended\n"
    )


@pytest.mark.skipif(not POSIX, reason="death by a signal is POSIX")
def test_a_keyboard_interrupt_runs_every_atexit_handler_before_dying_of_sigint(
    tmp_path: Path,
) -> None:
    """As under python, including handlers registered before threadtrace's own
    (here by ``sitecustomize``, as coverage.py registers its own)."""
    site = write(
        tmp_path / "site" / "sitecustomize.py",
        """\
        import atexit, sys
        atexit.register(lambda: sys.stderr.write("registered before threadtrace\\n"))
        """,
    )
    write(
        tmp_path / "script.py",
        """\
        import atexit, sys
        atexit.register(lambda: sys.stderr.write("registered by the program\\n"))
        raise KeyboardInterrupt
        """,
    )
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(site.parent), env["PYTHONPATH"]])
    done = threadtrace_cmd(["run", "--exporters", "json", "script.py"], tmp_path, env)
    assert done.returncode == -signal.SIGINT, done.stderr
    lines = done.stderr.splitlines()
    # Last registered, first run: the program's, then threadtrace's (the
    # flush and the summary), then the earlier ones.
    assert lines[lines.index("KeyboardInterrupt") + 1] == "registered by the program"
    assert lines[lines.index("KeyboardInterrupt") + 2] == "threadtrace summary:"
    if SPEEDUPS:
        assert lines[-1] == "registered before threadtrace", done.stderr
        assert lines.count("registered before threadtrace") == 1
    else:  # the pure-Python fallback dies after the summary (docs/limitations.md)
        assert "registered before threadtrace" not in lines, done.stderr


def interrupt_while_waiting(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Send SIGINT to a child's main thread blocked in Event.wait.

    Another thread of the child says "ready" once the main thread is blocked.
    """
    write(
        tmp_path / "script.py",
        """\
        import threading
        from threadtrace.testing import wait_for_waiters

        event = threading.Event()

        def say_ready():  # once main is blocked in event.wait, not before
            wait_for_waiters(event, 1, timeout=10)
            print("ready", flush=True)

        threading.Thread(target=say_ready, name="herald").start()
        event.wait(30)
        print("not interrupted")
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadtrace", "run", "--wait-threshold=0", *options, "script.py"],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 60)
        assert readable, "the child never said it was ready"
        ready = proc.stdout.readline()
        assert ready == "ready\n"
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # The signal came between "ready" and the blocking acquire (the
            # main thread was descheduled there), as it can with threading
            # too: the handler then waits for the acquire to end.  A second
            # one interrupts the acquire; both make one KeyboardInterrupt.
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, ready + stdout, stderr)


@pytest.mark.skipif(not POSIX, reason="SIGINT to a child and death by a signal are POSIX")
@pytest.mark.parametrize("exporters", EXPORTERS)
def test_sigint_while_waiting_dies_of_sigint_after_the_summary(
    tmp_path: Path, exporters: str
) -> None:
    done = interrupt_while_waiting(tmp_path, "--exporters", exporters)
    assert done.returncode == -signal.SIGINT, done.stderr
    assert done.stdout == "ready\n"
    before, _, _ = done.stderr.partition("threadtrace summary:\n")
    # The console exporter's lines come at exit, between the traceback and the summary.
    traceback = re.sub(r"^\[threadtrace\] .*\n", "", before, flags=re.MULTILINE)
    assert traceback.startswith("Traceback (most recent call last):\n"), done.stderr
    assert traceback.endswith("\nKeyboardInterrupt\n"), done.stderr
    assert summary_of(done.stderr)[:3] == [
        "threadtrace summary:",
        "  threads   1 started",
        f"  exported  2 spans to {exporters} ({TRACE if exporters == 'json' else 'stderr'})",
    ]
    # An Event wait is not contention for something held: the summary lists locks only.
    assert summary_of(done.stderr)[3] == "  hottest   no lock or semaphore was contended"


@pytest.mark.skipif(not POSIX, reason="SIGINT to a child is POSIX")
def test_a_wait_interrupted_by_sigint_is_not_reported_as_timed_out(tmp_path: Path) -> None:
    interrupt_while_waiting(tmp_path)
    (record,) = [
        r for r in read_trace_file(str(tmp_path / TRACE)) if r.name.startswith("Event.wait ")
    ]
    assert record.attributes["threadtrace.timed_out"] is False
    assert record.error is not None and record.error.startswith("KeyboardInterrupt")


@pytest.mark.skipif(NO_THREADS_AT_EXIT, reason="this python refuses the late thread itself")
def test_threads_still_running_at_the_end_of_main_are_waited_for(tmp_path: Path) -> None:
    """Python joins non-daemon threads before atexit: their spans reach the file."""
    write(
        tmp_path / "script.py",
        """\
        import threading
        from threadtrace.testing import wait_for_waiters

        def child():
            wait_for_waiters(threading.current_thread(), 1, timeout=10)  # late joins me

        def late():
            threading.main_thread().join(30)  # returns once the main body has ended
            print("late: main ended", flush=True)
            worker = threading.Thread(target=child, name="child")
            worker.start()
            worker.join(10)
            print("late: done", flush=True)

        threading.Thread(target=late, name="late").start()
        print("main: done", flush=True)
        """,
    )
    done = threadtrace_cmd(["run", "--wait-threshold", "0", "script.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "main: done\nlate: main ended\nlate: done\n"
    assert summary_of(done.stderr)[:3] == [
        "threadtrace summary:",
        "  threads   2 started",
        f"  exported  3 spans to json ({TRACE})",
    ]
    assert traced(read_trace_file(str(tmp_path / TRACE))) == [
        ("child", "Thread.run child", ""),
        ("late", "Thread.join child", "child"),
        ("late", "Thread.run late", ""),
    ]


# -- options, variables, --no-summary --------------------------------------------------------

#: One worker blocks on a Lock main holds, then waits until main joins it.
ONE_WORKER_SCRIPT = """\
import threading
from threadtrace.testing import wait_for_waiters

lock = threading.Lock()

def work():
    with lock:
        pass
    wait_for_waiters(threading.current_thread(), 1, timeout=10)

lock.acquire()
worker = threading.Thread(target=work, name="worker")
worker.start()
wait_for_waiters(lock, 1, timeout=10)
lock.release()
worker.join(10)
"""
ONE_WORKER_LOCK = "lock (script.py:4)"
ONE_WORKER_SPANS = [
    ("MainThread", "Thread.join worker", "worker"),
    ("worker", f"Lock.acquire {ONE_WORKER_LOCK}", ONE_WORKER_LOCK),
    ("worker", "Thread.run worker", ""),
]


def test_variables_configure_run_console_exporter(tmp_path: Path) -> None:
    write(tmp_path / "script.py", ONE_WORKER_SCRIPT)
    env = child_env(
        THREADTRACE_EXPORTERS="console",
        THREADTRACE_WAIT_THRESHOLD="0",
        THREADTRACE_HOLD_THRESHOLD="3600",
    )
    done = threadtrace_cmd(["run", "script.py"], tmp_path, env)
    assert (done.returncode, done.stdout) == (0, "")
    console, _, _ = done.stderr.partition("threadtrace summary:\n")  # then the summary
    spans = re.findall(r"^\[threadtrace\] [0-9:.]{12} (\S+) +(\S+) .*\n", console, re.MULTILINE)
    assert "".join(re.findall(r"^\[threadtrace\] .*\n", console, re.MULTILINE)) == console
    assert spans == [
        ("worker", "Lock.acquire"),
        ("worker", "Thread.run"),
        ("MainThread", "Thread.join"),
    ]
    assert summary_of(done.stderr)[:3] == [
        "threadtrace summary:",
        "  threads   1 started",
        "  exported  3 spans to console (stderr)",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]  # no json file


def test_options_win_over_variables(tmp_path: Path) -> None:
    write(tmp_path / "script.py", ONE_WORKER_SCRIPT)
    env = child_env(
        THREADTRACE_EXPORTERS="console",
        THREADTRACE_WAIT_THRESHOLD="3600",
        THREADTRACE_HOLD_THRESHOLD="3600",
    )
    done = threadtrace_cmd(
        ["run", "--exporters", "json", "--wait-threshold", "0", "script.py"], tmp_path, env
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert "[threadtrace]" not in done.stderr
    assert summary_of(done.stderr) == done.stderr.splitlines()
    assert summary_of(done.stderr)[:3] == [
        "threadtrace summary:",
        "  threads   1 started",
        f"  exported  3 spans to json ({TRACE})",
    ]
    assert traced(read_trace_file(str(tmp_path / TRACE))) == ONE_WORKER_SPANS


def test_no_summary_prints_nothing_and_still_writes_the_trace(tmp_path: Path) -> None:
    write(tmp_path / "script.py", ONE_WORKER_SCRIPT)
    done = threadtrace_cmd(
        ["run", "--no-summary", "--wait-threshold=0", "--hold-threshold=3600", "script.py"],
        tmp_path,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert traced(read_trace_file(str(tmp_path / TRACE))) == ONE_WORKER_SPANS


def test_json_path_puts_the_trace_where_asked(tmp_path: Path) -> None:
    write(tmp_path / "script.py", ONE_WORKER_SCRIPT)
    done = threadtrace_cmd(
        [
            "run",
            "--json-path=out/t.jsonl",
            "--wait-threshold=0",
            "--hold-threshold=3600",
            "script.py",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert summary_of(done.stderr)[2] == "  exported  3 spans to json (out/t.jsonl)"
    assert summary_of(done.stderr)[-1] == (
        "  timeline  threadtrace convert out/t.jsonl --to perfetto -o timeline.json"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t.jsonl", "t.metrics.jsonl"]
    assert len(read_trace_file(str(tmp_path / "out" / "t.jsonl"))) == 3


def test_no_exporters_exports_nothing(tmp_path: Path) -> None:
    write(tmp_path / "script.py", "pass\n")
    done = threadtrace_cmd(["run", "--exporters=", "script.py"], tmp_path)
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == (
        "threadtrace summary:\n"
        "  threads   0 started\n"
        "  exported  nothing (no exporters, or the program set its own providers)\n"
        "  hottest   no lock or semaphore was contended\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]


# -- bad usage: one line on stderr, status 2 -------------------------------------------------

RUN_HELP_HINT = "(see 'threadtrace run --help')"


def bad_usage_cases() -> list[Any]:
    installed = ", ".join(sorted(installed_exporters()))
    variables = ", ".join(env_var(name) for name in setting_names())
    return [
        pytest.param(
            ["run", "missing.py"],
            {},
            "threadtrace run: error: can't open file 'missing.py': "
            "[Errno 2] No such file or directory",
            id="missing-script",
        ),
        pytest.param(
            ["run", "-m", "nosuch"],
            {},
            "threadtrace run: error: No module named 'nosuch'",
            id="missing-module",
        ),
        pytest.param(
            ["run", "-m"], {}, "threadtrace run: error: -m needs a module name", id="m-alone"
        ),
        pytest.param(
            ["run", "--bogus", "ok.py"],
            {},
            f"threadtrace run: error: unrecognized arguments: --bogus {RUN_HELP_HINT}",
            id="unknown-option",
        ),
        pytest.param(
            ["run", "--wait-threshold", "abc", "ok.py"],
            {},
            "threadtrace run: error: --wait-threshold must be a number of seconds >= 0, got 'abc'",
            id="wait-threshold-abc",
        ),
        pytest.param(
            ["run", "--sample-every", "1.5", "ok.py"],
            {},
            "threadtrace run: error: --sample-every must be a whole number >= 0, got '1.5'",
            id="sample-every-1.5",
        ),
        pytest.param(
            ["run", "--exporters", "jaeger", "ok.py"],
            {},
            f"threadtrace run: error: --exporters: unknown exporter 'jaeger'; "
            f"installed exporters: {installed}",
            id="unknown-exporter",
        ),
        pytest.param(
            ["run", "ok.py"],
            {"THREADTRACE_WAIT_THRESHOLD": "-1"},
            "threadtrace run: error: THREADTRACE_WAIT_THRESHOLD must be a number of "
            "seconds >= 0, got '-1'",
            id="invalid-variable",
        ),
        pytest.param(
            ["run", "ok.py"],
            {"THREADTRACE_BOGUS": "1"},
            f"threadtrace run: error: unknown environment variable THREADTRACE_BOGUS; "
            f"settings: {variables}",
            id="unknown-variable",
        ),
        pytest.param(
            ["run"],
            {},
            "threadtrace run: error: give a script, -m module or command to run",
            id="no-target",
        ),
        pytest.param(
            ["run", "--no-summary"],
            {},
            "threadtrace run: error: give a script, -m module or command to run",
            id="options-but-no-target",
        ),
        pytest.param(
            ["frob"],
            {},
            "threadtrace: error: unknown command 'frob'; commands: run, convert, report, dump "
            "(see 'threadtrace --help')",
            id="unknown-command",
        ),
    ]


@pytest.mark.parametrize(("args", "variables", "message"), bad_usage_cases())
def test_bad_usage_fails_with_one_line_and_status_2(
    tmp_path: Path, args: list[str], variables: dict[str, str], message: str
) -> None:
    write(tmp_path / "ok.py", "print('ran')\n")
    done = threadtrace_cmd(args, tmp_path, child_env(**variables))
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message + "\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.py"]  # nothing ran or was written


def test_an_abbreviated_option_is_refused_clearly(tmp_path: Path) -> None:
    write(tmp_path / "ok.py")
    done = threadtrace_cmd(["run", "--wait", "0", "ok.py"], tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        f"threadtrace run: error: unrecognized arguments: --wait {RUN_HELP_HINT}\n",
    )


def test_run_help_lists_every_setting_with_its_option_and_variable(tmp_path: Path) -> None:
    done = threadtrace_cmd(["run", "--help"], tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    text = done.stdout
    assert text.startswith(
        "usage: threadtrace run [options] script.py [args...]\n"
        "       threadtrace run [options] -m module [args...]\n"
    )
    flat = " ".join(text.split())
    for name in setting_names():
        option = "--" + name.replace("_", "-")
        assert re.search(rf"^  {option} \[?[A-Z]+\]?(?: |$)", text, re.MULTILINE), option
        assert f"Variable: {env_var(name)}." in flat, name
    assert re.search(r"^  -m module +run a module as a script$", text, re.MULTILINE)
    assert re.search(r"^  --no-summary +do not print the summary at exit$", text, re.MULTILINE)
    assert "\nexamples:\n  threadtrace run app.py" in text
    assert "  threadtrace run --exporters otlp -m myservice.main" in text
    assert threadtrace_cmd(["run", "-h"], tmp_path).stdout == text
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_main_help_and_version(tmp_path: Path) -> None:
    done = threadtrace_cmd(["--help"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, _main_help(), "")
    assert "\ncommands:\n  run        " in done.stdout
    assert "\n  convert    " in done.stdout
    done = threadtrace_cmd([], tmp_path)  # no command: the help, and status 2
    assert (done.returncode, done.stdout, done.stderr) == (2, _main_help(), "")
    done = threadtrace_cmd(["--version"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"threadtrace {threadtrace.__version__}\n",
        "",
    )


def test_the_console_script_is_the_same_command(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    command = bin_dir / ("threadtrace.exe" if os.name == "nt" else "threadtrace")
    if not command.exists():
        pytest.skip(f"no threadtrace console script next to {sys.executable}")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(command), *args],
            cwd=tmp_path,
            env=child_env(),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
        )

    done = run("--version")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"threadtrace {threadtrace.__version__}\n",
        "",
    )
    # The console script's own directory, first on its sys.path, makes way for the script's.
    write(
        tmp_path / "app" / "script.py",
        f"import os, sys\nprint(sys.path[0], {str(bin_dir)!r} in sys.path)\n",
    )
    done = run("run", "--no-summary", "app/script.py")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{os.path.realpath(tmp_path / 'app')} False\n"


# -- threadtrace convert ------------------------------------------------------------------

CONVERT_HELP_HINT = "(see 'threadtrace convert --help')"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            None,
            "cannot read trace.jsonl: No such file or directory",
            id="missing",
        ),
        pytest.param(
            '\n{"resourceSpans": []}\nnot json\n',
            "trace.jsonl, line 3: not an OTLP JSON trace line "
            "(Expecting value: line 1 column 1 (char 0))",
            id="not-json",
        ),
        pytest.param(
            '{"resourceMetrics": []}\n',
            "trace.jsonl, line 1: not an OTLP JSON trace line "
            "(it holds metrics, not spans; pass the trace file)",
            id="metrics",
        ),
        pytest.param("", "trace.jsonl holds no spans", id="empty"),
    ],
)
def test_convert_refuses_what_is_not_a_trace(
    tmp_path: Path, content: Optional[str], message: str
) -> None:
    if content is not None:
        write(tmp_path / "trace.jsonl", content)
    done = threadtrace_cmd(["convert", "trace.jsonl", "--to", "perfetto", "-o", "t.json"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"threadtrace convert: error: {message}\n",
    )
    assert not (tmp_path / "t.json").exists()


def test_convert_of_a_missing_file_names_it(tmp_path: Path) -> None:
    done = threadtrace_cmd(
        ["convert", "missing.jsonl", "--to", "perfetto", "-o", "t.json"], tmp_path
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "threadtrace convert: error: cannot read missing.jsonl: No such file or directory\n",
    )


def test_convert_refuses_an_unknown_format(tmp_path: Path) -> None:
    write(tmp_path / "trace.jsonl", '{"resourceSpans": []}\n')
    done = threadtrace_cmd(["convert", "trace.jsonl", "--to", "svg", "-o", "t.json"], tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    # Python 3.12.8+/3.13.1+ stopped quoting the choices.
    assert re.fullmatch(
        r"threadtrace convert: error: argument --to: invalid choice: 'svg' "
        rf"\(choose from '?perfetto'?\) {re.escape(CONVERT_HELP_HINT)}\n",
        done.stderr,
    ), done.stderr
    done = threadtrace_cmd(["convert", "trace.jsonl", "--to", "perfetto"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "threadtrace convert: error: the following arguments are required: -o/--output "
        f"{CONVERT_HELP_HINT}\n",
    )


def test_convert_writes_a_perfetto_timeline(
    contention_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    try:
        import threadtrace._formats.perfetto  # noqa: F401
    except ImportError as error:
        pytest.skip(f"threadtrace._formats.perfetto is not importable yet ({error})")
    cwd, _ = contention_run
    out = cwd.parent / f"{cwd.name}-timeline.json"
    done = threadtrace_cmd(["convert", TRACE, "--to", "perfetto", "-o", str(out)], cwd)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "",
        f"threadtrace: wrote {out}: 6 spans on 3 threads; open it in https://ui.perfetto.dev\n",
    )
    lock = named("lock", "script.py", line_of(cwd / "app" / "script.py", "the contended lock"))
    events = json.loads(out.read_text(encoding="utf-8"))["traceEvents"]
    threads = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert threads == {"MainThread", "worker-1", "worker-2"}
    spans = ("Lock.acquire", "Thread.run", "Thread.join")  # not the wake markers
    assert sorted(
        e["name"] for e in events if e["ph"] == "X" and e["name"].split(" ")[0] in spans
    ) == [
        f"Lock.acquire {lock}",
        f"Lock.acquire {lock}",
        "Thread.join worker",
        "Thread.join worker",
        "Thread.run worker",
        "Thread.run worker",
    ]


def test_run_logs_the_contention_report_by_default(tmp_path: Path) -> None:
    write(
        tmp_path / "script.py",
        """
        import threading
        from threadtrace.testing import wait_for_waiters
        lock = threading.Lock()
        lock.acquire()
        worker = threading.Thread(target=lambda: (lock.acquire(), lock.release()))
        worker.start()
        wait_for_waiters(lock, 1)
        lock.release()
        worker.join(10)
        """,
    )
    env = child_env()
    del env["THREADTRACE_REPORT"]
    done = threadtrace_cmd(["run", "--no-summary", "script.py"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    first, *rest = done.stderr.splitlines()
    assert re.fullmatch(
        r"threadtrace contention report: 2 primitives blocked 2 times, .* in total, "
        r"summed over the threads that waited; by total wait",
        first,
    ), done.stderr
    assert f"2. Lock {ONE_WORKER_LOCK}" in rest or f"1. Lock {ONE_WORKER_LOCK}" in rest, done.stderr
    quiet = threadtrace_cmd(
        ["run", "--no-summary", "--report", "false", "script.py"], tmp_path, env
    )
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_recording_during_the_exit_flush_leaves_the_trace_whole(tmp_path: Path) -> None:
    """Daemon threads still contending at exit must not reopen (and truncate) the trace."""
    write(
        tmp_path / "script.py",
        """
        import threading, time
        lock = threading.Lock()
        going = threading.Barrier(4)
        def spin():
            going.wait(10)
            while True:
                with lock:
                    time.sleep(0)  # gives up the GIL holding the lock: the others wait
        for _ in range(3):
            threading.Thread(target=spin, daemon=True).start()
        going.wait(10)
        from threadtrace.testing import wait_for_waiters
        wait_for_waiters(lock, 1)  # they contend now, and go on doing so during the exit
        """,
    )
    done = threadtrace_cmd(["run", "--wait-threshold", "0", "--no-summary", "script.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    raw = (tmp_path / TRACE).read_bytes()
    assert b"\0" not in raw
    assert read_trace_file(str(tmp_path / TRACE))  # every line parses
