"""`threadtrace run` traces any Python command, and the Python processes the program starts.

Each process writes files of its own (the program's the configured ones, the
others ``threadtrace-trace.<pid>.jsonl`` beside them), only the program's
process prints the summary, and it names the others' files; ``report`` and
``convert`` take them all.  Real processes throughout: a console script, a
multiprocessing pool under each start method, a ``subprocess`` running Python.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
from helpers import child_env

from threadtrace._cli.processes import program_name
from threadtrace._formats.otlp_jsonl import read_trace_file
from threadtrace._formats.records import SpanRecord

TRACE = "threadtrace-trace.jsonl"
TIMEOUT = 120

#: A lock one thread holds while a second waits for it, handed over once it
#: waits (a handshake, no sleep): a Lock.acquire span in whatever process runs it.
CONTEND = """\
import threading
from threadtrace.testing import wait_for_waiters


def contend():
    lock = threading.Lock()
    lock.acquire()
    helper = threading.Thread(target=lambda: (lock.acquire(), lock.release()), name="helper")
    helper.start()
    wait_for_waiters(lock, 1, timeout=30)
    lock.release()
    helper.join(30)
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run(
    args: list[str], cwd: Path, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    """``python -m threadtrace run --wait-threshold 0 ARGS...`` in ``cwd``.

    A generous flush timeout: on a loaded machine a process's exit flush may
    take seconds, and a flush cut short would drop the spans under test.
    """
    options = ["--wait-threshold", "0", "--flush-timeout", "60"]
    return subprocess.run(
        [sys.executable, "-m", "threadtrace", "run", *options, *args],
        cwd=cwd,
        env=child_env() if env is None else env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
    )


def contended(records: list[SpanRecord]) -> list[SpanRecord]:
    return [r for r in records if r.name.startswith("Lock.acquire ") and r.thread_name == "helper"]


def child_trace(cwd: Path, pid: int) -> list[SpanRecord]:
    """The spans process ``pid`` wrote, each saying which process it is."""
    records = read_trace_file(str(cwd / f"threadtrace-trace.{pid}.jsonl"))
    assert {r.process_id for r in records} == {pid}
    return records


def summaries(stderr: str) -> int:
    return stderr.count("threadtrace summary")


def children_named(stderr: str) -> set[int]:
    """The pids whose files the summary names."""
    block = stderr.partition("  children  ")[2]
    return {int(pid) for pid in re.findall(r"threadtrace-trace\.(\d+)\.jsonl", block)}


# -- a command, not a script ---------------------------------------------------------------


def test_a_console_script_runs_traced_from_its_start(tmp_path: Path) -> None:
    """`threadtrace run -- pytest ...`: the venv's own pytest script, traced as it runs a test."""
    write(tmp_path / "contend.py", CONTEND)
    write(
        tmp_path / "test_tiny.py",
        """\
        import threading
        from contend import contend

        def test_contends():
            assert threading.Lock.__module__ == "threadtrace"  # patched before pytest ran
            contend()
        """,
    )
    pytest_script = Path(sys.executable).with_name("pytest")
    done = run(["--", str(pytest_script), "-q", "-p", "no:cacheprovider", "test_tiny.py"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert (tmp_path / TRACE).read_text().strip(), done.stderr  # spans, or why not
    (wait,) = contended(read_trace_file(str(tmp_path / TRACE)))
    assert wait.service_name == "threadtrace:pytest"
    assert wait.process_id is not None
    assert summaries(done.stderr) == 1


def test_python_app_py_and_python_m_are_commands_too(tmp_path: Path) -> None:
    """`-- python app.py` and `-- python -m pkg`: the interpreter is the program's process."""
    write(tmp_path / "contend.py", CONTEND)
    write(
        tmp_path / "app.py",
        "import os\nfrom contend import contend\ncontend()\nprint(os.getpid())\n",
    )
    for target, service in ((["app.py"], "app.py"), (["-m", "app"], "app")):
        done = run(["--", sys.executable, *target], tmp_path)
        assert done.returncode == 0, done.stderr
        pid = int(done.stdout)
        (wait,) = contended(read_trace_file(str(tmp_path / TRACE)))
        # The command replaced threadtrace: the program's pid is the process's.
        assert (wait.process_id, wait.service_name) == (pid, f"threadtrace:{service}")
        assert summaries(done.stderr) == 1


def test_the_programs_own_sitecustomize_still_runs(tmp_path: Path) -> None:
    """Only one sitecustomize can be imported: threadtrace's hands over to the program's."""
    site = tmp_path / "site"
    site.mkdir()
    write(
        site / "sitecustomize.py",
        "import sys\nprint('the program\\'s sitecustomize', file=sys.stderr)\n",
    )
    write(
        tmp_path / "app.py",
        "import sys, threading\nprint(threading.Lock.__module__, sys.path[0])\n",
    )
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    done = run(["--", sys.executable, "app.py"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"threadtrace {tmp_path}\n"
    assert done.stderr.startswith("the program's sitecustomize\n")


# -- child processes -------------------------------------------------------------------------

POOL = """\
import multiprocessing
import os
import sys

from contend import contend


def work(_):
    contend()
    return os.getpid()


if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    pool = context.Pool(2)
    pids = sorted(set(pool.map(work, range(4), chunksize=1)))
    pool.close()  # the workers end as they do when their work is done (not terminated)
    pool.join()
    print(" ".join(map(str, pids)))
"""


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
@pytest.mark.parametrize("form", ["command", "script"])
def test_a_multiprocessing_pool_is_traced_a_file_per_worker(
    method: str, form: str, tmp_path: Path
) -> None:
    """Every worker writes its own trace; only the program summarises, naming the workers' files."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    write(tmp_path / "contend.py", CONTEND)
    write(tmp_path / "pool.py", POOL)
    target = ["--", sys.executable, "pool.py", method] if form == "command" else ["pool.py", method]
    done = run(target, tmp_path)
    assert done.returncode == 0, done.stderr
    workers = [int(pid) for pid in done.stdout.split()]
    assert workers
    for pid in workers:  # a worker may have run several of the tasks
        waits = contended(child_trace(tmp_path, pid))
        assert waits
        # The run's name, in every process.
        assert {wait.service_name for wait in waits} == {"threadtrace:pool.py"}
    assert summaries(done.stderr) == 1
    assert set(workers) <= children_named(done.stderr)


SUBPROCESS = """\
import subprocess
import sys

done = subprocess.run([sys.executable, "child.py"], capture_output=True, text=True, timeout=60)
print(done.stdout.strip())
sys.stderr.write(done.stderr)
"""
CHILD = """\
import os
import threading
from contend import contend

contend()
print(os.getpid(), threading.Lock.__module__)
"""


@pytest.mark.parametrize("form", ["command", "script"])
def test_a_python_subprocess_is_traced_with_files_of_its_own(form: str, tmp_path: Path) -> None:
    write(tmp_path / "contend.py", CONTEND)
    write(tmp_path / "app.py", SUBPROCESS)
    write(tmp_path / "child.py", CHILD)
    done = run(["--", sys.executable, "app.py"] if form == "command" else ["app.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    pid, module = done.stdout.split()
    assert module == "threadtrace"
    (wait,) = contended(child_trace(tmp_path, int(pid)))
    assert wait.attributes["thread.name"] == "helper"
    assert summaries(done.stderr) == 1  # the child says nothing
    assert children_named(done.stderr) == {int(pid)}
    assert "threadtrace report 'threadtrace-trace*.jsonl'" in done.stderr


def test_no_children_leaves_the_processes_the_program_starts_alone(tmp_path: Path) -> None:
    write(tmp_path / "app.py", SUBPROCESS)
    write(
        tmp_path / "child.py",
        "import os, threading\nprint(os.getpid(), threading.Lock.__module__)\n",
    )
    done = run(["--no-children", "--", sys.executable, "app.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    _, module = done.stdout.split()
    assert module == "_thread"  # threading as it is: not patched
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == [
        TRACE,
        "threadtrace-trace.metrics.jsonl",
    ]
    assert "children" not in done.stderr


def test_report_and_convert_take_every_process_of_a_run(tmp_path: Path) -> None:
    """A quoted glob (or several names): a report per file, one timeline with a process each."""
    write(tmp_path / "contend.py", CONTEND)
    write(tmp_path / "app.py", "from contend import contend\ncontend()\n" + SUBPROCESS)
    write(tmp_path / "child.py", CHILD)
    done = run(["app.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    report = subprocess.run(
        [sys.executable, "-m", "threadtrace", "report", "threadtrace-trace*.jsonl", "--json"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    reports = json.loads(report.stdout)
    assert [entry["trace"] for entry in reports] == [TRACE, f"threadtrace-trace.{pid}.jsonl"]
    for entry in reports:  # each process's own contention (the program's joins too)
        assert entry["report"]["primitives_blocked"] >= 1
    timeline = tmp_path.parent / f"{tmp_path.name}-timeline.json"
    convert = subprocess.run(
        [sys.executable, "-m", "threadtrace", "convert", TRACE, f"threadtrace-trace.{pid}.jsonl",
         "--to", "perfetto", "-o", str(timeline)],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert convert.returncode == 0, convert.stderr
    assert " of 2 processes;" in convert.stderr
    events = json.loads(timeline.read_text(encoding="utf-8"))["traceEvents"]
    names = sorted(e["args"]["name"] for e in events if e["name"] == "process_name")
    assert len(names) == 2 and all(n.startswith("threadtrace:app.py (process ") for n in names)
    assert f"threadtrace:app.py (process {pid})" in names


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["python3", "app.py", "--x"], "app.py"),
        (["/usr/bin/python3.12", "-X", "dev", "-u", "src/app.py"], "app.py"),
        (["python", "-m", "pkg.main", "-v"], "pkg.main"),
        (["python", "-mpkg"], "pkg"),
        (["python", "-c", "pass"], "python"),
        (["/venv/bin/pytest", "-x"], "pytest"),
        (["gunicorn", "app:app"], "gunicorn"),
    ],
)
def test_the_run_is_named_after_what_the_command_runs(command: list[str], name: str) -> None:
    """The default service.name of every process of the run: threadtrace:<this>."""
    assert program_name(command) == name
