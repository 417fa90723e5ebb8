"""Waits still going on when the process ends: recorded, because the hang is what matters most.

A thread blocked at exit (a deadlock, a lost wake-up, a join that never
returns) would otherwise leave nothing: its wait never ends, so no span, no
histogram point, no row in the report.  At exit each such wait is recorded
as if it had ended then: a span marked ``threadtrace.unfinished``, counted
in the contention report ("still waiting at exit") and in the primitive's
own counters, with its time so far.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from .._detect.state import Blocked, name_of, owner_of
from .._recording.events import WaitRecord
from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import Site
from .threads import count_unfinished_join


def record_unfinished(now: Optional[int] = None) -> int:
    """Record every wait still going on (once each); returns how many."""
    recorder = runtime.recorder
    if recorder is None:
        return 0
    if now is None:
        now = runtime.clock.monotonic_ns()
    frames = sys._current_frames()
    recorded = 0
    for ident, wait in list(runtime.detect.blocked.items()):
        if wait.recorded or ident == _originals.get_ident():
            continue
        wait.recorded = True
        try:
            record = _record_of(ident, wait, now, frames.get(ident))
        except Exception as error:  # noqa: BLE001 - exit goes on regardless
            runtime.internal_error("unfinished wait", error)
            continue
        recorder.defer(record, always=True)
        recorded += 1
    return recorded


def _record_of(ident: int, wait: Blocked, now: int, frame: Any) -> WaitRecord:
    primitive = wait.primitive
    user = runtime.modules.first_user_frame(frame)
    site = Site.of_frame(user) if user is not None else None
    holder = holder_name = holder_site = None
    series = None
    waited = now - wait.since
    if wait.operation == "join":
        kind, name = "thread", primitive.name
        series = getattr(primitive, "_tt_function", None)
        count_unfinished_join(primitive, waited)
    else:
        kind, name = primitive._tt_kind, primitive.name
        if kind in ("lock", "rlock"):
            holder = owner_of(primitive)
            if holder is not None:
                holder_name = name_of(holder)
                holder_site = runtime.lock_order.acquire_site(primitive)
                if holder_site is None:  # the core notes every acquisition's site
                    holder_site = primitive._site_acq
        note = getattr(primitive, "_tt_note_unfinished", None)
        if note is not None:
            note(waited)
    return WaitRecord(
        kind,
        name,
        wait.operation,
        wait.since,
        now,
        False,
        ident,
        name_of(ident),
        site,
        wait.context,
        timeout=wait.timeout,
        holder=holder,
        holder_name=holder_name,
        holder_site=holder_site,
        series=series,
        unfinished=True,
    )
