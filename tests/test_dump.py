"""`threadtrace dump PID`: every thread of a running traced process, without stopping it.

Tested on real processes: a deadlocked one (every thread of the program
blocked), a forked child, one that is not traced, one that is gone.  Each
child says "ready" once it is where the test needs it; the test waits for
that line, never for time to pass.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from helpers import child_env

from threadtrace._cli.main import main
from threadtrace._control.live import socket_paths
from threadtrace.testing import wait_until

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")

TIMEOUT = 60

#: Two threads take two locks in opposite orders and wait for each other for
#: good; "ready" once both are blocked; then the main thread joins one of them.
DEADLOCK = """\
import os
import threading

from threadtrace.testing import wait_for_waiters

accounts = threading.Lock()
ledger = threading.Lock()
both = threading.Barrier(2)


def transfer():
    with accounts:  # transfer takes accounts
        both.wait()
        with ledger:  # transfer waits here
            pass


def audit():
    with ledger:  # audit takes ledger
        both.wait()
        with accounts:  # audit waits here
            pass


first = threading.Thread(target=transfer, name="transfer")
second = threading.Thread(target=audit, name="audit")
first.start()
second.start()
wait_for_waiters(accounts, 1, timeout=30)
wait_for_waiters(ledger, 1, timeout=30)
print("ready", os.getpid(), flush=True)
first.join()
"""


def line_of(text: str, marker: str) -> int:
    (number,) = [n for n, line in enumerate(text.splitlines(), 1) if marker in line]
    return number


def start(script: Path, *run_args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "threadtrace", "run", "--no-summary", *run_args, str(script)],
        cwd=script.parent,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def ready(process: subprocess.Popen[str]) -> list[int]:
    """Wait for the child's "ready" line; the pids it gives."""
    assert process.stdout is not None
    line = process.stdout.readline()  # the child prints it, or dies (EOF): never hangs
    assert line.startswith("ready"), f"the child said {line!r}"
    return [int(word) for word in line.split()[1:]]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Children to kill at the end, whatever happened."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def dump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadtrace", "dump", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
    )


