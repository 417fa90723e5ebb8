"""The live dump: every thread's state now, for ``threadtrace dump PID``, without stopping anything.

A hang in production needs the state *now*: who holds what, who waits on
what, where (py-spy's users ask for exactly this, py-spy issues 113 and 740,
and it can only show stacks).  threadtrace knows owners and waiters, so a
traced process answers a request for them.

Prior art and the choice made here:

* A signal handler (faulthandler's ``dump_traceback_later``, py-spy's
  ``SIGQUIT`` in other runtimes) runs in the main thread, between bytecodes:
  a main thread blocked in C (``lock.acquire()`` in a deadlock) never runs
  it.  So the request is served by a thread of threadtrace's own, which no
  lock of the program's can block.
* ``gdb``/``py-spy`` attach with ``ptrace``: no cooperation needed, but root
  or ``ptrace_scope`` settings, and they see frames, not owners.
* Here: a Unix socket, ``<dir>/<pid>.sock``, in a directory only the user
  can open (0700, checked before use): ``$XDG_RUNTIME_DIR/threadtrace`` or
  ``<tmp>/threadtrace-<uid>``.  A daemon thread, ``threadtrace-dump``,
  accepts a connection, reads one request line, writes the text and closes.
  Peers of another user are refused (``SO_PEERCRED`` where there is one; the
  directory's mode everywhere).  The socket is made when ``threading`` is
  patched (``patch()``, ``threadtrace run``), just after the watchdog thread
  starts, so the thread count the program sees does not change mid-run;
  it is removed at exit.  A process killed before its exit (``SIGKILL``,
  the OOM killer) leaves its socket behind: each process that listens
  removes those of processes that are gone, from its own thread.  A forked
  child (a multiprocessing worker) makes its own when its watchdog starts
  again, at its first blocking wait: a thread started in the fork handler
  would be one more than the program expects to find in the child
  (CPython's ``test_threading`` checks).

The text is the stuck report's view of every thread
(:func:`threadtrace._detect.dump.dump_threads`), after a line per blocked
thread saying who holds what it waits for and where they took it.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import stat
import sys
import tempfile
import time
from typing import Any, Optional

from .._detect.describe import holder_text
from .._detect.dump import ages_text, dump_threads, program_threads, wait_phrase
from .._detect.state import owner_of
from .._runtime import runtime
from .._support import originals as _originals

#: What a client sends: one line.
REQUEST = b"dump\n"
#: The longest a request may take to arrive, in seconds.
REQUEST_TIMEOUT = 5.0
#: The name of the thread that answers.
THREAD_NAME = "threadtrace-dump"
#: A socket file younger than this (seconds) is never taken for one left
#: behind: its process may have bound it a moment ago, with a reused pid.
STALE_AFTER = 60.0


class Unsafe(OSError):
    """The socket directory exists but is not the user's own, private directory."""


def directories(uid: Optional[int] = None) -> list[str]:
    """Where a process of user ``uid`` (default: this one) keeps its socket, best first."""
    uid = os.getuid() if uid is None else uid
    found = []
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime_dir and os.path.isdir(runtime_dir) and uid == os.getuid():
        found.append(os.path.join(runtime_dir, "threadtrace"))
    found.append(os.path.join(tempfile.gettempdir(), f"threadtrace-{uid}"))
    return found


def socket_paths(pid: int, uid: Optional[int] = None) -> list[str]:
    """The paths where process ``pid`` (of user ``uid``) may listen."""
    return [os.path.join(directory, f"{pid}.sock") for directory in directories(uid)]


def private_directory(path: str) -> str:
    """``path``, made if missing (mode 0700); checked to be this user's and no one else's.

    Raises:
        Unsafe: it is a link, not a directory, another user's, or open to others.
        OSError: it cannot be made.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise Unsafe(f"{path} is not a directory")
    if info.st_uid != os.getuid():
        raise Unsafe(f"{path} belongs to another user")
    if info.st_mode & 0o077:
        raise Unsafe(f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o})")
    return path


class Listener:
    """One process's socket and the thread that answers on it."""

    def __init__(self, path: str, server: socket.socket) -> None:
        self.path = path
        self.server = server
        self.pid = os.getpid()

    def serve(self) -> None:
        """Answer requests until the socket is closed.  Never raises."""
        try:
            remove_stale(os.path.dirname(self.path))
        except Exception as error:  # noqa: BLE001 - the listener outlives its bugs
            runtime.internal_error("dump", error)
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed at exit (or in a forked child): done
            with connection:
                try:
                    self._answer(connection)
                except Exception as error:  # noqa: BLE001 - the listener outlives its bugs
                    runtime.internal_error("dump", error)

    def _answer(self, connection: socket.socket) -> None:
        if not _same_user(connection):
            return
        connection.settimeout(REQUEST_TIMEOUT)
        request = b""
        while not request.endswith(b"\n") and len(request) < 64:
            chunk = connection.recv(64)
            if not chunk:
                break
            request += chunk
        if request != REQUEST:
            connection.sendall(b"threadtrace: unknown request\n")
            return
        with runtime.guarded():  # threadtrace's own work: nothing it touches is traced
            text = dump_text()
        connection.sendall(text.encode("utf-8", "replace"))

    def close(self) -> None:
        """Stop listening and remove the socket (only the process that made it removes it)."""
        with contextlib.suppress(OSError):
            self.server.close()
        if os.getpid() == self.pid:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def remove_stale(directory: str) -> int:
    """Remove the sockets left behind in ``directory`` by processes that are gone.

    Only ``<pid>.sock`` sockets whose process no longer exists and that
    are older than :data:`STALE_AFTER`; other files stay.  Returns how many
    went.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    removed = 0
    now = time.time()
    for name in names:
        number, _, suffix = name.partition(".")
        if suffix != "sock" or not (number.isascii() and number.isdigit()):
            continue
        pid = int(number)
        if pid <= 0 or pid == os.getpid() or _alive(pid):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.lstat(path)
            if not stat.S_ISSOCK(info.st_mode) or now - info.st_mtime < STALE_AFTER:
                continue
            os.unlink(path)
        except OSError:
            continue
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def _same_user(connection: socket.socket) -> bool:
    """Whether the peer is this user (or root), where the system says who it is."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True  # the directory's mode (0700) is the guard
    try:
        credentials = connection.getsockopt(socket.SOL_SOCKET, option, 12)
    except OSError:
        return True
    uid = int.from_bytes(credentials[4:8], sys.byteorder)
    return uid in (os.getuid(), 0)


