"""The watchdog: real deadlocks, stuck threads, and primitives held by finished threads.

Every traced operation that blocks registers itself in :data:`blocked` for
as long as it blocks (slow path only: an uncontended acquire never gets
here).  A daemon thread of threadtrace's own wakes at least twice a second
and looks at that table:

* **Deadlocks.**  A wait without a timeout on a ``Lock``/``RLock`` (whose
  owner is known), on a semaphore (whose permit holders are known) or a
  ``join`` (on a known thread) can only end when those threads act.  The
  threads that can never act are the greatest set in which every member
  waits only on members: found by removing, until nothing changes, every
  thread that waits on someone outside the set.  What is left is
  deadlocked; each cycle in it is reported once, when all of its waits are
  older than ``deadlock_after``.  Waits with a timeout, ``Condition``,
  ``Event`` and ``Barrier`` waits (anyone may notify), and waits on a
  running thread are never part of a deadlock, so RLock recursion,
  condition waits (which release their lock) and slow threads stay quiet.
* **Stuck threads.**  A wait without a timeout older than ``stuck_after``
  is reported once, with what it waits on, who holds it and every thread's
  stack; waiting for work (``queue.Queue.get``), for other work to finish
  (``Queue.join``, ``Future.result``, a ``join`` on a thread that is not
  itself blocked) is not stuck.
* **Held by the dead.**  When a traced thread ends, the locks and
  ``BoundedSemaphore`` permits it still holds are reported: nobody can
  release an ``RLock`` for it, and a permit it took is a leak.

:func:`scan` does one look, with the clock threadtrace uses, so tests drive
it directly with a fake clock.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import sys
import time
import traceback
import weakref
from types import FrameType
from typing import Any, Callable, Iterable, Optional

from . import _originals, _state, _units
from ._clock import SystemClock
from ._exceptions import DeadlockError
from ._sites import Site, first_user_frame

logger = logging.getLogger("threadtrace")

#: Exit status of the process when ``on_deadlock="exit"``.
DEADLOCK_EXIT_STATUS = 3

#: Longest pause between two looks, in seconds.
MAX_INTERVAL = 0.5


class Blocked:
    """One thread, blocked in one operation on one primitive."""

    __slots__ = (
        "doomed",
        "notifies",
        "operation",
        "previous",
        "primitive",
        "since",
        "timeout",
        "unheard",
    )

    def __init__(
        self,
        primitive: Any,
        operation: str,
        since: int,
        timeout: Optional[float],
        previous: Optional[Blocked],
    ) -> None:
        self.previous = previous  # a wait this one interrupts (a Condition re-taking its lock)
        self.primitive = primitive
        self.operation = operation
        self.since = since
        self.timeout = timeout
        self.notifies = getattr(primitive, "_tt_notifies", 0)
        self.unheard = getattr(primitive, "_tt_unheard", 0)
        #: The report of the deadlock this wait must end with (on_deadlock="raise").
        self.doomed: Optional[str] = None

    @property
    def timed(self) -> bool:
        return self.timeout is not None


#: Thread ident -> what it is blocked in now.  Written by the blocked thread
#: only (a dict item assignment is atomic), read by the watchdog.
blocked: dict[int, Blocked] = {}

#: Traced threads that ended since the last look: (ident, name, thread).
#: Bounded: a program that ends threads faster than the watchdog looks loses
#: the oldest checks, not memory.
ended: collections.deque[tuple[int, str, Any]] = collections.deque(maxlen=100_000)

#: What was already reported, so each problem is reported once.
_reported: set[Any] = set()

_watchdog: Optional[Any] = None
_watchdog_pid = 0
#: Tests set this to look with scan() themselves: the thread then only sleeps
#: (as it does while an injected clock, such as a FakeClock, is in force).
manual = False
_wake = _originals.Event()


def begin(primitive: Any, operation: str, timeout: Optional[float]) -> Optional[Blocked]:
    """The calling thread is about to block; every call is paired with :func:`end`.

    ``timeout`` is ``None`` for a wait that can last forever.  Returns the
    entry (``None`` if it could not be made).  Never raises.
    """
    me = _originals.get_ident()
    try:
        wait = Blocked(primitive, operation, _state.clock.monotonic_ns(), timeout, blocked.get(me))
        blocked[me] = wait
        if _watchdog is None or _watchdog_pid != os.getpid():
            _start_watchdog()
    except Exception as error:  # noqa: BLE001 - never raise into the host
        _state.internal_error("watchdog", error)
        return None
    return wait


def end() -> None:
    """The calling thread stopped blocking in its latest :func:`begin`."""
    me = _originals.get_ident()
    wait = blocked.get(me)
    if wait is None or wait.previous is None:
        blocked.pop(me, None)
    else:
        blocked[me] = wait.previous


def current() -> Optional[Blocked]:
    """What the calling thread is blocked in, seen from inside the wait."""
    return blocked.get(_originals.get_ident())


#: Thread ident -> the semaphores it holds permits of (kept by the semaphores).
_permits: dict[int, set[Any]] = {}


def permits_held(ident: int) -> set[Any]:
    """The semaphores thread ``ident`` holds permits of (the semaphore updates it)."""
    held = _permits.get(ident)
    if held is None:
        held = _permits[ident] = set()
    return held


def permit_returned(ident: int, semaphore: Any) -> None:
    """Thread ``ident`` holds no permit of ``semaphore`` any more."""
    held = _permits.get(ident)
    if held is not None:
        held.discard(semaphore)


def thread_ended(ident: int, thread: Any) -> None:
    """A traced thread finished (called in it, as it ends).

    Its semaphore permits are known right here, and handed to stand-ins at
    once, before the OS gives the ident to a new thread.  The locks it may
    still hold are for the watchdog to find (a look at every live lock),
    at once but at most a few times a second.
    """
    semaphores = _permits.pop(ident, None)
    if not _state.config.watchdog:
        return
    if semaphores:
        now = _state.clock.monotonic_ns()
        for semaphore in list(semaphores):
            tomb = _tombstone(thread.name)
            if (
                semaphore._tt_rename_holder(ident, tomb)
                and semaphore._tt_kind == "bounded_semaphore"
            ):
                # A plain Semaphore's permits roam: only bounded ones leak.
                _leaked_permits[(semaphore, tomb)] = (now, thread.name)
    ended.append((ident, thread.name, thread))
    if _watchdog is None or _watchdog_pid != os.getpid():
        _start_watchdog()
    _wake.set()


def _start_watchdog() -> None:
    global _watchdog, _watchdog_pid
    if not _state.config.watchdog:
        return
    with _state.book:
        if _watchdog is not None and _watchdog_pid == os.getpid():
            return
        _watchdog_pid = os.getpid()
        _watchdog = _originals.Thread(target=_watch, name="threadtrace-watchdog", daemon=True)
    with _state.guarded():  # threadtrace's own thread: never traced
        _watchdog.start()


def _interval() -> float:
    config = _state.config
    interval = min(MAX_INTERVAL, config.deadlock_after / 2)
    if config.stuck_after:
        interval = min(interval, config.stuck_after / 4)
    return max(interval, 0.01)


def _watch() -> None:
    while True:
        _wake.wait(_interval())
        _wake.clear()
        if manual or not isinstance(_state.clock, SystemClock):
            continue  # under an injected clock, its owner looks with scan()
        try:
            with _state.guarded():
                if _state.config.watchdog:
                    scan()
                else:
                    publish_pending()
        except Exception as error:  # noqa: BLE001 - the watchdog must outlive its bugs
            _state.internal_error("watchdog", error)


# -- one look --------------------------------------------------------------------------


class Problem:
    """One thing the watchdog found, reported once."""

    def __init__(self, kind: str, level: int, text: str, threads: Iterable[str]) -> None:
        self.kind = kind  # deadlock | stuck_thread | held_by_finished_thread
        self.level = level
        self.text = text
        self.threads = tuple(threads)

    def __repr__(self) -> str:
        return f"<Problem {self.kind}: {self.text.splitlines()[0]}>"


def scan(now: Optional[int] = None) -> list[Problem]:
    """Look once; report and return what is new (problems found elsewhere first)."""
    problems = publish_pending()
    if now is None:
        now = _state.clock.monotonic_ns()
    snapshot = dict(blocked)
    looks: list[Callable[[], list[Problem]]] = [
        lambda: _held_by_finished(now),
        lambda: _deadlocks(snapshot, now),
        lambda: _stuck(snapshot, now),
    ]
    for look in looks:
        try:  # one look failing must not lose the others' findings
            found = look()
        except Exception as error:  # noqa: BLE001 - the watchdog must outlive its bugs
            _state.internal_error("watchdog", error)
            continue
        for problem in found:
            _report(problem)
        problems.extend(found)
    return problems


#: Problems found on a program thread (lock order, found inside acquire),
#: to be reported from the watchdog's thread: logging there could take a
#: lock the finding thread holds.
pending: collections.deque[Problem] = collections.deque()


def publish_later(problem: Problem) -> None:
    """Report ``problem`` soon, from the watchdog's thread (or at exit, without one)."""
    pending.append(problem)
    if _watchdog is None or _watchdog_pid != os.getpid():
        _start_watchdog()
    _wake.set()


