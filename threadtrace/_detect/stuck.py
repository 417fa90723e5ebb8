"""Stuck threads: waits without a timeout that last longer than ``stuck_after``.

A report says what the threads wait on, who holds it and where they took
it, why it does not end as far as threadtrace can tell (a lost wake-up, a
leaked permit, a thread that ended with an exception), and shows the
threads that matter in full, the others in a line each.

One problem, one report:

* Threads stuck on the same thing (same kind, name and operation: a
  thousand requests on one lock, three parties at one barrier, one lock per
  object made on one line) are one report, their identical stacks shown
  once.  While a wait it covered goes on, more threads stuck the same way
  join it silently.
* A thread stuck behind another (waiting for a lock it holds, or joining
  it) is reported with the wait at the end of that chain.
* Threads in a reported deadlock are not stuck threads.

Waiting for work is not stuck: a consumer in ``Queue.get()``, a pool's idle
workers, waits for other work to finish (``Future.result()``,
``concurrent.futures.wait()``, ``Executor.shutdown()``), and a ``join`` on a
thread that is not itself stuck (busy, or blocked only for a moment).
``Queue.join()`` is stuck when the queue is empty, its consumers have waited
in ``get()`` for ``stuck_after``, and tasks are still not done: a
``task_done()`` was forgotten.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Any, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support import units as _units
from .calls import WAITING_FOR_WORK, library_call
from .describe import describe, display, ending_text, holder_text, how_it_ended, made, site_text
from .dump import (
    ages_text,
    full_views,
    names_text,
    one_liners,
    program_threads,
    wait_phrase,
    who_text,
)
from .problems import Problem
from .state import Blocked, name_of, owner_of

Key = tuple[str, str, str]


def look(snapshot: dict[int, Blocked], now: int) -> list[Problem]:
    """Report the waits that have become stuck since the last look, grouped."""
    after = runtime.config.stuck_after
    if not after:
        return []
    state = runtime.detect
    for key, waits in list(state.episodes.items()):
        if not any(state.blocked.get(ident) is wait for ident, wait in waits):
            del state.episodes[key]  # every wait it covered has ended
    limit = now - int(after * 1e9)
    candidates = [
        (ident, wait)
        for ident, wait in sorted(snapshot.items(), key=lambda item: item[1].since)
        if not wait.timed
        and not wait.woken
        and wait.since <= limit
        and ("stuck", ident, wait.since) not in state.reported
        and ("starved", ident, wait.since) not in state.reported  # told, as starved
        and state.never_proceed.get(ident) is not wait  # a deadlock: reported as one
    ]
    if not candidates:
        return []
    # Only now: every thread's frames, held for as long as this look lasts,
    # keep their locals alive (a program that checks for a freed object
    # would see it still there).
    frames = sys._current_frames()
    # The frames are read after the snapshot, and under load (a thousand
    # threads leaving a barrier, each wanting the GIL) long after.  What is
    # reported is the table as it is now, beside the frames: a wait that ended
    # meanwhile is not shown as going on, a thread that began one is shown in
    # it, and a wait is stuck only if it went on all that time.
    snapshot = dict(state.blocked)
    candidates = [(ident, wait) for ident, wait in candidates if snapshot.get(ident) is wait]
    groups: dict[Key, list[int]] = {}
    for ident, wait in candidates:
        if _stuck(ident, wait, snapshot, frames, limit, set()):
            root = _root(ident, snapshot)
            groups.setdefault(_key(snapshot[root], frames.get(root)), []).append(ident)
    problems = []
    for key, stuck in groups.items():
        episode = state.episodes.get(key)
        subjects = [
            ident
            for ident, wait in sorted(snapshot.items(), key=lambda item: item[1].since)
            if not wait.timed
            and _key(wait, frames.get(ident)) == key
            and state.never_proceed.get(ident) is not wait
        ]
        behind = [ident for ident in stuck if ident not in subjects]
        covered = [(ident, snapshot[ident]) for ident in subjects + behind]
        for ident, wait in covered:
            state.reported.add(("stuck", ident, wait.since))
        if episode is not None:
            episode.extend(covered)  # more of the same: already told
            continue
        state.episodes[key] = covered
        problems.append(_stuck_problem(subjects, behind, snapshot, frames, now))
    return problems


def _key(wait: Blocked, frame: Optional[FrameType]) -> Key:
    """What a report is about: the kind, name and operation (or library call) waited in."""
    primitive = wait.primitive
    kind = getattr(primitive, "_tt_kind", "thread")
    call = library_call(frame) if kind == "condition" else None
    return (kind, primitive.name, call.label if call is not None else wait.operation)


def _stuck(
    ident: int,
    wait: Blocked,
    snapshot: dict[int, Blocked],
    frames: dict[int, FrameType],
    limit: int,
    seen: set[int],
) -> bool:
    """Whether a wait without a timeout, older than ``stuck_after``, is stuck rather than idle."""
    seen.add(ident)
    if wait.operation == "join":
        joined = getattr(wait.primitive, "ident", None)
        inner = snapshot.get(joined) if joined is not None else None
        if inner is None or inner.timed or inner.woken or inner.since > limit or joined in seen:
            return False  # the joined thread is working (or will wake): slow, not stuck
        assert joined is not None
        return _stuck(joined, inner, snapshot, frames, limit, seen)
    if getattr(wait.primitive, "_tt_kind", "") != "condition":
        return True
    call = library_call(frames.get(ident))
    if call is None or call.label not in WAITING_FOR_WORK:
        return True
    return call.label == "Queue.join" and _join_stuck(call.target, snapshot, limit)


def _join_stuck(queue: Any, snapshot: dict[int, Blocked], limit: int) -> bool:
    """An empty queue, its consumers idle in get() for stuck_after, and tasks not done."""
    try:
        if queue.unfinished_tasks <= 0 or queue.qsize() > 0:
            return False
        getting = [w for w in snapshot.values() if w.primitive is queue.not_empty]
    except AttributeError:  # not a queue.Queue after all
        return False
    return bool(getting) and all(w.since <= limit for w in getting)


def _root(ident: int, snapshot: dict[int, Blocked]) -> int:
    """The end of the chain of threads ``ident`` waits behind (lock owners, joined threads)."""
    seen = {ident}
    at = ident
    while True:
        wait = snapshot[at]
        kind = getattr(wait.primitive, "_tt_kind", "")
        if wait.operation == "join":
            nxt = getattr(wait.primitive, "ident", None)
        elif kind in ("lock", "rlock"):
            nxt = owner_of(wait.primitive)
        else:
            return at
        inner = snapshot.get(nxt) if nxt is not None else None
        if nxt is None or nxt in seen or inner is None or inner.timed:
            return at
        seen.add(nxt)
        at = nxt


# -- the report -------------------------------------------------------------------------------


def _stuck_problem(
    subjects: list[int],
    behind: list[int],
    snapshot: dict[int, Blocked],
    frames: dict[int, FrameType],
    now: int,
) -> Problem:
    first = snapshot[subjects[0]]
    what = _what(first, frames.get(subjects[0]))
    waits = [snapshot[ident] for ident in subjects]
    who = f"{name_of(subjects[0])} has" if len(subjects) == 1 else f"{len(subjects)} threads have"
    waited = ages_text(waits, now)
    lines = [f"threadtrace: STUCK: {who} been blocked for {waited} {what}, with no timeout"]
    why: list[str] = []
    for ident in subjects:
        for line in _why(ident, snapshot, frames, now):
            if line not in why:
                why.append(line)
    lines.extend(f"  {line}" for line in why)
    if behind:
        lines.append("  blocked behind it:")
        lines.extend(_behind_lines(behind, snapshot, frames))
    lines.extend(f"  {line}" for line in _crashes(first))
    everyone = program_threads(frames)
    holders = [
        holder
        for holder in _holders(subjects, snapshot)
        if holder in frames and holder not in subjects and holder not in behind
    ]
    shown = subjects + holders + behind
    lines.extend(full_views(shown, snapshot, frames, now))
    others = [ident for ident in everyone if ident not in shown]
    if others:
        lines.append("")
        lines.append("  other threads:")
        lines.extend(one_liners(others, snapshot, frames, now))
    names = [name_of(ident) for ident in subjects + behind]
    return Problem("stuck_thread", logging.WARNING, "\n".join(lines), names)


def _what(wait: Blocked, frame: Optional[FrameType]) -> str:
    """``in Condition.wait on Condition items``, ``joining thread worker``, ``in Queue.join...``."""
    primitive = wait.primitive
    if wait.operation == "join":
        return f"joining thread {primitive.name}"
    call = library_call(frame) if getattr(primitive, "_tt_kind", "") == "condition" else None
    if call is not None:
        return f"in {call.label} on {primitive.name}"
    return f"in {display(primitive)}.{wait.operation} on {describe(primitive)}"


def _behind_lines(
    behind: list[int], snapshot: dict[int, Blocked], frames: dict[int, FrameType]
) -> list[str]:
    groups: dict[str, list[int]] = {}
    for ident in behind:
        wait = snapshot[ident]
        phrase = wait_phrase(wait, frames.get(ident))
        if getattr(wait.primitive, "_tt_kind", "") in ("lock", "rlock"):
            owner = owner_of(wait.primitive)
            if owner is not None:
                phrase += f", held by {name_of(owner)}"
        groups.setdefault(phrase, []).append(ident)
    lines = []
    for phrase, members in groups.items():
        lines.append(f"    {who_text(members)}: {phrase}")
    return lines


def _holders(subjects: list[int], snapshot: dict[int, Blocked]) -> list[int]:
    """The threads holding what the subjects wait for (and a condition's lock)."""
    found: list[int] = []
    for ident in subjects:
        wait = snapshot[ident]
        primitive = wait.primitive
        kind = getattr(primitive, "_tt_kind", "")
        candidates: list[Optional[int]] = []
        if wait.operation == "join":
            candidates.append(getattr(primitive, "ident", None))
        elif kind in ("lock", "rlock"):
            candidates.append(owner_of(primitive))
        elif kind in ("semaphore", "bounded_semaphore"):
            candidates.extend(sorted(primitive._tt_holders))
        elif kind == "condition":
            candidates.append(getattr(getattr(primitive, "_lock", None), "_owner", None))
        for holder in candidates:
            if holder is not None and holder not in found:
                found.append(holder)
    return found


def _crashes(wait: Blocked) -> list[str]:
    """The threads that ended with an exception since the primitive was made (or the wait began)."""
    primitive = wait.primitive
    state = runtime.detect
    before = getattr(primitive, "_tt_crashes_before", None)
    if before is not None:  # the last ones kept of those counted since it was made
        since_made = state.crash_count - before
        crashes = list(state.crashes)[-since_made:] if since_made > 0 else []
    else:
        crashes = [ending for ending in state.crashes if ending.at >= wait.since]
    if not crashes:
        return []
    count = len(crashes)
    threads = "1 thread" if count == 1 else f"{count} threads"
    when = f"{describe(primitive)} was made" if before is not None else "the wait began"
    lines = [f"{threads} ended with an exception since {when}:"]
    lines.extend(f"  {ending.name} {ending_text(ending)}" for ending in crashes)
    return lines


def _why(
    ident: int, snapshot: dict[int, Blocked], frames: dict[int, FrameType], now: int
) -> list[str]:
    """What keeps a wait from ending, as far as threadtrace can tell."""
    wait = snapshot[ident]
    primitive = wait.primitive
    if wait.operation == "join":
        inner = snapshot.get(getattr(primitive, "ident", -1))
        if inner is None:
            return []
        return [
            f"{primitive.name} is itself blocked in {display(inner.primitive)}."
            f"{inner.operation} on {describe(inner.primitive)}"
        ]
    call = library_call(frames.get(ident)) if primitive._tt_kind == "condition" else None
    lines = [made(primitive, kind=call is None)]
    if call is not None and call.label == "Queue.join":
        lines.extend(_why_queue_join(call.target, snapshot, now))
    else:
        explain = _EXPLAIN.get(getattr(primitive, "_tt_kind", ""))
        if explain is not None:
            lines.extend(explain(primitive, wait))
    lines.extend(_held_while_waiting(ident, snapshot))
    return lines


def _held_while_waiting(ident: int, snapshot: dict[int, Blocked]) -> list[str]:
    """A thread that waits holding a lock others wait for: one of them may be its waker."""
    wait = snapshot[ident]
    if getattr(wait.primitive, "_tt_kind", "") not in ("condition", "event", "barrier"):
        return []
    lines = []
    for lock in {w.primitive for w in snapshot.values()}:
        if getattr(lock, "_tt_kind", "") not in ("lock", "rlock") or owner_of(lock) != ident:
            continue
        waiters = [i for i, w in snapshot.items() if w.primitive is lock]
        verb = "waits" if len(waiters) == 1 else "wait"
        lines.append(
            f"{name_of(ident)} holds {describe(lock)} while it waits, and {names_text(waiters)} "
            f"{verb} for it: if one of them is to wake it, this is a deadlock "
            "(Condition.wait() lets go of the condition's own lock only)"
        )
    return sorted(lines)


def _why_queue_join(queue: Any, snapshot: dict[int, Blocked], now: int) -> list[str]:
    getting = [w for w in snapshot.values() if w.primitive is queue.not_empty]
    left = queue.unfinished_tasks
    tasks = "1 task was" if left == 1 else f"{left} tasks were"
    waited = _units.duration((now - max(w.since for w in getting)) / 1e9) if getting else "?"
    threads = "1 thread has" if len(getting) == 1 else f"{len(getting)} threads have"
    lines = [
        f"the queue is empty and {threads} waited in get() for {waited} or more, "
        f"but {tasks} never marked done"
    ]
    puts = _calls(queue.not_empty)
    gets = _calls(queue.not_full)
    if puts is not None and gets is not None:
        lines.append(
            f"put() {_times(puts)}, get() {_times(gets)}, task_done() {_times(puts - left)}: "
            "every get() needs its task_done(), on every path (try/finally)"
        )
    return lines


def _calls(condition: Any) -> Optional[int]:
    """How often ``notify()`` was called on a traced condition (a queue's: once a put, a get)."""
    notifies = getattr(condition, "_tt_notifies", None)
    unheard = getattr(condition, "_tt_unheard", None)
    return None if notifies is None or unheard is None else int(notifies + unheard)


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _why_lock(lock: Any, wait: Blocked) -> list[str]:
    owner = owner_of(lock)
    return ["nobody holds it"] if owner is None else [f"held by {holder_text(lock, owner)}"]


def _why_semaphore(semaphore: Any, wait: Blocked) -> list[str]:
    if semaphore._tt_counter:
        return [
            "its permits are given back by other threads than take them (a counter, "
            "as a producer's for its consumers): it waits for one to be given"
        ]
    holders = semaphore._tt_holder_sites()
    if not holders:
        return ["no permit is held by a traced thread"]
    lines = []
    for holder, sites in holders.items():
        state = ""
        if holder not in _originals._active:
            state = f" ({how_it_ended(holder)}: the permit leaked)"
        where = ", ".join(site_text(site) for site in sites) or "an unknown site"
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
        lines.append(f"its lock is held by {holder_text(lock, owner)}")
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
