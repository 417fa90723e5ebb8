"""Traced ``Event`` and ``Barrier``."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .._support import originals as _originals
from .._support.statistics import WaitStatistics
from .base import PrimitiveType, object_new, shown_as, site_for
from .semaphore import _is_zero
from .wait_counters import WaitCounters

_EVENT_INIT = _originals.Event.__init__
_EVENT_SET = _originals.Event.set
_EVENT_CLEAR = _originals.Event.clear


class _WaitStatisticsMixin(WaitCounters):
    def statistics(self) -> WaitStatistics:
        """A snapshot of this primitive's waits."""
        return WaitStatistics(**self._tt_wait_fields())


class Event(_WaitStatisticsMixin, _originals.Event, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.Event`.

    Thread-safe.  A ``wait`` on a set event returns at once and is only
    counted; one that blocks is timed, and when ``set`` woke it, linked to the
    thread that set it.
    """

    _tt_kind = "event"
    _tt_original = _originals.Event
    _tt_has_fast_path = True

    def __new(cls, *, name: Optional[str] = None) -> Event:  # type: ignore[empty-body]
        ...  # its signature only

    @shown_as(__new)
    def __new__(cls, *args: Any, name: Optional[str] = None, **kwargs: Any) -> Event:
        site = site_for(name, 1)
        if cls is Event:  # see base.object_new
            if site is None:
                return _originals.Event(*args, **kwargs)  # type: ignore[return-value]  # not cast(): a call
            self: Event = object_new(cls)
        else:
            self = super().__new__(cls)
        self._tt_setup(site, name)
        return self

    del __new

    def __init__(self, *, name: Optional[str] = None) -> None:
        if type(self) is Event:
            _EVENT_INIT(self)
        else:
            super().__init__()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the flag is set or ``timeout`` seconds pass, as threading does."""
        if self._flag:  # type: ignore[attr-defined]
            next(self._tt_fast_ops)
            return True  # what threading returns for a set flag, without taking its lock
        if _is_zero(timeout):
            next(self._tt_fast_ops)
            return bool(super().wait(timeout))
        start = self._tt_begin("wait", timeout)
        ok = False
        error: Optional[BaseException] = None
        try:
            ok = bool(super().wait(timeout))
            return ok
        except BaseException as exc:  # KeyboardInterrupt: an error, not a timeout
            error = exc
            raise
        finally:
            self._tt_end(
                start,
                "wait",
                ok=ok,
                timeout=timeout,
                waker=self._tt_waker if ok else None,
                error=error,
            )
            error = None  # the traceback holds this frame: no cycle through it

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._tt_waiters:  # someone to wake: note who wakes them, for their spans' links
            self._tt_note_waker()
        if type(self) is Event:  # see base.object_new
            _EVENT_SET(self)
        else:
            super().set()

    def clear(self) -> None:
        """Reset the flag."""
        if type(self) is Event:
            _EVENT_CLEAR(self)
        else:
            super().clear()
        self._tt_waker = None


class Barrier(_WaitStatisticsMixin, _originals.Barrier, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.Barrier`.

    Thread-safe.  Each ``wait`` but the last arrival's is timed; the waiters
    link to the thread whose arrival released them.  A broken barrier marks
    the span as an error.
    """

    _tt_kind = "barrier"
    _tt_original = _originals.Barrier

    def __new(  # type: ignore[empty-body]
        cls,
        parties: int,
        action: Optional[Callable[[], Any]] = None,
        timeout: Optional[float] = None,
        *,
        name: Optional[str] = None,
    ) -> Barrier: ...  # its signature only

    @shown_as(__new)
    def __new__(cls, *args: Any, name: Optional[str] = None, **kwargs: Any) -> Barrier:
        site = site_for(name, 1)
        if cls is Barrier:  # see base.object_new
            if site is None:
                return _originals.Barrier(*args, **kwargs)  # type: ignore[return-value]  # not cast(): a call
            self: Barrier = object_new(cls)
        else:
            self = super().__new__(cls)
        self._tt_setup(site, name)
        return self

    del __new

    def __init__(
        self,
        parties: int,
        action: Optional[Callable[[], Any]] = None,
        timeout: Optional[float] = None,
        *,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(parties, action, timeout)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for every party, exactly as :meth:`threading.Barrier.wait` does."""
        start = self._tt_begin("wait", timeout if timeout is not None else self._timeout)  # type: ignore[attr-defined]
        index = -1
        error: Optional[BaseException] = None
        try:
            index = super().wait(timeout)
            return index
        except BaseException as exc:
            error = exc
            raise
        finally:
            released_others = index == self.parties - 1
            self._tt_end(
                start,
                "wait",
                ok=error is None,
                timeout=timeout,
                waker=None if released_others else self._tt_waker,
                error=error,
                blocked=not released_others,
            )
            error = None  # the traceback holds this frame: no cycle through it

    def _release(self) -> None:
        # Called by the last thread to arrive, under the barrier's lock.
        self._tt_waker = None
        self._tt_note_waker()
        super()._release()  # type: ignore[misc]
