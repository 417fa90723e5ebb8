"""Traced ``Lock`` and ``RLock``: the hot path of the whole library, and its slow paths.

An uncontended acquire is a try of the lock's own OS lock, the owner's
ident, a count, and the program's acquire site (the caller's code and
instruction, read from the interpreter's frame); a release is one flag test
and the OS release.  No OpenTelemetry, no allocation, no Python call.  That
path lives in the "core" base class: C in ``_lockcore.c`` when built, else
``pycore.py`` (:mod:`.core` chooses); this module holds everything else.

Everything else is a slow path, taken only when

* the try failed and the caller blocks (a *contention*: timed, attributed to
  the holder and the site where it took the lock, linked to the thread that
  released), or
* a release has waiters to wake (who woke them is noted for their spans), or
* a measured hold (one acquisition in ``sample_every``, and every one for a
  while after a contention, timed by the core) was long enough for a span:
  told after the release, never while the lock is held, or
* the arguments are unusual (a timeout), or lock order is tracked.

This is Go's design (count always, time only what blocked or was sampled)
with JFR's threshold for turning a wait into an event.  What a slow path
records is queued and recorded by threadtrace's own thread, or, for a wait
shorter than ``wait_threshold``, added to its place's sums under a lock that
is only ever tried: a thread that has just taken the lock does a few writes
and lets it go, so heavy contention cannot turn into a convoy.

At about 600 lines this module is one topic, the slow paths of the two
locks around one hot path, and reads better whole than split.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from typing import TYPE_CHECKING, Any, Optional

from .._detect import hooks
from .._detect.state import name_of, owner_of
from .._recording.events import HoldRecord
from .._recording.recorder import current_context, current_waker
from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import UNKNOWN, Site
from .._support.statistics import LockStatistics
from . import core
from .base import PrimitiveType, Traced, site_for
from .core import LockCore

_get_ident = _originals.get_ident


def _read_clock() -> int:
    """The clock, for code that must not raise whatever the clock does."""
    try:
        return runtime.clock.monotonic_ns()
    except Exception as error:  # noqa: BLE001 - a broken injected clock must not break locks
        runtime.internal_error("clock", error)
        return 0


#: What a waiter notes before blocking: the holder, its name and acquire
#: site, where the waiter waits, and its OpenTelemetry context.
Before = tuple[Optional[int], Optional[str], Optional[Site], Optional[Site], Any]
_NOTHING_BEFORE: Before = (None, None, None, None, None)


def _thread_name(ident: Optional[int]) -> Optional[str]:
    return None if ident is None else _originals.thread_name(ident)


class _LockBase(Traced):
    """The slow paths shared by :class:`Lock` and :class:`RLock`."""

    if not TYPE_CHECKING:  # mypy would reject assigning the subclasses' slots here
        __slots__ = ()
    _tt_reentrant = False
    #: threading's own class, handed out where a primitive stays untraced.
    _tt_original: Any
    # Fields and methods of the core base class (C or pycore.py):
    _owner: Optional[int]
    _hot: bool
    _depth: int
    _reentrant: bool
    _acquisitions: int
    _contended: int
    _timeouts: int
    _wait_total: int
    _wait_max: int
    _waiters: int
    _holds: int
    _hold_total: int
    _hold_max: int
    _left: int
    _profile: int
    _t_acq: int
    _site_acq: Optional[Site]
    _waker: Any
    _tt_serial: int

    if TYPE_CHECKING:

        def _block(self, timeout: float) -> bool: ...

        def _taken(self, blocking: bool = ..., measure: bool = ..., t_acq: int = ...) -> None: ...

        def _waiting(self, delta: int) -> None: ...

        def _settle_hot(self) -> None: ...

        def _locked_now(self) -> bool: ...

        def _core_release_save(self) -> tuple[int, int]: ...

        def _core_restore(self, depth: int) -> None: ...

    def __reduce_ex__(self, protocol: Any) -> Any:
        # threading's locks cannot be pickled or copied, and say so under
        # their own type's name, which people search for: the same words.
        original = type(self)._tt_original
        raise TypeError(f"cannot pickle '{original.__module__}.{original.__qualname__}' object")

    # -- construction ------------------------------------------------------------------

    @classmethod
    def _tt_new(cls, args: Any, kwargs: Any) -> Any:
        """A new lock, when the core did not make it itself.

        The core makes a lock made by the program's own code with no
        arguments; this takes the rest: ``name=``, arguments (which threading
        rejects as it does), a lock made through a library class (named
        ``Queue@app.py:12``), or by plumbing, which gets threading's own lock.
        Only the exact drop-in classes hand that out; a user's subclass is
        always an instance of itself.
        """
        args = () if args is None else tuple(args)
        kwargs = {} if kwargs is None else dict(kwargs)
        name = kwargs.pop("name", None)
        cls._tt_check_arguments(args, kwargs)
        # Frames above: this method, then the caller of Lock(...) (the core's
        # constructor is C, or pycore's __new__).
        depth = 1 if core.SPEEDUPS else 2
        site = site_for(name, depth)
        if site is None and cls.__dict__.get("_tt_original") is not None:
            return cls._tt_original_factory()
        return core.make(cls, site or UNKNOWN, name)

    @classmethod
    def _tt_check_arguments(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # A subclass's own __init__ takes its arguments; threading's raise as threading does.
        if (args or kwargs) and cls.__dict__.get("_tt_original") is not None:
            cls._tt_original_factory(*args, **kwargs)

    @classmethod
    def _tt_original_factory(cls, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def _tt_traced(cls, site: Site, name: Optional[str]) -> Any:
        """A traced instance named after ``site``, skipping the exclusion check."""
        return core.make(cls, site, name)

    def __repr__(self) -> str:
        cls = type(self)
        state = "locked" if self._locked_now() else "unlocked"
        details = ""
        if self._reentrant:
            owner = self._owner if self._locked_now() else 0
            details = f" owner={owner or 0} count={self._depth if owner else 0}"
        return f"<{state} {cls.__module__}.{cls.__qualname__} object{details} at {id(self):#x}>"

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

    def _tt_forget_counts(self) -> None:
        """In a forked child: count from zero (its report is its own); nobody waits yet."""
        self._acquisitions = self._contended = self._timeouts = 0
        self._wait_total = self._wait_max = 0
        self._holds = self._hold_total = self._hold_max = 0
        self._waiters = 0
        self._waker = None

    def _tt_note_unfinished(self, waited: int) -> None:
        """A wait still going on at exit counts as an acquisition that blocked, so far."""
        with runtime.book:
            self._acquisitions += 1
            self._contended += 1
            self._wait_total += waited
            if waited > self._wait_max:
                self._wait_max = waited

    # -- the slow paths ----------------------------------------------------------------

    def _acquire_with(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """``acquire`` with arguments other than none or ``False``: threading's checks, exactly.

        Arguments threading would reject raise threading's own exception
        (a fresh lock of threading's own raises it); a try and a timed
        acquire add no lock order (they cannot deadlock).
        """
        # A fresh lock of threading's own checks the arguments: it raises
        # exactly what threading raises, and never waits (nobody holds it).
        self._tt_original_factory().acquire(*args, **kwargs)
        params = dict(zip(("blocking", "timeout"), args))
        params.update(kwargs)
        blocking = bool(params.get("blocking", True))
        timeout = params.get("timeout", -1)
        timeout = -1 if timeout == -1 else float(timeout)
        if self._try_take(blocking and timeout == -1):
            return True
        if not blocking:
            return False
        return self._acquire_slow(timeout)

    def _try_take(self, blocking: bool) -> bool:
        """A try through the core, counted as the core counts one."""
        if self._reentrant and self._locked_now() and self._owner == _get_ident():
            return bool(self.acquire(False))  # type: ignore[attr-defined]
        if self._block(0):
            self._taken(blocking)
            return True
        return False

    def _acquire_slow(self, timeout: Any) -> bool:
        """The try failed: block, timing the wait and noting who we waited for.

        Only the wait itself may raise (as threading's would: a signal
        handler's exception); an error in the bookkeeping around it is
        counted and swallowed.
        """
        if timeout == 0:  # a try in disguise: nothing will wait
            return self._try_take(False)
        # Who holds it, read first thing after the failed try: the holder may
        # let go any moment, and its acquire site goes with it.
        holding = (self._owner, self._site_acq)
        if holding[0] is None and self._try_take(timeout == -1):
            return True  # let go meanwhile: taken without a wait
        return self._wait_for_it(timeout, holding)

    def _wait_for_it(
        self, timeout: Any, holding: tuple[Optional[int], Optional[Site]], taking_back: bool = False
    ) -> bool:
        """Block until it is ours (or ``timeout``), timed, and recorded as a contended acquisition.

        ``taking_back``: an RLock's ``Condition`` taking it back after a wait
        (``_acquire_restore``): its watchdog entry interrupts the wait's, and
        the core neither counts nor orders it (``_core_restore`` does).
        """
        # Registered for the watchdog before it counts as a waiter: whoever
        # sees the waiter (wait_for_waiters) also finds the registration.
        wait = hooks.begin(self, "acquire", None if timeout == -1 else timeout)
        # The clock is read before the thread counts as a waiter: a test that
        # sees the waiter and moves a fake clock on gets the whole wait.  The
        # watchdog's entry, when made, has read it and the context already.
        t0 = wait.since if wait is not None else _read_clock()
        before = None
        try:
            context = wait.context if wait is not None else current_context()
            before = self._before_wait(holding, context)
        except Exception as error:  # noqa: BLE001 - never raise into the host
            runtime.internal_error("Lock.acquire", error)
        try:
            if (
                timeout == -1
                and wait is not None
                and not taking_back
                and runtime.config.on_deadlock == "raise"
            ):
                ok = self._acquire_or_doomed(wait)
            else:
                ok = self._block(-1.0 if timeout == -1 else float(timeout))
        finally:
            hooks.end(wait)
            self._waiting(-1)
        try:
            self._after_wait(ok, timeout, t0, before, taking_back)
        except Exception as error:  # noqa: BLE001 - the outcome stands as it is
            runtime.internal_error("Lock.acquire", error)
        return ok

    def _acquire_or_doomed(self, wait: Any) -> bool:
        """Wait without a timeout, in slices, so a deadlock can end it (on_deadlock="raise")."""
        while not self._block(0.05):
            hooks.raise_if_doomed(wait)
        return True

    def _before_wait(self, holding: tuple[Optional[int], Optional[Site]], context: Any) -> Before:
        """Count the waiter; note who holds the lock (and where they took it) and where we wait.

        All of it before blocking: once the lock is ours, every instruction
        until the release lengthens the wait of whoever comes next.
        """
        self._waiting(1)  # (the core's: atomic, so no runtime.book round trip)
        # A stand-in for a holder that finished (or stayed in the parent at a
        # fork): its ident may belong to another thread by now.
        holder = owner_of(self)
        # Where the holder took it (the core notes every acquisition's site),
        # as read right after the failed try, or now if it changed hands since.
        holder_site = None
        if holder is not None:
            owner, site_then = holding
            holder_site = site_then if owner == self._owner else self._site_acq
        holder_name = name_of(holder) if holder is not None else None
        site = core.waiting_site(2, with_line=True)
        return holder, holder_name, holder_site, site, context

    def _after_wait(
        self,
        ok: bool,
        timeout: Any,
        t0: int,
        before: Optional[Before],
        taking_back: bool = False,
    ) -> None:
        """The wait is over; if ``ok`` the lock is ours: a few writes, and a record queued."""
        t1 = runtime.clock.monotonic_ns()
        wait = t1 - t0
        holder, holder_name, holder_site, site, context = before or _NOTHING_BEFORE
        noted = None  # who let go of it for us: (ident, name, context, where they took it)
        if ok:
            # We hold the lock now: it protects these writes.  Its hold is
            # measured (the clock was read), and so are the next few, so that
            # whoever holds it when the next thread waits has a known hold.
            if taking_back:
                self._acquisitions += 1
            else:
                self._taken(timeout == -1, True, t1)
            self._contended += 1
            self._wait_total += wait
            if wait > self._wait_max:
                self._wait_max = wait
            noted, self._waker = self._waker, None
        else:
            book = runtime.book  # not "with": see Runtime.book
            book.acquire()
            try:
                self._timeouts += 1
                self._wait_total += wait
                if wait > self._wait_max:
                    self._wait_max = wait
            finally:
                book.release()
        recorder = runtime.recorder
        if recorder is not None:
            if holder is None and noted is not None:
                # The lock was changing hands when the wait began (taken, its
                # owner not yet written): the thread that released it to us
                # is the one we waited behind.
                holder, holder_name, holder_site = _noted_holder(noted)
            kind, name = self._tt_kind, self.name
            # A short wait is summed in place (what note_wait would do first,
            # without its keyword call); any other is queued by note_wait.
            if recorder.count_short(
                kind, name, wait, ok, site, context, holder, holder_name, holder_site
            ):
                return
            waker = None if noted is None else noted[:3]
            recorder.note_wait(
                kind,
                name,
                "acquire",
                t0,
                t1,
                ok,
                site,
                context,
                timeout=None if timeout == -1 else timeout,
                holder=holder,
                holder_name=holder_name,
                holder_site=holder_site,
                waker=waker,
            )

    def _ordered(self, blocking: bool) -> None:
        """Lock order is tracked: this thread now holds this lock (its outermost hold)."""
        try:
            if blocking:
                runtime.lock_order.acquired(self, self._site_acq)
            else:
                runtime.lock_order.restored(self, self._site_acq)
        except Exception as error:  # noqa: BLE001 - the lock is held: never raise here
            runtime.internal_error("lock order", error)

    def _ordered_nested(self, held: tuple[Any, ...]) -> None:
        """The C core found a nesting not seen before: ``held`` (oldest first), then this lock."""
        try:
            runtime.lock_order.nested(held, self)
        except Exception as error:  # noqa: BLE001 - the lock is held: never raise here
            runtime.internal_error("lock order", error)

    def _release_slow(self) -> None:
        """A release with waiters to wake (or lock order tracked), before the OS release.

        The pure-Python core's, and the C core's when OpenTelemetry's runtime
        context is not the contextvars one: else the C core notes the waker
        itself (``note_waker`` in ``_lockcore.c``), without a Python call
        while the lock is held.  Never raises: the lock must still be released.
        """
        try:
            lock_order = runtime.lock_order
            if lock_order.held:
                lock_order.released(self)
            if self._waiters and runtime.recorder is not None and not runtime.recording():
                try:
                    # Who wakes the waiter, and where it took the lock: the
                    # holder the waiter waited behind if it saw none itself.
                    self._waker = (*current_waker(), self._site_acq)
                except Exception:  # noqa: BLE001 - a missing link must never break release()
                    self._waker = None
            self._settle_hot()
        except Exception as error:  # noqa: BLE001 - the lock must still be released
            self._hot = False
            runtime.internal_error("Lock._release_slow", error)

    def _held(self, start: int, end: int, site: Optional[Site]) -> None:
        """A measured hold long enough for a span ended (told after the release).

        ``site`` is where the hold began, read before the release (after it,
        ``_site_acq`` may already be the next holder's).
        """
        recorder = runtime.recorder
        if recorder is None:
            return
        try:
            recorder.defer(
                HoldRecord(
                    self._tt_kind,
                    self.name,
                    start,
                    end,
                    _get_ident(),
                    _originals.current_thread_name(),
                    site,
                    current_context(),
                )
            )
        except Exception as error:  # noqa: BLE001 - never raise into the host
            runtime.internal_error("Lock._held", error)

    # -- statistics ------------------------------------------------------------------

    def _holders(self) -> tuple[int, ...]:
        owner = self._owner
        return (owner,) if owner is not None and self._locked_now() else ()

    def _raw_locked(self) -> bool:
        """Whether some thread holds it (the watchdog's question)."""
        return bool(self._locked_now())

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


def _signature(function: Any) -> inspect.Signature:
    """The signature of a constructor, without its ``cls``, for ``inspect.signature()``."""
    signature = inspect.signature(function)
    return signature.replace(parameters=list(signature.parameters.values())[1:])


class Lock(_LockBase, LockCore, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.Lock`.

    Thread-safe, like the lock it wraps.  ``Lock(name="ledger")`` names it;
    without a name it is named after the variable it is assigned to and the
    line that created it (``ledger (bank.py:10)``).

    .. note::
        On Python 3.9-3.12 ``threading.Lock`` is a factory function; this is
        a class there too, so ``isinstance`` works with it on every version.
    """

    __slots__ = ()
    _tt_kind = "lock"
    _tt_original = _originals.LockType

    def __new(cls, *, name: Optional[str] = None) -> Lock:  # type: ignore[empty-body]
        ...  # only its signature: the core makes the lock

    __signature__ = _signature(__new)
    del __new

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # threading.Lock was never a base class: a factory function before
        # 3.13, a type that refuses subclasses since.
        raise TypeError("type 'threadtrace.Lock' is not an acceptable base type")

    # threading's own factory, called as it is (it raises exactly as threading
    # does): every Thread's Event makes a Lock this way, a frame fewer.
    _tt_original_factory = staticmethod(_originals.Lock)

    def locked(self) -> bool:
        """Whether the lock is held by any thread."""
        return bool(self._locked_now())

    # Legacy aliases the C lock still has.
    acquire_lock = LockCore.acquire
    release_lock = LockCore.release
    locked_lock = locked


class RLock(_LockBase, LockCore, metaclass=PrimitiveType):
    """A traced drop-in for :class:`threading.RLock` (reentrant).

    Thread-safe.  Reentrant acquisitions count as acquisitions; the hold time
    measured is that of the outermost acquisition.

    .. note::
        ``threading.RLock`` is a factory function; this is a class.
    """

    __slots__ = ()
    _tt_kind = "rlock"
    _tt_original = _originals.RLockType
    _tt_reentrant = True

    def __new(cls, *args: Any, name: Optional[str] = None, **kwargs: Any) -> RLock:  # type: ignore[empty-body]
        ...  # only its signature

    __signature__ = _signature(__new)
    del __new

    @classmethod
    def _tt_check_arguments(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if (args or kwargs) and cls is RLock:
            # threading.RLock() warns; a subclass's own __init__ may take arguments.
            _warn_rlock_arguments(args, kwargs)

    _tt_original_factory = staticmethod(_originals.RLock)  # as Lock's

    # The hooks threading.Condition uses to wait on an RLock.  Condition binds
    # _is_owned once and calls it on every notify(), so it stays the core's.
    _is_owned = LockCore._core_is_owned

    def _release_save(self) -> Any:
        return self._core_release_save()  # raises exactly as threading does

    def _acquire_restore(self, saved: Any) -> None:
        """A ``Condition`` takes it back after a wait: an acquisition, counted as a Lock's is.

        When it has to wait, that wait is this lock's, as any contended
        acquisition's: timed, with who held it and where, and seen by the
        watchdog (a deadlock through a ``Condition()`` is not missed).
        """
        depth, _ = saved
        if self._block(0):
            self._acquisitions += 1  # under the lock, as the core counts
        else:
            self._wait_for_it(-1, (self._owner, self._site_acq), taking_back=True)
        self._core_restore(depth)  # the C core puts it back on its held stack itself
        if runtime.ordering and not core.SPEEDUPS:
            runtime.lock_order.restored(self, self._site_acq)
            self._hot = True  # so the release takes it off the held stack

    if hasattr(_originals.RLockType, "_recursion_count"):
        _recursion_count = LockCore._core_recursion_count

    if hasattr(_originals.RLockType, "locked"):  # threading's RLock has it from 3.14

        def locked(self) -> bool:
            return bool(self._locked_now())


def _noted_holder(noted: tuple[Any, ...]) -> tuple[int, str, Optional[Site]]:
    """The waker as the holder waited behind: ident, name and where it took the lock.

    The C core notes where as (code, offset, line), as it lets go
    (``note_waker`` in ``_lockcore.c``): its Site is made here, and only
    here, in the woken thread, not during the hold.  ``_release_slow``
    notes the Site itself.
    """
    ident, name, _, site = noted
    if type(site) is tuple:
        site = runtime.site_cache.get(*site)
    return ident, name, site


def _warn_rlock_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """What ``threading.RLock(*args)`` says about arguments, pointing at the caller."""
    if sys.version_info >= (3, 13):
        warnings.warn(
            "Passing arguments to RLock is deprecated and will be removed in 3.15",
            DeprecationWarning,
            # Frames: this, _tt_check_arguments, _tt_new, (pycore's __new__,) the caller.
            stacklevel=4 if core.SPEEDUPS else 5,
        )
    _originals.RLockType(*args, **kwargs)  # raises where threading's would