def publish_pending() -> list[Problem]:
    """Report what :func:`publish_later` queued; returns it."""
    done = []
    while pending:
        try:
            problem = pending.popleft()
        except IndexError:  # the watchdog took the last one
            break
        _report(problem)
        done.append(problem)
    return done


#: Called with every problem reported (the pytest plugin listens here).
listeners: list[Any] = []


def _report(problem: Problem) -> None:
    """Log ``problem``, record it on the trace, and tell the listeners.  Never raises."""
    logger.log(problem.level, "%s", problem.text)
    recorder = _state.recorder
    if recorder is not None:
        recorder.problem(problem.kind, problem.text, problem.threads)
    for listener in list(listeners):
        try:
            listener(problem)
        except Exception as error:  # noqa: BLE001 - a listener never breaks reporting
            _state.internal_error("problem listener", error)


# -- deadlocks ---------------------------------------------------------------------------


def releasers(wait: Blocked) -> Optional[tuple[int, ...]]:
    """The threads that must act to end ``wait``, or ``None`` when anyone might."""
    if wait.timed:
        return None
    primitive = wait.primitive
    kind = getattr(primitive, "_tt_kind", "")
    if wait.operation == "join":
        ident = getattr(primitive, "ident", None)
        return (ident,) if ident is not None and primitive.is_alive() else None
    if kind in ("lock", "rlock"):
        owner = owner_of(primitive)
        return (owner,) if owner is not None else None
    if kind in ("semaphore", "bounded_semaphore"):
        holders = tuple(primitive._tt_holders)
        return holders or None
    return None


