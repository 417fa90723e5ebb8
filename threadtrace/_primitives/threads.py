"""Tracing threads: a span per run, context across ``start()``, timed joins.

Threads are traced through hooks rather than a replacement class, because
replacing ``threading.Thread`` breaks ``threading.Timer`` and ``isinstance``
(see the research notes on opentelemetry-python-contrib#1877).  The hooks
sit where no other instrumentation does, so they never stack on top of
OpenTelemetry's own ``ThreadingInstrumentor`` (which wraps ``start`` and
``run``):

* ``prepare_start`` runs in the starting thread, from threading's
  module-level ``_start_new_thread`` (``_start_joinable_thread`` on 3.13).
  It captures the current OpenTelemetry context and decides whether the
  thread is traced (threads started by telemetry plumbing are not).
* ``run_traced`` runs in the new thread around threading's bootstrap,
  which calls ``self.run()`` whatever subclass overrides it; for that one
  call an instance attribute ``run`` opens the span around the real
  ``run``, and an exception escaping it is recorded before threading's
  excepthook sees it.  Under :func:`threadtrace.patch`, the hook on
  ``_start_new_thread`` hands the new thread ``run_traced`` around its
  ``_bootstrap`` (:func:`traced_bootstrap`): a wrapper on the method
  ``_bootstrap_inner`` cost every thread a bound wrapper made and called.
* ``traced_join`` is ``Thread.join`` timing a wait that blocks.

:class:`Thread` and :class:`Timer` apply the same hooks by overriding
``start``, ``_bootstrap_inner`` and ``join``, so they are traced with or
without :func:`threadtrace.patch`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

from .._detect import hooks
from .._recording.events import RunDetails
from .._recording.recorder import (
    current_context,
    enter_context,
    get_current,
    leave_context,
    run_context,
)
from .._runtime import runtime
from .._support import originals as _originals
from .._support.statistics import WaitStatistics
from . import core

_ORIGINAL_BOOTSTRAP_INNER = _originals.Thread._bootstrap_inner  # type: ignore[attr-defined]
_ORIGINAL_JOIN = _originals.Thread.join
_ORIGINAL_START = _originals.Thread.start
_starts = core.starts  # None with the pure-Python core


def prepare_start(thread: Any, depth: int) -> None:
    """In the starting thread: decide whether to trace, and capture the context."""
    if getattr(thread, "_tt_prepared", False):
        return
    thread._tt_prepared = True
    traced = ... if _starts is None else _starts(depth + 1)
    if traced is ...:
        traced = runtime.starts_traced(depth + 1)
    thread._tt_traced = traced
    if traced:
        thread._tt_context = get_current()
        # What it runs: its target, a Timer's function, or its class's run.
        # run() deletes _target when it ends; joins are named after it later.
        target = getattr(thread, "_target", None) or getattr(thread, "function", None)
        function = target if callable(target) else type(thread).run
        # A low-cardinality name for the thread's metric series.
        module = getattr(function, "__module__", None)
        qualname = getattr(function, "__qualname__", None) or type(function).__name__
        thread._tt_function = f"{module}.{qualname}" if module else qualname
        thread._tt_code = getattr(function, "__code__", None)


def traced_bootstrap(thread: Any, bootstrap: Callable[[], None]) -> Callable[[], None]:
    """What a thread being started runs in place of ``bootstrap``, its ``_bootstrap``.

    A traced thread runs it inside :func:`run_traced`; one of threadtrace's
    classes does that itself (in its ``_bootstrap_inner``).
    """
    if not getattr(thread, "_tt_traced", False) or isinstance(thread, _TracedThreadMixin):
        return bootstrap
    return functools.partial(run_traced, thread, bootstrap)


def run_traced(thread: Any, bootstrap_inner: Callable[[], None]) -> None:
    """In the new thread: run ``bootstrap_inner`` with ``run()`` inside the thread's span.

    The span is opened by a ``run`` installed on the instance for the
    duration, not here: ``bootstrap_inner`` first tells ``start()`` that the
    thread is up, and nothing threadtrace does may delay that (the starting
    thread may hold locks that recording needs, as ``ThreadPoolExecutor.submit``
    does).
    """
    recorder = runtime.recorder
    if recorder is None or not getattr(thread, "_tt_traced", False):
        bootstrap_inner()
        return
    run = thread.run
    traced = functools.partial(_run_in_span, recorder, thread, run)
    thread.run = traced
    try:
        bootstrap_inner()
    finally:
        # getattr, not thread.__dict__: asking for an instance's __dict__
        # builds it (3.11 on keeps attributes inline until then), and every
        # attribute read of the thread after that, threading's own in
        # join() and _stop(), takes the slower way.
        # A subclass's own run, a property (with no deleter, or whose getter
        # raises), stays as it was set: nothing raises after the run.
        try:
            if getattr(thread, "run", None) is traced:
                del thread.run
        except Exception:  # noqa: BLE001 - see above
            pass


def _run_in_span(recorder: Any, thread: Any, run: Callable[[], None]) -> None:
    next(runtime.thread_runs)
    ended_by: Optional[BaseException] = None  # the exception that ended the run, if one did
    try:
        if not recorder.spans_enabled:
            run()
            return
        try:
            # An empty context is falsy: compared with None, not tested.
            parent = getattr(thread, "_tt_context", None)
            if parent is None:
                parent = get_current()
            # No span yet: the recorder makes it if something in the run needs
            # a parent or a link, or if the run turns out long (see ThreadRun).
            # These are what it is made of, if it is made.
            cls = type(thread)
            details: RunDetails = (
                _originals.get_ident(),
                thread._name if cls.name is _originals.THREAD_NAME else thread.name,
                thread._daemonic if cls.daemon is _originals.THREAD_DAEMON else bool(thread.daemon),
                getattr(thread, "_tt_function", None),
                getattr(thread, "_tt_code", None),
            )
            traced = recorder.begin_run(details, parent)
            token = enter_context(run_context(traced))
        except Exception as failure:  # noqa: BLE001 - the thread runs, untraced
            runtime.internal_error("Thread.run", failure)
            run()
            return
        thread._tt_run = traced
        error: Optional[BaseException] = None
        try:
            run()
        except BaseException as exc:  # recorded, then threading's excepthook sees it as usual
            error = exc
            raise
        finally:
            try:
                leave_context(token)
            except Exception as failure:  # noqa: BLE001 - detach() only logs it, and so do we
                runtime.internal_error("Thread.run", failure)
            recorder.end_run(traced, error)
            error = None  # the traceback holds this frame: no cycle through it
    except BaseException as exc:  # the detectors' reports say how the thread ended
        ended_by = exc
        raise
    finally:
        next(runtime.thread_ends)
        hooks.thread_ended(_originals.get_ident(), thread, ended_by)
        ended_by = None  # the traceback holds this frame: no cycle through it


class _On:
    """The switch of :class:`Thread`'s own ``join``: always on."""

    on = True


