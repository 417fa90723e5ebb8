"""Bookkeeping shared by the primitives whose operation is a wait.

``Condition``, ``Semaphore``, ``BoundedSemaphore``, ``Event`` and ``Barrier``
subclass the stdlib classes, so the stdlib code *is* their implementation and
their semantics are threading's by construction.  The subclasses only add
the counting and timing below around the calls that can block.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

from .._detect import hooks
from .._detect.state import Blocked
from .._recording.recorder import current_context, current_waker
from .._runtime import peek, runtime
from .._support.sites import UNKNOWN, Site
from . import core
from .base import Traced

#: What :meth:`WaitCounters._tt_begin` hands to ``_tt_end``: when the wait
#: began, where the program waits, the OpenTelemetry context it is in, and
#: the watchdog's entry for it (``None``: none could be made).
Begun = tuple[int, Optional[Site], Any, Optional[Blocked]]


class WaitCounters(Traced):
    """Counters of waits, kept in instance attributes of a stdlib subclass.

    The counters start as class attributes, all zero: an instance gets its
    own only once it counts something.  Every ``Future`` and ``Queue`` makes
    a ``Condition``, most never waited on, and a dozen attributes more per
    instance would cost each of them a bigger ``__dict__``.  Every count is
    made under ``runtime.book``, so the first one (a read of the class's
    zero, then a write to the instance) is as safe as any other.
    """

    _tt_ops: int = 0
    _tt_blocked: int = 0
    _tt_timeouts: int = 0
    _tt_wait_total: int = 0
    _tt_wait_max: int = 0
    _tt_waiters: int = 0
    _tt_waker: Any = None
    _tt_crashes_before: int = 0  # set only when some have, see _tt_setup
    _tt_name: Optional[str] = None  # set only when given
    #: Operations counted without a lock, with next() on an
    #: ``itertools.count`` (atomic, lock-free and cheap), by the kinds whose
    #: fast path has no lock to count under (``Event``, ``Semaphore``): they
    #: set ``_tt_has_fast_path``.  The others share this one, never advanced.
    _tt_fast_ops: itertools.count[int] = itertools.count()
    _tt_has_fast_path = False
    #: Whether it is in the runtime's registry of live primitives.  A kind
    #: whose every operation goes through :meth:`_tt_begin` (``Condition``:
    #: its only operation is a wait) joins at its first wait instead of at
    #: construction: one that never waited has nothing to report (its
    #: counters are all zero).
    _tt_registered: bool = False
    _tt_register_at_first_wait = False

    @property
    def name(self) -> str:
        """The name given with ``name=`` or set since, or its creation site's: ``ready (app.py:4)``.

        Settable, as any attribute of threading's ``Condition``, ``Event``,
        ``Semaphore`` or ``Barrier`` is: a subclass that keeps a ``name`` of
        its own (``self.name = name`` in its ``__init__``) works as it does
        with threading, and its primitive is reported under that name.
        """
        explicit = self._tt_name
        return explicit if explicit is not None else self._tt_site.label

    @name.setter
    def name(self, value: Any) -> None:
        self._tt_name = value

    @name.deleter
    def name(self) -> None:
        if self._tt_name is None:  # never set: as deleting a missing attribute
            raise AttributeError("name")
        self._tt_name = None

    def __getstate__(self) -> dict[str, Any]:
        """The instance's attributes, threading's first (``pickle``, ``copy``).

        So that pickling fails where threading's does, on its lock, with its
        message (``cannot pickle '_thread.lock' object``), rather than on the
        code object of the place the primitive was made.
        """
        state = self.__dict__
        ours = {key: value for key, value in state.items() if key.startswith("_tt_")}
        return {**{key: value for key, value in state.items() if key not in ours}, **ours}

    def _tt_setup(self, site: Optional[Site], name: Optional[str]) -> None:
        self._tt_site = site if site is not None else UNKNOWN
        if name is not None:  # else the class's None: a Future's Condition has no name
            self._tt_name = name
        # A stuck wait on it names the threads that ended with an exception
        # since it was made (the one that should have set it, say): the count
        # of those before, a small int that every primitive shares, rather than
        # a timestamp, 32 bytes and a clock call for every Future's Condition.
        crashes = runtime.detect.crash_count
        if crashes:  # else the class's 0, and no slot in the instance's dict
            self._tt_crashes_before = crashes
        if self._tt_has_fast_path:
            self._tt_fast_ops = itertools.count()
        if not self._tt_register_at_first_wait:
            self._tt_register()

    def _tt_register(self) -> None:
        """Join the runtime's registry of live primitives (once: see ``_tt_registered``)."""
        self._tt_registered = True
        runtime.register(self)

    def __del__(self) -> None:
        # One never registered never waited: nothing counted to keep.
        if self._tt_registered:
            self._tt_retire()

    @property
    def _tt_operations(self) -> int:
        """All operations: those counted under the lock and the fast ones."""
        return self._tt_ops + peek(self._tt_fast_ops)

    def _tt_counters(self) -> tuple[int, int, int, int]:
        return (self._tt_operations, self._tt_blocked, self._tt_wait_total, 0)

    def _tt_begin(self, operation: str = "wait", timeout: Optional[float] = None) -> Begun:
        """About to block: count the waiter, read the clock, note where.  Never raises.

        Every call is paired with :meth:`_tt_end`, which gets what this
        returns.  ``timeout`` is ``None`` for a wait that can last forever
        (the watchdog watches those).  Where the program waits is read here,
        before blocking, with a ``Condition``'s lock let go of.
        """
        if not self._tt_registered:
            self._tt_register()
        wait = hooks.begin(self, operation, timeout)  # before it counts as a waiter (see Lock)
        try:
            if wait is not None:  # the watchdog's entry has read the clock and the context
                start, context = wait.since, wait.context
            else:
                start, context = runtime.clock.monotonic_ns(), current_context()
        except Exception as error:  # noqa: BLE001 - a broken injected clock must not break waits
            runtime.internal_error(f"{type(self).__name__} wait", error)
            start, context = 0, None
        book = runtime.book  # not "with": see Runtime.book
        book.acquire()
        try:
            self._tt_waiters += 1
        finally:
            book.release()
        try:
            return (start, core.waiting_site(2), context, wait)  # past the waiting method
        except Exception as error:  # noqa: BLE001 - the wait goes on, recorded without a site
            runtime.internal_error(f"{type(self).__name__} wait", error)
            return (start, None, context, wait)

    def _tt_end(
        self,
        begun: Begun,
        operation: str,
        *,
        ok: bool,
        timeout: Optional[float],
        waker: Any = None,
        error: Optional[BaseException] = None,
        blocked: bool = True,
    ) -> None:
        """Done blocking: account for the wait and queue its record.  Never raises.

        ``blocked=False`` says the call turned out not to wait after all (the
        last thread to reach a barrier): it is counted, not timed.
        """
        hooks.end(begun[3])
        self._tt_settle(begun, operation, ok, timeout, waker, error, blocked)

    def _tt_settle(
        self,
        begun: Begun,
        operation: str,
        ok: bool,
        timeout: Optional[float],
        waker: Any = None,
        error: Optional[BaseException] = None,
        blocked: bool = True,
    ) -> None:
        """:meth:`_tt_end` without ending the watchdog's entry: the caller does.  Never raises."""
        try:
            if not blocked:
                with runtime.book:
                    self._tt_waiters -= 1
                    self._tt_ops += 1
                return
            start_ns, site, context, _ = begun
            end_ns = runtime.clock.monotonic_ns()
            wait = end_ns - start_ns
            book = runtime.book  # not "with": see Runtime.book
            book.acquire()
            try:
                self._tt_waiters -= 1
                self._tt_ops += 1
                self._tt_blocked += 1
                if not ok and error is None:  # an interrupted wait did not time out
                    self._tt_timeouts += 1
                self._tt_wait_total += wait
                if wait > self._tt_wait_max:
                    self._tt_wait_max = wait
            finally:
                book.release()
            recorder = runtime.recorder
            if recorder is None:
                return
            if type(self).name is _NAME:  # what the property returns, a call fewer a wait
                name = self._tt_name
                if name is None:
                    name = self._tt_site.label
            else:
                name = self.name
            # A short wait is summed in place (what note_wait would do first,
            # without its keyword call: 2k instructions a wait); any other
            # goes to note_wait, whose own count_short answers again, cheaply
            # (a threshold check, or one more try of its lock), before the
            # record and its span cost far more.
            if error is not None or not recorder.count_short(
                self._tt_kind, name, wait, ok, site, context
            ):
                recorder.note_wait(
                    self._tt_kind,
                    name,
                    operation,
                    start_ns,
                    end_ns,
                    ok,
                    site,
                    context,
                    timeout=timeout,
                    error=error,
                    waker=waker,
                )
        except Exception as exc:  # noqa: BLE001 - the wait's own outcome stands
            runtime.internal_error(f"{type(self).__name__}.{operation}", exc)

    def _tt_forget_counts(self) -> None:
        """In a forked child: count from zero (its report is its own); nobody waits yet."""
        self._tt_ops = 0
        if self._tt_has_fast_path:
            self._tt_fast_ops = itertools.count()
        self._tt_blocked = self._tt_timeouts = 0
        self._tt_wait_total = self._tt_wait_max = 0
        self._tt_waiters = 0
        self._tt_waker = None

    def _tt_note_unfinished(self, waited: int) -> None:
        """A wait still going on at exit counts as one that blocked, so far."""
        with runtime.book:
            self._tt_ops += 1
            self._tt_blocked += 1
            self._tt_wait_total += waited
            if waited > self._tt_wait_max:
                self._tt_wait_max = waited

    def _tt_wait_fields(self) -> dict[str, Any]:
        """The fields every wait-type statistics snapshot shares."""
        return {
            "kind": self._tt_kind,
            "name": self.name,
            "waits": self._tt_operations,
            "blocked": self._tt_blocked,
            "timeouts": self._tt_timeouts,
            "total_wait": self._tt_wait_total / 1e9,
            "max_wait": self._tt_wait_max / 1e9,
            "waiters": self._tt_waiters,
        }

    def _tt_note_waker(self) -> None:
        """Remember who is waking the waiters, for their span links."""
        if self._tt_waiters and not runtime.recording():
            try:
                self._tt_waker = current_waker()
            except Exception:  # noqa: BLE001 - a missing link must never break set()/release()
                self._tt_waker = None

    def _tt_take_waker(self) -> Any:
        """Who woke this waiter; kept for the others still waiting (one release wakes several)."""
        waker = self._tt_waker
        if self._tt_waiters <= 1:  # this waiter is not yet uncounted: it was the last
            self._tt_waker = None
        return waker


#: The property a class that keeps it answers ``name`` with (read in line by waits).
_NAME = WaitCounters.__dict__["name"]