def _deadlocks(snapshot: dict[int, Blocked], now: int) -> list[Problem]:
    waits_on = {}
    for ident, wait in snapshot.items():
        who = releasers(wait)
        if who is not None:
            waits_on[ident] = who
    stuck = set(waits_on)
    changed = True
    while changed:
        changed = False
        for ident in list(stuck):
            if any(other not in stuck for other in waits_on[ident]):
                stuck.discard(ident)
                changed = True
    global _cycles_before
    problems = []
    seen: set[int] = set()
    cycles_now: set[frozenset[Any]] = set()
    threshold = _state.config.deadlock_after * 1e9
    # The oldest wait first (then by thread name), so a report reads the same every time.
    for start in sorted(stuck, key=lambda i: (snapshot[i].since, _originals.thread_name(i))):
        if start in seen:
            continue
        cycle = _cycle_from(start, waits_on, stuck)
        seen.update(cycle)
        # The same waits (the very entries) and the same owners as at the
        # previous look: a lock changing hands between reading the table and
        # reading its owner cannot make a cycle that is not there.
        shape = frozenset((i, snapshot[i], waits_on[i]) for i in cycle)
        cycles_now.add(shape)
        if shape not in _cycles_before:
            continue
        if any(now - snapshot[i].since < threshold for i in cycle):
            continue  # too young: a transient state, or about to resolve
        if any(blocked.get(i) is not snapshot[i] for i in cycle):
            continue  # one of them moved on since the snapshot
        key = ("deadlock", frozenset((i, snapshot[i].since) for i in cycle))
        if key in _reported:
            continue
        _reported.add(key)
        problems.append(_deadlock_problem(cycle, snapshot, now))
    _cycles_before = cycles_now
    return problems


