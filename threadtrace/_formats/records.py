"""Spans as plain records: what timelines and reports are made from.

:class:`SpanRecord` is the same whether a span comes live from the SDK
(:func:`from_readable`) or from an OTLP JSON Lines file
(:func:`threadtrace._formats.otlp_jsonl.read_trace_file`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional


@dataclasses.dataclass(frozen=True)
class LinkRecord:
    trace_id: str
    span_id: str
    attributes: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class SpanRecord:
    """One finished span.  Times are nanoseconds since the epoch; ids are hex."""

    trace_id: str
    span_id: str
    parent_span_id: Optional[str]
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    links: tuple[LinkRecord, ...] = ()
    error: Optional[str] = None  # the status description of a span with ERROR status
    service_name: str = ""
    #: The resource's ``process.pid``, if it has one: tells the processes of one run apart.
    process_id: Optional[int] = None

    @property
    def thread_id(self) -> Optional[int]:
        """The ``thread.id`` attribute, if it is an ident: an int, or the text of one."""
        value = self.attributes.get("thread.id")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:  # not a thread's ident: a span of some other program
                return None
        return None

    @property
    def thread_name(self) -> str:
        return str(self.attributes.get("thread.name", ""))

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


def from_readable(span: Any) -> SpanRecord:
    """A record of an SDK ``ReadableSpan``."""
    context = span.get_span_context()
    parent = span.parent
    status = span.status
    resource = span.resource.attributes if span.resource is not None else {}
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_span_id=f"{parent.span_id:016x}" if parent is not None else None,
        name=span.name,
        start_ns=int(span.start_time or 0),
        end_ns=int(span.end_time or span.start_time or 0),
        attributes=dict(span.attributes or {}),
        links=tuple(
            LinkRecord(
                f"{link.context.trace_id:032x}",
                f"{link.context.span_id:016x}",
                dict(link.attributes or {}),
            )
            for link in span.links
        ),
        error=(status.description or "error") if not status.is_ok else None,
        service_name=str(resource.get("service.name", "")),
        process_id=_pid(resource.get("process.pid")),
    )


def _pid(value: Any) -> Optional[int]:
    """A ``process.pid`` attribute as a number, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
