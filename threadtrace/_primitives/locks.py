"""Traced ``Lock`` and ``RLock``: the hot path of the whole library.

An uncontended acquire is a non-blocking try of the real lock, one
``get_ident()`` and a countdown; a release is one flag test and the real
release.  No clock, no frame, no OpenTelemetry, no allocation.  Every write
on that path happens while holding the lock, so the lock itself protects its
counters.  That path lives in the "core" base class: C in ``_lockcore.c``
when built, else ``pycore.py`` (:mod:`.core` chooses); this module holds
everything else.

Everything else is the slow path, taken only when

* the try failed and the caller blocks (a *contention*: timed, attributed to
  the holder and its acquire site, linked to the thread that released), or
* the countdown ran out (one acquisition in ``sample_every``: its hold time
  and acquire site are measured), or
* the acquisition was contended (its hold is measured too: the clock was
  already read).

This is Go's design (count always, time only what blocked or was sampled)
with JFR's threshold for turning a wait into an event.  A pure-Python wrapper
cannot get under about 1.7x a C ``with lock:`` here (two interpreted frames
per ``with``), hence the C core; ``bench/micro.py`` prints what both cost.

At about 600 lines this module is one topic, the slow paths of the two
locks around one hot path, and reads better whole than split.
"""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Any, Optional

from .._detect import hooks
from .._recording.recorder import current_waker, holder_site_now
from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import UNKNOWN, Site
from .._support.statistics import LockStatistics
from .base import PrimitiveType, Traced, site_for
from .core import LockCore as _LockCore
from .core import RLockCore as _RLockCore

_get_ident = _originals.get_ident
_NEVER = 1 << 62

#: After a contention, this many further acquisitions are measured (hold time
#: and acquire site), so the next waiter learns where its holder acquired.
PROFILE_AFTER_CONTENTION = 16


def _period() -> int:
    if runtime.config.lock_order:
        return 1  # the order of every acquisition is needed
    every = runtime.config.sample_every
    return every if every > 0 else _NEVER


def _read_clock() -> int:
    """The clock, for code that must not raise whatever the clock does."""
    try:
        return runtime.clock.monotonic_ns()
    except Exception as error:  # noqa: BLE001 - a broken injected clock must not break locks
        runtime.internal_error("clock", error)
        return 0


def _valid_timeout(timeout: Any) -> bool:
    """Whether ``acquire(True, timeout)`` would accept ``timeout`` without raising."""
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        return False
    return value == -1 or 0 <= value <= _originals.TIMEOUT_MAX


def _thread_name(ident: Optional[int]) -> Optional[str]:
    return None if ident is None else _originals.thread_name(ident)


