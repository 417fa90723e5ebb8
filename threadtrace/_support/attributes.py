"""The attribute names threadtrace writes, from OpenTelemetry's semantic conventions.

Where the conventions name something threadtrace reports (a thread, a place
in the code, an exception, the service, the process), the name comes from
``opentelemetry-semantic-conventions``, never a string literal of our own;
what the conventions have no name for is ``threadtrace.*`` (docs/telemetry.md
lists both).

The package moved the ``code.*`` constants from its incubating modules to
the stable ones when the conventions declared them stable (schema 1.33.0,
package 0.54b0); the oldest release threadtrace supports (0.51b0, with
opentelemetry-sdk 1.30) has them incubating only.  ``thread.*`` and
``process.*`` are still incubating in every release.  The values are the
same strings either way.

``code.function.name`` is fully qualified, ``<module>.<qualname>``, as the
stable convention says (``code.namespace`` was folded into it).  A code
object does not know its module, so :func:`function_name` finds it from the
file the code came from.
"""

from __future__ import annotations

import os
import sys
from types import CodeType
from typing import Any, Optional

from opentelemetry.semconv._incubating.attributes.process_attributes import (
    PROCESS_PARENT_PID,
    PROCESS_PID,
)
from opentelemetry.semconv._incubating.attributes.thread_attributes import (
    THREAD_ID,
    THREAD_NAME,
)
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME
from opentelemetry.semconv.attributes.telemetry_attributes import (
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
)

try:
    from opentelemetry.semconv.attributes.code_attributes import (
        CODE_FILE_PATH,
        CODE_FUNCTION_NAME,
        CODE_LINE_NUMBER,
    )
except ImportError:  # opentelemetry-semantic-conventions < 0.54b0: still incubating
    from opentelemetry.semconv._incubating.attributes.code_attributes import (
        CODE_FILE_PATH,
        CODE_FUNCTION_NAME,
        CODE_LINE_NUMBER,
    )

__all__ = [
    "CODE_FILE_PATH",
    "CODE_FUNCTION_NAME",
    "CODE_LINE_NUMBER",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE",
    "EXCEPTION_TYPE",
    "PROCESS_PARENT_PID",
    "PROCESS_PID",
    "SCHEMA_URL",
    "SERVICE_NAME",
    "TELEMETRY_SDK_LANGUAGE",
    "TELEMETRY_SDK_NAME",
    "TELEMETRY_SDK_VERSION",
    "THREAD_ID",
    "THREAD_NAME",
    "function_name",
    "short_function_name",
]

#: The semantic-conventions version threadtrace's telemetry follows: the one
#: that made ``code.*`` stable, with ``code.function.name`` fully qualified.
#: Spelled out because ``opentelemetry.semconv.schemas.Schemas`` has no
#: ``V1_33_0`` in the oldest supported release.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.33.0"


class _Modules:
    """Which module each source file is, from ``sys.modules``; cached.

    Thread-safe: the dicts only gain entries, each the same whoever computes
    it.  A file no module claims is looked up again only after more modules
    were imported (so ``exec``'d code costs one dict lookup per call).
    """

    def __init__(self) -> None:
        self.by_file: dict[str, str] = {}
        self.indexed_at = -1

    def module_of(self, filename: str) -> Optional[str]:
        module = self.by_file.get(filename)
        if module is None and len(sys.modules) != self.indexed_at:
            self._index()
            module = self.by_file.get(filename)
        return module

    def _index(self) -> None:
        try:
            modules = list(sys.modules.items())
        except RuntimeError:  # another thread imported meanwhile: next time
            return
        self.indexed_at = len(modules)
        by_file = self.by_file
        for name, module in modules:
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path not in by_file:
                by_file[path] = name
                by_file.setdefault(os.path.abspath(path), name)


_MODULES = _Modules()
#: The qualified names found for code objects on Python < 3.11 (no ``co_qualname``):
#: a cache of a pure function, not state, so not the runtime's.
_QUALNAMES: dict[CodeType, str] = {}
MAX_QUALNAMES = 10_000


def function_name(code: Optional[CodeType]) -> Optional[str]:
    """``code.function.name`` of a code object: ``<module>.<qualname>``.

    The qualified name is ``co_qualname`` (3.11+); on 3.9 and 3.10 it is
    looked up among the module's functions and its classes' methods, and is
    the bare ``co_name`` for a function nested in another.  Without a module
    (code compiled from a string) it is the qualified name alone.  ``None``
    for no code.  Not for hot paths: the first call per file may index
    ``sys.modules``.
    """
    if code is None:
        return None
    module = _MODULES.module_of(code.co_filename)
    qualname: Optional[str] = getattr(code, "co_qualname", None)
    if qualname is None:
        qualname = _QUALNAMES.get(code)
        if qualname is None:
            if len(_QUALNAMES) >= MAX_QUALNAMES:  # code made at run time: do not keep it all
                _QUALNAMES.clear()
            qualname = _QUALNAMES[code] = _qualname_before_311(code, module)
    return f"{module}.{qualname}" if module else qualname


def _qualname_before_311(code: CodeType, module: Optional[str]) -> str:
    namespace: Any = vars(sys.modules[module]) if module in sys.modules else {}
    candidates = list(namespace.values())
    for value in list(candidates):
        if isinstance(value, type):
            candidates.extend(vars(value).values())
    for value in candidates:
        function = getattr(value, "__func__", value)  # staticmethod, classmethod
        if getattr(function, "__code__", None) is code:
            return str(getattr(function, "__qualname__", code.co_name))
    return code.co_name


def short_function_name(function: str, filename: str) -> str:
    """``function`` without its module, where the file says which it is: for people.

    ``code.function.name`` is ``pkg.bank.Ledger.transfer``; next to
    ``bank.py:41`` a report says ``Ledger.transfer``.  The module is
    recognised as ``__main__`` or the shortest dotted prefix whose last part
    is the file's name (its package's, for an ``__init__.py``); anything
    else is left whole.
    """
    stem = os.path.splitext(os.path.basename(filename))[0]
    if stem == "__init__":
        stem = os.path.basename(os.path.dirname(filename))
    parts = function.split(".")
    for end in range(1, len(parts)):
        last = parts[end - 1]
        if last == stem or (end == 1 and last == "__main__"):
            return ".".join(parts[end:])
    return function
