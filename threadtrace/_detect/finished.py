"""Held by the dead: locks and permits that a finished thread still holds.

When a traced thread ends, the locks and ``BoundedSemaphore`` permits it
still holds are reported: nobody can release an ``RLock`` for it, and a
permit it took is a leak (once nobody gave it back within a grace period:
a producer may acquire what a consumer releases).  Each finished holder
gets a stand-in ident, so a new thread given the same ident by the OS is
never taken for it.
"""

from __future__ import annotations

import logging
import time
import traceback
import weakref
from types import TracebackType
from typing import Any, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import Site
from .describe import acquire_site_text, describe, ending_text, made, site_text
from .problems import Problem
from .state import Ending

#: The longest exception message a report quotes.
MESSAGE_CHARS = 200


def ending_of(name: str, error: Optional[BaseException]) -> Ending:
    """How a thread ended, as text and a site: no reference to the exception or its frames."""
    text = site = None
    if error is not None:
        try:
            text = traceback.format_exception_only(type(error), error)[-1].strip()
        except Exception:  # noqa: BLE001 - a __str__ that raises: the type is enough
            text = type(error).__name__
        if len(text) > MESSAGE_CHARS:
            text = text[: MESSAGE_CHARS - 3] + "..."
        site = _raised_at(error.__traceback__)
    return Ending(name, runtime.clock.monotonic_ns(), text, site)


def _raised_at(tb: Optional[TracebackType]) -> Optional[Site]:
    """The program's innermost frame of a traceback (not the library's it called)."""
    site = None
    modules = runtime.modules
    while tb is not None:
        frame = tb.tb_frame
        if modules.category(frame.f_globals.get("__name__", "")) == 0:
            site = Site(frame.f_code, tb.tb_lineno)
        tb = tb.tb_next
    return site


def record_end(ident: int, thread: Any, error: Optional[BaseException] = None) -> bool:
    """A traced thread finished (called in it, as it ends); returns whether to look.

    How it ended is kept as text (an exception that ended it is named in
    later reports).  Its semaphore permits are known right here, and handed
    to stand-ins at once, before the OS gives the ident to a new thread.
    The locks it may still hold are for the watchdog to find (a look at
    every live lock), at once but at most a few times a second.  A quiet
    end is noted as its name and time only: its :class:`Ending` is made if
    a look finds it held something.
    """
    state = runtime.detect
    semaphores = state.permits.pop(ident, None)
    if not runtime.config.watchdog:
        return False
    # Its name as the property gives it (see originals.THREAD_NAME).
    name = thread._name if type(thread).name is _originals.THREAD_NAME else thread.name
    # A weak reference: a finished thread's object (and what its locals and
    # threading.local values hold) must die when the program drops it.
    if error is None and not semaphores:
        state.ended.append((ident, weakref.ref(thread), name, runtime.clock.monotonic_ns()))
        return True
    ending = ending_of(name, error)
    if ending.error is not None:
        with runtime.book:  # two threads may end at once; the count must be exact
            state.crashes.append(ending)
            state.crash_count += 1
    if semaphores:
        now = runtime.clock.monotonic_ns()
        for semaphore in list(semaphores):
            tomb = state.tombstone(name, ending)
            if (
                semaphore._tt_rename_holder(ident, tomb)
                and semaphore._tt_kind == "bounded_semaphore"
            ):
                # A plain Semaphore's permits roam: only bounded ones leak.
                state.leaked_permits[(semaphore, tomb)] = (now, name)
    state.ended.append((ident, weakref.ref(thread), ending, 0))
    return True


def look(now: Optional[int] = None) -> list[Problem]:
    if now is None:
        now = runtime.clock.monotonic_ns()
    state = runtime.detect
    problems = _permits_still_leaked(now)
    ended = state.ended
    if not ended or time.monotonic() < state.next_held_look:
        return problems
    started = time.monotonic()
    gone: dict[int, tuple[Any, int]] = {}  # ident -> (its Ending, 0) or (its name, its end)
    while ended:
        ident, thread, ending, at = ended.popleft()
        current = _originals._active.get(ident)
        if current is not None and current is not thread():
            continue  # the ident already belongs to a new thread: too late to tell
        gone[ident] = (ending, at)
    members = runtime.primitives()
    for primitive in members:
        kind = getattr(primitive, "_tt_kind", "")
        if kind in ("lock", "rlock"):
            owner = primitive._owner
            if owner in gone and primitive._raw_locked():
                ending, at = gone[owner]
                if not isinstance(ending, Ending):  # a quiet end, noted as its name and time
                    ending = Ending(ending, at, None, None)
                    gone[owner] = (ending, at)  # one Ending for all the locks it holds
                tomb = state.tombstone(ending.name, ending)
                state.owner_died(primitive, owner, tomb)
                problems.append(_held_problem(primitive, ending, None))
    for ident in gone:
        runtime.lock_order.thread_ended(ident)
    # A look at every live lock costs time in proportion to them: keep the
    # watchdog under a tenth of a core however fast threads come and go.
    took = time.monotonic() - started
    state.next_held_look = time.monotonic() + max(0.05, 9 * took)
    return problems


def _permits_still_leaked(now: int) -> list[Problem]:
    """Permits of finished threads nobody gave back within the grace period.

    A permit taken by one thread may be released by another (a producer that
    acquires, a consumer that releases), so a finished holder is only a leak
    once ``stuck_after`` (or 5 s) has passed with the permit still out.
    """
    grace = (runtime.config.stuck_after or 5.0) * 1e9
    state = runtime.detect
    leaked = state.leaked_permits
    problems = []
    for key, (ended_at, name) in list(leaked.items()):
        semaphore, tomb = key
        still = semaphore._tt_holder_sites().get(tomb)
        if not still:
            del leaked[key]
        elif now - ended_at >= grace:
            del leaked[key]
            ending = state.endings.get(tomb) or Ending(name, ended_at, None, None)
            problems.append(_held_problem(semaphore, ending, still))
    return problems


def _held_problem(primitive: Any, ending: Ending, sites: Optional[list[Site]]) -> Problem:
    if sites is None:
        where = acquire_site_text(primitive)
        what = describe(primitive)
        never = (
            "no other thread can release it"
            if primitive._tt_kind == "rlock"
            else ("every thread that acquires it will wait forever")
        )
    else:
        where = ", ".join(site_text(site) for site in sites) or "an unknown site"
        count = len(sites)
        what = f"{count} permit{'s' if count != 1 else ''} of {describe(primitive)}"
        fewer = "one fewer" if count == 1 else f"{count} fewer"
        them = "it" if count == 1 else "them"
        never = f"nobody gave {them} back: the semaphore has {fewer} to give"
    how = f"{ending_text(ending)}," if ending.error is not None else "ended"
    text = (
        f"threadtrace: HELD BY A FINISHED THREAD: {ending.name} {how} holding {what}, "
        f"acquired at {where}; {never}.\n"
        f"  {made(primitive)}"
    )
    return Problem("held_by_finished_thread", logging.ERROR, text, [ending.name])
