"""A drop-in for the :mod:`threading` module with traced primitives.

``import threadtrace.threading as threading`` gives a program the whole
threading API: the primitives are threadtrace's, everything else
(``current_thread``, ``enumerate``, ``excepthook``, ``settrace``,
``TIMEOUT_MAX``, the camelCase aliases, ...) is threading's own.
"""

from __future__ import annotations

import threading as _threading
from threading import (
    TIMEOUT_MAX,
    BrokenBarrierError,
    ExceptHookArgs,
    active_count,
    activeCount,
    current_thread,
    currentThread,
    enumerate,
    excepthook,
    get_ident,
    get_native_id,
    main_thread,
    setprofile,
    settrace,
    stack_size,
)
from typing import Any

from . import (
    Barrier,
    BoundedSemaphore,
    Condition,
    Event,
    Lock,
    RLock,
    Semaphore,
    Thread,
    Timer,
    local,
)

__all__ = [  # noqa: RUF022 - threading's own order
    "get_ident", "active_count", "Condition", "current_thread", "enumerate",
    "main_thread", "TIMEOUT_MAX", "Event", "Lock", "RLock", "Semaphore",
    "BoundedSemaphore", "Thread", "Barrier", "BrokenBarrierError", "Timer",
    "ThreadError", "ExceptHookArgs", "setprofile", "settrace", "local",
    "stack_size", "excepthook", "get_native_id", "activeCount", "currentThread",
]  # fmt: skip

ThreadError = _threading.ThreadError
for _name in ("gettrace", "getprofile", "setprofile_all_threads", "settrace_all_threads"):
    if hasattr(_threading, _name):
        globals()[_name] = getattr(_threading, _name)
        __all__.append(_name)
del _name

_OURS = {
    "Barrier": Barrier, "BoundedSemaphore": BoundedSemaphore, "Condition": Condition,
    "Event": Event, "Lock": Lock, "RLock": RLock, "Semaphore": Semaphore,
    "Thread": Thread, "Timer": Timer, "local": local,
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Anything else threading has (``_shutdown``, ``__excepthook__``, ...) is threading's."""
    return getattr(_threading, name)


def __dir__() -> list[str]:
    return sorted(set(dir(_threading)) | set(globals()))
