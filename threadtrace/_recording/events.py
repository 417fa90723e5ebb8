"""What a thread saw, kept as plain records until threadtrace's own thread records them.

A thread that blocked (or held a lock long) gathers what there is to know
about it into a :class:`WaitRecord` (:class:`HoldRecord`): the times, the
thread, where it waited, who held what it waited for and where that holder
took it, who woke it, and the OpenTelemetry context it was in.  That costs
an object and a context read.  Turning the record into a span, a histogram
point and a row of the contention profile costs tens of microseconds of
SDK work, and happens later, on threadtrace's worker thread
(:meth:`threadtrace._recording.recorder.Recorder.drain`): never inside the
lock the thread has just taken, where it would lengthen every other
thread's wait and, under heavy contention, turn the lock into a convoy.
A wait shorter than ``wait_threshold`` is never a span: unless the app's
providers take a histogram point for each, it costs no record at all, only
a few additions to the sums of its place
(:meth:`threadtrace._recording.recorder.Recorder.count_short`).

An exception that ended a wait is kept as text (type, message, stack), not
as the exception: its traceback would keep the program's frames alive.
"""

from __future__ import annotations

import traceback
from types import CodeType
from typing import Any, Optional, Union

from opentelemetry import trace

from .._support.attributes import (
    CODE_FILE_PATH,
    CODE_FUNCTION_NAME,
    CODE_LINE_NUMBER,
    THREAD_ID,
    THREAD_NAME,
)
from .._support.sites import Site

#: (type name, message, formatted traceback) of an exception that ended a wait.
ErrorInfo = tuple[str, str, str]

#: What a thread's run span is named and described by: (thread id, thread
#: name, daemon, the function's name, its code).
RunDetails = tuple[int, str, bool, Optional[str], Optional[CodeType]]


def error_info(error: Optional[BaseException]) -> Optional[ErrorInfo]:
    """The exception as text, for a span's exception event; ``None`` for none."""
    if error is None:
        return None
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return (type(error).__qualname__, str(error), stack)


class WaitRecord:
    """One operation that blocked, from ``start`` to ``end`` (monotonic ns).

    Attributes:
        ok: it got what it waited for (``False``: timed out, or an error).
        timeout: the timeout it was given, in seconds, or ``None``.
        error: the exception that ended it, as text.
        thread_id, thread_name: the thread that waited.
        site: where the program waited.
        holder, holder_name, holder_site: who held what it waited for, and
            where that holder had acquired it (``None`` when not measured:
            never a guess).
        waker: (ident, name, OpenTelemetry context) of the thread that woke it.
        link_to: a span context to link to (a joined thread's run).
        series: the metric series name when ``name`` would be too many.
        unfinished: the wait was still going on when threadtrace recorded
            it (at exit): ``end`` is that moment, not the wait's end.
        context: the OpenTelemetry context it waited in (the span's parent).
    """

    __slots__ = (
        "context",
        "end",
        "error",
        "holder",
        "holder_name",
        "holder_site",
        "kind",
        "link_to",
        "name",
        "ok",
        "operation",
        "series",
        "site",
        "start",
        "thread_id",
        "thread_name",
        "timeout",
        "unfinished",
        "waker",
    )

    def __init__(
        self,
        kind: str,
        name: str,
        operation: str,
        start: int,
        end: int,
        ok: bool,
        thread_id: int,
        thread_name: str,
        site: Optional[Site],
        context: Any,
        *,
        timeout: Optional[float] = None,
        error: Optional[ErrorInfo] = None,
        holder: Optional[int] = None,
        holder_name: Optional[str] = None,
        holder_site: Optional[Site] = None,
        waker: Any = None,
        link_to: Any = None,
        series: Optional[str] = None,
        unfinished: bool = False,
    ) -> None:
        self.kind = kind
        self.name = name
        self.operation = operation
        self.start = start
        self.end = end
        self.ok = ok
        self.thread_id = thread_id
        self.thread_name = thread_name
        self.site = site
        self.context = context
        self.timeout = timeout
        self.error = error
        self.holder = holder
        self.holder_name = holder_name
        self.holder_site = holder_site
        self.waker = waker
        self.link_to = link_to
        self.series = series
        self.unfinished = unfinished

    @property
    def duration(self) -> int:
        return self.end - self.start


