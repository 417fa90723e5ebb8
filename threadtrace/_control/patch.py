"""``patch()`` and ``unpatch()``: instrument the ``threading`` module in place.

What changes while patched:

* ``threading.Lock``, ``RLock``, ``Condition``, ``Semaphore``,
  ``BoundedSemaphore``, ``Event`` and ``Barrier`` become threadtrace's
  classes.  Code that looks them up at call time (``queue``,
  ``concurrent.futures``, the app) gets traced primitives; callers that are
  telemetry plumbing, or ``threading`` composing its own primitives, get the
  stdlib objects (see :mod:`threadtrace._sites`).
* ``Thread`` and ``Timer`` stay the stdlib classes (so ``isinstance`` and
  ``Timer`` keep working, and subclasses made before ``patch()`` are covered);
  two hooks are installed instead: threading's ``_start_new_thread`` (or
  ``_start_joinable_thread``), which also hands a traced thread its
  ``_bootstrap`` wrapped in the span of its run, and ``Thread.join``.
* ``concurrent.futures.thread._WorkItem`` becomes a subclass that carries
  the submitter's OpenTelemetry context into the worker.
* On CPython 3.12 and later, on Linux, ``os.fork`` and ``os.forkpty``: the
  ``DeprecationWarning`` CPython gives for a fork in a multi-threaded
  process leaves threadtrace's own threads out of its count (see
  :func:`_quiet_fork`).

None of these attributes is touched by OpenTelemetry's ThreadingInstrumentor,
so the two coexist in either order.  A wrapper of ours that somebody else has
wrapped again is not torn out by ``unpatch()``; it is switched off and left as
a pass-through, so their instrumentation keeps working.
"""

from __future__ import annotations

# Imported with threadtrace, not lazily in patch(): its fork handler, which
# re-inits concurrent.futures' global lock in a forked child, must be
# registered before any OpenTelemetry TracerProvider's.  The SDK's child
# handler re-detects resources on a ThreadPoolExecutor and would otherwise
# block on that lock, still held from before the fork
# (tests/test_safety.py::test_a_forked_child_keeps_working hangs).
import concurrent.futures.thread as futures_thread
import functools
import logging
import os
import sys
import threading
import warnings
from types import TracebackType
from typing import Any, Callable, Optional

from .._detect import watchdog
from .._primitives.condition import Condition
from .._primitives.event import Barrier, Event
from .._primitives.locks import Lock, RLock
from .._primitives.semaphore import BoundedSemaphore, Semaphore
from .._primitives.threads import prepare_start, traced_bootstrap, traced_join
from .._recording.recorder import enter_context, get_current, leave_context
from .._runtime import runtime
from .._support import originals as _originals
from . import exit, live
from .configure import configure

PRIMITIVES: dict[str, Any] = {
    "Lock": Lock,
    "RLock": RLock,
    "Condition": Condition,
    "Semaphore": Semaphore,
    "BoundedSemaphore": BoundedSemaphore,
    "Event": Event,
    "Barrier": Barrier,
}

_START_NAME = (
    "_start_joinable_thread"
    if hasattr(threading, "_start_joinable_thread")
    else "_start_new_thread"
)


def _without_own_threads() -> tuple[Callable[[], list[Any]], Callable[[], int]]:
    """``threading.enumerate`` and ``active_count``, leaving out threadtrace's own threads."""
    original_enumerate, is_own = _originals.enumerate, _originals.is_own

    @functools.wraps(original_enumerate)
    def enumerate() -> list[Any]:
        return [thread for thread in original_enumerate() if not is_own(thread)]

    @functools.wraps(_originals.active_count)
    def active_count() -> int:
        return len(enumerate())

    return enumerate, active_count


class _Switch:
    """Whether our wrappers do anything; shared by every wrapper of one patch."""

    on = True


#: CPython 3.12 and later warn at ``fork()`` in a process that has other
#: threads, counting the OS's threads (on Linux, ``/proc/self/stat``).
_FORK_WARNS = sys.version_info >= (3, 12) and sys.platform == "linux"
_FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork"


def _threads_now() -> int:
    """How many threads this process has, counted as CPython counts them for its warning.

    The OS's count (field 20 of ``/proc/self/stat``), which includes threads
    that threading does not know (a C library's); threading's when that
    cannot be read, as CPython does.
    """
    try:
        with open("/proc/self/stat", "rb") as stat:
            # The command name before it, in parentheses, may hold spaces.
            return int(stat.read().rsplit(b")", 1)[1].split()[17])
    except (OSError, ValueError, IndexError):
        return len(_originals.enumerate())


