"""The detectors' state: the waits in progress, what was reported, the finished holders.

One :class:`DetectorState` lives in the runtime (``runtime.detect``).  The
program's threads write their own entries of :attr:`~DetectorState.blocked`
(a dict item assignment is atomic); the watchdog reads a copy.
"""

from __future__ import annotations

import collections
import itertools
import weakref
from typing import Any, Callable, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import Site

#: How many threads that ended with an exception the reports can name.
CRASHES_KEPT = 32


class Blocked:
    """One thread, blocked in one operation on one primitive.

    With the C lock core, :func:`hooks.begin` makes ``_lockcore.Blocked``
    instead: the same attributes, set as here, made in one call.
    """

    __slots__ = (
        "context",
        "doomed",
        "notifies",
        "operation",
        "previous",
        "primitive",
        "recorded",
        "since",
        "taken",
        "timeout",
        "unheard",
        "woken",
    )

    def __init__(
        self,
        primitive: Any,
        operation: str,
        since: int,
        timeout: Optional[float],
        previous: Optional[Blocked],
        context: Any = None,
    ) -> None:
        self.previous = previous  # a wait this one interrupts (a Condition re-taking its lock)
        self.primitive = primitive
        self.operation = operation
        self.since = since
        self.timeout = timeout
        kind = getattr(primitive, "_tt_kind", "")
        #: A condition's notify() calls, and those that found no waiter, so far.
        self.notifies = primitive._tt_notifies if kind == "condition" else 0
        self.unheard = primitive._tt_unheard if kind == "condition" else 0
        #: How many times the primitive had been acquired when the wait began
        #: (locks and semaphores): the starvation check counts those since.
        self.taken = acquisitions(primitive, kind)
        #: The report of the deadlock this wait must end with (on_deadlock="raise").
        self.doomed: Optional[str] = None
        #: The OpenTelemetry context of the waiting thread (for a wait still
        #: going on at exit, recorded by another thread).
        self.context = context
        #: Recorded as unfinished, at exit (once).
        self.recorded = False
        #: Woken, and on its way back (a Condition's waiter settling its wait
        #: and taking its lock back): no longer waiting for anybody.
        self.woken = False

    @property
    def timed(self) -> bool:
        return self.timeout is not None


def acquisitions(primitive: Any, kind: Optional[str] = None) -> int:
    """How many times a ``Lock`` or a semaphore has been acquired so far (0 for other kinds)."""
    if kind is None:
        kind = getattr(primitive, "_tt_kind", "")
    if kind == "lock":
        return int(primitive._acquisitions)
    if kind in ("semaphore", "bounded_semaphore"):
        return int(primitive._tt_operations)
    # An RLock counts its re-entries too, which overtake nobody: left out.
    return 0


class Ending:
    """How a traced thread ended: text only, so that nothing keeps its frames alive.

    Attributes:
        name: the thread's name.
        at: when it ended (the clock threadtrace uses, ns).
        error: ``KeyError: 'port'`` when an exception ended it, else ``None``.
        site: where that exception was raised: the program's innermost frame.
    """

    __slots__ = ("at", "error", "name", "site")

    def __init__(self, name: str, at: int, error: Optional[str], site: Optional[Site]) -> None:
        self.name = name
        self.at = at
        self.error = error
        self.site = site


