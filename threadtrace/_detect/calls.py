"""Which call of the standard library a blocked thread is in: ``Queue.get``, ``Future.result``...

A wait inside ``queue`` or ``concurrent.futures`` is a wait on one of their
``Condition``s, named after the queue or the future; what the program
called is read from the waiting thread's frames, with the object it was
called on (``self``).  Only for threads the watchdog looks at closely: a
thread blocked long enough to matter.
"""

from __future__ import annotations

from types import FrameType
from typing import Any, NamedTuple, Optional

#: (module, function) -> how reports call it.
LIBRARY_CALLS = {
    ("queue", "get"): "Queue.get",
    ("queue", "put"): "Queue.put",
    ("queue", "join"): "Queue.join",
    ("concurrent.futures._base", "result"): "Future.result",
    ("concurrent.futures._base", "exception"): "Future.exception",
    ("concurrent.futures._base", "wait"): "concurrent.futures.wait",
    ("concurrent.futures._base", "as_completed"): "as_completed",
    ("concurrent.futures.thread", "shutdown"): "ThreadPoolExecutor.shutdown",
}

#: The calls that wait for work to come, or for other work to finish: never stuck
#: by themselves (a Queue.join can be; see stuck.py).
WAITING_FOR_WORK = frozenset(LIBRARY_CALLS.values()) - {"Queue.put"}


class Call(NamedTuple):
    """A library call a thread is blocked in."""

    label: str  # ``Queue.get``
    target: Any  # the queue, the future (``self`` of the call), or None


def library_call(frame: Optional[FrameType]) -> Optional[Call]:
    """The library call a blocked thread is in, from its innermost frame, if any."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        label = LIBRARY_CALLS.get((module, frame.f_code.co_name))
        if label is not None:
            # f_locals of a blocked thread's frame: read once, for one name.
            return Call(label, frame.f_locals.get("self"))
        if not _library(module):
            return None  # the program's own frame: it waits on a primitive of its own
        frame = frame.f_back
    return None


def _library(module: str) -> bool:
    return module in ("threading", "queue") or module.startswith(
        ("concurrent.futures", "threadtrace")
    )
