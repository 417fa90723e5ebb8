"""The real ``threading`` factories, captured once before anything is patched.

Every lock, event and thread that threadtrace itself needs is built from these,
so patching ``threading`` can never make threadtrace trace (or deadlock on)
its own machinery.  Importing this module must stay side-effect free: it is the
first thing the package imports.
"""

from __future__ import annotations

import _thread
import concurrent.futures.thread
import contextlib
import signal
import sys
import threading
from typing import Any, Callable, Iterator, Optional

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
#: Thread's ``name`` and ``daemon`` properties, whose getters return ``_name``
#: and ``_daemonic``: of a thread whose class keeps them, those are read
#: directly (a Python call fewer each, on every traced thread's run).
THREAD_NAME = Thread.name
THREAD_DAEMON = Thread.daemon
local = threading.local
enumerate = threading.enumerate
active_count = threading.active_count
# threading's registry of Thread objects by ident.  Read it instead of calling
# current_thread(), which registers a _DummyThread for threads that threading
# did not start: threadtrace must not change what the program sees.
_active = threading._active  # type: ignore[attr-defined]
#: A thread pool's task, read before ``patch()`` puts its subclass in its
#: place: the tasks queued before ``patch()`` are instances of this one only.
WorkItem = concurrent.futures.thread._WorkItem


def thread_name(ident: int) -> str:
    """The name of the running thread ``ident``, without registering anything."""
    thread = _active.get(ident)
    if thread is None:
        return f"thread-{ident}"
    # What the property returns, read directly if the class keeps it (a call fewer).
    name: str = thread._name if type(thread).name is THREAD_NAME else thread.name
    return name


def current_thread_name() -> str:
    """The current thread's name, without registering anything."""
    return thread_name(get_ident())


#: The concrete types behind the factories, for ``isinstance`` checks.
LockType = type(allocate_lock())
RLockType = type(RLock())


#: Signals a program handles on its main thread.  threadtrace's own threads
#: block them, so the kernel never hands one to a thread of ours: Python runs
#: handlers on the main thread only, and a main thread blocked in a C wait
#: (a multiprocessing queue's lock, say) would then not wake to run them.
PROGRAM_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


def block_program_signals() -> None:
    """In this thread, from now on: :data:`PROGRAM_SIGNALS` go to other threads."""
    if hasattr(signal, "pthread_sigmask"):
        # Never fatal: the signals then go where they would have.
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_BLOCK, PROGRAM_SIGNALS)


@contextlib.contextmanager
def program_signals_blocked() -> Iterator[None]:
    """Threads started within inherit a mask that blocks :data:`PROGRAM_SIGNALS`
    (for threads others start for us, such as the OpenTelemetry SDK's)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    try:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, PROGRAM_SIGNALS)
    except (OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def own_thread(target: Any, name: str) -> threading.Thread:
    """A daemon thread of threadtrace's own: never traced, and marked so that
    :func:`threadtrace.patch` leaves it out of ``threading.enumerate()`` and
    ``active_count()`` (a program that joins every thread but the main one
    must not wait for it); it blocks the program's signals.  Not started."""

    def run() -> None:
        block_program_signals()
        target()

    thread = Thread(target=run, name=name, daemon=True)
    mark_own(thread)
    return thread


#: CPython 3.12.0 to 3.12.2 start no thread once the main module has ended
#: (python/cpython#113964, fixed in 3.12.3): work that must be bounded at exit
#: needs a thread started before.
NO_THREADS_AT_EXIT = (3, 12) <= sys.version_info[:3] < (3, 12, 3)


def start_own(thread: threading.Thread) -> bool:
    """Start a thread from :func:`own_thread`; ``False`` if no thread can start now.

    Then the caller does the work itself.  CPython 3.12.0 to 3.12.2 start
    no thread from an atexit handler ("can't create new thread at
    interpreter shutdown", allowed again from 3.12.3), and an OS out of
    threads refuses one ("can't start new thread"): both a RuntimeError.
    """
    try:
        thread.start()
    except RuntimeError:
        return False
    return True


class Standby:
    """A thread of threadtrace's own, started ahead and parked until it is given its one job
    (where no thread would start when the job comes: see :data:`NO_THREADS_AT_EXIT`)."""

    def __init__(self, name: str) -> None:
        self._job: Optional[Callable[[], None]] = None
        self._go = Event()
        self._thread = own_thread(self._wait, name)
        start_own(self._thread)

    def _wait(self) -> None:
        self._go.wait()
        if self._job is not None:
            self._job()

    def run(self, job: Callable[[], None]) -> bool:
        """Have the thread run ``job``; ``False`` if it is not there to (a forked child)."""
        if self._job is not None or not self._thread.is_alive():
            return False
        self._job = job
        self._go.set()
        return True


def run_bounded(
    work: Callable[[], None], name: str, timeout: float, standby: Optional[Standby] = None
) -> None:
    """Run ``work`` on a thread of threadtrace's own (``standby``'s, if given) and wait
    for it at most ``timeout`` seconds.

    Where no thread starts (see :func:`start_own`), ``work`` runs on this
    one, to its end.
    """
    done = Event()

    def run() -> None:
        try:
            work()
        finally:
            done.set()

    if (standby is not None and standby.run(run)) or start_own(own_thread(run, name)):
        done.wait(timeout)
    else:
        run()


def mark_own(thread: Any) -> None:
    """Mark a thread (one the OpenTelemetry SDK started for threadtrace) as threadtrace's."""
    thread._tt_own = True


def is_own(thread: Any) -> bool:
    return getattr(thread, "_tt_own", False) is True