def traced_join(original: Callable[..., Any], switch: Any = _On) -> Callable[..., Any]:
    """``original`` (threading's ``Thread.join``), timing a wait that blocks while ``switch.on``.

    A plain function, bound as the original is, rather than a wrapt
    ``FunctionWrapper``: that made and called a bound wrapper on every join,
    4.5k instructions more than this.  Any call that is not
    ``join(self[, timeout])`` is threading's to refuse, with its own message.
    """

    @functools.wraps(original)
    def join(*args: Any, **kwargs: Any) -> Any:
        count = len(args)
        if switch.on and (
            (count == 2 and not kwargs) or (count == 1 and (not kwargs or [*kwargs] == ["timeout"]))
        ):
            join_traced(args[0], original, args[1] if count == 2 else kwargs.get("timeout"))
            return None
        return original(*args, **kwargs)

    return join


def join_traced(
    thread: Any, join: Callable[[Any, Optional[float]], None], timeout: Optional[float]
) -> None:
    """Join with ``join(thread, timeout)``, timing the wait when the thread was still running."""
    # Not started (threading raises its own error), already finished,
    # self-join (an error too), or a thread threadtrace does not trace
    # (telemetry plumbing's, one started before patch()): no wait to time.
    # Attributes read where threading's properties and methods return them
    # (_started.is_set(), ident, runtime.recording()): three calls fewer a join.
    if not getattr(getattr(thread, "_started", None), "_flag", False):
        join(thread, timeout)
        return
    if (
        not thread.is_alive()
        or not getattr(thread, "_tt_traced", False)
        or getattr(thread, "_ident", None) == _originals.get_ident()
        or runtime.get_guard()
    ):
        _count_join(thread, blocked=False)
        join(thread, timeout)
        return
    clock = runtime.clock
    wait = hooks.begin(thread, "join", timeout)  # before it counts as a waiter (see Lock)
    start = clock.monotonic_ns()
    site = core.waiting_site(1)
    book = runtime.book  # not "with": see Runtime.book
    book.acquire()
    try:
        thread._tt_join_waiters = getattr(thread, "_tt_join_waiters", 0) + 1
    finally:
        book.release()
    try:
        if timeout is None and wait is not None and runtime.config.on_deadlock == "raise":
            while thread.is_alive():  # in slices, so a deadlock can end the wait
                join(thread, 0.05)
                hooks.raise_if_doomed(wait)
        else:
            join(thread, timeout)
    finally:
        hooks.end(wait)
        end = clock.monotonic_ns()
        ok = not thread.is_alive()
        _count_join(thread, blocked=True, wait=end - start, ok=ok, leaving=True)
        # Summed in place when short, else queued as a record.
        recorder = runtime.recorder
        try:
            if recorder is not None:
                recorder.note_wait(
                    "thread",
                    thread.name,
                    "join",
                    start,
                    end,
                    ok,
                    site,
                    current_context(),
                    timeout=timeout,
                    link_to=getattr(thread, "_tt_run", None),
                    # Counted under what the thread runs: thread names are many (Thread-7).
                    series=getattr(thread, "_tt_function", None),
                )
        except Exception as error:  # noqa: BLE001 - the join's outcome stands as it is
            runtime.internal_error("Thread.join", error)