def test_a_deadlocked_process_answers_with_every_wait_holder_and_stack(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    script = tmp_path / "bank.py"
    script.write_text(DEADLOCK)
    process = start(script)
    processes.append(process)
    (pid,) = ready(process)

    def dumped() -> str:
        done = dump(str(pid))
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        return done.stdout

    # Until the main thread, too, is blocked (in its join): then every thread is.
    text = ""

    def all_blocked() -> bool:
        nonlocal text
        text = dumped()
        return "MainThread has waited" in text

    wait_until(all_blocked, TIMEOUT, "the main thread to block in join")
    assert process.poll() is None  # dumped, and still there: nothing stopped it
    waits_at = {name: line_of(DEADLOCK, f"# {name} waits here") for name in ("transfer", "audit")}
    took_at = {
        "transfer": line_of(DEADLOCK, "# transfer takes accounts"),
        "audit": line_of(DEADLOCK, "# audit takes ledger"),
    }
    lines = text.splitlines()
    assert re.fullmatch(
        rf"threadtrace dump of process {pid} \(bank\.py\) at \S+ \S+ [+-]\d{{4}}", lines[0]
    )
    duration = r"[\d.]+ (?:s|ms|µs)"
    lock = r"Lock\.acquire on (?P<lock>\S+(?: \(bank\.py:\d+\))?)"
    # Who waits for what, who holds it, and where they took it.
    expected = {
        "audit": rf"  audit has waited {duration} in {lock}, held by transfer, acquired at "
        rf"bank\.py:{took_at['transfer']} in transfer",
        "transfer": rf"  transfer has waited {duration} in {lock}, held by audit, acquired at "
        rf"bank\.py:{took_at['audit']} in audit",
        "MainThread": rf"  MainThread has waited {duration} in Thread\.join on transfer",
    }
    waits = {line.split()[0]: line for line in lines[2:5]}
    assert set(waits) == set(expected)
    for name, pattern in expected.items():
        assert re.fullmatch(pattern, waits[name]), waits[name]
    assert lines[6] == "threadtrace: 3 threads, 3 blocked"
    # Then every thread in full, as the stuck report shows them.
    views = "\n".join(lines[6:])
    for name in ("transfer", "audit"):
        assert re.search(rf"^  {name} \(thread \d+\)$", views, re.MULTILINE)
        assert f'File "{script}", line {waits_at[name]}, in {name}   <-- waits here' in views
    assert re.search(r"^    holds Lock .*, acquired at bank\.py:\d+ in transfer$", views, re.M)
    assert re.search(r"^    holds Lock .*, acquired at bank\.py:\d+ in audit$", views, re.M)
    assert "threadtrace-" not in views  # threadtrace's own threads are not the program's


FORKING = """\
import os
import threading

from threadtrace.testing import wait_for_waiters

go = threading.Event()
pid = os.fork()
if pid == 0:
    waiter = threading.Thread(target=lambda: go.wait(), name="child-waiter")
    waiter.start()
    wait_for_waiters(go, 1, timeout=30)
    print("ready", os.getpid(), flush=True)
    waiter.join()
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_listens_on_a_socket_of_its_own(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    script = tmp_path / "forking.py"
    script.write_text(FORKING)
    process = start(script)
    processes.append(process)
    (child,) = ready(process)
    try:
        done = dump(str(child))
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert f"threadtrace dump of process {child} " in done.stdout
        assert re.search(r"^  child-waiter has waited .* in Event\.wait on ", done.stdout, re.M)
        parent = dump(str(process.pid))
        assert parent.returncode == 0, parent.stderr
        assert f"threadtrace dump of process {process.pid} " in parent.stdout
    finally:
        os.kill(child, signal.SIGKILL)


def test_the_socket_goes_when_the_process_ends(tmp_path: Path) -> None:
    script = tmp_path / "quick.py"
    script.write_text("import os\nprint('ready', os.getpid(), flush=True)\n")
    done = subprocess.run(
        [sys.executable, "-m", "threadtrace", "run", "--no-summary", str(script)],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[1])
    assert not any(os.path.exists(path) for path in socket_paths(pid))


def _left_behind(path: Path, age: float) -> None:
    """A socket file as a killed process leaves it: bound, never removed, ``age`` seconds old."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
    then = time.time() - age
    os.utime(path, (then, then))


def test_sockets_left_by_processes_that_are_gone_are_removed(tmp_path: Path) -> None:
    from threadtrace._control.live import STALE_AFTER, remove_stale

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=TIMEOUT)
    gone, alive = ended.pid, os.getpid()
    _left_behind(tmp_path / f"{gone}.sock", STALE_AFTER + 5)  # left behind: removed
    _left_behind(tmp_path / f"{alive}.sock", STALE_AFTER + 5)  # a live process's: kept
    _left_behind(tmp_path / "0.sock", STALE_AFTER + 5)  # no process's: kept
    kept_names = {f"{alive}.sock", "0.sock", "notes.txt", "7.sock.txt"}
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "7.sock.txt").write_text("")
    assert remove_stale(str(tmp_path)) == 1
    assert {p.name for p in tmp_path.iterdir()} == kept_names
    # Bound a moment ago, perhaps by a new process given a reused pid: kept.
    _left_behind(tmp_path / f"{gone}.sock", 1)
    assert remove_stale(str(tmp_path)) == 0
    assert (tmp_path / f"{gone}.sock").exists()
    regular = tmp_path / "12345678.sock"  # not a socket: never ours to remove
    regular.write_text("")
    os.utime(regular, (0, 0))
    assert remove_stale(str(tmp_path)) == 0 and regular.exists()


