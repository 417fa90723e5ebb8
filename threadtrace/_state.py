"""Global state department.

Everything threadtrace keeps process-wide lives here and nowhere else: the
active configuration, the clock, the recorder, the registry of live
primitives and the patch handle.  Other modules read these as
``_state.<name>`` at call time so that :func:`threadtrace.configure` and the
tests can swap them.
"""

from __future__ import annotations

import collections
import contextlib
import weakref
from typing import TYPE_CHECKING, Any, Iterator, Optional

from . import _originals
from ._clock import Clock, SystemClock
from ._config import Config, from_environment
from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._patch import PatchHandle
    from ._recorder import Recorder

#: An invalid ``THREADTRACE_*`` variable.  Importing threadtrace never raises:
#: the defaults stand, configure()/patch() raise this until it is fixed, and
#: a program that calls neither gets a warning when threadtrace first exports.
environment_error: Optional[ConfigurationError] = None
try:
    #: The settings in force: the defaults, then ``THREADTRACE_*`` variables.
    config: Config = from_environment()
except ConfigurationError as _error:
    config = Config()
    environment_error = _error  # logged when threadtrace first exports
clock: Clock = SystemClock()
recorder: Optional[Recorder] = None
patch_handle: Optional[PatchHandle] = None

#: Guards slow-path bookkeeping that threads other than the holder touch
#: (waiter counts).  Never held while blocking or while calling out.
book = _originals.allocate_lock()

#: Every traced primitive still alive, for the observable metrics.
live: weakref.WeakSet[Any] = weakref.WeakSet()
#: Counters of primitives that have been garbage collected, appended by
#: ``__del__`` (an append is atomic, so no lock: ``__del__`` may run while
#: this very thread holds :data:`book`).
retired: collections.deque[tuple[str, str, tuple[int, ...]]] = collections.deque()
#: Those counters summed by (kind, name), drained from :data:`retired` by the metrics.
retired_totals: dict[tuple[str, str], tuple[int, ...]] = {}

#: Traced threads started, and running now (changed under :data:`book`).
threads_started = 0
threads_live = 0

#: What each of threadtrace's own exporters did, kept after they shut down
#: for the exit summary (name -> ExportStats).
export_stats: dict[str, Any] = {}

#: Errors inside threadtrace's own bookkeeping, swallowed (see internal_error).
internal_errors = 0

_guard = _originals.local()


def recording() -> bool:
    """Whether this thread is inside threadtrace's own recording right now.

    Primitives touched while this is true (by the OpenTelemetry SDK, an
    exporter, a logging handler) are neither created traced nor recorded, so
    recording can never re-enter itself.
    """
    return getattr(_guard, "busy", False)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Mark this thread as recording for the duration of the block."""
    previous = getattr(_guard, "busy", False)
    _guard.busy = True
    try:
        yield
    finally:
        _guard.busy = previous


def register(primitive: Any) -> None:
    """Add a new traced primitive to the live registry."""
    with book:
        live.add(primitive)


def internal_error(where: str, error: BaseException) -> None:
    """Count an error in threadtrace's bookkeeping; log the first one.

    The operation it happened in goes on as threading would have done it.
    """
    global internal_errors
    internal_errors += 1
    if internal_errors == 1:
        import logging

        logging.getLogger("threadtrace").warning(
            "threadtrace hit an internal error in %s; the program continues, "
            "further such errors are counted, not logged",
            where,
            exc_info=error,
        )
