"""The lock core in pure Python: the fallback for ``_lockcore.c``.

Used when the C extension is not built, or when ``THREADTRACE_PURE_PYTHON=1``
asks for it (:mod:`.core` chooses).  It has the same fields and methods as
the C core, and calls the same slow-path methods of
:mod:`threadtrace._primitives.locks` by name; keep the two in step.  The
test suite runs against both.

The OS lock is a ``_thread`` lock of threading's own.  Every field is
written while holding it (or under ``runtime.book`` for the waiter count),
so the lock protects its own bookkeeping.  About twice the cost of the C
core per ``with lock:``: two interpreted frames per ``with``.
"""

from __future__ import annotations

import sys
from types import CodeType, TracebackType
from typing import Any, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import Site

_get_ident = _originals.get_ident
_NEVER = 1 << 62


def _now() -> int:
    try:
        return runtime.clock.monotonic_ns()
    except Exception as error:  # noqa: BLE001 - a broken injected clock must not break locks
        runtime.internal_error("clock", error)
        return 1


class LockCore:
    """The hot path and the counters of a traced ``Lock``/``RLock``, in Python."""

    __slots__ = (
        "__weakref__",
        "_acquisitions",
        "_contended",
        "_depth",
        "_hold_max",
        "_hold_total",
        "_holds",
        "_hot",
        "_left",
        "_locked",
        "_owner",
        "_profile",
        "_raw",
        "_reentrant",
        "_site_acq",
        "_t_acq",
        "_timeouts",
        "_tt_name",
        "_tt_serial",
        "_tt_site",
        "_wait_max",
        "_wait_total",
        "_waiters",
        "_waker",
    )
    _tt_reentrant = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._tt_new(args, kwargs)  # type: ignore[attr-defined]

    def _core_init(self, site: Site, name: Optional[str]) -> None:
        self._raw = _originals.allocate_lock()
        self._locked = False
        self._owner: Optional[int] = None
        self._reentrant = self._tt_reentrant
        self._hot = False
        self._depth = 0
        self._acquisitions = self._contended = self._timeouts = 0
        self._wait_total = self._wait_max = self._waiters = 0
        self._holds = self._hold_total = self._hold_max = 0
        self._left = 1  # the first acquisition is measured
        self._profile = 0
        self._t_acq = 0
        self._site_acq: Optional[Site] = None
        self._tt_site = site
        self._tt_name = name
        self._waker: Any = None
        self._tt_serial = runtime.lock_order.serial()
        runtime.register(self)

    def __del__(self) -> None:
        if self._acquisitions or self._timeouts:
            self._tt_retire()  # type: ignore[attr-defined]

    # -- the fast path ---------------------------------------------------------------

    def _take(self, blocking: bool) -> bool:
        if self._reentrant and self._locked and self._owner == _get_ident():
            self._depth += 1
            self._acquisitions += 1
            return True
        if self._raw.acquire(False):
            self._locked = True
            self._owner = _get_ident()
            self._depth = 1
            self._taken(blocking)
            return True
        return False

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        """Acquire the lock, exactly as threading's lock does."""
        if not args and not kwargs:
            return self._take(True) or bool(self._acquire_slow(-1))  # type: ignore[attr-defined]
        if (args == (False,) and not kwargs) or (not args and kwargs == {"blocking": False}):
            return self._take(False)
        return bool(self._acquire_with(args, kwargs))  # type: ignore[attr-defined]

    def __enter__(self) -> bool:
        return self._take(True) or bool(self._acquire_slow(-1))  # type: ignore[attr-defined]

    def release(self) -> None:
        """Release the lock, exactly as threading's lock does."""
        if self._reentrant:
            if not self._locked or self._owner != _get_ident():
                raise RuntimeError("cannot release un-acquired lock")
            self._depth -= 1
            if self._depth > 0:
                return
        elif not self._locked:
            raise RuntimeError("release unlocked lock")
        self._let_go()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    # -- what the slow paths use -------------------------------------------------------

    def _taken(self, blocking: bool = True, measure: bool = False, t_acq: int = 0) -> None:
        """An outermost acquisition: count it, note its site, time its hold when due."""
        self._acquisitions += 1
        frame = runtime.modules.user_frame(1)
        self._site_acq = (
            runtime.site_cache.get(frame.f_code, frame.f_lasti, frame.f_lineno)
            if frame is not None
            else None
        )
        if measure:
            self._t_acq = t_acq or _now()
            self._profile = _PROFILE_AFTER
        elif self._profile > 0:
            self._profile -= 1
            self._t_acq = _now()
        else:
            self._left -= 1
            if self._left <= 0:
                every = runtime.config.sample_every
                self._left = every if every > 0 else _NEVER
                self._t_acq = _now()
        if runtime.ordering:
            self._ordered(blocking)  # type: ignore[attr-defined]

    def _waiting(self, delta: int) -> None:
        """Count a waiter in (+1) or out (-1); a new one makes the next release slow (hot)."""
        book = runtime.book  # not "with": see Runtime.book
        book.acquire()
        try:
            self._waiters += delta
            if delta > 0:
                self._hot = True
        finally:
            book.release()

    def _settle_hot(self) -> None:
        """After a slow release: the next one is slow too while threads wait."""
        book = runtime.book  # not "with": see Runtime.book
        book.acquire()
        try:
            self._hot = self._waiters > 0
        finally:
            book.release()

    def _let_go(self) -> None:
        start = self._t_acq
        held = False
        end = 0
        if start:
            self._t_acq = 0
            end = _now()
            hold = max(0, end - start)
            self._holds += 1
            self._hold_total += hold
            if hold > self._hold_max:
                self._hold_max = hold
            held = hold >= runtime.config.hold_threshold * 1e9
        # Where the hold began, read now: the next holder notes its own site.
        site = self._site_acq if held else None
        if self._hot or runtime.ordering:
            self._release_slow()  # type: ignore[attr-defined]
        self._locked = False
        self._owner = None
        self._depth = 0
        self._raw.release()
        if held:
            self._held(start, end, site)  # type: ignore[attr-defined]

    def _block(self, timeout: float) -> bool:
        """Take the OS lock, waiting up to ``timeout`` seconds (< 0: forever)."""
        if not self._raw.acquire(True, timeout if timeout >= 0 else -1):
            return False
        self._locked = True
        self._owner = _get_ident()
        self._depth = 1
        return True

    def _core_release_save(self) -> tuple[int, int]:
        if not self._locked or self._owner != _get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        depth, owner = self._depth, self._owner
        self._let_go()
        return (depth, owner)

    def _core_restore(self, depth: int) -> None:
        self._depth = depth

    def _core_is_owned(self) -> bool:
        return self._locked and self._owner == _get_ident()

    def _core_recursion_count(self) -> int:
        return self._depth if self._core_is_owned() else 0

    def _locked_now(self) -> bool:
        return self._locked

    def _at_fork_reinit(self) -> None:
        self._raw = _originals.allocate_lock()
        self._locked = False
        self._owner = None
        self._depth = 0
        self._waiters = 0
        self._hot = False
        self._t_acq = 0


#: After a contention, this many further acquisitions are measured.
_PROFILE_AFTER = 16


def make(cls: type, site: Site, name: Optional[str]) -> Any:
    """A traced lock of class ``cls``, named after ``site`` (or ``name``)."""
    lock: Any = object.__new__(cls)
    lock._core_init(site, name)
    return lock


def caller() -> Optional[tuple[CodeType, int]]:
    """``(code, byte offset)`` of the first frame of the program's own above this call."""
    frame = runtime.modules.first_user_frame(sys._getframe(1))
    return None if frame is None else (frame.f_code, frame.f_lasti)


def live_locks() -> list[Any]:
    """The traced locks alive (none here: this core registers them with the runtime)."""
    return []


def configure(**settings: Any) -> None:
    """Nothing to do: this core reads the runtime's settings when it needs them."""
