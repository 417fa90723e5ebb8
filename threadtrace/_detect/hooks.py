"""What the program's threads call: the detectors' entry points, on slow paths only.

A primitive about to block calls :func:`begin` and, when done, :func:`end`;
a thread that ends calls :func:`thread_ended`; semaphores keep the table of
who holds permits; a finding made inside ``acquire`` is queued with
:func:`publish_later`.  None of these raises into the program.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .._recording.recorder import get_current
from .._runtime import runtime
from .._support import originals as _originals
from .._support.errors import DeadlockError
from . import finished, watchdog
from .problems import Problem
from .state import Blocked


def begin(primitive: Any, operation: str, timeout: Optional[float]) -> Optional[Blocked]:
    """The calling thread is about to block; every call is paired with :func:`end`.

    ``timeout`` is ``None`` for a wait that can last forever.  Returns the
    entry (``None`` if it could not be made), for :func:`end`.  Never raises.
    """
    state = runtime.detect
    try:
        wait: Blocked = begin_wait(primitive, operation, timeout, state.blocked, get_current)
        if state.watchdog is None or state.watchdog_pid != runtime.pid:  # a call fewer a wait
            watchdog.ensure_started()
    except Exception as error:  # noqa: BLE001 - never raise into the host
        runtime.internal_error("watchdog", error)
        return None
    return wait


def _begin_wait(
    primitive: Any,
    operation: str,
    timeout: Optional[float],
    blocked: dict[int, Blocked],
    get_current: Callable[[], Any],
) -> Blocked:
    """The entry for a wait about to block, put on top of this thread's in ``blocked``."""
    me = _originals.get_ident()
    wait = Blocked(
        primitive,
        operation,
        runtime.clock.monotonic_ns(),
        timeout,
        blocked.get(me),
        get_current(),
    )
    blocked[me] = wait
    return wait


#: Makes :func:`begin`'s entry; the C core, when in use, installs its own
#: (``_lockcore.begin_wait``, whose entry is ``_lockcore.Blocked``: the same
#: attributes, made in one call).
begin_wait: Callable[
    [Any, str, Optional[float], dict[int, Blocked], Callable[[], Any]], Blocked
] = _begin_wait


def end(wait: Optional[Blocked]) -> None:
    """The calling thread stopped blocking in ``wait``, what its latest :func:`begin` returned.

    ``None`` (no entry could be made) ends nothing: the entry on top is then
    that of a wait this one interrupted, which goes on.
    """
    if wait is None:
        return
    blocked = runtime.detect.blocked
    if wait.previous is None:
        blocked.pop(_originals.get_ident(), None)
    else:
        blocked[_originals.get_ident()] = wait.previous


def raise_if_doomed(wait: Optional[Blocked]) -> None:
    """In a waiting thread: raise DeadlockError if the watchdog chose this wait to end."""
    if wait is not None and wait.doomed is not None:
        raise DeadlockError(wait.doomed)


def permits_held(ident: int) -> set[Any]:
    """The semaphores thread ``ident`` holds permits of (the semaphore updates it)."""
    permits = runtime.detect.permits
    held = permits.get(ident)
    if held is None:
        held = permits[ident] = set()
    return held


def permit_returned(ident: int, semaphore: Any) -> None:
    """Thread ``ident`` holds no permit of ``semaphore`` any more."""
    held = runtime.detect.permits.get(ident)
    if held is not None:
        held.discard(semaphore)


def thread_ended(ident: int, thread: Any, error: Optional[BaseException] = None) -> None:
    """A traced thread finished (called in it, as it ends): the watchdog looks at its next round.

    ``error`` is the exception that ended it, if one did (only its text is
    kept).  Not at once: a program that starts and ends threads by the
    thousand would have the watchdog look at every live lock for each.
    Never raises.
    """
    try:
        look = finished.record_end(ident, thread, error)
    except Exception as exc:  # noqa: BLE001 - never raise into the host
        runtime.internal_error("watchdog", exc)
        return
    state = runtime.detect
    if look and (state.watchdog is None or state.watchdog_pid != runtime.pid):  # as in begin()
        watchdog.ensure_started()


def publish_later(problem: Problem) -> None:
    """Report ``problem`` soon, from the watchdog's thread (or at exit, without one)."""
    runtime.detect.pending.append(problem)
    watchdog.wake()