class _LockBase(Traced):
    """State and slow paths shared by :class:`Lock` and :class:`RLock`."""

    if not TYPE_CHECKING:  # mypy would reject assigning the subclasses' slots here
        __slots__ = ()
    _raw_factory: Any
    _tt_core: Any
    _tt_reentrant = False
    # Fields of the core base class (C or _core.py):
    _raw: Any
    _try: Any
    _rel: Any
    _owner: Optional[int]
    _left: int
    _hot: bool
    _depth: int
    _reentrant: bool
    # Fields of this class (slots declared by Lock and RLock: see _SLOTS).
    _base: int
    _period: int
    _profile: int
    _t_acq: int
    _site_acq: Optional[Site]
    _waiters: int
    _waker: Any
    _contended: int
    _timeouts: int
    _wait_total: int
    _wait_max: int
    _holds: int
    _hold_total: int
    _hold_max: int
    _tt_serial: int

    def _tt_init(self, site: Site, name: Optional[str]) -> None:
        raw = self._raw_factory()
        self._raw = raw
        self._try = raw.acquire
        self._rel = raw.release
        self._owner = None
        self._reentrant = self._tt_reentrant
        self._depth = 0
        self._profile = 0
        # The first acquisition is always measured, so a lock taken only a few
        # times still has a known acquire site (a deadlock report needs it).
        self._period = self._left = 1
        self._base = 0
        self._hot = False
        self._t_acq = 0
        self._site_acq = None
        self._waiters = 0
        self._waker: Any = None
        self._contended = 0
        self._timeouts = 0
        self._wait_total = 0
        self._wait_max = 0
        self._holds = 0
        self._hold_total = 0
        self._hold_max = 0
        self._tt_site = site
        self._tt_name = name
        self._tt_serial = runtime.lock_order.serial()
        runtime.register(self)

    @classmethod
    def _tt_new(cls, name: Optional[str]) -> Any:
        """A new lock for the caller's caller: traced, or threading's own when excluded.

        Only the exact drop-in classes hand out threading's object; a user's
        subclass is always an instance of itself.
        """
        site = site_for(name, 2)
        if site is None and cls.__dict__.get("_tt_original") is not None:
            return cls._raw_factory()
        self = cls._tt_core.__new__(cls)
        self._tt_init(site or UNKNOWN, name)
        return self

    @classmethod
    def _tt_traced(cls, site: Site, name: Optional[str]) -> Any:
        """A traced instance named after ``site``, skipping the exclusion check."""
        self = cls._tt_core.__new__(cls)
        self._tt_init(site, name)
        return self

    def __del__(self) -> None:
        self._tt_retire()

    # -- counters ------------------------------------------------------------------

    @property
    def _acquisitions(self) -> int:
        return self._base + self._period - self._left

    def _at_fork_reinit(self) -> None:
        self._raw._at_fork_reinit()
        self._owner = None
        self._depth = 0
        self._waiters = 0
        self._hot = False
        self._t_acq = 0

    def __repr__(self) -> str:
        return self._repr_from_raw()

    def _tt_counters(self) -> tuple[int, ...]:
        # Six fields: a collected lock's measured holds stay in the report.
        return (
            self._acquisitions,
            self._contended,
            self._wait_total,
            self._hold_total,
            self._holds,
            self._hold_max,
        )

    # -- slow paths ------------------------------------------------------------------

    def _sampled(self, measure: bool = True, blocking: bool = True) -> None:
        """The countdown ran out: measure this acquisition's hold and site.

        Called by the core right after a successful try; never raises.
        ``blocking=False`` says it was a try (or timed): it adds no lock order.
        """
        try:
            self._sample(measure, blocking)
        except Exception as error:  # noqa: BLE001 - the lock is held: never raise here
            self._restart_countdown(_NEVER)  # stop sampling this lock
            runtime.internal_error("Lock._sampled", error)

    def _restart_countdown(self, period: int) -> None:
        """Sample again after ``period`` more acquisitions, keeping the count exact.

        The countdown is the acquisition counter too (``_acquisitions``):
        what it counted so far moves into ``_base`` first.
        """
        self._base += self._period - self._left
        self._period = self._left = period

    def _sample(self, measure: bool, blocking: bool = True) -> None:
        if self._profile > 0:  # recently contended: measure every acquisition for a while
            self._profile -= 1
            self._restart_countdown(1)
        else:
            self._restart_countdown(_period())
        if not measure:  # a reentrant acquisition: the outer one's hold is what counts
            return
        frame = runtime.modules.user_frame(1)
        site = self._site_acq = Site.of_frame(frame) if frame is not None else None
        self._t_acq = runtime.clock.monotonic_ns()
        self._hot = True
        if runtime.config.lock_order:
            if blocking:
                runtime.lock_order.acquired(self, site)
            else:
                runtime.lock_order.restored(self, site)

    def _acquire_slow(self, timeout: Any) -> bool:
        """The try failed: block, timing the wait and noting who we waited for.

        Only the real acquire may raise (as threading's would); an error in
        the bookkeeping around it is counted and swallowed.
        """
        if timeout == 0:  # a try in disguise: nothing will wait
            return self._acquire_exact(True, 0)
        # Registered for the watchdog before it counts as a waiter: whoever
        # sees the waiter (wait_for_waiters) also finds the registration.
        wait = hooks.begin(self, "acquire", None if timeout == -1 else timeout)
        # The clock is read before the thread counts as a waiter: a test that
        # sees the waiter and moves a fake clock on gets the whole wait.
        t0 = _read_clock()
        before = None
        try:
            before = self._before_wait()
        except Exception as error:  # noqa: BLE001 - never raise into the host
            runtime.internal_error("Lock.acquire", error)
        try:
            if timeout == -1 and wait is not None and runtime.config.on_deadlock == "raise":
                ok = self._acquire_or_doomed(wait)
            else:
                ok = bool(self._raw.acquire(True, timeout))
        finally:
            hooks.end()
            with runtime.book:
                self._waiters -= 1
        try:
            self._after_wait(ok, timeout, t0, before)
        except Exception as error:  # noqa: BLE001 - the outcome stands as it is
            runtime.internal_error("Lock.acquire", error)
        return ok

    def _acquire_or_doomed(self, wait: Any) -> bool:
        """Wait without a timeout, in slices, so a deadlock can end it (on_deadlock="raise")."""
        acquire = self._raw.acquire
        while not acquire(True, 0.05):
            hooks.raise_if_doomed(wait)
        return True

    def _before_wait(self) -> tuple[Optional[int], Optional[str], Optional[Site]]:
        """Count the waiter, and note who holds the lock and where, before blocking."""
        with runtime.book:
            self._waiters += 1
            self._hot = True
        holder = self._owner
        holder_site = self._site_acq if self._t_acq else None
        holder_name = _originals.thread_name(holder) if holder is not None else None
        if holder_site is None and holder is not None and holder != _get_ident():
            # The holder's acquisition was not measured: where it is right now,
            # before it moves on, is the best account of what it is doing.
            holder_site = holder_site_now(holder)
        return holder, holder_name, holder_site

    def _after_wait(
        self,
        ok: bool,
        timeout: Any,
        t0: int,
        before: Optional[tuple[Optional[int], Optional[str], Optional[Site]]],
    ) -> None:
        t1 = runtime.clock.monotonic_ns()
        wait = t1 - t0
        frame = runtime.modules.user_frame(2)
        waker = None
        if ok:
            # We hold the lock now: it protects these writes.
            self._owned_after_wait()
            self._base += 1
            self._contended += 1
            self._wait_total += wait
            if wait > self._wait_max:
                self._wait_max = wait
            waker, self._waker = self._waker, None
            self._t_acq = t1
            site = self._site_acq = Site.of_frame(frame) if frame is not None else None
            self._hot = True
            if runtime.config.lock_order:
                if timeout == -1:
                    runtime.lock_order.acquired(self, site)
                else:
                    runtime.lock_order.restored(self, site)
            # Measure the next acquisitions too, so that whoever holds this lock
            # when the next thread waits has a known acquire site.
            self._profile = PROFILE_AFTER_CONTENTION
            self._restart_countdown(1)
        else:
            with runtime.book:
                self._timeouts += 1
                self._wait_total += wait
                if wait > self._wait_max:
                    self._wait_max = wait
        recorder = runtime.recorder
        if recorder is not None:
            holder, holder_name, holder_site = before or (None, None, None)
            if holder is None and waker is not None:
                # The lock was changing hands when the wait began (taken, its
                # owner not yet written): the thread that released it to us
                # is the one we waited behind.
                holder, holder_name = waker[0], waker[1]
            recorder.blocked(
                self._tt_kind,
                self.name,
                "acquire",
                t0,
                t1,
                ok=ok,
                timeout=None if timeout == -1 else timeout,
                holder=holder,
                holder_name=holder_name,
                holder_site=holder_site,
                waker=waker,
                frame=frame,
            )

    def _owned_after_wait(self) -> None:
        self._owner = _get_ident()
        if self._reentrant:
            self._depth = 1

    def _acquire_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """``acquire(*args, **kwargs)`` for the pure-Python core."""
        if len(args) <= 2 and kwargs.keys() <= {"blocking", "timeout"}:
            params = dict(zip(("blocking", "timeout"), args))
            if not params.keys() & kwargs.keys():
                params.update(kwargs)
                return self._acquire_with(params.get("blocking", True), params.get("timeout", -1))
        return self._acquire_exact(*args, **kwargs)  # the real lock raises threading's TypeError

    def _acquire_with(self, blocking: Any, timeout: Any) -> bool:
        """``acquire`` with arguments other than the defaults.

        Arguments threading would reject (or that are not plain numbers) go
        to the real lock untimed, so the exception is exactly threading's.
        """
        if not isinstance(blocking, int) or (
            timeout != -1 and (not blocking or not _valid_timeout(timeout))
        ):
            return self._acquire_exact(blocking, timeout)
        if self._try(False):
            self._owner = _get_ident()
            if self._reentrant:
                self._depth += 1
            left = self._left - 1
            self._left = left
            if left <= 0:
                # A try or a timed acquire cannot deadlock: no lock order from it.
                self._sampled(
                    not self._reentrant or self._depth == 1, bool(timeout == -1 and blocking)
                )
            return True
        if not blocking:
            return False
        return self._acquire_slow(timeout)

    def _acquire_exact(self, *args: Any, **kwargs: Any) -> bool:
        """Acquire with threading's own argument handling, untimed."""
        ok = bool(self._raw.acquire(*args, **kwargs))
        if ok:
            self._owner = _get_ident()
            if self._reentrant:
                self._depth += 1
            self._base += 1
        return ok

    def _release_slow(self) -> None:
        """Releasing a measured hold, or a lock others wait for; never raises."""
        try:
            self._release_bookkeeping()
        except Exception as error:  # noqa: BLE001 - the lock must still be released
            self._hot = False
            runtime.internal_error("Lock._release_slow", error)

    def _release_bookkeeping(self) -> None:
        t_acq = self._t_acq
        recorder = runtime.recorder
        lock_order = runtime.lock_order
        if lock_order.held:
            lock_order.released(self)
        if t_acq:
            self._t_acq = 0
            now = runtime.clock.monotonic_ns()
            hold = now - t_acq
            self._holds += 1
            self._hold_total += hold
            if hold > self._hold_max:
                self._hold_max = hold
            if recorder is not None and hold >= runtime.config.hold_threshold * 1e9:
                recorder.held(self, t_acq, now, self._site_acq)
        if self._waiters and recorder is not None and not runtime.recording():
            try:
                self._waker = current_waker()
            except Exception:  # noqa: BLE001 - a missing link must never break release()
                self._waker = None
        with runtime.book:
            self._hot = self._waiters > 0

    # -- statistics ------------------------------------------------------------------

    def _holders(self) -> tuple[int, ...]:
        owner = self._owner
        return (owner,) if owner is not None and self._raw_locked() else ()

    def _raw_locked(self) -> bool:
        raise NotImplementedError

    def statistics(self) -> LockStatistics:
        """A snapshot of what this lock has seen.

        Thread-safe; the fields are read without stopping other threads, so a
        snapshot taken while the lock is busy may mix two moments.
        """
        holders = self._holders()
        return LockStatistics(
            kind=self._tt_kind,
            name=self.name,
            acquisitions=self._acquisitions,
            contended=self._contended,
            timeouts=self._timeouts,
            total_wait=self._wait_total / 1e9,
            max_wait=self._wait_max / 1e9,
            holds_measured=self._holds,
            total_hold=self._hold_total / 1e9,
            max_hold=self._hold_max / 1e9,
            holders=holders,
            holder_names=tuple(_thread_name(h) or "" for h in holders),
            waiters=self._waiters,
        )

    def _repr_from_raw(self) -> str:
        """The real lock's repr, with this class and address in it.

        ``<locked _thread.RLock object owner=1 count=2 at 0x...>`` becomes
        ``<locked threadtrace.RLock object owner=1 count=2 at 0x...>``.
        """
        raw = repr(self._raw)
        cls = type(self)
        state = raw[1 : raw.index(" ")]
        details = raw[raw.index(" object") : raw.rindex(" at ")]
        return f"<{state} {cls.__module__}.{cls.__qualname__}{details} at {id(self):#x}>"


