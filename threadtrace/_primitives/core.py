"""The lock core in force: the C one when it is built and wanted, else pure Python.

``_lockcore`` is an optional C extension (``_lockcore.c``): without a
compiler at install time threadtrace installs anyway and uses
:mod:`.pycore`, the same logic in Python, at about twice the cost per
``with lock:``.  ``THREADTRACE_PURE_PYTHON=1`` asks for the Python core
(the test suite runs on both).  Like wrapt's switch between its C and its
Python proxies, this module is the one place that decides.

The C core keeps copies of what it needs from the runtime (the sampling
period, the hold threshold, the clock when a test injects one, the module
categories, the registry of live locks): :func:`sync` hands them over, and
the runtime calls it whenever one of them changes.
"""

from __future__ import annotations

from types import CodeType
from typing import TYPE_CHECKING, Any, Callable, Optional

from .._detect import hooks
from .._recording.recorder import CONTEXT_VAR, MAX_SHORT_PLACES, SUPPRESS_KEYS, Recorder
from .._runtime import runtime
from .._support import originals as _originals
from .._support.clock import SystemClock
from .._support.config import pure_python_requested
from .._support.points import WAIT_BUCKETS
from .._support.sites import Site
from . import pycore

lockcore: Optional[Any]
try:
    from . import _lockcore as lockcore
except ImportError:  # not built (no compiler at install time): the pure-Python core
    lockcore = None

_pure, _error = pure_python_requested()
if _error is not None and runtime.environment_error is None:
    runtime.environment_error = _error  # configure() and patch() say so, as for a setting

#: Whether the C hot path is in use (``THREADTRACE_PURE_PYTHON=1`` turns it off).
SPEEDUPS = lockcore is not None and not _pure

#: After a contention, this many further acquisitions are measured (hold time),
#: so holds behind which others waited are known.
PROFILE_AFTER_CONTENTION = 16

#: A traced lock of a class, named after a site: ``make(cls, site, name)``.
make: Callable[[type, Site, Optional[str]], Any]

#: ``(code, byte offset)`` of the first frame of the program's own above the
#: call (past threadtrace and the libraries that build primitives), or None.
caller: Callable[[], Optional[tuple[CodeType, int]]]

#: Where the program makes a primitive, walked in C (``_lockcore.creation``):
#: ``(code, offset, via code)``, or given the site cache's dict the place's
#: ``Site``; ``None`` (untraced) or ``...`` (ask the walk in Python: it alone
#: makes a Site).  ``None`` with the pure-Python core, which has only that walk.
creation: Optional[Callable[..., Any]] = None

_wait_site: Optional[Callable[[dict[Any, Any], bool], Any]] = None

#: Whether a thread being started is traced, walked in C (``_lockcore.starts``):
#: ``True``, ``False``, or ``...`` (ask :meth:`Runtime.starts_traced`); ``None``
#: with the pure-Python core.
starts: Optional[Callable[[int], Any]] = None

#: ``base.site_for`` in C (``_lockcore.site_for``), once ``site_setup`` gave it
#: what it reads; ``None`` with the pure-Python core.
site_for: Optional[Callable[[Optional[str], int], Any]] = None
site_setup: Optional[Callable[..., None]] = None

if TYPE_CHECKING or not SPEEDUPS:
    LockCore = pycore.LockCore
    make = pycore.make
    caller = pycore.caller
else:
    assert lockcore is not None
    LockCore = lockcore.LockCore
    make = lockcore.make
    caller = lockcore.caller
    creation = lockcore.creation
    starts = lockcore.starts
    site_for = lockcore.site_for
    site_setup = lockcore.site_setup
    _wait_site = lockcore.wait_site
    Site.line_of = staticmethod(lockcore.line_of)
    # The same answers in one C call: every short wait summed and waker noted
    # asks the first, every contended acquisition's holder the second.
    _originals.current_thread_name = lockcore.thread_name
    _originals.thread_name = lockcore.thread_name
    # Every short wait's sums: its place's row found and added to in one C call.
    Recorder.sum_short = staticmethod(lockcore.sum_short)
    # And the tests before them, the lock around them and the call: one C call too.
    Recorder.count_short = lockcore.count_short  # type: ignore[method-assign]
    lockcore.short_waits(runtime, SUPPRESS_KEYS, MAX_SHORT_PLACES, WAIT_BUCKETS)
    # The watchdog's entry for every wait that blocks, made and put in its table in C.
    hooks.begin_wait = lockcore.begin_wait


