"""Threads as the reports show them: what each waits on and holds, its stack; alike ones grouped.

Every report of the watchdog (a deadlock, a stuck wait, a starved one) and
``threadtrace dump`` show threads the same way.  A thread that matters is
shown in full: what it is blocked in and for how long, what it holds and
where it took it, and its stack, the frame where it waits marked.  Threads
whose full view is the same but for their names and how long they have
waited (a thousand requests queued on one lock) are shown once, as one
group.  Threads that do not matter to a report get one line each, alike
ones again together: what they are doing and where.

Reading every thread's stack is the costly part (a frame walk and the
source lines): it is done only when a report is made.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from types import FrameType
from typing import Any, Iterable, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support import units as _units
from .calls import library_call
from .describe import acquire_site_text, describe, display, label, site_text
from .state import Blocked, name_of

#: How many names a group of threads lists before "and N more".
NAMES_SHOWN = 5
#: Modules whose frame on top of a thread that is not blocked in a traced wait
#: means it waits on something threadtrace does not trace (a pool's idle worker).
_UNTRACED_WAITS = ("threading", "queue", "concurrent.futures")


def dump_threads(now: Optional[int] = None) -> str:
    """Every thread of the program now, in full, alike ones grouped, as the stuck report shows them.

    For ``threadtrace dump``.  threadtrace's own threads and telemetry
    plumbing's are left out.  Thread-safe (it reads what the threads
    publish; the stacks are a snapshot).

    Args:
        now: the time to measure waits against (``runtime.clock``'s
            nanoseconds); now, by default.

    Returns:
        The text, one line per line, with no trailing newline.
    """
    if now is None:
        now = runtime.clock.monotonic_ns()
    frames = sys._current_frames()
    snapshot = dict(runtime.detect.blocked)
    idents = sorted(program_threads(frames), key=lambda ident: _natural(name_of(ident)))
    blocked = sum(1 for ident in idents if ident in snapshot)
    count = len(idents)
    head = f"threadtrace: {count} thread{'s' if count != 1 else ''}, {blocked} blocked"
    return "\n".join([head, *full_views(idents, snapshot, frames, now)])


def program_threads(frames: dict[int, FrameType]) -> list[int]:
    """The idents of the program's threads that have a stack (not threadtrace's, not plumbing's)."""
    return [ident for ident in frames if not plumbing(_originals._active.get(ident))]


def plumbing(thread: Any) -> bool:
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


def full_views(
    idents: Iterable[int], snapshot: dict[int, Blocked], frames: dict[int, FrameType], now: int
) -> list[str]:
    """The threads in full, each block after a blank line; alike threads as one block.

    The order is that of ``idents``, each group where its first member is.
    """
    held = holdings()
    # Threads alike but for their names and how long they have waited: one group.
    groups: dict[tuple[Optional[str], tuple[str, ...]], list[int]] = {}
    for ident in idents:
        wait = snapshot.get(ident)
        frame = frames.get(ident)
        phrase = wait_phrase(wait, frame) if wait is not None else None
        groups.setdefault((phrase, tuple(_body(ident, wait, frame, held))), []).append(ident)
    lines: list[str] = []
    for (phrase, body), members in groups.items():
        lines.append("")
        if len(members) == 1:
            lines.append(f"  {name_of(members[0])} (thread {members[0]})")
        else:
            lines.append(f"  {len(members)} threads: {names_text(members)}")
        if phrase is not None:
            waits = [snapshot[ident] for ident in members]
            lines.append(f"    blocked for {ages_text(waits, now)} in {phrase}")
        lines.extend(body)
    return lines


def one_liners(
    idents: Iterable[int], snapshot: dict[int, Blocked], frames: dict[int, FrameType], now: int
) -> list[str]:
    """One line per thread, alike ones together: what it is doing, and where."""
    groups: dict[tuple[str, str], list[int]] = {}
    for ident in idents:
        wait = snapshot.get(ident)
        frame = frames.get(ident)
        state = "running"
        if frame is not None and frame.f_globals.get("__name__", "").startswith(_UNTRACED_WAITS):
            state = "waiting, untraced"  # on what threadtrace does not see (a C queue, say)
        if wait is not None:
            state = wait_phrase(wait, frame) + (", with a timeout" if wait.timed else "")
        groups.setdefault((state, _where(frame)), []).append(ident)
    lines = []
    for (state, where), members in sorted(groups.items(), key=lambda g: _natural(name_of(g[1][0]))):
        waits = [snapshot[i] for i in members if i in snapshot]
        doing = f"blocked for {ages_text(waits, now)} in {state}" if waits else state
        lines.append(f"    {who_text(members)}: {doing}, {where}")
    return lines


def wait_phrase(wait: Blocked, frame: Optional[FrameType]) -> str:
    """``Lock.acquire on cache_lock``, ``Queue.get on jobs (Queue@app.py:5)``..."""
    primitive = wait.primitive
    if wait.operation == "join":
        return f"Thread.join on {primitive.name}"
    call = library_call(frame) if getattr(primitive, "_tt_kind", "") == "condition" else None
    if call is not None:
        return f"{call.label} on {primitive.name}"
    return f"{display(primitive)}.{wait.operation} on {label(primitive)}"


