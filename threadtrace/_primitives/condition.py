"""Traced ``Condition``."""

from __future__ import annotations

import contextlib
from itertools import islice
from typing import Any, Optional

from .._detect import hooks
from .._recording.recorder import current_waker
from .._runtime import runtime
from .._support import originals as _originals
from .._support.statistics import ConditionStatistics
from .base import PrimitiveType, object_new, shown_as, site_for
from .locks import Lock, RLock, _LockBase
from .wait_counters import WaitCounters

_INIT = _originals.Condition.__init__
_NOTIFY = _originals.Condition.notify
_IS_OWNED = _originals.Condition.__dict__["_is_owned"]


class Condition(WaitCounters, _originals.Condition, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.Condition`.

    Thread-safe.  Without a ``lock`` it makes a traced :class:`RLock` of the
    same name, so contention on ``with cond:`` is reported too.  Each ``wait``
    that blocks is a span; a waiter woken by ``notify``/``notify_all`` links to
    the thread that notified it.

    .. note::
        ``wait`` is threading's own algorithm, restated here so that the
        waiter knows which ``notify`` woke it.
    """

    _tt_kind = "condition"
    _tt_original = _originals.Condition
    _tt_register_at_first_wait = True
    #: Counted under the condition's lock; class zeros until then (see WaitCounters).
    _tt_notifies = 0
    _tt_unheard = 0  # notify() calls that found no waiter
    #: Which thread's notify() woke each waiter (made at the first notify that wakes one).
    _tt_wakers: Optional[dict[Any, Any]] = None

    def __new(cls, lock: Any = None, *, name: Optional[str] = None) -> Condition:  # type: ignore[empty-body]
        ...  # its signature only

    @shown_as(__new)
    def __new__(cls, *args: Any, name: Optional[str] = None, **kwargs: Any) -> Condition:
        site = site_for(name, 1)
        if cls is Condition:  # every Future and Queue: see base.object_new
            if site is None:
                return _originals.Condition(*args, **kwargs)  # type: ignore[return-value]  # not cast(): a call
            self: Condition = object_new(cls)
        else:
            self = super().__new__(cls)
        self._tt_setup(site, name)
        return self

    del __new

    #: Whether a wait is settled as it is woken, before the lock is taken
    #: back (see wait): only a lock of threadtrace's records that taking back
    #: (a wait for it is its own); for any other, the wait runs until then.
    _tt_settles_first = True

    def __init__(self, lock: Any = None, *, name: Optional[str] = None) -> None:
        if lock is None:
            lock = RLock._tt_traced(self._tt_site, name)
        elif not isinstance(lock, _LockBase):
            self._tt_settles_first = False
        if type(self) is Condition:
            _INIT(self, lock)
        else:
            super().__init__(lock)
        if type(lock) is Lock and getattr(type(self), "_is_owned", None) is _IS_OWNED:
            # threading's _is_owned() for a lock without one: a try, given
            # back if it succeeds, to see whether it is held (by anyone).
            # The core knows that without a try, on every wait and notify.
            # (A subclass's own _is_owned stays: threading binds none here.)
            self._is_owned = lock._locked_now

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until notified or until ``timeout`` seconds pass, as threading does."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _originals.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)  # type: ignore[attr-defined]
        saved_state = self._release_save()  # type: ignore[attr-defined]
        gotit = False
        error: Optional[BaseException] = None
        waker: Any = None
        start = self._tt_begin("wait", timeout)
        entry = start[3]  # the watchdog's
        try:  # restore state no matter what (e.g., KeyboardInterrupt)
            if timeout is None:
                waiter.acquire()
                gotit = True
            elif timeout > 0:
                gotit = waiter.acquire(True, timeout)
            else:
                gotit = waiter.acquire(False)
            return gotit
        except BaseException as exc:  # an error, not a timeout
            error = exc
            raise
        finally:
            try:
                # Settled as it is woken, before the lock is taken back: work
                # done with the lock held would lengthen every other thread's
                # wait for it, and a wait for the lock is the lock's own
                # (its holder is who the waiter waited behind).  The watchdog's
                # entry stays until the lock is back: a deadlock seen
                # meanwhile must not end the taking back (deadlocks.py).
                first = self._tt_settles_first
                wakers = self._tt_wakers  # who woke it, if a notify() did
                waker = wakers.pop(waiter, None) if wakers else None
                if first:
                    if entry is not None:
                        entry.woken = True  # not stuck, whatever it runs until the lock is back
                    self._tt_settle(start, "wait", gotit, timeout, waker, error)
                self._acquire_restore(saved_state)  # type: ignore[attr-defined]
                if not gotit:
                    with contextlib.suppress(ValueError):  # notify() may have removed it
                        self._waiters.remove(waiter)  # type: ignore[attr-defined]
                    wakers = self._tt_wakers
                    if wakers:  # a notify() since it timed out chose it after all: forget who
                        wakers.pop(waiter, None)
            finally:
                hooks.end(entry)
                if not first:  # with nothing to record the wait for the lock, it is part of this
                    self._tt_settle(start, "wait", gotit, timeout, waker, error)
                error = None  # the traceback holds this frame: no cycle through it

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters, as threading does."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters  # type: ignore[attr-defined]
        if not waiters:
            # Nobody to wake: all threading would have done is the check above
            # (a subclass's MRO may hold more: it goes on to super()).
            # Counted (under the lock we hold) for the lost wake-up diagnosis.
            self._tt_unheard += 1
            if type(self) is Condition:
                return
        woken = (waiters[0],) if n == 1 and waiters else list(islice(waiters, n))
        if woken:
            self._tt_notifies += 1
            if not runtime.get_guard():  # runtime.recording(), a call fewer
                try:
                    waker = current_waker()
                except Exception:  # noqa: BLE001 - a missing link must never break notify()
                    waker = None
                wakers = self._tt_wakers
                if wakers is None:
                    wakers = self._tt_wakers = {}
                for waiter in woken:
                    wakers[waiter] = waker
        if type(self) is Condition:
            _NOTIFY(self, n)
        else:
            super().notify(n)

    def statistics(self) -> ConditionStatistics:
        """A snapshot of this condition's waits, notifies and lock."""
        lock = self._lock  # type: ignore[attr-defined]
        return ConditionStatistics(
            **self._tt_wait_fields(),
            notifies=self._tt_notifies,
            lock=lock.statistics() if isinstance(lock, _LockBase) else None,
        )