def _quiet_fork(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``os.fork`` (or ``forkpty``) whose warning about threads leaves threadtrace's out.

    CPython 3.12 and later say "This process (pid=...) is multi-threaded,
    use of fork() may lead to deadlocks in the child" at every fork of a
    process with more than one thread.  Under threadtrace a single-threaded
    program has threadtrace's threads beside it; those are made safe across
    a fork (its fork handlers take their locks, and the child starts its own
    afresh), so the warning would be about threadtrace alone.  So CPython's
    warning is kept quiet during the call, and the same warning is given
    here, for the caller's line, when the process has a thread that is not
    threadtrace's: exactly when CPython would have without threadtrace.  As
    CPython does, it is never raised (``-W error``): the fork has happened.

    The filter is a ``catch_warnings`` around the call; like every use of
    it, it is not safe against another thread changing the warning filters
    during the fork.
    """

    @functools.wraps(original)
    def fork(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _FORK_WARNING, DeprecationWarning)
            result = original(*args, **kwargs)
        if (result if name == "fork" else result[0]) != 0:  # the parent
            try:
                own = sum(1 for thread in _originals.enumerate() if _originals.is_own(thread))
                if _threads_now() - own > 1:
                    warnings.warn(
                        f"This process (pid={os.getpid()}) is multi-threaded, "
                        f"use of {name}() may lead to deadlocks in the child.",
                        DeprecationWarning,
                        stacklevel=2,
                    )
            except Exception:  # noqa: BLE001 - never raised, as CPython's is not
                pass
        return result

    return fork


def _started_for_us(owner: Any) -> bool:
    """Whether ``owner``, whose method a thread runs, is an SDK object made for threadtrace."""
    owners = runtime.sdk_owners
    if not owners:
        return False
    try:
        return owner in owners
    except TypeError:  # neither weakly referenced nor hashable: not one of ours
        return False


def _wrap_start(original: Callable[..., Any], switch: _Switch) -> Callable[..., Any]:
    def start_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
        thread = getattr(function, "__self__", None)
        if switch.on and isinstance(thread, _originals.Thread):
            if _originals.is_own(thread):
                return original(function, *args, **kwargs)  # never traced
            target_of = getattr(getattr(thread, "_target", None), "__self__", None)
            if target_of is not None and _started_for_us(target_of):
                # The SDK's metric ticker, which it starts anew in a forked
                # child (from its fork handler, on the child's only thread):
                # threadtrace's own, blocking the program's signals from its
                # first instruction.  (Threads threadtrace starts block them
                # themselves: this thread's mask is the program's business.)
                _originals.mark_own(thread)
                with _originals.program_signals_blocked():
                    return original(function, *args, **kwargs)
            try:
                prepare_start(thread, 2)
                function = traced_bootstrap(thread, function)
            except Exception:  # noqa: BLE001 - tracing must never stop a thread from starting
                thread._tt_traced = False  # type: ignore[attr-defined]
        return original(function, *args, **kwargs)

    start_thread.__wrapped__ = original  # type: ignore[attr-defined]
    return start_thread


_WORK_ITEM_INIT = _originals.WorkItem.__init__
_WORK_ITEM_RUN = _originals.WorkItem.run


class _TracedWorkItem(_originals.WorkItem):  # type: ignore[type-arg]
    """A thread pool's task, run in the OpenTelemetry context it was submitted in.

    ``concurrent.futures.thread._WorkItem`` while patched: ``submit()`` looks
    the class up at every call.  A subclass, as the primitives are, rather
    than wrapt wrappers on its methods: those cost every task two bound
    wrappers made and called, 12k instructions, more than the rest of the
    context's round trip.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._tt_context = get_current()
        _WORK_ITEM_INIT(self, *args, **kwargs)

    def run(self) -> Any:
        token = enter_context(self._tt_context)
        try:
            return _WORK_ITEM_RUN(self)
        finally:
            try:
                leave_context(token)
            except Exception as error:  # noqa: BLE001 - detach() only logs it, and so do we
                runtime.internal_error("thread pool task", error)


class PatchHandle:
    """The result of :func:`patch`; undoes it with :meth:`unpatch` or ``with``.

    Thread-safe: patching and unpatching are serialised.
    """

    def __init__(self) -> None:
        self.active = False
        self._sigterm = False
        self._switch = _Switch()
        self._saved: list[tuple[Any, str, Any, Any]] = []

    def _replace(self, owner: Any, name: str, new: Any) -> None:
        self._saved.append((owner, name, owner.__dict__[name], new))
        setattr(owner, name, new)

    def _apply(self) -> None:
        switch = self._switch
        for name, cls in PRIMITIVES.items():
            self._replace(threading, name, cls)
        self._replace(threading, _START_NAME, _wrap_start(getattr(threading, _START_NAME), switch))
        # threadtrace's own daemon threads (watchdog, exporters) are not the
        # program's: left out of what it enumerates and counts, so that
        # "join every thread but the main one" does not wait for them.
        enumerate_threads, active_count = _without_own_threads()
        self._replace(threading, "enumerate", enumerate_threads)
        self._replace(threading, "active_count", active_count)
        if threading.__dict__.get("activeCount") is _originals.active_count:  # 3.9: an alias
            self._replace(threading, "activeCount", active_count)
        if _FORK_WARNS:
            for name in ("fork", "forkpty"):
                if name in os.__dict__:
                    self._replace(os, name, _quiet_fork(os.__dict__[name], name))

        thread_cls = _originals.Thread
        self._replace(thread_cls, "join", traced_join(thread_cls.__dict__["join"], switch))
        self._replace(futures_thread, "_WorkItem", _TracedWorkItem)
        # A service stopped by SIGTERM still flushes (unless it handles SIGTERM).
        self._sigterm = exit.handle_sigterm()
        self.active = True

    def unpatch(self) -> None:
        """Restore ``threading`` exactly as it was; harmless when already undone."""
        with runtime.patch_lock:
            if not self.active:
                return
            self._switch.on = False
            for owner, name, original, ours in reversed(self._saved):
                if owner.__dict__.get(name) is ours:
                    setattr(owner, name, original)
                # else: somebody wrapped ours since; it stays, switched off.
            self._saved.clear()
            if self._sigterm:
                exit.stop_handling_sigterm()
            self.active = False
            if runtime.patch_handle is self:
                runtime.patch_handle = None

    def __enter__(self) -> PatchHandle:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.unpatch()

    def __repr__(self) -> str:
        return f"<threadtrace.PatchHandle {'active' if self.active else 'undone'}>"


def patch(**settings: Any) -> PatchHandle:
    """Instrument the ``threading`` module in place.

    Afterwards every primitive and thread the program creates is traced,
    including those made inside ``queue`` and ``concurrent.futures``.
    Calling it again while patched changes the settings given and returns
    the same handle.

    Args:
        **settings: any setting :func:`threadtrace.configure` takes.

    Returns:
        A handle whose :meth:`~PatchHandle.unpatch` (or ``with`` block end)
        restores ``threading``.

    Raises:
        ConfigurationError: a setting or ``THREADTRACE_*`` variable is
            invalid; nothing was patched.

    .. note:: With ``OTEL_SDK_DISABLED=true`` (OpenTelemetry's switch for
       "no telemetry") the settings are checked and applied, but ``threading``
       is left as it is: the handle returned is inactive and
       :func:`is_patched` stays false.  ``threadtrace run``,
       ``opentelemetry-instrument`` and the ``sitecustomize`` of ``run --``
       all go through here.
    """
    if runtime.sdk_disabled:
        with runtime.patch_lock:
            configure(**settings)  # still checked: a typo fails the same either way
            handle = runtime.patch_handle
            if handle is not None and handle.active:
                return handle
        if "sdk_disabled" not in runtime.installed:
            runtime.installed.add("sdk_disabled")
            runtime.notice(
                logging.INFO,
                "threadtrace: OTEL_SDK_DISABLED is true: threading is not patched and "
                "nothing is recorded",
            )
        return PatchHandle()
    return apply(**settings)


def apply(**settings: Any) -> PatchHandle:
    """:func:`patch`, whatever ``OTEL_SDK_DISABLED`` says.

    For what is asked for explicitly rather than switched on by the
    environment: :func:`threadtrace.testing.capture` and the pytest plugin.
    (With ``OTEL_SDK_DISABLED=true`` they still export nothing, except to
    providers given to them.)
    """
    with runtime.patch_lock:
        configure(**settings)  # also refuses an invalid THREADTRACE_* variable
        watchdog.ensure_started()  # configure() does not, with OTEL_SDK_DISABLED=true
        handle = runtime.patch_handle
        if handle is not None and handle.active:
            return handle
        handle = PatchHandle()
        handle._apply()
        runtime.patch_handle = handle
        # With the watchdog (configure() started it): no thread of threadtrace's
        # appears later, in the middle of the program's run.
        live.serve_dumps()
    recorder = runtime.recorder
    if recorder is not None:
        recorder.ensure_ready()
    return handle


def unpatch() -> None:
    """Undo :func:`patch`; harmless when not patched."""
    handle = runtime.patch_handle
    if handle is not None:
        handle.unpatch()


def is_patched() -> bool:
    """Whether ``threading`` is currently patched by threadtrace."""
    handle = runtime.patch_handle
    return handle is not None and handle.active
