"""The trace files ``threadtrace report`` and ``convert`` are given: one, several, or a glob.

A run with child processes leaves a trace file per process
(``threadtrace-trace.jsonl``, ``threadtrace-trace.4242.jsonl``...).  Both
commands take them all, named one by one, expanded by the shell, or as a
quoted glob that threadtrace expands itself (``'threadtrace-trace*.jsonl'``:
the same on every shell, and on Windows).  Among several inputs, the
metrics files the ``json`` exporter writes beside each trace
(``*.metrics.jsonl``), which such a glob matches too, are left out.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Sequence

from .usage import UsageError

#: The suffix of the metrics file the json exporter writes beside each trace.
METRICS_SUFFIX = ".metrics.jsonl"


def trace_files(prog: str, given: Sequence[str]) -> list[str]:
    """The trace files named by ``given``, in order, each once.

    Raises:
        UsageError: a glob that matches no file.
    """
    found: list[str] = []
    for item in given:
        if glob.has_magic(item) and not os.path.exists(item):
            matches = sorted(glob.glob(item), key=_in_order)
            if not matches:
                raise UsageError(f"{prog}: error: no file matches {item!r}")
            found.extend(matches)
        else:
            found.append(item)
    unique = list(dict.fromkeys(found))
    if len(unique) > 1:
        unique = [path for path in unique if not path.endswith(METRICS_SUFFIX)]
    return unique


def _in_order(path: str) -> tuple[object, ...]:
    """The program's file first, then its children's by pid.

    ``t.jsonl``, ``t.9.jsonl``, ``t.10.jsonl``: fewer dots first, numbers as numbers.
    """
    name = os.path.basename(path)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name))
    return (os.path.dirname(path), name.count("."), parts)