def test_a_process_that_listens_removes_the_sockets_left_behind(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    from threadtrace._control.live import STALE_AFTER

    directory = tmp_path / f"threadtrace-{os.getuid()}"
    directory.mkdir(mode=0o700)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=TIMEOUT)
    stale = directory / f"{ended.pid}.sock"
    _left_behind(stale, STALE_AFTER + 5)
    script = tmp_path / "listening.py"
    script.write_text("import os, sys\nprint('ready', os.getpid(), flush=True)\nsys.stdin.read()\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "threadtrace", "run", "--no-summary", str(script)],
        cwd=tmp_path, env=child_env(TMPDIR=str(tmp_path), XDG_RUNTIME_DIR=""),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    processes.append(process)
    (pid,) = ready(process)
    wait_until(lambda: not stale.exists(), TIMEOUT, "the socket left behind removed")
    assert (directory / f"{pid}.sock").exists()


# -- what cannot be dumped: one line, status 2 -------------------------------------------------


def test_no_such_process(capsys: pytest.CaptureFixture[str]) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    pid = int(gone.stdout)
    assert main(["dump", str(pid)]) == 2
    assert capsys.readouterr().err == f"threadtrace dump: error: no process {pid}\n"


def test_a_process_not_under_threadtrace(
    tmp_path: Path, processes: list[subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    plain = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    processes.append(plain)
    ready(plain)
    paths = socket_paths(plain.pid)
    for path in paths:  # left by a killed process that had this pid before (pids are reused)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    assert main(["dump", str(plain.pid)]) == 2
    assert capsys.readouterr().err == (
        f"threadtrace dump: error: process {plain.pid} is not running under threadtrace (it "
        f"has no socket: {' or '.join(paths)}); run it with threadtrace run, or call "
        "threadtrace.patch() in it\n"
    )
    # A socket a process that ended left behind, whose pid this one got: nobody listens.
    stale = paths[-1]
    os.makedirs(os.path.dirname(stale), mode=0o700, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(stale)
    try:
        assert main(["dump", str(plain.pid)]) == 2
        assert capsys.readouterr().err == (
            f"threadtrace dump: error: process {plain.pid} is not running under threadtrace "
            f"(nothing listens on {stale}, which a process that ended left behind)\n"
        )
    finally:
        os.unlink(stale)


def test_a_process_of_another_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def not_yours(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", not_yours)
    assert main(["dump", "1"]) == 2
    assert capsys.readouterr().err == (
        "threadtrace dump: error: permission denied: process 1 belongs to another user "
        "(dump it as that user)\n"
    )


@pytest.mark.parametrize("pid", ["abc", "0", "-3", "1.5"])
def test_a_pid_that_is_not_one(pid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", pid]) == 2
    assert capsys.readouterr().err == (
        f"threadtrace dump: error: PID must be a process id (a whole number > 0), got {pid!r}\n"
    )


def test_help_says_what_it_prints_and_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dump", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "threadtrace dump [-h] pid" in out
    assert "without stopping it" in out and "deadlocked" in out
    assert "threadtrace.patch()" in out
    main(["--help"])
    assert re.search(
        r"^  dump +print every thread of a running traced process", capsys.readouterr().out, re.M
    )


def test_the_socket_directory_must_be_private(tmp_path: Path) -> None:
    """A directory others can open (or another user's) is refused, never used."""
    from threadtrace._control.live import Unsafe, private_directory

    open_to_all = tmp_path / "shared"
    open_to_all.mkdir(mode=0o777)
    os.chmod(open_to_all, 0o777)
    with pytest.raises(Unsafe, match=r"is open to other users \(mode 777\)$"):
        private_directory(str(open_to_all))
    made = private_directory(str(tmp_path / "fresh"))
    assert oct(os.stat(made).st_mode & 0o777) == "0o700"
    (tmp_path / "link").symlink_to(made)
    with pytest.raises(Unsafe, match=r"is not a directory$"):
        private_directory(str(tmp_path / "link"))
