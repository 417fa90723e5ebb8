"""threadtrace: Python's threading primitives, reporting what they do.

Drop-in primitives that behave exactly like :mod:`threading`'s and turn
waits, contention and thread lifetimes into OpenTelemetry spans and metrics;
:func:`patch` instruments an existing program in place.
"""

from __future__ import annotations

from ._control import exit as _exit  # registers the exit flush
from ._control.configure import configure, current_config, shutdown
from ._control.patch import PatchHandle, is_patched, patch, unpatch
from ._primitives.condition import Condition
from ._primitives.event import Barrier, Event
from ._primitives.locks import Lock, RLock
from ._primitives.semaphore import BoundedSemaphore, Semaphore
from ._primitives.threads import Thread, Timer
from ._report.model import ContentionReport, report
from ._support.config import Config
from ._support.errors import ConfigurationError, DeadlockError
from ._support.originals import local
from ._support.statistics import ConditionStatistics, LockStatistics, WaitStatistics
from ._support.version import __version__

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
del _public, _exit
