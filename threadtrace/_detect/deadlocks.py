"""Real deadlocks: threads that wait, without a timeout, only on each other.

A wait without a timeout on a ``Lock``/``RLock`` (whose owner is known), on
a semaphore (whose permit holders are known) or a ``join`` (on a known
thread) can only end when those threads act.  The threads that can never
act are the greatest set in which every member waits only on members: found
by removing, until nothing changes, every thread that waits on someone
outside the set.  What is left is deadlocked; each cycle in it is reported
once, when all of its waits are older than ``deadlock_after`` and a second
look found the very same waits.  Waits with a timeout, ``Condition``,
``Event`` and ``Barrier`` waits (anyone may notify), and waits on a running
thread are never part of a deadlock, so RLock recursion, condition waits
(which release their lock) and slow threads stay quiet.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .describe import describe, made, thread_block
from .problems import Problem, report
from .state import Blocked, name_of, owner_of

#: Exit status of the process when ``on_deadlock="exit"``.
DEADLOCK_EXIT_STATUS = 3


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


def look(snapshot: dict[int, Blocked], now: int) -> list[Problem]:
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
    state = runtime.detect
    problems = []
    seen: set[int] = set()
    cycles_now: set[frozenset[Any]] = set()
    threshold = runtime.config.deadlock_after * 1e9
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
        if shape not in state.cycles_before:
            continue
        if any(now - snapshot[i].since < threshold for i in cycle):
            continue  # too young: a transient state, or about to resolve
        if any(state.blocked.get(i) is not snapshot[i] for i in cycle):
            continue  # one of them moved on since the snapshot
        key = ("deadlock", frozenset((i, snapshot[i].since) for i in cycle))
        if key in state.reported:
            continue
        state.reported.add(key)
        problems.append(_deadlock_problem(cycle, snapshot, now))
    state.cycles_before = cycles_now
    return problems


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
        what = names[nxt] if wait.operation == "join" else describe(wait.primitive)
        held = "" if wait.operation == "join" else f", held by {names[nxt]}"
        lines.append(f"  {names[ident]} {verb} {what}{held}")
    frames = sys._current_frames()
    for ident in cycle:
        lines.append("")
        lines.extend(thread_block(ident, names[ident], snapshot.get(ident), frames, now))
    primitives = [snapshot[i].primitive for i in cycle if snapshot[i].operation != "join"]
    if primitives:
        lines.append("")
        lines.append("  where they were made:")
        for primitive in primitives:
            lines.append(f"    {made(primitive)}")
    problem = Problem("deadlock", logging.ERROR, "\n".join(lines), names.values())
    _act_on_deadlock(cycle, snapshot, problem)
    return problem


def _act_on_deadlock(cycle: list[int], snapshot: dict[int, Blocked], problem: Problem) -> None:
    action = runtime.config.on_deadlock
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
        report(problem)
        try:
            recorder = runtime.recorder
            if recorder is not None:
                recorder.shutdown(min(runtime.config.flush_timeout, 2.0), final=True)
        finally:
            logging.shutdown()
            os._exit(DEADLOCK_EXIT_STATUS)
