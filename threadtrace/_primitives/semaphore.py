"""Traced ``Semaphore`` and ``BoundedSemaphore``."""

from __future__ import annotations

from types import CodeType
from typing import Any, Optional

from .._detect import hooks
from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import UNKNOWN, Site
from .._support.statistics import LockStatistics
from . import core
from .base import PrimitiveType, object_new, shown_as, site_for
from .locks import _thread_name
from .wait_counters import WaitCounters


def _is_zero(timeout: object) -> bool:
    """Whether ``timeout`` is a number <= 0 (so waiting with it cannot block)."""
    return isinstance(timeout, (int, float)) and timeout <= 0


_get_ident = _originals.get_ident
_caller = core.caller  # (code, byte offset) of the program's frame: a line only if reported


_SEMAPHORE_INIT = _originals.Semaphore.__init__


class Semaphore(WaitCounters, _originals.Semaphore, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.Semaphore`.

    Thread-safe.  An ``acquire`` that has to wait for a permit is a
    contention: timed, counted, and linked to the thread whose ``release``
    woke it.  The threads holding permits are tracked, until a thread that
    holds none gives one back: the semaphore counts something between
    threads then (a producer's items for a consumer, a pool's idle workers),
    no thread holds a permit of it, and none is tracked from then on.
    """

    _tt_kind = "semaphore"
    _tt_original = _originals.Semaphore
    _tt_has_fast_path = True
    #: Whether ``release`` past the initial value raises (BoundedSemaphore):
    #: a class attribute read in line, not a method called on every release.
    _tt_bounded = False
    #: The threads holding permits, each with where it took each of them,
    #: oldest first (as many as it holds): (code, byte offset) pairs (None
    #: where not known), made into Sites only when a report needs them.
    _tt_holders: dict[int, list[Optional[tuple[CodeType, int]]]]
    #: Whether its permits are given back by other threads than take them
    #: (set by the first such release): a counter, whose holders are not tracked.
    _tt_counter = False

    def __new(cls, value: int = 1, *, name: Optional[str] = None) -> Semaphore:  # type: ignore[empty-body]
        ...  # its signature only

    @shown_as(__new)
    def __new__(cls, *args: Any, name: Optional[str] = None, **kwargs: Any) -> Semaphore:
        site = site_for(name, 1)
        if cls is Semaphore or cls is BoundedSemaphore:  # see base.object_new
            if site is None:
                return cls._tt_original(*args, **kwargs)  # type: ignore[no-any-return]  # not cast(): a call
            self: Semaphore = object_new(cls)
        else:
            self = super().__new__(cls)
        self._tt_setup(site, name)
        self._tt_holders = {}
        return self

    del __new

    def __init__(self, value: int = 1, *, name: Optional[str] = None) -> None:
        # Exactly this class, or one of threading's own that reached it:
        # threading's BoundedSemaphore.__init__ (3.9-3.12) calls
        # Semaphore.__init__ through its module's global, which patch() makes
        # this class, for a BoundedSemaphore threading hands out (to excluded
        # callers) or a program's subclass of it made before patch().
        if type(self) is Semaphore or Semaphore not in type(self).__mro__:
            _SEMAPHORE_INIT(self, value)
        else:
            super().__init__(value)

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Take a permit, exactly as :meth:`threading.Semaphore.acquire` does."""
        if not blocking and timeout is not None:
            return bool(super().acquire(blocking, timeout))  # raises ValueError, as threading does
        with self._cond:  # type: ignore[attr-defined]
            # threading's own non-blocking path, plus the holder, under the same lock.
            if self._value > 0:
                self._value -= 1
                if not self._tt_counter:
                    me = _get_ident()
                    sites = self._tt_holders.get(me)
                    if sites is None:
                        self._tt_holders[me] = [_caller()]
                        permits = runtime.detect.permits  # hooks.permits_held(), inlined
                        mine = permits.get(me)
                        if mine is None:
                            permits[me] = {self}
                        else:
                            mine.add(self)
                    else:
                        sites.append(_caller())
                next(self._tt_fast_ops)
                return True
            if not blocking or _is_zero(timeout):
                # No permit, and no waiting for one: threading's answer as well.  (A
                # timeout <= 0 is a try in disguise, as ThreadPoolExecutor's idle
                # check; threading's wait(0) lets go of the lock for an instant, and a
                # permit released then is one released after this answer.)
                return False
        start = self._tt_begin("acquire", timeout)
        ok = False
        error: Optional[BaseException] = None
        try:
            ok = bool(super().acquire(True, timeout))
            return ok
        except BaseException as exc:  # KeyboardInterrupt: an error, not a timeout
            error = exc
            raise
        finally:
            if ok and not self._tt_counter:  # (checked again under the lock)
                self._tt_took(_caller())
            self._tt_end(
                start,
                "acquire",
                ok=ok,
                timeout=timeout,
                waker=self._tt_take_waker(),
                error=error,
            )
            error = None  # the traceback holds this frame: no cycle through it

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        """Give back ``n`` permits, exactly as :meth:`threading.Semaphore.release` does.

        threading's own few lines, with the holders updated under the same
        hold of the semaphore's lock (one acquisition, not two).
        """
        if n < 1:
            raise ValueError("n must be one or more")
        cond = self._cond  # type: ignore[attr-defined]
        with cond:
            if self._tt_bounded and self._value + n > self._initial_value:  # type: ignore[attr-defined]
                raise ValueError("Semaphore released too many times")  # threading's words
            if self._tt_waiters:
                self._tt_note_waker()
            self._value += n
            holders = self._tt_holders
            if holders:  # else nobody holds one (or it is a counter: see _tt_counter)
                me = _get_ident()
                sites = holders.get(me)
                if n == 1 and sites is not None:  # the usual case: the taker gives it back
                    sites.pop()
                    if not sites:
                        del holders[me]
                        mine = runtime.detect.permits.get(me)  # hooks.permit_returned(), inlined
                        if mine is not None:
                            mine.discard(self)
                elif sites is None:  # given back by a thread that holds none: a counter
                    self._tt_count_only()
                else:
                    self._tt_gave(me, n)
            cond.notify(n)

    # The holders are guarded by the semaphore's own (untraced) lock.
    def _tt_took(self, site: Optional[tuple[CodeType, int]]) -> None:
        me = _get_ident()
        with self._cond:  # type: ignore[attr-defined]
            if self._tt_counter:
                return
            sites = self._tt_holders.get(me)
            if sites is None:
                hooks.permits_held(me).add(self)
                sites = self._tt_holders[me] = []
            sites.append(site)

    def _tt_count_only(self) -> None:
        """A permit came back from a thread that holds none: a counter from now on.

        Producers release what consumers acquire; a pool's workers release
        what its submitter tries.  No thread holds such a permit, so none is
        tracked (that bookkeeping cost every operation, and named "holders"
        that were consumers), nor reported as held or leaked.  Under the lock.
        """
        self._tt_counter = True
        for who in self._tt_holders:
            hooks.permit_returned(who, self)
        self._tt_holders.clear()

    def _tt_gave(self, me: int, n: int) -> None:
        """Take ``n`` permits off their holders: ours first, then the oldest holder's."""
        holders = self._tt_holders
        while n and holders:
            n -= 1
            who = me if me in holders else next(iter(holders))
            sites = holders[who]
            sites.pop()
            if not sites:
                del holders[who]
                hooks.permit_returned(who, self)

    def _tt_rename_holder(self, old: int, new: int) -> bool:
        """Move ``old``'s permits to ``new`` (the watchdog's stand-in for a finished thread).

        Returns whether ``old`` held any.
        """
        with self._cond:  # type: ignore[attr-defined]
            if old not in self._tt_holders:
                return False
            self._tt_holders[new] = self._tt_holders.pop(old)
            return True

    def _tt_holder_sites(self) -> dict[int, list[Site]]:
        """Each thread holding permits, and where it took each (for the watchdog)."""
        with self._cond:  # type: ignore[attr-defined]
            return {
                who: [
                    UNKNOWN if site is None else runtime.site_cache.get(site[0], site[1])
                    for site in sites
                ]
                for who, sites in self._tt_holders.items()
            }

    def _tt_counters(self) -> tuple[int, int, int, int]:
        # As for locks: operations are acquisitions, contentions the waits that got one.
        timeouts = self._tt_timeouts
        return (
            self._tt_operations - timeouts,
            self._tt_blocked - timeouts,
            self._tt_wait_total,
            0,
        )

    def statistics(self) -> LockStatistics:
        """A snapshot of what this semaphore has seen (holds are not measured)."""
        with self._cond:  # type: ignore[attr-defined]
            holders = tuple(self._tt_holders)
        return LockStatistics(
            kind=self._tt_kind,
            name=self.name,
            acquisitions=self._tt_operations - self._tt_timeouts,
            contended=self._tt_blocked - self._tt_timeouts,
            timeouts=self._tt_timeouts,
            total_wait=self._tt_wait_total / 1e9,
            max_wait=self._tt_wait_max / 1e9,
            holds_measured=0,
            total_hold=0.0,
            max_hold=0.0,
            holders=holders,
            holder_names=tuple(_thread_name(h) or "" for h in holders),
            waiters=self._tt_waiters,
        )


class BoundedSemaphore(Semaphore, _originals.BoundedSemaphore, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.BoundedSemaphore`.

    ``release`` past the initial value raises ``ValueError("Semaphore released
    too many times")``, exactly as threading does, and records nothing.
    """

    _tt_kind = "bounded_semaphore"
    _tt_original = _originals.BoundedSemaphore

    def __init__(self, value: int = 1, *, name: Optional[str] = None) -> None:
        # Not super().__init__: on 3.9-3.12 threading's own BoundedSemaphore.__init__
        # calls the module-global ``Semaphore``, which is this module's class while
        # patched, and would recurse.
        _originals.Semaphore.__init__(self, value)
        self._initial_value = value

    _tt_bounded = True