class DetectorState:
    """Everything the watchdog and the checks keep.

    Attributes:
        blocked: thread ident -> what it is blocked in now.  Written by the
            blocked thread only, read by the watchdog.
        ended: traced threads that ended since the last look: (ident, weak
            reference to the thread, how it ended, 0), or for a quiet end
            (no exception, no permits) (ident, weak reference, its name,
            when it ended), its :class:`Ending` made only if needed.
            Bounded: a program that ends threads faster than the watchdog
            looks loses the oldest checks, not memory.
        reported: what was already reported, so each problem is reported once.
        pending: problems found on a program thread (lock order, found inside
            acquire), to be reported from the watchdog's thread: logging
            there could take a lock the finding thread holds.
        listeners: called with every problem reported (the pytest plugin).
        manual: tests set this to look with ``scan()`` themselves: the thread
            then only sleeps (as it does while an injected clock is in force).
        watchdog: the watchdog thread, and the pid it was started in.
        looking: held by the watchdog while it looks and reports, so that
            the exit waits (briefly) for a report being written.
        publishing: held while queued problems are reported, so that
            whoever publishes returns only once every one queued before is
            told (reentrant: telling one may publish in turn).
        cycles_before: the wait cycles of the previous look; a cycle is
            reported only when seen twice.
        finished_names: stand-in ident -> the finished thread's name.
        next_held_look: when the next look for locks left held may happen
            (real time, not the clock).
        dead_owners: locks whose owner finished while holding them: lock ->
            (ident, stand-in, the lock's acquisition count then).  Kept beside
            the lock (``_owner`` is the lock's own business, and a C field);
            any later acquisition of the lock makes the entry stale.
        owners_died: whether ``dead_owners`` was ever given an entry; until
            then :func:`owner_of` (every contended acquisition) skips the
            lookup, which makes a weak reference each time.
        leaked_permits: BoundedSemaphore permits of finished threads,
            reported if still held after a grace period: (semaphore,
            stand-in) -> (ended at, name).
        permits: thread ident -> the semaphores it holds permits of (kept by
            the semaphores).
        deadlocked: the waits of threads in a deadlock already reported
            (ident -> the wait), so that each deadlock is reported once.
        never_proceed: the waits of the threads the latest look found
            deadlocked, reported yet or not: the stuck check leaves them out.
        episodes: what each stuck report covered, by the kind, name and
            operation of what the threads wait on: while one of those waits
            goes on, more threads stuck the same way join it silently.
        crashes: the latest threads that ended with an exception (bounded).
        crash_count: how many traced threads of this process have ended with
            an exception, ever (never reset, unlike ``crashes``): a
            primitive's ``_tt_crashes_before`` is this count when it was made.
        endings: stand-in ident -> how that finished thread ended.
    """

    def __init__(self) -> None:
        self.blocked: dict[int, Blocked] = {}
        self.pending: collections.deque[Any] = collections.deque()
        self.listeners: list[Callable[[Any], None]] = []
        self.manual = False
        self.watchdog: Optional[Any] = None
        self.watchdog_pid = 0
        self.wake = _originals.Event()
        self.looking = _originals.allocate_lock()
        #: Held while queued problems are reported (see publish_pending).
        self.publishing = _originals.RLock()
        self.crash_count = 0
        self._findings_afresh()

    def _findings_afresh(self) -> None:
        self.ended: collections.deque[tuple[int, Any, Any, int]] = collections.deque(maxlen=100_000)
        self.reported: set[Any] = set()
        self.cycles_before: set[frozenset[Any]] = set()
        #: Stand-in idents for finished threads that still hold something, so
        #: that a new thread given the same ident by the OS is not taken for
        #: the holder.
        self.tombstones = itertools.count(-1, -1)
        self.finished_names: dict[int, str] = {}
        self.next_held_look = 0.0
        self.dead_owners: weakref.WeakKeyDictionary[Any, tuple[int, int, int]] = (
            weakref.WeakKeyDictionary()
        )
        self.owners_died = False
        self.leaked_permits: dict[tuple[Any, int], tuple[int, str]] = {}
        self.permits: dict[int, set[Any]] = {}
        self.deadlocked: dict[int, Blocked] = {}
        self.never_proceed: dict[int, Blocked] = {}
        self.episodes: dict[tuple[str, str, str], list[tuple[int, Blocked]]] = {}
        self.crashes: collections.deque[Ending] = collections.deque(maxlen=CRASHES_KEPT)
        self.endings: dict[int, Ending] = {}

    def fresh(self) -> DetectorState:
        """No findings; the waits in progress, the listeners and the thread stay.

        Problems still waiting to be published do not: they belong to the
        state they were found in (a test's inversion is not the next one's).
        """
        state = DetectorState.__new__(DetectorState)
        state.blocked = self.blocked
        state.pending = collections.deque()
        state.listeners = self.listeners
        state.manual = self.manual
        state.watchdog = self.watchdog
        state.watchdog_pid = self.watchdog_pid
        state.wake = self.wake
        state.looking = self.looking
        state.publishing = self.publishing
        state.crash_count = self.crash_count
        state._findings_afresh()
        return state

    def after_fork_in_child(self) -> None:
        """The child has one thread: the parent's waits, watchdog and findings are not its own.

        Locks that other threads of the parent held at the fork stay held
        in the child forever (by nobody): they get stand-in owners, named
        after those threads, so a report never names a thread of the child
        that happens to get the same ident.
        """
        self.watchdog = None  # started again on the next wait
        self.wake = _originals.Event()
        self.looking = _originals.allocate_lock()  # maybe held by the parent's watchdog
        self.publishing = _originals.RLock()  # likewise
        me = _originals.get_ident()
        for ident in list(self.blocked):
            if ident != me:
                self.blocked.pop(ident, None)
        self.pending.clear()  # the parent reports them
        self._findings_afresh()
        names = runtime.names_at_fork

        def orphan(ident: int) -> int:
            name = names.get(ident, f"thread-{ident}")
            return self.tombstone(f"{name} (in the parent process, at the fork)")

        for primitive in runtime.primitives():
            kind = getattr(primitive, "_tt_kind", "")
            if kind in ("lock", "rlock"):
                owner = primitive._owner
                if owner is not None and owner != me and primitive._raw_locked():
                    self.owner_died(primitive, owner, orphan(owner))
            elif kind in ("semaphore", "bounded_semaphore"):
                # No lock taken: another thread may have held the semaphore's at the fork.
                holders = primitive._tt_holders
                for who in [who for who in holders if who != me and who >= 0]:
                    holders[orphan(who)] = holders.pop(who)

    def owner_died(self, lock: Any, owner: int, stand_in: int) -> None:
        """``lock`` is still held by ``owner``, a thread gone: ``stand_in`` holds it now.

        Until the lock is acquired again (see ``dead_owners``).
        """
        self.owners_died = True
        self.dead_owners[lock] = (owner, stand_in, lock._acquisitions)

    def tombstone(self, name: str, ending: Optional[Ending] = None) -> int:
        """A stand-in ident for a finished thread called ``name`` (and how it ended)."""
        tomb = next(self.tombstones)
        self.finished_names[tomb] = name
        if ending is not None:
            self.endings[tomb] = ending
        return tomb


def name_of(ident: int) -> str:
    """A thread's name, finished ones included."""
    return runtime.detect.finished_names.get(ident) or _originals.thread_name(ident)


def owner_of(lock: Any) -> Optional[int]:
    """The thread holding ``lock``: its ident, or a stand-in if that thread finished."""
    owner: Optional[int] = lock._owner
    state = runtime.detect
    if not state.owners_died:
        return owner
    dead = state.dead_owners.get(lock)
    if dead is not None and owner == dead[0] and lock._acquisitions == dead[2]:
        return dead[1]
    return owner


runtime.install("detect", DetectorState())
