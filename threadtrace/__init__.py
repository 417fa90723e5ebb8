"""threadtrace: Python's threading primitives, reporting what they do.

Drop-in primitives that behave exactly like :mod:`threading`'s and turn
waits, contention and thread lifetimes into OpenTelemetry spans and metrics;
:func:`patch` instruments an existing program in place.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from ._api import configure, current_config, shutdown
from ._condition import Condition
from ._config import Config
from ._event import Barrier, Event
from ._exceptions import ConfigurationError, DeadlockError
from ._locks import Lock, RLock
from ._originals import local
from ._patch import PatchHandle, is_patched, patch, unpatch
from ._report import ContentionReport, report
from ._semaphore import BoundedSemaphore, Semaphore
from ._statistics import ConditionStatistics, LockStatistics, WaitStatistics
from ._threads import Thread, Timer

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "ConditionStatistics",
    "Config",
    "ConfigurationError",
    "ContentionReport",
    "DeadlockError",
    "Event",
    "Lock",
    "LockStatistics",
    "PatchHandle",
    "RLock",
    "Semaphore",
    "Thread",
    "Timer",
    "WaitStatistics",
    "__version__",
    "configure",
    "current_config",
    "is_patched",
    "local",
    "patch",
    "report",
    "shutdown",
    "unpatch",
]

# Public names say where users import them from (in reprs, tracebacks and
# pickles), not which private module defines them.
for _public in (
    Barrier, BoundedSemaphore, Condition, ConditionStatistics, Config, ConfigurationError,
    ContentionReport, DeadlockError, Event, Lock, LockStatistics, PatchHandle, RLock, Semaphore,
    Thread, Timer, WaitStatistics, configure, current_config, is_patched, patch, report,
    shutdown, unpatch,
):  # fmt: skip
    _public.__module__ = __name__
del _public
