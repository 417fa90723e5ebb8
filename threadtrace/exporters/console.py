"""``console``: one readable line per span on stderr, for people.

Time, thread, span, duration, then what it was about::

    [threadtrace] 12:00:01.234 worker-2     Lock.acquire ledger   12.3 ms  at bank.py:42,
        held by worker-1 (acquired at bank.py:30), woken by worker-1
    [threadtrace] 12:00:01.250 worker-1     Lock.hold ledger      25.0 ms  from bank.py:30

(each on one line; wrapped here).

Metrics are not printed: totals are in the summary and the contention report.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any, Mapping, Sequence

from .._support import units as _units
from .._support.attributes import CODE_FILE_PATH, CODE_FUNCTION_NAME, CODE_LINE_NUMBER, THREAD_NAME
from .._support.names import operation_of
from . import Exporter

_PREFIX = "[threadtrace]"


class ConsoleExporter(Exporter):
    def export_spans(self, spans: Sequence[Any]) -> bool:
        lines = "".join(format_span(span) + "\n" for span in spans)
        stream = sys.stderr  # looked up each time: tests and tools swap it
        stream.write(lines)
        stream.flush()
        return True

    def destination(self) -> str:
        return "stderr"


def format_span(span: Any) -> str:
    """The console line of a span (an SDK ``ReadableSpan``)."""
    attributes: Mapping[str, Any] = span.attributes or {}
    start = int(span.start_time or 0)
    end = int(span.end_time or start)
    when = datetime.datetime.fromtimestamp(start / 1e9).strftime("%H:%M:%S.%f")[:-3]
    thread = attributes.get(THREAD_NAME, "?")
    line = (
        f"{_PREFIX} {when} {thread:<12} {span.name:<18} {_units.duration((end - start) / 1e9):>8}"
    )
    detail = _detail(span.name, attributes)
    if detail:
        line = f"{line}  {detail}"
    if not span.status.is_ok:
        line = f"{line}  ERROR {span.status.description or ''}".rstrip()
    return line


def _site(attributes: Mapping[str, Any], prefix: str = "") -> str:
    path = attributes.get(f"{prefix}{CODE_FILE_PATH}")
    if not path:
        return ""
    return f"{os.path.basename(str(path))}:{attributes.get(f'{prefix}{CODE_LINE_NUMBER}', '?')}"


def _detail(name: str, attributes: Mapping[str, Any]) -> str:
    operation = attributes.get("threadtrace.operation")
    site = _site(attributes)
    if operation_of(name) == "Thread.run":
        target = attributes.get(CODE_FUNCTION_NAME)
        return f"ran {target}" if target else ""
    primitive = attributes.get("threadtrace.primitive.name", "")
    # The span's name carries the primitive's ("Lock.acquire ledger"); a span
    # of another program's, named before targets were, may not.
    parts = [] if " " in name else [str(primitive)]
    if operation == "hold":
        if site:
            parts.append(f"from {site}")
        return " ".join(part for part in parts if part)
    if site:
        parts.append(f"at {site}")
    clauses = [" ".join(part for part in parts if part)]
    holder = attributes.get("threadtrace.holder.thread.name")
    if holder is not None:
        holder_site = _site(attributes, "threadtrace.holder.")
        clauses.append(
            f"held by {holder}" + (f" (acquired at {holder_site})" if holder_site else "")
        )
    waker = attributes.get("threadtrace.waker.thread.name")
    if waker is not None:
        clauses.append(f"woken by {waker}")
    if attributes.get("threadtrace.timed_out"):
        timeout = _units.duration(float(attributes.get("threadtrace.timeout", 0)))
        clauses.append(f"timed out after {timeout}")
    return ", ".join(clause for clause in clauses if clause)
