"""The registry of exporters: names in the ``threadtrace.exporters`` entry-point group.

Reading the registry needs nothing of threadtrace's, so the configuration
model can check exporter names without importing any exporter; loading one
(:func:`threadtrace.exporters.load_exporter`) is the exporters' own business.
"""

from __future__ import annotations

import sys
from importlib import metadata

ENTRY_POINT_GROUP = "threadtrace.exporters"


def _entry_points() -> dict[str, object]:
    if sys.version_info >= (3, 10):
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    else:  # pragma: no cover - Python 3.9's entry_points() is a dict
        found = metadata.entry_points().get(ENTRY_POINT_GROUP, ())
    points: dict[str, object] = {}
    for point in found:
        points.setdefault(point.name, point)
    return points


#: The entry points read once per process: what is installed does not change
#: while it runs (tests add fakes to it).
_cache: dict[str, object] = {}


def installed_exporters() -> dict[str, object]:
    """Every registered exporter name, mapped to its entry point."""
    if not _cache:
        _cache.update(_entry_points())
    return dict(_cache)
