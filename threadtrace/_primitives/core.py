"""The lock hot path in force: the C core when it is built and wanted, else pure Python.

``_lockcore`` is an optional C extension (``_lockcore.c``): without a
compiler at install time threadtrace installs anyway and uses
:mod:`.pycore`, the same logic in Python, at about twice the cost per
``with lock:``.  ``THREADTRACE_PURE_PYTHON=1`` asks for the Python core
(the test suite runs on both).  Like wrapt's switch between its C and its
Python proxies, this module is the one place that decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .._runtime import runtime
from .._support.config import pure_python_requested
from .pycore import LockCore as PyLockCore
from .pycore import RLockCore as PyRLockCore

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

if TYPE_CHECKING or not SPEEDUPS:
    LockCore = PyLockCore
    RLockCore = PyRLockCore
else:
    LockCore = RLockCore = lockcore.LockCore