#: The wait cycles of the previous look; a cycle is reported only when seen twice.
_cycles_before: set[frozenset[Any]] = set()


def _cycle_from(start: int, waits_on: dict[int, tuple[int, ...]], stuck: set[int]) -> list[int]:
    """Follow waits from ``start`` until a thread repeats; the loop, in order."""
    path: list[int] = []
    at = start
    while at not in path:
        path.append(at)
        at = next(other for other in waits_on[at] if other in stuck)
    cycle = path[path.index(at) :]
    first = cycle.index(min(cycle, key=_originals.thread_name))
    return cycle[first:] + cycle[:first]  # begin with the first name, for stable reports


def _deadlock_problem(cycle: list[int], snapshot: dict[int, Blocked], now: int) -> Problem:
    names = {ident: name_of(ident) for ident in cycle}
    count = len(cycle)
    if count == 1:
        headline = f"{names[cycle[0]]} waits for itself and will never proceed"
    else:
        headline = f"{count} threads wait for each other and will never proceed"
    lines = [f"threadtrace: DEADLOCK: {headline}"]
    for i, ident in enumerate(cycle):
        wait = snapshot[ident]
        nxt = cycle[(i + 1) % count]
        verb = "joins" if wait.operation == "join" else "waits for"
        what = names[nxt] if wait.operation == "join" else _describe(wait.primitive)
        held = "" if wait.operation == "join" else f", held by {names[nxt]}"
        lines.append(f"  {names[ident]} {verb} {what}{held}")
    frames = sys._current_frames()
    for ident in cycle:
        lines.append("")
        lines.extend(_thread_block(ident, names[ident], snapshot.get(ident), frames, now))
    primitives = [snapshot[i].primitive for i in cycle if snapshot[i].operation != "join"]
    if primitives:
        lines.append("")
        lines.append("  where they were made:")
        for primitive in primitives:
            lines.append(f"    {_made(primitive)}")
    problem = Problem("deadlock", logging.ERROR, "\n".join(lines), names.values())
    _act_on_deadlock(cycle, snapshot, problem)
    return problem


def _act_on_deadlock(cycle: list[int], snapshot: dict[int, Blocked], problem: Problem) -> None:
    action = _state.config.on_deadlock
    if action == "raise":
        # The youngest wait closed the cycle: ending it breaks the cycle.
        for ident in sorted(cycle, key=lambda i: -snapshot[i].since):
            wait = snapshot[ident]
            if wait.previous is not None:
                continue  # a Condition taking its lock back: raising there breaks the lock's state
            if wait.operation == "join" or wait.primitive._tt_kind in ("lock", "rlock"):
                wait.doomed = problem.text
                return
    elif action == "exit":
        _report(problem)
        try:
            from ._api import shutdown

            shutdown(min(_state.config.flush_timeout, 2.0))
        finally:
            logging.shutdown()
            os._exit(DEADLOCK_EXIT_STATUS)


