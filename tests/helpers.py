"""Small helpers shared by the tests."""

from __future__ import annotations

import sys
import threading
from typing import Any

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