def count_unfinished_join(thread: Any, waited: int) -> None:
    """A join still waiting at exit counts as one that blocked, so far."""
    _count_join(thread, blocked=True, wait=waited, ok=True)


def _count_join(
    thread: Any, *, blocked: bool, wait: int = 0, ok: bool = True, leaving: bool = False
) -> None:
    """Count a join (``leaving``: a waiter of this thread's that stops waiting now)."""
    book = runtime.book  # not "with": see Runtime.book
    book.acquire()
    try:
        if leaving:
            thread._tt_join_waiters -= 1
        stats = getattr(thread, "_tt_join_stats", None)
        if stats is None:
            stats = thread._tt_join_stats = [0, 0, 0, 0, 0]
        stats[0] += 1
        if blocked:
            stats[1] += 1
            stats[2] += 0 if ok else 1
            stats[3] += wait
            stats[4] = max(stats[4], wait)
    finally:
        book.release()


def thread_statistics(thread: Any) -> WaitStatistics:
    """The join statistics of any thread, traced or not."""
    waits, blocked, timeouts, total, longest = getattr(thread, "_tt_join_stats", None) or [0] * 5
    return WaitStatistics(
        kind="thread",
        name=thread.name,
        waits=waits,
        blocked=blocked,
        timeouts=timeouts,
        total_wait=total / 1e9,
        max_wait=longest / 1e9,
        waiters=getattr(thread, "_tt_join_waiters", 0),
    )


class _TracedThreadMixin:
    """The hooks applied by overriding, for :class:`Thread` and :class:`Timer`."""

    @functools.wraps(_ORIGINAL_START)
    def start(*args: Any, **kwargs: Any) -> None:
        # Its span's parent is the span current here.  Any call but start(self)
        # is threading's to refuse, with its own message.
        if len(args) != 1 or kwargs:
            _ORIGINAL_START(*args, **kwargs)
            return
        prepare_start(args[0], 1)
        super(_TracedThreadMixin, args[0]).start()  # type: ignore[misc]

    def _bootstrap_inner(self) -> None:
        run_traced(self, functools.partial(_ORIGINAL_BOOTSTRAP_INNER, self))

    join = traced_join(_ORIGINAL_JOIN)

    def statistics(self) -> WaitStatistics:
        """A snapshot of the joins this thread has seen."""
        return thread_statistics(self)


class Thread(_TracedThreadMixin, _originals.Thread):
    """A traced drop-in for :class:`threading.Thread`.

    Subclass it exactly as you would ``threading.Thread``.  Its run is a span
    (``Thread.run``) whose parent is the span current where ``start()`` was
    called; a ``join`` that blocks is a span linked to it.
    """


class Timer(Thread, _originals.Timer):
    """A traced drop-in for :class:`threading.Timer`."""
