"""The registry of exporters: names in the ``threadtrace.exporters`` entry-point group.

Reading the registry needs nothing of threadtrace's, so the configuration
model can check exporter names without importing any exporter; loading one
(:func:`threadtrace.exporters.load_exporter`) is the exporters' own business.

threadtrace's own exporters are known here by name, as ``pyproject.toml``
registers them (a test checks that the two agree).  Only another package's
exporter, or the whole list, needs the installed packages' metadata: reading
it imports :mod:`importlib.metadata` (with ``zipfile``, ``email``, ``csv`` and
more: 35 modules, 1.6 MB of a traced program's memory on 3.11) and scans every
installed package.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple, Optional

ENTRY_POINT_GROUP = "threadtrace.exporters"

#: threadtrace's own exporters: name -> entry point value, as in pyproject.toml.
BUILT_IN = {
    "console": "threadtrace.exporters.console:ConsoleExporter",
    "json": "threadtrace.exporters.otlp_json:JsonExporter",
    "memory": "threadtrace.exporters.memory:MemoryExporter",
    "otlp": "threadtrace.exporters.otlp:OtlpExporter",
    "perfetto": "threadtrace.exporters.perfetto:PerfettoExporter",
}


class BuiltIn(NamedTuple):
    """One of threadtrace's own entry points, without the metadata: what loading needs of one."""

    name: str
    value: str
    group: str = ENTRY_POINT_GROUP

    def load(self) -> object:
        module, _, attribute = self.value.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _entry_points() -> dict[str, object]:
    from importlib import metadata  # noqa: PLC0415 - see the module's docstring

    if sys.version_info >= (3, 10):
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    else:  # pragma: no cover - Python 3.9's entry_points() is a dict
        found = metadata.entry_points().get(ENTRY_POINT_GROUP, ())
    points: dict[str, object] = {}
    for point in found:
        if BUILT_IN.get(point.name, point.value) == point.value:  # a built-in name stays ours
            points.setdefault(point.name, point)
    return points


#: The entry points read once per process: what is installed does not change
#: while it runs (tests add fakes to it).
_cache: dict[str, object] = {}


def installed_exporters() -> dict[str, object]:
    """Every registered exporter name, mapped to its entry point."""
    if not _cache:
        _cache.update(_entry_points())
    return {**{name: BuiltIn(name, value) for name, value in BUILT_IN.items()}, **_cache}


def unknown_exporter(name: str) -> str:
    """What to say of an exporter name that nothing registers: the names that are."""
    installed = ", ".join(sorted(installed_exporters()))
    return f"unknown exporter {name!r}; installed exporters: {installed}"


def find_exporter(name: str) -> Optional[object]:
    """The entry point registered as ``name``, or None (a built-in one read from no metadata)."""
    point = _cache.get(name)
    if point is None and name in BUILT_IN:
        return BuiltIn(name, BUILT_IN[name])
    return point if point is not None else installed_exporters().get(name)
