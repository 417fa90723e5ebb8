"""Starved threads: a wait that others keep jumping ahead of.

``threading``'s locks and semaphores are not fair: a thread that gives one
back and takes it again at once usually gets it before the threads already
waiting have even woken up.  One thread taking a lock back in a tight loop
can keep another waiting for seconds, while each hold is short and the
contention report shows a single contended acquisition.

A fair (first come, first served) lock serves a waiter after at most as many
acquisitions as there are threads ahead of it.  A wait is reported as
starved when

* it is an acquire of a ``Lock``, ``Semaphore`` or ``BoundedSemaphore``
  (with or without a timeout) that has lasted :data:`STARVED_AFTER`, and
* meanwhile the primitive was acquired at least :data:`OVERTAKEN` times for
  each thread now waiting for it (at least that many times as a fair lock
  would have let pass).

An ``RLock`` is left out: its count includes re-entries by the holder,
which overtake nobody.  A single long hold is not starvation (the holder
took it once); it is a stuck wait if it lasts ``stuck_after``.  Each wait is
reported once, and then not again as stuck.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Optional

from .._runtime import runtime
from .._support import units as _units
from .describe import describe, display, holder_text, made, site_text
from .dump import full_views, one_liners, program_threads
from .problems import Problem
from .state import Blocked, acquisitions, name_of, owner_of

#: How long a wait must last to be starved, in seconds: long enough to matter to a
#: program, and as long as a deadlock takes to be reported.
STARVED_AFTER = 1.0
#: How many acquisitions by others, per thread waiting, make a wait starved: ten
#: times what a first-come-first-served lock would have let pass.
OVERTAKEN = 10


def look(snapshot: dict[int, Blocked], now: int) -> list[Problem]:
    """Report the waits that have become starved since the last look."""
    state = runtime.detect
    problems = []
    frames: Optional[dict[int, FrameType]] = None
    for ident, wait in sorted(snapshot.items(), key=lambda item: item[1].since):
        primitive = wait.primitive
        if wait.operation != "acquire" or getattr(primitive, "_tt_kind", "") not in (
            "lock",
            "semaphore",
            "bounded_semaphore",
        ):
            continue
        if now - wait.since < STARVED_AFTER * 1e9:
            continue
        if {("starved", ident, wait.since), ("stuck", ident, wait.since)} & state.reported:
            continue  # told already, as starved or as stuck
        waiting = sum(1 for other in snapshot.values() if other.primitive is primitive)
        taken = acquisitions(primitive) - wait.taken
        if taken < OVERTAKEN * max(1, waiting):
            continue
        state.reported.add(("starved", ident, wait.since))
        if frames is None:
            frames = sys._current_frames()
        problems.append(_starved_problem(ident, wait, taken, snapshot, frames, now))
    return problems


def _starved_problem(
    ident: int,
    wait: Blocked,
    taken: int,
    snapshot: dict[int, Blocked],
    frames: dict[int, FrameType],
    now: int,
) -> Problem:
    primitive = wait.primitive
    waited = _units.duration((now - wait.since) / 1e9)
    kind = display(primitive)
    lines = [
        f"threadtrace: STARVED: {name_of(ident)} has waited {waited} for {describe(primitive)} "
        f"while other threads acquired it {taken} times; {kind} is not fair: a thread that "
        "lets it go and takes it again at once goes ahead of the threads waiting"
    ]
    lines.append(f"  {made(primitive)}")
    holders: list[int] = []
    if primitive._tt_kind == "lock":
        owner = owner_of(primitive)
        if owner is not None:
            lines.append(f"  held now by {holder_text(primitive, owner)}")
            holders.append(owner)
    else:
        for holder, sites in primitive._tt_holder_sites().items():
            where = ", ".join(site_text(site) for site in sites) or "an unknown site"
            lines.append(f"  a permit is held now by {name_of(holder)}, acquired at {where}")
            holders.append(holder)
    lines.append(
        "  Do the work outside it, or hand it over in turn (a queue, or a Condition and a "
        "turn counter): time.sleep(0) after letting go does not make it fair."
    )
    shown = [ident] + [holder for holder in holders if holder in frames and holder != ident]
    lines.extend(full_views(shown, snapshot, frames, now))
    others = [other for other in program_threads(frames) if other not in shown]
    if others:
        lines.append("")
        lines.append("  other threads:")
        lines.extend(one_liners(others, snapshot, frames, now))
    return Problem("starvation", logging.WARNING, "\n".join(lines), [name_of(ident)])
