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
current_thread = threading.current_thread
enumerate = threading.enumerate

#: The concrete types behind the factories, for ``isinstance`` checks.
LockType = type(allocate_lock())
RLockType = type(RLock())