def waiting_site(depth: int, with_line: bool = False) -> Optional[Site]:
    """Where the program waits, noted before a blocking operation blocks.

    The first frame of the program's own at or above ``depth`` frames over
    the caller, as the shared :class:`Site` of that place (keyed by its line
    too, ``with_line``, as a lock's contended acquisition keys it); ``None``
    when there is none.  The C core walks and looks the place up in one call
    (``_lockcore.wait_site``); only a new place is made in Python.
    """
    if _wait_site is not None:
        found = _wait_site(runtime.site_cache.places, with_line)
        if type(found) is tuple:
            return runtime.site_cache.get(*found)
        return found  # type: ignore[no-any-return]
    frame = runtime.modules.user_frame(depth + 1)
    if frame is None:
        return None
    # f_lasti is a byte offset on every version (3.10 counts code units inside, not here).
    return runtime.site_cache.get(frame.f_code, frame.f_lasti, frame.f_lineno if with_line else -1)


# -- what the C core is told -------------------------------------------------------------

_NORMAL, _PASS, _EXCLUDED, _COMPOSER = 1, 2, 3, 4


def classify(module: Any) -> int:
    """The category of a module, as the C core wants it (see ``_lockcore.c``)."""
    name = module if isinstance(module, str) else ""
    category = (_NORMAL, _PASS, _EXCLUDED)[runtime.modules.category(name)]
    if name in ("threading", "threadtrace") or name.startswith("threadtrace."):
        category |= _COMPOSER
    return category


def site(code: CodeType, offset: int, line: int, made: int) -> Site:
    """The shared :class:`Site` of a place the C core recorded."""
    return runtime.site_cache.get(code, offset, line)


def _series(
    name: Optional[str], made_site: Optional[Site], made_code: Optional[CodeType], made_offset: int
) -> str:
    """The name a collected lock's counts are kept under: its own, or its site's."""
    if name is not None:
        return name
    if made_site is None and made_code is not None:
        made_site = runtime.site_cache.get(made_code, made_offset, -1)
    return made_site.label if made_site is not None else "<unknown>"


def retire(
    kind: str,
    name: Optional[str],
    made_site: Optional[Site],
    made_code: Optional[CodeType],
    made_offset: int,
    counts: tuple[int, ...],
) -> None:
    """A traced lock was collected: its counts stay in the metrics (called as it dies).

    The C core calls it only when its own table is full (see ``_retired_in_c``).
    """
    runtime.retire(kind, _series(name, made_site, made_code, made_offset), counts)


def _retired_in_c() -> list[tuple[str, str, tuple[int, ...]]]:
    """The collected locks' counts the C core summed, under the names :func:`retire` gives."""
    locks = runtime.locks
    if locks is None:
        return []
    return [
        (cls._tt_kind, _series(name, made_site, made_code, made_offset), tuple(counts))
        for cls, name, made_site, made_code, made_offset, *counts in locks.take_retired()
    ]


def _forget_retired_in_c() -> None:
    """In a forked child: the parent's collected locks are not the child's to report."""
    if runtime.locks is not None:
        runtime.locks.take_retired()


def sync() -> None:
    """Hand the C core the runtime's settings, clock, categories and registry.

    Also settles whether lock order is tracked: ``lock_order`` unset means on
    with the C core (a set lookup per nesting) and off with the pure-Python
    one (a Python call on every acquisition and release).
    """
    config = runtime.config
    runtime.ordering = config.lock_order if config.lock_order is not None else SPEEDUPS
    if not SPEEDUPS or lockcore is None:
        return
    if runtime.locks is None:
        runtime.locks = lockcore.Registry()
    if runtime.c_orders_for is not runtime.lock_order:  # a new graph: every nesting is news
        lockcore.forget_orders()
        runtime.c_orders_for = runtime.lock_order
        runtime.lock_order.on_afresh = lockcore.forget_orders  # and when it starts afresh
    clock = runtime.clock
    lockcore.configure(
        config.sample_every,
        int(config.hold_threshold * 1e9),
        PROFILE_AFTER_CONTENTION,
        None if isinstance(clock, SystemClock) else clock.monotonic_ns,
        classify,
        site,
        retire,
        runtime.ordering,
        runtime.modules,
        runtime.locks,
        runtime.internal_error,
    )
    lockcore.waker_context(CONTEXT_VAR)


def live_locks() -> list[Any]:
    """The traced locks alive in the current registry."""
    locks = runtime.locks
    return locks.list() if locks is not None else []


runtime.watchers.append(sync)
sync()
if lockcore is not None:
    # Whichever core is in use (the C one may have been used before a
    # switch to the pure one, in tests), its collected locks are counted.
    runtime.retired_sources.append(_retired_in_c)
    runtime.child_hooks.append(_forget_retired_in_c)
if SPEEDUPS and lockcore is not None:
    # One guard for both: the C constructor reads it without a Python call.
    runtime.get_guard = lockcore.get_guard
    runtime.set_guard = lockcore.set_guard
