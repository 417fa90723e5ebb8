"""Real deadlocks: threads that wait, without a timeout, only on each other.

The watchdog builds the wait-for graph: each blocked thread points at the
threads one of which must act to end its wait.

* a ``Lock``/``RLock`` acquire: its owner;
* a semaphore acquire: the threads holding its permits;
* a ``join``: the joined thread;
* ``Future.result()`` (or ``exception()``) on a pool's task: the worker
  running it; or, for a task still queued on a pool that has all the
  workers it may have, those workers: any of them coming free would start
  it (pool starvation, a deadlock without a lock);
* a ``Condition``, ``Event`` or ``Barrier`` wait (or a queue's), which
  anyone may end: every other thread of the program, but only when the
  waiter holds a lock or permit another blocked thread waits for (waiting
  on a condition while holding what the notifier needs).

A thread that is running, or blocked with a timeout, can act.  The threads
that can never go on are the greatest set in which each waits only on
members: found by removing, until nothing changes, every thread that waits
on someone outside it.  A join or a future wait with a timeout is the one
kind of timed wait in the set: its thread does nothing until what it waits
for ends, which in a deadlock it never does.  Each connected part of the
set is one deadlock, reported once: when its waits without a timeout are
all older than ``deadlock_after`` and a second look found the very same
waits.  Threads that join it later are part of it, not a new one, and none
of them is reported stuck.  ``Condition`` waits (which release their lock)
and ``Event`` and ``Barrier`` waits otherwise, RLock recursion, waits with
a timeout and slow threads stay quiet.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from .._runtime import runtime
from .._support import originals as _originals
from . import pools
from .calls import library_call
from .describe import describe, made, site_text, told_apart
from .dump import full_views, holdings, names_text, program_threads
from .problems import Problem, report
from .state import Blocked, name_of, owner_of

#: Exit status of the process when ``on_deadlock="exit"``.
DEADLOCK_EXIT_STATUS = 3

#: What the notifier of each kind of primitive does, for the report.
_NOTIFY = {"condition": "notify", "event": "set", "barrier": "arrive at"}


class Edge:
    """A blocked thread's wait, as the wait-for graph sees it.

    Attributes:
        kind: ``lock``, ``semaphore``, ``join``, ``running`` (a future a worker
            runs), ``queued`` (a future queued on a full pool) or ``notify``.
        releasers: the threads one of which must act to end the wait.
        timed: a join or future wait with a timeout.
        detail: the work item (``running``), the pool and work item
            (``queued``), or the locks held that others wait for (``notify``).
    """

    __slots__ = ("detail", "kind", "releasers", "timed")

    def __init__(
        self, kind: str, releasers: tuple[int, ...], timed: bool = False, detail: Any = None
    ) -> None:
        self.kind = kind
        self.releasers = releasers
        self.timed = timed
        self.detail = detail


def look(snapshot: dict[int, Blocked], now: int) -> list[Problem]:
    """Report the deadlocks that have become certain since the last look."""
    state = runtime.detect
    for ident, wait in list(state.deadlocked.items()):
        if state.blocked.get(ident) is not wait:
            del state.deadlocked[ident]  # that wait ended: the deadlock is over (broken or exited)
    frames: dict[int, FrameType] = {}
    if any(getattr(w.primitive, "_tt_kind", "") == "condition" for w in snapshot.values()):
        frames = sys._current_frames()  # futures and queues are waited on through conditions
    edges = _edges(snapshot, frames, now)
    members = _never_proceed(edges)
    state.never_proceed = {ident: snapshot[ident] for ident in members}
    problems = []
    shapes_now: set[frozenset[Any]] = set()
    threshold = runtime.config.deadlock_after * 1e9
    for part in _parts(members, edges):
        core = [i for i in part if not edges[i].timed]
        if not core:
            continue
        # The same waits (the very entries) and the same releasers as at the
        # previous look: a lock changing hands between reading the table and
        # reading its owner cannot make a deadlock that is not there.
        shape = frozenset((i, snapshot[i], edges[i].releasers) for i in core)
        shapes_now.add(shape)
        if shape not in state.cycles_before:
            continue
        if any(now - snapshot[i].since < threshold for i in core):
            continue  # too young: a transient state, or about to resolve
        if any(state.blocked.get(i) is not snapshot[i] for i in core):
            continue  # one of them moved on since the snapshot
        told = any(state.deadlocked.get(i) is snapshot[i] for i in part)
        for ident in part:
            state.deadlocked[ident] = snapshot[ident]
        if told:
            continue  # more threads caught in a deadlock already reported
        state.reported.add(("deadlock", frozenset((i, snapshot[i].since) for i in core)))
        if not frames:
            frames = sys._current_frames()
        problems.append(_deadlock_problem(part, core, edges, snapshot, frames, now))
    state.cycles_before = shapes_now
    return problems


# -- the graph --------------------------------------------------------------------------------


def _edges(snapshot: dict[int, Blocked], frames: dict[int, FrameType], now: int) -> dict[int, Edge]:
    edges: dict[int, Edge] = {}
    anyone: list[int] = []  # untimed waits that anyone may end
    futures: list[tuple[int, Any]] = []
    for ident, wait in snapshot.items():
        primitive = wait.primitive
        kind = getattr(primitive, "_tt_kind", "")
        if wait.operation == "join":
            joined = getattr(primitive, "ident", None)
            if joined is not None and primitive.is_alive():
                edges[ident] = Edge("join", (joined,), wait.timed)
            continue
        call = library_call(frames.get(ident)) if kind == "condition" else None
        if call is not None and call.label in ("Future.result", "Future.exception"):
            futures.append((ident, call.target))
            continue
        if wait.timed:
            continue
        if kind in ("lock", "rlock"):
            owner = owner_of(primitive)
            if owner is not None:
                edges[ident] = Edge("lock", (owner,))
        elif kind in ("semaphore", "bounded_semaphore"):
            holders = tuple(sorted(primitive._tt_holders))
            if holders:
                edges[ident] = Edge("semaphore", holders)
        elif kind in ("condition", "event", "barrier"):
            anyone.append(ident)
    if futures:
        _future_edges(futures, snapshot, frames, edges)
    if anyone:
        _notify_edges(anyone, snapshot, frames, edges)
    return edges


def _future_edges(
    futures: list[tuple[int, Any]],
    snapshot: dict[int, Blocked],
    frames: dict[int, FrameType],
    edges: dict[int, Edge],
) -> None:
    """Waits on pools' futures: on the worker running the task, or on a full pool's workers."""
    found = pools.current_pools()
    for ident, future in futures:
        state = getattr(future, "_state", None)
        timed = snapshot[ident].timed
        if state == "RUNNING":
            for pool in found:
                for worker in pool.workers:
                    item = pools.running_item(frames.get(worker))
                    if item is not None and item.future is future:
                        edges[ident] = Edge("running", (worker,), timed, item)
        elif state == "PENDING":
            queued = pools.queued_on(future, [pool for pool in found if pool.full])
            if queued is not None:
                pool, item = queued
                edges[ident] = Edge("queued", tuple(sorted(pool.workers)), timed, (pool, item))


def _notify_edges(
    anyone: list[int],
    snapshot: dict[int, Blocked],
    frames: dict[int, FrameType],
    edges: dict[int, Edge],
) -> None:
    """Waits that anyone may end, by threads holding what another blocked thread waits for."""
    # holder -> (what it holds that a waiter needs, those waiters)
    needed: dict[int, tuple[list[Any], list[int]]] = {}
    for ident, edge in edges.items():
        if edge.kind in ("lock", "semaphore") and not edge.timed:
            for holder in edge.releasers:
                held, needers = needed.setdefault(holder, ([], []))
                if snapshot[ident].primitive not in held:
                    held.append(snapshot[ident].primitive)
                needers.append(ident)
    waiting = [ident for ident in anyone if ident in needed]
    if not waiting or _others_may_act():
        return
    everyone = program_threads(frames or sys._current_frames())
    for ident in waiting:
        others = tuple(sorted(other for other in everyone if other != ident))
        edges[ident] = Edge("notify", others, False, needed[ident])


def _others_may_act() -> bool:
    """Whether a thread threadtrace cannot see, or a signal handler, might end any wait.

    Threads started with ``_thread`` directly are not in ``threading``'s
    table; a Python signal handler runs in the main thread, even while it
    waits.  Either may notify a condition: then no wait that anyone may end
    is counted as hopeless.
    """
    main = threading.main_thread().ident
    known = sum(
        1
        for thread in list(_originals._active.values())
        if not isinstance(thread, threading._DummyThread) and thread.ident != main
    )
    if _thread._count() > known:
        return True
    for number in signal.valid_signals():
        try:
            handler = signal.getsignal(number)
        except (ValueError, OSError):  # pragma: no cover - a signal Python cannot look at
            continue
        if callable(handler) and handler is not signal.default_int_handler:
            module = getattr(handler, "__module__", None) or ""
            if not module.startswith("threadtrace"):
                return True
    return False


def _never_proceed(edges: dict[int, Edge]) -> set[int]:
    """The greatest set of threads that each wait only on members."""
    members = set(edges)
    changed = True
    while changed:
        changed = False
        for ident in list(members):
            if any(other not in members for other in edges[ident].releasers):
                members.discard(ident)
                changed = True
    return members


def _parts(members: set[int], edges: dict[int, Edge]) -> list[list[int]]:
    """The connected parts of the set, each in a stable order (by thread name)."""
    parent = {ident: ident for ident in members}

    def root(ident: int) -> int:
        while parent[ident] != ident:
            parent[ident] = parent[parent[ident]]
            ident = parent[ident]
        return ident

    for ident in members:
        for other in edges[ident].releasers:
            if other in members:
                parent[root(ident)] = root(other)
    parts: dict[int, list[int]] = {}
    for ident in sorted(members, key=lambda i: (name_of(i), i)):
        parts.setdefault(root(ident), []).append(ident)
    return list(parts.values())


# -- the report -------------------------------------------------------------------------------


def _deadlock_problem(
    part: list[int],
    core: list[int],
    edges: dict[int, Edge],
    snapshot: dict[int, Blocked],
    frames: dict[int, FrameType],
    now: int,
) -> Problem:
    order = _reading_order(part, core, edges)
    held = holdings()
    named = [p for ident in order for p in (snapshot[ident].primitive, *held.get(ident, ()))]
    with told_apart(named):  # two locks made on one line: which is which
        lines = [f"threadtrace: DEADLOCK: {_headline(core, edges)}"]
        lines.extend(f"  {_edge_line(ident, edges[ident], snapshot[ident])}" for ident in order)
        lines.extend(full_views(order, snapshot, frames, now))
        made_lines = _made_lines(order, edges, snapshot)
    if made_lines:
        lines.append("")
        lines.append("  where they were made:")
        lines.extend(f"    {line}" for line in made_lines)
    for hint in _hints(core, edges):
        lines.append("")
        lines.append(f"  {hint}")
    names = [name_of(ident) for ident in order]
    problem = Problem("deadlock", logging.ERROR, "\n".join(lines), names)
    _act_on_deadlock(core, snapshot, problem)
    return problem


def _reading_order(part: list[int], core: list[int], edges: dict[int, Edge]) -> list[int]:
    """A cycle first, from the first name, then the other waits without a timeout, then the rest."""
    first = core[0]  # the part is sorted by name
    cycle: list[int] = []
    at = first
    while at not in cycle:
        cycle.append(at)
        nexts = [other for other in edges[at].releasers if other in core]
        if not nexts:
            break
        # A thread not yet passed (all of a pool's workers), else the earliest: the longest loop.
        ahead = [other for other in nexts if other not in cycle]
        at = ahead[0] if ahead else min(nexts, key=cycle.index)
    if at in cycle:
        cycle = cycle[cycle.index(at) :]
        start = cycle.index(min(cycle, key=lambda i: (name_of(i), i)))
        cycle = cycle[start:] + cycle[:start]
    rest = [i for i in core if i not in cycle]
    timed = [i for i in part if i not in core]
    return cycle + rest + timed


def _headline(core: list[int], edges: dict[int, Edge]) -> str:
    kinds = {edges[i].kind for i in core}
    if kinds == {"queued"}:
        pool_set = {id(edges[i].detail[0].queue) for i in core}
        if len(pool_set) == 1:
            pool = edges[core[0]].detail[0]
            count = len(pool.workers)
            return (
                f"pool starvation: the {count} workers of {pool.name} all wait for tasks "
                "queued on that same pool, which only they could run"
            )
    if len(core) == 1:
        return f"{name_of(core[0])} waits for itself and will never proceed"
    return f"{len(core)} threads wait for each other and will never proceed"


def _edge_line(ident: int, edge: Edge, wait: Blocked) -> str:
    name = name_of(ident)
    timeout = ", with a timeout" if edge.timed else ""
    if edge.kind == "join":
        return f"{name} joins {name_of(edge.releasers[0])}{timeout}"
    if edge.kind == "lock":
        return f"{name} waits for {describe(wait.primitive)}, held by {name_of(edge.releasers[0])}"
    if edge.kind == "semaphore":
        holders = names_text(list(edge.releasers))
        return f"{name} waits for {describe(wait.primitive)}, whose permits {holders} hold"
    if edge.kind == "running":
        task, runner = pools.task_name(edge.detail), name_of(edge.releasers[0])
        return f"{name} waits for the result of {task}, which {runner} runs{timeout}"
    if edge.kind == "queued":
        pool, item = edge.detail
        task = pools.task_name(item)
        submitted = _submitted_at(item)
        return (
            f"{name} waits for the result of {task}{submitted}{timeout}, still queued on "
            f"{pool.name}, whose {len(pool.workers)} workers are all here"
        )
    held, needers = edge.detail
    verb = _NOTIFY.get(getattr(wait.primitive, "_tt_kind", ""), "notify")
    return (
        f"{name} waits on {describe(wait.primitive)} while holding "
        f"{' and '.join(describe(primitive) for primitive in held)}, which "
        f"{names_text(needers)} wait{'s' if len(needers) == 1 else ''} for: no other thread "
        f"is left to {verb} it"
    )


def _submitted_at(item: Any) -> str:
    """`` (submitted at app.py:19 in render_page)``: where its future was made."""
    condition = getattr(getattr(item, "future", None), "_condition", None)
    site = getattr(condition, "_tt_site", None)
    if site is None or site.code is None:
        return ""
    return f" (submitted at {site_text(site)})"


def _made_lines(
    order: list[int], edges: dict[int, Edge], snapshot: dict[int, Blocked]
) -> list[str]:
    lines: list[str] = []
    for ident in order:
        edge = edges[ident]
        if edge.kind in ("lock", "semaphore"):
            text = made(snapshot[ident].primitive)
        elif edge.kind == "queued":
            text = _pool_made(edge.detail[0])
        elif edge.kind == "notify":
            for primitive in edge.detail[0]:
                if made(primitive) not in lines:
                    lines.append(made(primitive))
            text = made(snapshot[ident].primitive)
        else:
            continue
        if text not in lines:
            lines.append(text)
    return lines


def _pool_made(pool: pools.Pool) -> str:
    most = getattr(pool.executor, "_max_workers", "?")
    lock = getattr(pool.executor, "_shutdown_lock", None)
    site = getattr(lock, "_tt_site", None)
    where = f" made in {site.function}" if site is not None and site.code is not None else ""
    return f"{pool.name}{where}, max_workers={most}"


def _hints(core: list[int], edges: dict[int, Edge]) -> list[str]:
    kinds = {edges[i].kind for i in core}
    hints = []
    if "queued" in kinds:
        hints.append(
            "A task that waits for another task of its own pool needs a worker to spare: run "
            "the sub-tasks on a pool of their own, or have the task return instead of waiting."
        )
    if "notify" in kinds:
        hints.append(
            "Condition.wait() lets go of the condition's own lock only: let go of the others "
            "before waiting."
        )
    return hints


def _act_on_deadlock(core: list[int], snapshot: dict[int, Blocked], problem: Problem) -> None:
    action = runtime.config.on_deadlock
    if action == "raise":
        # The youngest wait closed the cycle: ending it breaks the cycle.
        for ident in sorted(core, key=lambda i: -snapshot[i].since):
            wait = snapshot[ident]
            if wait.previous is not None:
                continue  # a Condition taking its lock back: raising there breaks the lock's state
            if wait.operation == "join" or wait.primitive._tt_kind in ("lock", "rlock"):
                wait.doomed = problem.text
                return
    elif action == "exit":
        report(problem)
        end = runtime.end_process
        if end is not None:  # the whole exit: the waits in the cycle, the report, the flush
            end(DEADLOCK_EXIT_STATUS)
        try:
            recorder = runtime.recorder
            if recorder is not None:
                recorder.shutdown(min(runtime.config.flush_timeout, 2.0), final=True)
        finally:
            logging.shutdown()
            os._exit(DEADLOCK_EXIT_STATUS)
