"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

import threadtrace
from threadtrace.testing import wait_for_waiters


def line() -> int:
    """The line number of the caller: ``lock, where = threading.Lock(), line()``."""
    return sys._getframe(1).f_lineno


def named(variable: Optional[str], file: str, lineno: int, via: Optional[str] = None) -> str:
    """The name threadtrace gives a primitive made at ``file:lineno`` and kept in ``variable``.

    ``named("lock", "app.py", 4)`` is ``lock (app.py:4)``; made through a
    library class, ``named("jobs", "app.py", 9, via="Queue")`` is
    ``jobs (Queue@app.py:9)``; with no variable, the place alone.
    """
    place = f"{via}@{file}:{lineno}" if via else f"{file}:{lineno}"
    return f"{variable} ({place})" if variable else place


def function_name(function: Any) -> str:
    """What threadtrace reports as ``code.function.name``: the qualified name from 3.11."""
    code = function.__code__
    return str(getattr(code, "co_qualname", code.co_name))


def qualified_name(function: Any) -> str:
    """What threadtrace reports as ``code.function.name``: ``<module>.<qualname>``.

    Before 3.11 a code object has no qualified name: threadtrace finds it for
    module-level functions and methods, and gives a nested function's bare name.
    """
    code = function.__code__
    qualname = getattr(code, "co_qualname", None)
    if qualname is None:
        qualname = code.co_name if "<locals>" in function.__qualname__ else function.__qualname__
    return f"{function.__module__}.{qualname}"


def contend(lock: Any) -> None:
    """Make one other thread wait on ``lock`` once (a handshake, no sleeps)."""
    lock.acquire()
    taker = threading.Thread(target=lambda: (lock.acquire(), lock.release()))
    taker.start()
    wait_for_waiters(lock, 1)
    lock.release()
    taker.join(10)
    assert not taker.is_alive()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child: ours without THREADTRACE_* settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("THREADTRACE_") or key == "THREADTRACE_PURE_PYTHON"
    }
    # The child imports the very threadtrace under test, whatever its cwd.
    root = str(Path(threadtrace.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTHONSAFEPATH", None)  # python -m must put the cwd first, as for users
    env["PYTHONIOENCODING"] = "utf-8"  # the summary prints "µs"
    env["COLUMNS"] = "80"  # argparse wraps --help to the terminal width
    # The contention report (on by default under run) is tested on its own
    # (test_cli); elsewhere it would only lengthen every stderr compared.
    env["THREADTRACE_REPORT"] = "false"
    env.update(extra)
    return env


def threadtrace_cmd(
    args: Sequence[str], cwd: Path, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    """``python -m threadtrace args...`` in ``cwd``; waits at most 60 s."""
    return subprocess.run(
        [sys.executable, "-m", "threadtrace", *args],
        cwd=cwd,
        env=child_env() if env is None else env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