def raise_if_doomed(wait: Optional[Blocked]) -> None:
    """In a waiting thread: raise DeadlockError if the watchdog chose this wait to end."""
    if wait is not None and wait.doomed is not None:
        raise DeadlockError(wait.doomed)


# -- stuck threads -------------------------------------------------------------------------

#: (module, function) pairs whose waits are waiting for work, never stuck.
WAITING_FOR_WORK = {
    ("queue", "get"),
    ("queue", "join"),
    ("concurrent.futures._base", "result"),
    ("concurrent.futures._base", "exception"),
    ("concurrent.futures._base", "wait"),
    ("concurrent.futures._base", "as_completed"),
    ("concurrent.futures.thread", "shutdown"),
}


def _stuck(snapshot: dict[int, Blocked], now: int) -> list[Problem]:
    after = _state.config.stuck_after
    if not after:
        return []
    frames = sys._current_frames()
    problems = []
    for ident, wait in sorted(snapshot.items(), key=lambda item: item[1].since):
        if wait.timed or now - wait.since < after * 1e9:
            continue
        key = ("stuck", ident, wait.since)
        if key in _reported:
            continue
        if _waiting_for_work(frames.get(ident)):
            continue
        if wait.operation == "join":
            inner = snapshot.get(getattr(wait.primitive, "ident", None))  # type: ignore[arg-type]
            if inner is None or inner.timed:
                continue  # the joined thread is working (or will wake): slow, not stuck
        _reported.add(key)
        problems.append(_stuck_problem(ident, wait, snapshot, frames, now))
    return problems


def _waiting_for_work(frame: Optional[FrameType]) -> bool:
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if (module, frame.f_code.co_name) in WAITING_FOR_WORK:
            return True
        frame = frame.f_back
    return False


def _stuck_problem(
    ident: int,
    wait: Blocked,
    snapshot: dict[int, Blocked],
    frames: dict[int, FrameType],
    now: int,
) -> Problem:
    name = _originals.thread_name(ident)
    waited = _units.duration((now - wait.since) / 1e9)
    primitive = wait.primitive
    if wait.operation == "join":
        what = f"joining thread {primitive.name}"
    else:
        kind = _display(primitive)
        what = f"in {kind}.{wait.operation} on {_describe(primitive)}"
    lines = [f"threadtrace: STUCK: {name} has been blocked for {waited} {what}, with no timeout"]
    lines.extend(f"  {line}" for line in _why(wait, snapshot))
    lines.append("")
    lines.append("  every thread:")
    for other in sorted(frames, key=lambda i: (i != ident, _originals.thread_name(i))):
        if _plumbing(_originals._active.get(other)):
            continue  # telemetry plumbing's threads and threadtrace's own: not the program
        lines.append("")
        lines.extend(
            "  " + line
            for line in _thread_block(
                other, _originals.thread_name(other), snapshot.get(other), frames, now
            )
        )
    return Problem("stuck_thread", logging.WARNING, "\n".join(lines), [name])


def _plumbing(thread: Any) -> bool:
    """Whether ``thread`` is threadtrace's own or telemetry plumbing's (excluded modules)."""
    if thread is None:
        return False
    if getattr(thread, "_tt_traced", None) is False:
        return True
    target = getattr(thread, "_target", None)
    module = getattr(target, "__module__", None) or type(thread).__module__ or ""
    if module == "threadtrace" or module.startswith("threadtrace."):
        return True
    return any(
        module == prefix or module.startswith(prefix + ".")
        for prefix in _state.config.excluded_modules
    )


def _why(wait: Blocked, snapshot: dict[int, Blocked]) -> list[str]:
    """What keeps ``wait`` from ending, as far as threadtrace can tell."""
    primitive = wait.primitive
    if wait.operation == "join":
        inner = snapshot.get(getattr(primitive, "ident", -1))
        if inner is None:
            return []
        return [
            f"{primitive.name} is itself blocked in {_display(inner.primitive)}."
            f"{inner.operation} on {_describe(inner.primitive)}"
        ]
    lines = [_made(primitive)]
    explain = _EXPLAIN.get(getattr(primitive, "_tt_kind", ""))
    if explain is not None:
        lines.extend(explain(primitive, wait))
    return lines


