"""What the kinds of primitive are called, in span names, reports and logs."""

from __future__ import annotations

import re
from typing import Optional

#: Display names of the primitive kinds, for span names ("Lock.acquire").
DISPLAY = {
    "lock": "Lock",
    "rlock": "RLock",
    "condition": "Condition",
    "semaphore": "Semaphore",
    "bounded_semaphore": "BoundedSemaphore",
    "event": "Event",
    "barrier": "Barrier",
    "thread": "Thread",
}

#: The kinds whose waits are for something another thread holds.
ACQUIRED = ("lock", "rlock", "semaphore", "bounded_semaphore")

#: A counter at the end of a thread's name: ``-3``, ``_3``, `` 3``, ``.3``, ``#3``, `` (3)``.
_COUNTERS = re.compile(r"(?:\s*[-_.:#]\d+|\s+\d+|\s*\(\d+\))+$")
#: The names ``threading`` makes up: ``Thread-7``, and ``Thread-7 (fetch)`` from 3.10.
_MADE_UP = re.compile(r"^Thread-\d+(?: \(.*\))?$")


def span_name(operation: str, target: Optional[str]) -> str:
    """``Lock.acquire ledger``: the operation, then its target, as the conventions name spans."""
    return f"{operation} {target}" if target else operation


def thread_target(name: str, function: Optional[str]) -> str:
    """A thread, as the target of its ``Thread.run`` and ``Thread.join`` spans.

    A span name must have few distinct values, so that a trace UI can group
    by it.  A thread's name is what people recognise, and is usually a role
    with a counter (``teller-0``, ``db_3``, ``ThreadPoolExecutor-0_1``): the
    counters are dropped (``teller``, ``db``, ``ThreadPoolExecutor``).  A
    name ``threading`` made up (``Thread-7``, ``Thread-7 (fetch)``) says
    only what the thread runs: then it is that, ``function``
    (``<module>.<qualname>`` of the target), the same on every Python; so is
    a name that is only a number.
    """
    if _MADE_UP.match(name) or name.isdigit():
        return function or "Thread"
    return _COUNTERS.sub("", name) or function or name


def operation_of(name: str) -> str:
    """The operation of a span name, with or without its target: ``Lock.acquire``."""
    return name.partition(" ")[0]