def dump_text() -> str:
    """What a dump says: the process, each wait and its holder, then every thread in full."""
    now = runtime.clock.monotonic_ns()
    frames = sys._current_frames()
    snapshot = dict(runtime.detect.blocked)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    lines = [f"threadtrace dump of process {os.getpid()} ({program}) at {when}"]
    waits = []
    for ident in program_threads(frames):
        wait = snapshot.get(ident)
        if wait is None:
            continue
        line = (
            f"  {_originals.thread_name(ident)} has waited {ages_text([wait], now)} in "
            f"{wait_phrase(wait, frames.get(ident))}"
        )
        holder = _holder(wait.primitive)
        if holder:
            line += f", {holder}"
        waits.append(line)
    if waits:
        lines.append("")
        lines.extend(waits)
    lines.append("")
    lines.append(dump_threads(now))
    return "\n".join(lines) + "\n"


def _holder(primitive: Any) -> str:
    """``held by worker-1, acquired at app.py:9 in f``: who holds the lock a wait is for."""
    kind = getattr(primitive, "_tt_kind", "")
    lock = primitive if kind in ("lock", "rlock") else getattr(primitive, "_lock", None)
    if getattr(lock, "_tt_kind", "") not in ("lock", "rlock"):
        return ""
    owner = owner_of(lock)
    if owner is None:
        return "held by nobody" if lock is primitive else ""
    which = "" if lock is primitive else "its lock "
    return f"{which}held by {holder_text(lock, owner)}"


def serve_dumps() -> None:
    """This process (and the children it forks) answer ``threadtrace dump``, from now on.

    Called when ``threading`` is patched.  Never raises.
    """
    if "dump" not in runtime.installed:
        runtime.installed.add("dump")
        runtime.watchdog_hooks.append(_with_the_watchdog)
    listen()


def _with_the_watchdog() -> None:
    """The watchdog started (again: in a forked child): listen, if this process should."""
    if "dump" in runtime.installed:
        listen()


def listen() -> None:
    """Start listening for ``threadtrace dump``, once per process.  Never raises.

    A socket that cannot be made (no writable directory, one that is not
    private) is said once, as a notice; the program runs as it would.
    """
    listener = runtime.listener
    if listener is not None and listener.pid == os.getpid():
        return
    runtime.listener = None
    problem = None
    for directory in directories():
        try:
            path = os.path.join(private_directory(directory), f"{os.getpid()}.sock")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a dead process's, whose pid this process got
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.bind(path)
                os.chmod(path, 0o600)
                server.listen(4)
            except OSError:
                server.close()
                raise
        except OSError as error:
            problem = problem or error
            continue
        listener = runtime.listener = Listener(path, server)
        break
    else:
        runtime.notice(
            logging.WARNING,
            "threadtrace: threadtrace dump cannot reach this process: %s",
            problem,
        )
        return
    if "dump-fork" not in runtime.installed:
        runtime.installed.add("dump-fork")
        runtime.child_hooks.append(_after_fork)
    thread = _originals.own_thread(listener.serve, THREAD_NAME)
    with runtime.guarded():  # threadtrace's own thread: never traced
        thread.start()


def _after_fork() -> None:
    """In a forked child: the parent's socket is the parent's; this copy of it goes.

    The child listens on its own once its watchdog starts again (see the
    module docstring).
    """
    listener = runtime.listener
    if listener is None:
        return
    with contextlib.suppress(OSError):
        listener.server.close()  # the child's copy of the descriptor only; the file stays
    runtime.listener = None


def close() -> None:
    """At exit: stop listening and remove this process's socket."""
    listener = runtime.listener
    if listener is not None:
        runtime.listener = None
        listener.close()