def names_text(idents: list[int]) -> str:
    """``worker-0, worker-1 and worker-2``, or the first few ``and 995 more``."""
    names = sorted((name_of(ident) for ident in idents), key=_natural)
    if len(names) == 1:
        return names[0]
    if len(names) <= NAMES_SHOWN:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{', '.join(names[:NAMES_SHOWN])} and {len(names) - NAMES_SHOWN} more"


def who_text(idents: list[int]) -> str:
    """``worker-0``, or ``3 threads (worker-0, worker-1 and worker-2)``."""
    if len(idents) == 1:
        return names_text(idents)
    return f"{len(idents)} threads ({names_text(idents)})"


def ages_text(waits: list[Blocked], now: int) -> str:
    """How long they have waited: ``5.01 s``, or ``4.52 s to 5.01 s`` when it differs."""
    shortest = _units.duration((now - max(w.since for w in waits)) / 1e9)
    longest = _units.duration((now - min(w.since for w in waits)) / 1e9)
    return longest if shortest == longest else f"{shortest} to {longest}"


def holds_lines(ident: int, held: Optional[dict[int, list[Any]]] = None) -> list[str]:
    """``holds Lock x, acquired at app.py:9 in f``, for each lock and permit ``ident`` holds."""
    if held is None:
        held = holdings()
    lines = []
    for primitive in held.get(ident, ()):
        if getattr(primitive, "_tt_kind", "") in ("lock", "rlock"):
            lines.append(f"holds {describe(primitive)}, acquired at {acquire_site_text(primitive)}")
            continue
        sites = primitive._tt_holder_sites().get(ident, [])
        count = len(sites) or 1
        where = ", ".join(site_text(site) for site in sites) or "an unknown site"
        permits = "1 permit" if count == 1 else f"{count} permits"
        lines.append(f"holds {permits} of {describe(primitive)}, acquired at {where}")
    return lines


def stack_lines(frame: FrameType, wait: Optional[Blocked]) -> list[str]:
    """The program's part of a stack, outermost first, the waiting frame marked."""
    waiting_frame = runtime.modules.first_user_frame(frame) if wait is not None else None
    pairs = list(_walk(frame))
    pairs.reverse()  # outermost first, as tracebacks read
    # Under `threadtrace run`, the program starts inside threadtrace's runner:
    # what is outside it (the command's own script, runpy) is not the program.
    runner = [
        i
        for i, (each, _) in enumerate(pairs)
        if each.f_globals.get("__name__") in ("threadtrace._cli.run", "runpy")
    ]
    if runner:
        pairs = pairs[runner[-1] + 1 :]
    summary = traceback.StackSummary.extract(iter(pairs), lookup_lines=True)
    lines = []
    for (each, _), entry in zip(pairs, summary):
        module = each.f_globals.get("__name__", "")
        if runtime.modules.category(module) == 1:
            continue  # threading, queue, concurrent.futures, threadtrace: not the program's
        mark = "   <-- waits here" if each is waiting_frame else ""
        lines.append(f'      File "{entry.filename}", line {entry.lineno}, in {entry.name}{mark}')
        if entry.line:
            lines.append(f"        {entry.line.strip()}")
    return lines


def _body(
    ident: int,
    wait: Optional[Blocked],
    frame: Optional[FrameType],
    holdings: dict[int, list[Any]],
) -> list[str]:
    """A thread's full view after what it is blocked in: what it holds, its stack."""
    lines = [f"    {line}" for line in holds_lines(ident, holdings)]
    stack = stack_lines(frame, wait) if frame is not None else []
    if stack:  # none when the thread runs only library code (a bound method as target)
        lines.append("    stack (most recent call last):")
        lines.extend(stack)
    return lines


def holdings() -> dict[int, list[Any]]:
    """Thread ident -> the traced locks it holds and the semaphores it holds permits of."""
    held: dict[int, list[Any]] = {}
    for primitive in runtime.primitives():
        if getattr(primitive, "_tt_kind", "") in ("lock", "rlock"):
            owner = primitive._owner
            if owner is not None and primitive._raw_locked():
                held.setdefault(owner, []).append(primitive)
    for ident, semaphores in list(runtime.detect.permits.items()):
        held.setdefault(ident, []).extend(list(semaphores))
    return held


def _where(frame: Optional[FrameType]) -> str:
    """``at app.py:12 in work``, or the library module it is in when no frame is the program's."""
    user = runtime.modules.first_user_frame(frame)
    if user is not None:
        code = user.f_code
        return f"at {os.path.basename(code.co_filename)}:{user.f_lineno} in {_function(code)}"
    if frame is None:
        return "(no stack)"
    return f"in {frame.f_globals.get('__name__', '?')}"  # the library's: its module says enough


def _function(code: Any) -> str:
    return str(getattr(code, "co_qualname", code.co_name))


def _natural(name: str) -> list[Any]:
    """``worker-2`` before ``worker-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _walk(frame: Optional[FrameType]) -> Iterable[tuple[FrameType, int]]:
    while frame is not None:
        yield frame, frame.f_lineno
        frame = frame.f_back
