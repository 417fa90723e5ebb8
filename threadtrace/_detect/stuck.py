"""Stuck threads: waits without a timeout that last longer than ``stuck_after``.

Each is reported once, with what it waits on, who holds it and why it does
not end (as far as threadtrace can tell: a lost wake-up, a leaked permit),
and every program thread's stack.  Waiting for work (``queue.Queue.get``),
or for other work to finish (``Queue.join``, ``Future.result``, a ``join``
on a thread that is not itself blocked) is not stuck.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Any, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support import units as _units
from .describe import describe, display, holder_text, made, site_text, thread_block
from .problems import Problem
from .state import Blocked, name_of, owner_of

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


def look(snapshot: dict[int, Blocked], now: int) -> list[Problem]:
    after = runtime.config.stuck_after
    if not after:
        return []
    problems: list[Problem] = []
    candidates = [
        (ident, wait)
        for ident, wait in sorted(snapshot.items(), key=lambda item: item[1].since)
        if not wait.timed
        and now - wait.since >= after * 1e9
        and ("stuck", ident, wait.since) not in runtime.detect.reported
    ]
    if not candidates:
        return problems
    # Only now: every thread's frames, held for as long as this look lasts,
    # keep their locals alive (a program that checks for a freed object
    # would see it still there).
    frames = sys._current_frames()
    for ident, wait in candidates:
        key = ("stuck", ident, wait.since)
        if _waiting_for_work(frames.get(ident)):
            continue
        if wait.operation == "join":
            inner = snapshot.get(getattr(wait.primitive, "ident", None))  # type: ignore[arg-type]
            if inner is None or inner.timed:
                continue  # the joined thread is working (or will wake): slow, not stuck
        runtime.detect.reported.add(key)
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
        kind = display(primitive)
        what = f"in {kind}.{wait.operation} on {describe(primitive)}"
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
            for line in thread_block(
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
    return runtime.modules.excludes(module)


def _why(wait: Blocked, snapshot: dict[int, Blocked]) -> list[str]:
    """What keeps ``wait`` from ending, as far as threadtrace can tell."""
    primitive = wait.primitive
    if wait.operation == "join":
        inner = snapshot.get(getattr(primitive, "ident", -1))
        if inner is None:
            return []
        return [
            f"{primitive.name} is itself blocked in {display(inner.primitive)}."
            f"{inner.operation} on {describe(inner.primitive)}"
        ]
    lines = [made(primitive)]
    explain = _EXPLAIN.get(getattr(primitive, "_tt_kind", ""))
    if explain is not None:
        lines.extend(explain(primitive, wait))
    return lines


def _why_lock(lock: Any, wait: Blocked) -> list[str]:
    owner = owner_of(lock)
    return ["nobody holds it"] if owner is None else [f"held by {holder_text(lock, owner)}"]


def _why_semaphore(semaphore: Any, wait: Blocked) -> list[str]:
    holders = semaphore._tt_holder_sites()
    if not holders:
        return ["no permit is held by a traced thread"]
    lines = []
    for holder, sites in holders.items():
        state = "" if holder in _originals._active else " (finished: the permit leaked)"
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
