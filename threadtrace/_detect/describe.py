"""How the detectors' reports name things: primitives, sites, holders, threads and stacks.

Shared by every report (deadlock, stuck, held by a finished thread), so a
primitive or a thread reads the same in all of them.
"""

from __future__ import annotations

import os
import traceback
from types import FrameType
from typing import Any, Iterable, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support import units as _units
from .._support.names import DISPLAY
from .._support.sites import Site
from .state import Blocked, name_of


def display(primitive: Any) -> str:
    """The primitive's kind as a class name: ``Lock``, ``Condition``..."""
    return DISPLAY.get(getattr(primitive, "_tt_kind", ""), type(primitive).__name__)


def describe(primitive: Any) -> str:
    """``Lock ledger``: its kind and name."""
    return f"{display(primitive)} {primitive.name}"


def site_text(site: Optional[Site]) -> str:
    """``bank.py:42 in Bank.transfer``, or ``an unknown site``."""
    if site is None or site.code is None:
        return "an unknown site"
    return f"{os.path.basename(site.filename)}:{site.lineno} in {site.function}"


def made(primitive: Any) -> str:
    """``Lock ledger made at bank.py:10 in Bank.__init__``, or shorter when named after it."""
    site = primitive._tt_site
    if primitive._tt_name is None and site is not None and site.code is not None:
        return f"{describe(primitive)} made in {site.function}"  # the name is the site
    return f"{describe(primitive)} made at {site_text(site)}"


def acquire_site_text(lock: Any) -> str:
    """Where the current holder acquired ``lock``, when that acquisition was measured."""
    site = runtime.lock_order.acquire_site(lock)
    if site is None:
        site = lock._site_acq  # the core notes where every acquisition happens
    if site is None:
        return "an unknown site"
    return site_text(site)


def holder_text(lock: Any, owner: int) -> str:
    """``worker-1, acquired at bank.py:30 in Bank.audit``, marked when it finished."""
    state = "" if owner in _originals._active else " (finished)"
    return f"{name_of(owner)}{state}, acquired at {acquire_site_text(lock)}"


def thread_block(
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
            f"    blocked for {age} in {display(wait.primitive)}.{wait.operation}"
            + ("" if wait.operation == "join" else f" on {wait.primitive.name}")
        )
    for lock in held_by(ident):
        lines.append(f"    holds {describe(lock)}, acquired at {acquire_site_text(lock)}")
    frame = frames.get(ident)
    if frame is not None:
        lines.append("    stack (most recent call last):")
        lines.extend(stack_lines(frame, wait))
    return lines


def held_by(ident: int) -> list[Any]:
    """The traced locks thread ``ident`` holds now."""
    members = runtime.primitives()
    return [
        p
        for p in members
        if getattr(p, "_tt_kind", "") in ("lock", "rlock") and p._owner == ident and p._raw_locked()
    ]


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