def _why_lock(lock: Any, wait: Blocked) -> list[str]:
    owner = owner_of(lock)
    return ["nobody holds it"] if owner is None else [f"held by {_holder_text(lock, owner)}"]


def _why_semaphore(semaphore: Any, wait: Blocked) -> list[str]:
    holders = semaphore._tt_holder_sites()
    if not holders:
        return ["no permit is held by a traced thread"]
    lines = []
    for holder, sites in holders.items():
        state = "" if holder in _originals._active else " (finished: the permit leaked)"
        where = ", ".join(_site_text(site) for site in sites) or "an unknown site"
        lines.append(f"a permit is held by {name_of(holder)}{state}, acquired at {where}")
    return lines


def _why_condition(condition: Any, wait: Blocked) -> list[str]:
    notifies = condition._tt_notifies - wait.notifies
    if notifies:
        lines = [f"notified {notifies} times since the wait began, but not this waiter"]
    elif wait.unheard:
        calls = "call" if wait.unheard == 1 else "calls"
        lines = [
            f"nobody has notified it since the wait began; {wait.unheard} notify() {calls} "
            "before it found no waiter: a wake-up may have been lost (wait in a loop on "
            "the state, or use wait_for)"
        ]
    else:
        lines = ["nobody has notified it since the wait began"]
    lock = getattr(condition, "_lock", None)
    owner = getattr(lock, "_owner", None)
    if owner is not None:
        lines.append(f"its lock is held by {_holder_text(lock, owner)}")
    return lines


def _why_event(event: Any, wait: Blocked) -> list[str]:
    return ["it has not been set since the wait began"]


def _why_barrier(barrier: Any, wait: Blocked) -> list[str]:
    return [
        f"{barrier.n_waiting} of {barrier.parties} parties are waiting; the others have not arrived"
    ]


_EXPLAIN: dict[str, Any] = {
    "lock": _why_lock,
    "rlock": _why_lock,
    "semaphore": _why_semaphore,
    "bounded_semaphore": _why_semaphore,
    "condition": _why_condition,
    "event": _why_event,
    "barrier": _why_barrier,
}


# -- held by finished threads -------------------------------------------------------------


#: Stand-in idents for finished threads that still hold something, so that a
#: new thread given the same ident by the OS is not taken for the holder.
_tombstones = itertools.count(-1, -1)
#: Stand-in ident -> the finished thread's name.
finished_names: dict[int, str] = {}


def name_of(ident: int) -> str:
    """A thread's name, finished ones included."""
    return finished_names.get(ident) or _originals.thread_name(ident)


#: When the next look for locks left held may happen (real time, not the clock).
_next_held_look = 0.0

#: Locks whose owner finished while holding them: lock -> (ident, stand-in, thread).
#: Kept beside the lock (``_owner`` is the lock's own business, and a C field).
_dead_owners: weakref.WeakKeyDictionary[Any, tuple[int, int, Any]] = weakref.WeakKeyDictionary()
#: BoundedSemaphore permits of finished threads, reported if still held after
#: a grace period: (semaphore, stand-in) -> (ended at, name, sites).
_leaked_permits: dict[tuple[Any, int], tuple[int, str]] = {}


def owner_of(lock: Any) -> Optional[int]:
    """The thread holding ``lock``: its ident, or a stand-in if that thread finished."""
    owner: Optional[int] = lock._owner
    dead = _dead_owners.get(lock)
    if dead is not None and owner == dead[0]:
        now_there = _originals._active.get(owner)
        if now_there is None or now_there is dead[2]:
            return dead[1]
    return owner


