"""The real ``threading`` factories, captured once before anything is patched.

Every lock, event and thread that threadtrace itself needs is built from these,
so patching ``threading`` can never make threadtrace trace (or deadlock on)
its own machinery.  Importing this module must stay side-effect free: it is the
first thing the package imports.
"""

from __future__ import annotations

import _thread
import threading

allocate_lock = _thread.allocate_lock
get_ident = _thread.get_ident
TIMEOUT_MAX = threading.TIMEOUT_MAX

Lock = threading.Lock
RLock = threading.RLock
Condition = threading.Condition
Semaphore = threading.Semaphore
BoundedSemaphore = threading.BoundedSemaphore
Event = threading.Event
Barrier = threading.Barrier
Thread = threading.Thread
Timer = threading.Timer
local = threading.local
# threading's registry of Thread objects by ident.  Read it instead of calling
# current_thread(), which registers a _DummyThread for threads that threading
# did not start: threadtrace must not change what the program sees.
_active = threading._active  # type: ignore[attr-defined]


def thread_name(ident: int) -> str:
    """The name of the running thread ``ident``, without registering anything."""
    thread = _active.get(ident)
    return thread.name if thread is not None else f"thread-{ident}"


def current_thread_name() -> str:
    """The current thread's name, without registering anything."""
    return thread_name(get_ident())


#: The concrete types behind the factories, for ``isinstance`` checks.
LockType = type(allocate_lock())
RLockType = type(RLock())
