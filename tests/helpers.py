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


def function_name(function: Any) -> str:
    """What threadtrace reports as ``code.function.name``: the qualified name from 3.11."""
    code = function.__code__
    return str(getattr(code, "co_qualname", code.co_name))


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