def _held_by_finished(now: Optional[int] = None) -> list[Problem]:
    from . import _lockorder

    if now is None:
        now = _state.clock.monotonic_ns()
    global _next_held_look
    problems = _permits_still_leaked(now)
    if not ended or time.monotonic() < _next_held_look:
        return problems
    started = time.monotonic()
    gone: dict[int, tuple[str, Any]] = {}
    while ended:
        ident, name, thread = ended.popleft()
        current = _originals._active.get(ident)
        if current is not None and current is not thread:
            continue  # the ident already belongs to a new thread: too late to tell
        gone[ident] = (name, thread)
    with _state.book:
        members = list(_state.live)
    for primitive in members:
        kind = getattr(primitive, "_tt_kind", "")
        if kind in ("lock", "rlock"):
            owner = primitive._owner
            if owner in gone and primitive._raw_locked():
                name, thread = gone[owner]
                _dead_owners[primitive] = (owner, _tombstone(name), thread)
                problems.append(_held_problem(primitive, owner, name, None))
    for ident in gone:
        _lockorder.thread_ended(ident)
    # A look at every live lock costs time in proportion to them: keep the
    # watchdog under a tenth of a core however fast threads come and go.
    took = time.monotonic() - started
    _next_held_look = time.monotonic() + max(0.05, 9 * took)
    return problems


def _permits_still_leaked(now: int) -> list[Problem]:
    """Permits of finished threads nobody gave back within the grace period.

    A permit taken by one thread may be released by another (a producer that
    acquires, a consumer that releases), so a finished holder is only a leak
    once ``stuck_after`` (or 5 s) has passed with the permit still out.
    """
    grace = (_state.config.stuck_after or 5.0) * 1e9
    problems = []
    for key, (ended_at, name) in list(_leaked_permits.items()):
        semaphore, tomb = key
        still = semaphore._tt_holder_sites().get(tomb)
        if not still:
            del _leaked_permits[key]
        elif now - ended_at >= grace:
            del _leaked_permits[key]
            problems.append(_held_problem(semaphore, tomb, name, still))
    return problems


def _tombstone(name: str) -> int:
    tomb = next(_tombstones)
    finished_names[tomb] = name
    return tomb


def _held_problem(primitive: Any, ident: int, name: str, sites: Optional[list[Site]]) -> Problem:
    if sites is None:
        where = _acquire_site_text(primitive)
        what = _describe(primitive)
        never = (
            "no other thread can release it"
            if primitive._tt_kind == "rlock"
            else ("every thread that acquires it will wait forever")
        )
    else:
        where = ", ".join(_site_text(site) for site in sites) or "an unknown site"
        count = len(sites)
        what = f"{count} permit{'s' if count != 1 else ''} of {_describe(primitive)}"
        fewer = "one fewer" if count == 1 else f"{count} fewer"
        them = "it" if count == 1 else "them"
        never = f"nobody gave {them} back: the semaphore has {fewer} to give"
    text = (
        f"threadtrace: HELD BY A FINISHED THREAD: {name} ended holding {what}, "
        f"acquired at {where}; {never}.\n"
        f"  {_made(primitive)}"
    )
    return Problem("held_by_finished_thread", logging.ERROR, text, [name])


# -- formatting ----------------------------------------------------------------------------


def _display(primitive: Any) -> str:
    from ._recorder import DISPLAY

    return DISPLAY.get(getattr(primitive, "_tt_kind", ""), type(primitive).__name__)


def _describe(primitive: Any) -> str:
    return f"{_display(primitive)} {primitive.name}"


def _site_text(site: Optional[Site]) -> str:
    if site is None or site.code is None:
        return "an unknown site"
    return f"{os.path.basename(site.filename)}:{site.lineno} in {site.function}"


def _made(primitive: Any) -> str:
    """``Lock ledger made at bank.py:10 in Bank.__init__``, or shorter when named after it."""
    site = primitive._tt_site
    if primitive._tt_name is None and site is not None and site.code is not None:
        return f"{_describe(primitive)} made in {site.function}"  # the name is the site
    return f"{_describe(primitive)} made at {_site_text(site)}"


