"""``threadtrace dump PID``: every thread of a traced process, now, without stopping it.

The process answers on its own Unix socket, from a thread of threadtrace's
own (``_control/live.py``), so a deadlocked process answers too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import textwrap
from typing import Optional, Sequence

from .._control.live import REQUEST, socket_paths
from .usage import PROG, Parser, UsageError

#: Seconds to wait for the whole answer before giving up.
ANSWER_TIMEOUT = 30.0


def command(argv: Sequence[str]) -> int:
    """``threadtrace dump PID``.

    Raises:
        UsageError: not a pid, no such process, a process not under
            threadtrace, or one this user may not dump (one line, status 2).
    """
    parser = Parser(
        prog=f"{PROG} dump",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Print what every thread of a running process is doing, without stopping it:
            what it waits on and since when, who holds that and where they acquired it,
            what each thread holds, and every thread's stack, as the stuck report shows
            them.  It works on a deadlocked process: a thread of threadtrace's own answers.

            The process must run under threadtrace (threadtrace run, or threadtrace.patch()
            in it) and belong to the same user: it listens on a Unix socket in a
            directory only its user can open ($XDG_RUNTIME_DIR/threadtrace, else
            <tmp>/threadtrace-<uid>).
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              threadtrace dump 4242
              threadtrace dump $(pgrep -f myservice) > hang.txt
            """
        ),
    )
    parser.add_argument("pid", help="the process id of a process running under threadtrace")
    given = parser.parse_args(argv)
    pid = _pid(parser.prog, given.pid)
    text = _ask(parser.prog, pid)
    sys.stdout.write(text)
    return 0


def _pid(prog: str, text: str) -> int:
    try:
        pid = int(text)
    except ValueError:
        pid = 0
    if pid <= 0:
        raise UsageError(
            f"{prog}: error: PID must be a process id (a whole number > 0), got {text!r}"
        )
    return pid


def _owner(pid: int) -> Optional[int]:
    """The uid of process ``pid`` where the system says (Linux's /proc), else None."""
    with contextlib.suppress(OSError):
        return os.stat(f"/proc/{pid}").st_uid
    return None


def _ask(prog: str, pid: int) -> str:
    """The dump process ``pid`` gives.

    Raises:
        UsageError: one of the three reasons there is none (see :func:`command`).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise UsageError(f"{prog}: error: no process {pid}") from None
    except PermissionError:
        raise UsageError(
            f"{prog}: error: permission denied: process {pid} belongs to another user "
            "(dump it as that user)"
        ) from None
    owner = _owner(pid)
    paths = socket_paths(pid, owner)
    existing = [path for path in paths if os.path.exists(path)]
    if not existing:
        raise UsageError(
            f"{prog}: error: process {pid} is not running under threadtrace (it has no "
            f"socket: {' or '.join(paths)}); run it with threadtrace run, or call "
            "threadtrace.patch() in it"
        )
    refused: Optional[str] = None
    for path in existing:
        try:
            return _request(path)
        except PermissionError:
            raise UsageError(f"{prog}: error: permission denied: {path}") from None
        except (ConnectionRefusedError, FileNotFoundError):
            refused = path  # left by a process that ended, whose pid this one got
        except OSError as error:
            raise UsageError(f"{prog}: error: process {pid} did not answer: {error}") from None
    raise UsageError(
        f"{prog}: error: process {pid} is not running under threadtrace (nothing listens "
        f"on {refused}, which a process that ended left behind)"
    )


def _request(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(ANSWER_TIMEOUT)
        client.connect(path)
        client.sendall(REQUEST)
        chunks = []
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