_SLOTS = (
    "__weakref__",
    "_base",
    "_contended",
    "_hold_max",
    "_hold_total",
    "_holds",
    "_period",
    "_profile",
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


class Lock(_LockBase, _LockCore, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.Lock`.

    Thread-safe, like the lock it wraps.  ``Lock(name="ledger")`` names it;
    without a name it is named after the line that created it.

    .. note::
        On Python 3.9-3.12 ``threading.Lock`` is a factory function; this is
        a class there too, so ``isinstance`` works with it on every version.
    """

    __slots__ = _SLOTS
    _tt_kind = "lock"
    _tt_original = _originals.LockType
    _tt_core = _LockCore
    _raw_factory = staticmethod(_originals.allocate_lock)

    def __new__(cls, *, name: Optional[str] = None) -> Lock:
        return cls._tt_new(name)  # type: ignore[no-any-return]

    def locked(self) -> bool:
        """Whether the lock is held by any thread."""
        return bool(self._raw.locked())

    _raw_locked = locked

    # Legacy aliases the C lock still has.
    acquire_lock = _LockCore.acquire
    release_lock = _LockCore.release
    locked_lock = locked


class RLock(_LockBase, _RLockCore, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.RLock` (reentrant).

    Thread-safe.  Reentrant acquisitions count as acquisitions; the hold time
    measured is that of the outermost acquisition.

    .. note::
        ``threading.RLock`` is a factory function; this is a class.
    """

    __slots__ = _SLOTS
    _tt_kind = "rlock"
    _tt_original = _originals.RLockType
    _tt_core = _RLockCore
    _tt_reentrant = True
    _raw_factory = staticmethod(_originals.RLock)

    def __new__(cls, *args: Any, name: Optional[str] = None, **kwargs: Any) -> RLock:
        if (args or kwargs) and cls is RLock:
            # threading.RLock() warns; a subclass's own __init__ may take arguments.
            _warn_rlock_arguments(args, kwargs)
        return cls._tt_new(name)  # type: ignore[no-any-return]

    # The hooks threading.Condition uses to wait on an RLock.
    @property
    def _is_owned(self) -> Any:
        # The real lock's own method: Condition binds it once and calls it
        # on every notify(), so it stays C.  Ownership is the real lock's.
        return self._raw._is_owned

    def _release_save(self) -> Any:
        if self._owner != _get_ident():
            return self._raw._release_save()  # raises exactly as threading does
        depth, self._depth = self._depth, 0
        self._owner = None
        if self._hot:
            self._release_slow()
        return (self._raw._release_save(), depth)

    def _acquire_restore(self, saved: Any) -> None:
        state, depth = saved
        # A Condition taking its lock back may wait for it: the watchdog must
        # see that wait, or a deadlock through a Condition() would go unseen.
        hooks.begin(self, "acquire", None)
        try:
            self._raw._acquire_restore(state)
        finally:
            hooks.end()
        self._owner = _get_ident()
        self._depth = depth
        if runtime.config.lock_order:
            runtime.lock_order.restored(self, self._site_acq)
            self._hot = True  # so the release takes it off the held stack

    def _raw_locked(self) -> bool:
        return self._owner is not None

    if hasattr(_originals.RLockType, "_recursion_count"):

        def _recursion_count(self) -> int:
            return int(self._raw._recursion_count())

    if hasattr(_originals.RLockType, "locked"):  # threading's RLock has it from 3.14

        def locked(self) -> bool:
            return bool(self._raw.locked())


def _warn_rlock_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """What ``threading.RLock(*args)`` says about arguments, pointing at the caller."""
    if sys.version_info >= (3, 13):
        warnings.warn(
            "Passing arguments to RLock is deprecated and will be removed in 3.15",
            DeprecationWarning,
            stacklevel=3,
        )
    _originals.RLockType(*args, **kwargs)  # raises where threading's would