def _acquire_site_text(lock: Any) -> str:
    """Where the current holder acquired ``lock``, when that acquisition was measured."""
    from . import _lockorder

    site = _lockorder.acquire_site(lock)
    if site is None and lock._t_acq:
        site = lock._site_acq
    if site is None:
        return "an unmeasured site (sample_every=1 or lock_order=true measure every one)"
    return _site_text(site)


def _holder_text(lock: Any, owner: int) -> str:
    state = "" if owner in _originals._active else " (finished)"
    return f"{name_of(owner)}{state}, acquired at {_acquire_site_text(lock)}"


def _thread_block(
    ident: int,
    name: str,
    wait: Optional[Blocked],
    frames: dict[int, FrameType],
    now: int,
) -> list[str]:
    """A thread: what it waits on, what it holds, and its stack."""
    lines = [f"  {name} (thread {ident})"]
    if wait is not None:
        age = _units.duration((now - wait.since) / 1e9)
        lines.append(
            f"    blocked for {age} in {_display(wait.primitive)}.{wait.operation}"
            + ("" if wait.operation == "join" else f" on {wait.primitive.name}")
        )
    for lock in _held_by(ident):
        lines.append(f"    holds {_describe(lock)}, acquired at {_acquire_site_text(lock)}")
    frame = frames.get(ident)
    if frame is not None:
        lines.append("    stack (most recent call last):")
        lines.extend(_stack_lines(frame, wait))
    return lines


def _held_by(ident: int) -> list[Any]:
    with _state.book:
        members = list(_state.live)
    return [
        p
        for p in members
        if getattr(p, "_tt_kind", "") in ("lock", "rlock") and p._owner == ident and p._raw_locked()
    ]


def _stack_lines(frame: FrameType, wait: Optional[Blocked]) -> list[str]:
    waiting_frame = first_user_frame(frame) if wait is not None else None
    pairs = list(_walk(frame))
    pairs.reverse()  # outermost first, as tracebacks read
    # Under `threadtrace run`, the program starts inside threadtrace's runner:
    # what is outside it (the command's own script, runpy) is not the program.
    runner = [
        i
        for i, (each, _) in enumerate(pairs)
        if each.f_globals.get("__name__") in ("threadtrace._cli", "runpy")
    ]
    if runner:
        pairs = pairs[runner[-1] + 1 :]
    summary = traceback.StackSummary.extract(iter(pairs), lookup_lines=True)
    lines = []
    for (each, _), entry in zip(pairs, summary):
        module = each.f_globals.get("__name__", "")
        if module.startswith("threadtrace") or module == "threading":
            continue
        mark = "   <-- waits here" if each is waiting_frame else ""
        lines.append(f'      File "{entry.filename}", line {entry.lineno}, in {entry.name}{mark}')
        if entry.line:
            lines.append(f"        {entry.line.strip()}")
    return lines


def _walk(frame: Optional[FrameType]) -> Iterable[tuple[FrameType, int]]:
    while frame is not None:
        yield frame, frame.f_lineno
        frame = frame.f_back


def _after_fork_in_child() -> None:
    """The child has one thread: forget the others' waits, and the parent's watchdog."""
    global _watchdog, _wake
    _watchdog = None  # started again on the next wait
    _wake = _originals.Event()
    me = _originals.get_ident()
    for ident in list(blocked):
        if ident != me:
            blocked.pop(ident, None)
    ended.clear()
    pending.clear()  # the parent reports them


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reset() -> None:
    """Forget what was reported (tests)."""
    global _next_held_look
    _next_held_look = 0.0
    _reported.clear()
    ended.clear()
    finished_names.clear()
    _dead_owners.clear()
    _leaked_permits.clear()
    _permits.clear()
    _cycles_before.clear()