class HoldRecord:
    """A measured hold of a lock, from ``start`` to ``end`` (monotonic ns)."""

    __slots__ = ("context", "end", "kind", "name", "site", "start", "thread_id", "thread_name")

    def __init__(
        self,
        kind: str,
        name: str,
        start: int,
        end: int,
        thread_id: int,
        thread_name: str,
        site: Optional[Site],
        context: Any,
    ) -> None:
        self.kind = kind
        self.name = name
        self.start = start
        self.end = end
        self.thread_id = thread_id
        self.thread_name = thread_name
        self.site = site
        self.context = context


class ThreadRun:
    """A traced thread's run, whose ``Thread.run`` span is made only when needed.

    Made in the thread as its run begins: a few fields, no span.  The
    recorder's thread makes the span (with the run's start time) when a
    record needs it as a parent or a link, or when the run ends having
    lasted ``wait_threshold`` or raised; a short, quiet run costs no span,
    and queues nothing: its thread notes the end here itself.

    Who ends the span.  The thread, as its run ends, writes ``end`` and
    ``ended``, then reads ``span``; the recorder's thread, making the span,
    writes ``span``, then reads ``ended``.  Whichever reads second sees the
    other's write: either the recorder sees ``ended`` and ends the span as
    it makes it, or the thread sees the span and queues a :class:`RunEnd`
    for it; ``closed`` (the recorder's thread only) keeps it from being
    ended twice when both happen.

    Attributes:
        details: what the span's attributes are made of, noted as the run
            began: ``(thread id, thread name, daemon, function name, code)``;
            read only if the span is made.
        parent: the OpenTelemetry context the thread was started in.
        base: the span context current in ``parent`` (what a record's
            context holds while nothing else was started in the thread);
            found when first asked for, by the recorder's thread or a
            waker, not as every run begins.
        start: when the run began (monotonic ns).
        span: the span once made; ``ended`` once the run ended, at ``end``
            (monotonic ns); ``closed`` once the span was ended.
    """

    __slots__ = ("_base", "closed", "details", "end", "ended", "parent", "span", "start")

    def __init__(self, details: RunDetails, parent: Any, start: int) -> None:
        self.details = details
        self.parent = parent
        self._base: Any = None
        self.start = start
        self.span: Any = None
        self.ended = False
        self.closed = False
        self.end = 0

    @property
    def base(self) -> Any:
        """The span context current in ``parent`` (contexts do not change: kept once found)."""
        base = self._base
        if base is None:
            base = self._base = trace.get_current_span(self.parent).get_span_context()
        return base

    def attributes(self) -> dict[str, Any]:
        """The ``Thread.run`` span's attributes (semantic conventions' names)."""
        ident, name, daemon, function, code = self.details
        made: dict[str, Any] = {
            THREAD_ID: ident,
            THREAD_NAME: name,
            "threadtrace.thread.daemon": daemon,
        }
        if code is not None:
            made[CODE_FUNCTION_NAME] = function or code.co_name
            made[CODE_FILE_PATH] = code.co_filename
            made[CODE_LINE_NUMBER] = code.co_firstlineno
        return made


class RunEnd:
    """A thread's run ended at ``end`` (monotonic ns): recorded in queue order."""

    __slots__ = ("end", "error", "run")

    def __init__(self, run: ThreadRun, end: int, error: Optional[ErrorInfo]) -> None:
        self.run = run
        self.end = end
        self.error = error


#: Anything the worker records.
Record = Union[WaitRecord, HoldRecord, RunEnd]
