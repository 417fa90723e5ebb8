"""Turns what the primitives observed into OpenTelemetry spans and metrics.

Only slow paths call in here: an operation that really blocked, a sampled or
contended hold, a thread starting or ending.  Uncontended operations never
do; their counts sit in the primitives' own fields and are published by the
observable instruments in :mod:`threadtrace._recording.metrics` when a reader collects.

Two rules keep the host safe:

* Recording runs under :meth:`threadtrace._runtime.Runtime.guarded`, and skips itself
  while the OpenTelemetry context says instrumentation is suppressed (the SDK
  sets that around exports).  Primitives used by the SDK while recording are
  therefore never recorded, and nothing re-enters.
* Recording never raises into the caller.  The first failure of spans or of
  metrics is logged once on the ``threadtrace`` logger and that part is
  disabled; the program goes on unchanged.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import time
from bisect import bisect_left
from typing import Any, Callable, Optional, Sequence

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import Link, SpanContext, Status, StatusCode

from .._runtime import runtime
from .._support import originals as _originals
from .._support.attributes import (
    CODE_FILE_PATH,
    CODE_FUNCTION_NAME,
    CODE_LINE_NUMBER,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
    SCHEMA_URL,
    THREAD_ID,
    THREAD_NAME,
    function_name,
)
from .._support.names import DISPLAY, span_name, thread_target
from .._support.points import WAIT_BUCKETS
from .._support.sites import Site
from .._support.version import __version__
from . import profile as _profile  # noqa: F401 - puts runtime.profile in place
from .events import (
    ErrorInfo,
    HoldRecord,
    Record,
    RunDetails,
    RunEnd,
    ThreadRun,
    WaitRecord,
    error_info,
)
from .metrics import SCOPE, Instruments, with_wait_durations

try:  # the key moved between releases; both spellings are honoured
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY
except ImportError:  # pragma: no cover - very old API
    _SUPPRESS_KEY = "suppress_instrumentation"
#: The keys a context suppresses instrumentation with (either, set true, does).
SUPPRESS_KEYS = (_SUPPRESS_KEY, "suppress_instrumentation")


def suppressed_in(context: Any) -> bool:
    """Whether instrumentation is suppressed in ``context``: one of :data:`SUPPRESS_KEYS` set.

    (The C core's ``count_short`` asks the same of a wait's context.)
    """
    return bool(context.get(_SUPPRESS_KEY) or context.get("suppress_instrumentation"))


#: (thread id, thread name, OpenTelemetry context) of a thread that woke others;
#: what a span links to is worked out from the context only if one is made.
Waker = tuple[int, str, Any]

#: The context key of the run of the thread (a :class:`ThreadRun`).
_RUN_KEY = otel_context.create_key("threadtrace-run")


def _context_var() -> Optional[contextvars.ContextVar[Any]]:
    """The context variable behind ``opentelemetry.context.get_current()``, if it is one."""
    current = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    if type(current) is not ContextVarsRuntimeContext:
        return None
    var = getattr(current, "_current_context", None)
    return var if isinstance(var, contextvars.ContextVar) else None


#: With OpenTelemetry's default runtime context, ``get_current()``,
#: ``attach()`` and ``detach()`` come down to a get, a set and a reset of
#: this variable, under three layers of Python calls each (about 1k
#: instructions a call).  threadtrace's own reads and the hand-overs it
#: makes on every thread's run and pool task use the variable itself: the
#: C lock core too, noting a waker's context.  ``None`` with any other
#: runtime context: then they go through OpenTelemetry's functions.
CONTEXT_VAR = _context_var()

#: ``opentelemetry.context``'s ``get_current``, ``attach`` and ``detach``,
#: or the same in one C call each.  ``leave_context`` raises where
#: ``detach`` would log: for a token not made in this context.
get_current: Callable[[], Any]
enter_context: Callable[[Any], Any]
leave_context: Callable[[Any], Any]
if CONTEXT_VAR is None:
    get_current = otel_context.get_current
    enter_context = otel_context.attach
    leave_context = otel_context.detach
else:
    get_current = CONTEXT_VAR.get
    enter_context = CONTEXT_VAR.set
    leave_context = CONTEXT_VAR.reset


#: The OpenTelemetry context of this thread now: the parent of its wait's span
#: (``get_current`` itself, under the name the primitives read it by).
current_context = get_current


def current_waker() -> Waker:
    """Who is running now, for the waiter it is about to wake (its span: linked later)."""
    return (_originals.get_ident(), _originals.current_thread_name(), get_current())


def _waker_target(context: Any) -> Any:
    """What a woken waiter's span links to: the waker's run (its span made then) or span."""
    span = trace.get_current_span(context).get_span_context()
    run: Any = context.get(_RUN_KEY)
    if run is not None and span == run.base:
        return run
    return span if span.is_valid else None


def run_context(run: ThreadRun) -> Any:
    """The context a thread runs in: where it was started, and its run (made a span on need)."""
    return otel_context.set_value(_RUN_KEY, run, run.parent)


def _site_attributes(prefix: str, site: Optional[Site]) -> dict[str, Any]:
    if site is None or site.code is None:
        return {}
    return {
        f"{prefix}{CODE_FUNCTION_NAME}": function_name(site.code),
        f"{prefix}{CODE_FILE_PATH}": site.filename,
        f"{prefix}{CODE_LINE_NUMBER}": site.lineno,
    }


def _mark_error(span: trace.Span, error: Optional[BaseException]) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _mark_error_info(span: trace.Span, error: ErrorInfo, when: int) -> None:
    """What ``record_exception`` would add, from an exception kept as text."""
    kind, message, stack = error
    span.add_event(
        "exception",
        {EXCEPTION_TYPE: kind, EXCEPTION_MESSAGE: message, EXCEPTION_STACKTRACE: stack},
        timestamp=when,
    )
    span.set_status(Status(StatusCode.ERROR, f"{kind}: {message}"))


#: Records waiting to be recorded before new ones are dropped (and counted).
MAX_PENDING = 65536
#: Records waiting at which the worker thread is woken at once.
WAKE_AT = 1024
#: Places whose short waits are summed between two drains; a wait at a new
#: place past it is queued as a record (which wakes the worker: see WAKE_AT).
MAX_SHORT_PLACES = 4096


def sum_short(
    sums: dict[tuple[Any, ...], list[Any]],
    max_places: int,
    buckets: tuple[float, ...],
    kind: str,
    name: str,
    ok: bool,
    site: Optional[Site],
    holder: Optional[int],
    holder_name: Optional[str],
    holder_site: Optional[Site],
    wait_ns: int,
) -> bool:
    """Add a wait of ``wait_ns`` to the row of its place in ``sums``; ``False``: no room.

    The place is the primitive, this thread, the sites and the holder; its
    row is [count, total ns, longest, shortest, bucket counts], the bucket
    the SDK's histogram puts the wait in (as ``ContentionAggregator.record``).
    A new place when ``sums`` has ``max_places`` already is not added.  The
    caller holds the sums' lock.
    """
    if wait_ns < 0:
        wait_ns = 0
    place = (
        kind,
        name,
        ok,
        _originals.current_thread_name(),
        site,
        holder,
        holder_name,
        holder_site,
    )
    row = sums.get(place)
    if row is None:
        if len(sums) >= max_places:
            return False
        row = sums[place] = [0, 0, 0, wait_ns, [0] * (len(buckets) + 1)]
    row[0] += 1
    row[1] += wait_ns
    if wait_ns > row[2]:
        row[2] = wait_ns
    if wait_ns < row[3]:
        row[3] = wait_ns
    row[4][bisect_left(buckets, wait_ns / 1e9)] += 1
    return True


class SpanBudget:
    """At most ``rate`` spans a second for each primitive: a token bucket per (kind, name, op).

    Used on the recorder's thread only.  A busy ``Condition`` can block for
    a millisecond or more a thousand times a second (the GIL hands over every
    5 ms); every such wait is counted and timed, but past the budget it is
    not also a span, whose cost (tens of microseconds) would fall on the
    program.  Bounded: past :data:`MAX_KEYS` primitives, new ones share one
    bucket.
    """

    MAX_KEYS = 1500

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str, str], list[float]] = {}
        self.skipped = 0

    def allow(self, key: tuple[str, str, str], now_ns: int) -> bool:
        rate = runtime.config.span_limit
        if rate <= 0:
            return True
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.MAX_KEYS:
                key = ("", "", "")
                bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = [float(rate), float(now_ns)]
        tokens = min(float(rate), bucket[0] + (now_ns - bucket[1]) * rate / 1e9)
        bucket[1] = float(now_ns)
        if tokens < 1.0:
            bucket[0] = tokens
            self.skipped += 1
            return False
        bucket[0] = tokens - 1.0
        return True


class Recorder:
    """Records spans and metric points for threadtrace.

    Thread-safe: program threads queue records (:meth:`defer`), and
    threadtrace's worker records them (:meth:`drain`).

    Attributes:
        lost: records dropped because the queue was full.
    """

    def __init__(
        self,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Optional[Any] = None,
    ) -> None:
        self._explicit_tracer_provider = tracer_provider
        self._explicit_meter_provider = meter_provider
        self._fallback: Optional[Any] = None  # threadtrace's own providers, made on demand
        self._tracer: Optional[trace.Tracer] = None
        self._tracer_source: Optional[object] = None
        self._instrument_sets: Optional[tuple[Any, ...]] = None
        #: The instrument sets taking histogram points, for the batch being drained.
        self._histogram_sets: Optional[tuple[Any, ...]] = None
        self._problem_counters: Optional[list[tuple[Any, Callable[[], bool]]]] = None
        #: Set by the exit flush: from then on threadtrace's own providers are
        #: never rebuilt; what is recorded later (daemon threads, other atexit
        #: handlers) goes nowhere.
        self.closed = False
        self.spans_enabled = True
        self.metrics_enabled = True
        self.span_budget = SpanBudget()
        self._setup_lock = _originals.RLock()
        self._pending: collections.deque[Record] = collections.deque()
        self._drain_lock = _originals.allocate_lock()
        self.lost = 0
        #: Whether waits shorter than ``wait_threshold`` are counted where they
        #: happen (:meth:`count_short`) rather than queued: settled when the
        #: instruments are made (ensure_ready) and at each drain (metrics on,
        #: and no provider takes a histogram point per wait).
        self.counts_short_waits = False
        #: Place -> [count, total ns, longest, shortest, bucket counts]; see count_short.
        self._short: dict[tuple[Any, ...], list[Any]] = {}
        self._short_lock = _originals.allocate_lock()

    # -- providers -----------------------------------------------------------------

    def _app_tracer_provider(self) -> Optional[trace.TracerProvider]:
        if self._explicit_tracer_provider is not None:
            return self._explicit_tracer_provider
        if runtime.sdk_disabled:  # OTEL_SDK_DISABLED: given providers only (tests)
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
        return provider

    def _app_meter_provider(self) -> Optional[Any]:
        if self._explicit_meter_provider is not None:
            return self._explicit_meter_provider
        if runtime.sdk_disabled:
            return None
        provider = metrics.get_meter_provider()
        if type(provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider"):
            return None
        return provider

    def fallback(self) -> Any:
        """threadtrace's own SDK providers, used while the app has set none."""
        with self._setup_lock:
            return self._fallback_unlocked()

    def _fallback_unlocked(self) -> Any:
        if self.closed or runtime.sdk_disabled:
            # After the exit flush nothing new may start (and reopen files);
            # with OTEL_SDK_DISABLED=true nothing starts at all.
            return _CLOSED
        if self._fallback is None:
            # Lazy: the OpenTelemetry SDK takes ~50 ms to import, and a program
            # with providers of its own never needs threadtrace's.
            from .._export.providers import FallbackProviders  # noqa: PLC0415 - see above

            if runtime.environment_error is not None:
                runtime.notice(
                    logging.WARNING,
                    "threadtrace: %s; using the defaults",
                    runtime.environment_error,
                )

            start = time.time_ns()
            self._fallback = FallbackProviders(
                runtime.config, amend_metrics=lambda data: with_wait_durations(data, start)
            )
        return self._fallback

    def tracer(self) -> trace.Tracer:
        """The tracer for threadtrace's spans: the app's provider if it set one."""
        provider = self._app_tracer_provider()
        if provider is None:
            provider = self.fallback().tracer_provider
        if provider is not self._tracer_source or self._tracer is None:
            self._tracer = provider.get_tracer(SCOPE, __version__, SCHEMA_URL)
            self._tracer_source = provider
        return self._tracer

    def instruments(self) -> tuple[Any, ...]:
        """The instrument sets that should receive data now.

        Instruments are made once, on first need: on the app's meter provider
        (the global one, which OpenTelemetry's proxy binds to the real provider
        whenever the app sets it, before or after this), and, while the app has
        set none, also on threadtrace's own provider so its exporters get data.
        The fallback set goes quiet as soon as the app's provider appears.
        """
        sets = self._instrument_sets
        if sets is None:
            with self._setup_lock:
                sets = self._instrument_sets
                if sets is None:
                    sets = self._instrument_sets = self._make_instruments()
        return tuple(s for s in sets if s.active())

    def _make_instruments(self) -> tuple[Any, ...]:
        version = __version__
        explicit = self._explicit_meter_provider
        app = explicit if explicit is not None else _global_meter_provider()
        meter = app.get_meter(SCOPE, version, SCHEMA_URL)
        # The global meter provider's instruments are OpenTelemetry's proxies,
        # which do nothing until the app sets a provider: not fed till then.
        sets = [Instruments(meter, lambda: self._app_meter_provider() is not None)]
        if explicit is None and self._app_meter_provider() is None and runtime.config.exporters:
            fallback = self._fallback_unlocked().meter_provider
            sets.append(
                Instruments(
                    fallback.get_meter(SCOPE, version, SCHEMA_URL),
                    lambda: self._app_meter_provider() is None,
                    histogram=False,  # added at each collection instead: see FallbackProviders
                )
            )
        return tuple(sets)

    # -- guarding ------------------------------------------------------------------

    @staticmethod
    def _suppressed() -> bool:
        return suppressed_in(get_current())

    def _fail(self, part: str, error: BaseException) -> None:
        """Disable ``part`` (spans or metrics) and say so, once: later records fail alike."""
        if part == "spans":
            if not self.spans_enabled:
                return
            self.spans_enabled = False
        else:
            if not self.metrics_enabled:
                return
            self.metrics_enabled = False
            self.counts_short_waits = False
        runtime.notice(
            logging.WARNING,
            "threadtrace disabled its %s after an error while recording; "
            "the program continues untraced for %s",
            part,
            part,
            exc_info=error,
        )

    def _safely(self, part: str, action: Callable[[], object], *, own_work: bool = False) -> None:
        """Run ``action`` as threadtrace's own work; disable ``part`` if it fails.

        Nothing is recorded from inside threadtrace's own work (unless
        ``own_work`` says this record is that work's own) or where
        instrumentation is suppressed.
        """
        if (runtime.recording() and not own_work) or self._suppressed():
            return
        with runtime.guarded():
            try:
                action()
            except Exception as error:  # noqa: BLE001 - never raise into the host
                self._fail(part, error)

    # -- events from the primitives -----------------------------------------------------

    def note_wait(
        self,
        kind: str,
        name: str,
        operation: str,
        start: int,
        end: int,
        ok: bool,
        site: Optional[Site],
        context: Any,
        *,
        timeout: Optional[float] = None,
        error: Optional[BaseException] = None,
        holder: Optional[int] = None,
        holder_name: Optional[str] = None,
        holder_site: Optional[Site] = None,
        waker: Any = None,
        link_to: Any = None,
        series: Optional[str] = None,
    ) -> None:
        """An operation of this thread blocked from ``start`` to ``end``: sum it or queue it.

        Summed in place when short (:meth:`count_short`, under ``series``
        when given, as the profile counts it); else, and for a wait an
        exception ended, queued as a :class:`WaitRecord`.
        """
        if error is None and self.count_short(
            kind, series or name, end - start, ok, site, context, holder, holder_name, holder_site
        ):
            return
        self.defer(
            WaitRecord(
                kind,
                name,
                operation,
                start,
                end,
                ok,
                _originals.get_ident(),
                _originals.current_thread_name(),
                site,
                context,
                timeout=timeout,
                error=error_info(error),
                holder=holder,
                holder_name=holder_name,
                holder_site=holder_site,
                waker=waker,
                link_to=link_to,
                series=series,
            )
        )

    def count_short(
        self,
        kind: str,
        name: str,
        wait_ns: int,
        ok: bool,
        site: Optional[Site],
        context: Any,
        holder: Optional[int] = None,
        holder_name: Optional[str] = None,
        holder_site: Optional[Site] = None,
    ) -> bool:
        """Count a wait shorter than ``wait_threshold`` where it happened; ``False``: queue it.

        Such a wait is never a span: all it adds is a histogram bucket and
        a row of the contention profile.  Rather than a :class:`WaitRecord`
        each, the waits of one place (primitive, thread, sites, holder) are
        summed here and added to the profile at the next :meth:`drain`.
        The lock is only ever tried, never waited for (the caller may hold
        the very lock it waited for): taken, it is held for a few
        additions; busy (its holder was switched out), the wait is queued
        as a record after all.

        The C core, when in use, installs its own (``_lockcore.count_short``):
        the same tests in the same order, and the sums, in one call.
        """
        if (
            not self.counts_short_waits
            or wait_ns >= runtime.config.wait_threshold * 1e9
            or runtime.get_guard()  # runtime.recording(), a call fewer
            or (context is not None and suppressed_in(context))
            or not self._short_lock.acquire(False)
        ):
            return False
        try:
            return self.sum_short(
                self._short,
                MAX_SHORT_PLACES,
                WAIT_BUCKETS,
                kind,
                name,
                ok,
                site,
                holder,
                holder_name,
                holder_site,
                wait_ns,
            )
        finally:
            self._short_lock.release()

    #: Adds a short wait to its place's row (:func:`sum_short`).  The C core,
    #: when in use, installs its own (``_lockcore.sum_short``): the same sums
    #: in one call, about 2k instructions a wait fewer.
    sum_short = staticmethod(sum_short)

    def _add_short(self) -> None:
        """Add the short waits counted since the last drain to the profile (drain lock held).

        The counts' lock is waited for only briefly: its holder may be this
        very thread, interrupted by a signal whose handler drains (the exit
        flush on SIGTERM).  Then the counts wait for the next drain.
        """
        if not self._short_lock.acquire(True, 0.05):
            return
        try:
            short = self._short
            if not short:
                return
            self._short = {}
        finally:
            self._short_lock.release()
        profile = runtime.profile
        for place, row in short.items():
            kind, name, ok, thread_name, site, holder, holder_name, holder_site = place
            if holder_name is None and holder is not None:
                holder_name = _originals.thread_name(holder)
            profile.add(
                kind,
                name,
                ok,
                thread_name,
                profile.site_key(site),
                holder_name,
                profile.site_key(holder_site),
                *row,
            )

    def _settle_short_waits(self) -> None:
        """Whether program threads count short waits in place from now on (see count_short)."""
        self.counts_short_waits = self.metrics_enabled and not self._histogram_point_sets()

    def defer(self, record: Record, *, always: bool = False) -> None:
        """Queue what a thread saw, to be recorded by threadtrace's own thread.

        An append and nothing else: the caller may hold the very lock it
        waited for.  Bounded: past :data:`MAX_PENDING` records waiting,
        new ones are counted as lost (and said once) instead.  ``always``:
        queue it even from threadtrace's own work (the end of a span that
        was started).
        """
        if not always and runtime.recording():
            return  # threadtrace's own work (suppressed instrumentation: see drain())
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            self.lost += 1
            if self.lost == 1:
                runtime.notice(
                    logging.WARNING,
                    "threadtrace: recording fell behind the program's waits; %d were "
                    "kept, later ones are counted and dropped",
                    MAX_PENDING,
                )
            return
        pending.append(record)
        if len(pending) >= WAKE_AT:
            detect = getattr(runtime, "detect", None)
            if detect is not None:
                detect.wake.set()

    def drain(self) -> int:
        """Record everything queued so far, on this thread; returns how many.

        Called by threadtrace's worker thread, and by whoever needs the data
        complete now (a report, a metric collection, the exit, tests).  Only
        returns once every record queued before the call is recorded, by
        this thread or another.  The whole batch runs as threadtrace's own
        work (nothing the SDK does meanwhile is traced); spans or metrics
        that fail are disabled, as everywhere.
        """
        pending = self._pending
        done = 0
        with self._drain_lock:
            if not pending and not self._short:
                return 0
            previous = runtime.set_recording(True)
            self._histogram_sets = None
            try:
                if self.metrics_enabled:
                    try:
                        self._add_short()
                        self._settle_short_waits()
                    except Exception as error:  # noqa: BLE001 - never raise into the host
                        self._fail("metrics", error)
                while pending:
                    record = pending.popleft()
                    context = getattr(record, "context", None)
                    if (
                        context is not None
                        and suppressed_in(context)
                        and not getattr(record, "unfinished", False)
                    ):
                        done += 1  # made where instrumentation was suppressed: not recorded
                        continue
                    if type(record) is WaitRecord:
                        self._record_wait(record)
                    elif type(record) is HoldRecord:
                        self._record_hold(record)
                    else:
                        self._end_run(record)  # type: ignore[arg-type]
                    done += 1
            finally:
                runtime.set_recording(previous)
        return done

    def _record_wait(self, wait: WaitRecord) -> None:
        """One queued wait: a histogram point, a row of the profile, and a span if long enough."""
        duration = wait.end - wait.start
        unfinished = wait.unfinished
        if self.metrics_enabled:
            series = wait.series or wait.name
            try:
                for instruments in self._histogram_point_sets():
                    instruments.record_wait(wait.kind, series, duration)
                holder_thread = wait.holder_name
                if holder_thread is None and wait.holder is not None:
                    holder_thread = _originals.thread_name(wait.holder)
                profile = runtime.profile
                profile.record(
                    wait.kind,
                    series,
                    duration,
                    # An interrupted wait did not time out.
                    wait.ok or wait.error is not None or unfinished,
                    wait.thread_name,
                    profile.site_key(wait.site),
                    holder_thread,
                    profile.site_key(wait.holder_site),
                    unfinished,
                )
            except Exception as error:  # noqa: BLE001 - never raise into the host
                self._fail("metrics", error)
        if not self.spans_enabled or (
            duration < runtime.config.wait_threshold * 1e9 and not unfinished
        ):  # a wait still going on at exit is the hang to see, however short so far
            return
        if not wait.unfinished and not self.span_budget.allow(
            (wait.kind, wait.name, wait.operation), wait.end
        ):
            return
        try:
            self._wait_span(wait)
        except Exception as error:  # noqa: BLE001 - never raise into the host
            self._fail("spans", error)

    def _wait_span(self, wait: WaitRecord) -> None:
        timed_out = not wait.ok and wait.error is None and not wait.unfinished
        attributes: dict[str, Any] = {
            "threadtrace.primitive.kind": wait.kind,
            "threadtrace.primitive.name": wait.name,
            "threadtrace.operation": wait.operation,
            "threadtrace.timed_out": timed_out,
            THREAD_ID: wait.thread_id,
            THREAD_NAME: wait.thread_name,
        }
        if wait.unfinished:
            attributes["threadtrace.unfinished"] = True
        timeout = wait.timeout
        if timeout is not None and timeout >= 0:
            attributes["threadtrace.timeout"] = float(timeout)
        attributes.update(_site_attributes("", wait.site))
        if wait.holder is not None:
            attributes["threadtrace.holder.thread.id"] = wait.holder
            attributes["threadtrace.holder.thread.name"] = (
                wait.holder_name
                if wait.holder_name is not None
                else _originals.thread_name(wait.holder)
            )
            attributes.update(_site_attributes("threadtrace.holder.", wait.holder_site))
        links: list[Link] = []
        if wait.waker is not None:
            waker_id, waker_name, waker_ctx = wait.waker
            waker_ctx = self._linkable(_waker_target(waker_ctx))
            attributes["threadtrace.waker.thread.id"] = waker_id
            attributes["threadtrace.waker.thread.name"] = waker_name
            if waker_ctx is not None:
                links.append(
                    Link(
                        waker_ctx,
                        {
                            "threadtrace.link.type": "woken_by",
                            THREAD_ID: waker_id,
                            THREAD_NAME: waker_name,
                        },
                    )
                )
        link_to = self._linkable(wait.link_to)
        if link_to is not None:
            links.append(Link(link_to, {"threadtrace.link.type": "joined"}))
        # The target: the primitive's name (bounded by the places in the code
        # that make primitives); a thread's, without its counter (see names).
        target = thread_target(wait.name, wait.series) if wait.kind == "thread" else wait.name
        self._span(
            span_name(f"{DISPLAY[wait.kind]}.{wait.operation}", target),
            wait.start,
            wait.end,
            attributes,
            links,
            wait.error,
            wait.context,
        )

    def _record_hold(self, hold: HoldRecord) -> None:
        if not self.spans_enabled or not self.span_budget.allow(
            (hold.kind, hold.name, "hold"), hold.end
        ):
            return
        attributes: dict[str, Any] = {
            "threadtrace.primitive.kind": hold.kind,
            "threadtrace.primitive.name": hold.name,
            "threadtrace.operation": "hold",
            THREAD_ID: hold.thread_id,
            THREAD_NAME: hold.thread_name,
        }
        attributes.update(_site_attributes("", hold.site))
        name = span_name(f"{DISPLAY[hold.kind]}.hold", hold.name)
        try:
            self._span(name, hold.start, hold.end, attributes, [], None, hold.context)
        except Exception as error:  # noqa: BLE001 - never raise into the host
            self._fail("spans", error)

    def _span(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Any],
        links: Sequence[Link],
        error: Optional[ErrorInfo],
        context: Any,
    ) -> None:
        offset = _epoch_offset()
        span = self.tracer().start_span(
            name,
            context=self._parent(context),
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            start_time=start_ns + offset,
        )
        if error is not None:
            _mark_error_info(span, error, end_ns + offset)
        span.end(end_time=end_ns + offset)

    # -- threads ---------------------------------------------------------------------

    def begin_run(self, details: RunDetails, parent: Any) -> ThreadRun:
        """In a thread whose run begins: its :class:`ThreadRun`, no span yet."""
        return ThreadRun(details, parent, runtime.clock.monotonic_ns())

    def end_run(self, run: ThreadRun, error: Optional[BaseException]) -> None:
        """The run ended: recorded after the records its thread queued before (in order).

        A run that ended short and quiet, with no span made for it yet, is
        only marked ended (see :class:`ThreadRun`): nothing to queue.
        """
        if not self.spans_enabled:
            return
        end = runtime.clock.monotonic_ns()
        if error is None and end - run.start < runtime.config.wait_threshold * 1e9:
            run.end = end
            run.ended = True
            if run.span is None:  # made later, if ever, the recorder's thread ends it then
                return
        self.defer(RunEnd(run, end, error_info(error)), always=True)

    def _run_span(self, run: ThreadRun) -> Optional[trace.Span]:
        """The run's span, made now (with the run's start time) if not made yet.

        A run that ended short and quiet has none; one that a record links to
        after all (a join that waited for the run to wind up, queued after
        the run's end) is made then, and ended at once at the run's end.
        """
        if run.span is None:
            attributes = run.attributes()
            target = thread_target(
                str(attributes.get(THREAD_NAME, "")), attributes.get(CODE_FUNCTION_NAME)
            )
            run.span = self.tracer().start_span(
                span_name("Thread.run", target),
                # Started from another traced thread's run: a child of that run's span.
                context=self._parent(run.parent),
                kind=trace.SpanKind.INTERNAL,
                attributes=attributes,
                start_time=run.start + _epoch_offset(),
            )
            if run.ended:
                run.span.end(end_time=run.end + _epoch_offset())
                run.closed = True
        return run.span  # type: ignore[no-any-return]

    def _parent(self, context: Any) -> Any:
        """A record's parent: its thread's run span if nothing else was current when it happened."""
        run = context.get(_RUN_KEY) if context is not None else None
        if run is None or trace.get_current_span(context).get_span_context() != run.base:
            return context
        span = self._run_span(run)
        return context if span is None else trace.set_span_in_context(span, context)

    def _linkable(self, target: Any) -> Optional[SpanContext]:
        """A span context to link to, from a waker's or a joined thread's run or span."""
        if isinstance(target, ThreadRun):
            span = self._run_span(target)
            target = span.get_span_context() if span is not None else None
        return target if target is not None and target.is_valid else None

    def _end_run(self, end: RunEnd) -> None:
        run = end.run
        if not self.spans_enabled or run.closed:  # disabled since, or ended as it was made
            return
        try:
            span = run.span
            if span is None and (
                end.error is not None or end.end - run.start >= runtime.config.wait_threshold * 1e9
            ):
                span = self._run_span(run)
            run.end = end.end
            run.ended = True
            if span is None or run.closed:
                return
            when = end.end + _epoch_offset()
            if end.error is not None:
                _mark_error_info(span, end.error, when)
            span.end(end_time=when)
            run.closed = True
        except Exception as error:  # noqa: BLE001 - never raise into the host
            self._fail("spans", error)

    def problem(self, kind: str, text: str, threads: Sequence[str]) -> None:
        """The watchdog or the lock-order check found a problem: a span with an event, and a count.

        ``kind`` is ``deadlock``, ``lock_order_inversion``, ``stuck_thread`` or
        ``held_by_finished_thread``.  The span, ``threadtrace.<kind>``, has ERROR
        status for deadlocks and finished holders; its event carries the
        report text.
        """
        attributes: dict[str, Any] = {
            "threadtrace.problem.kind": kind,
            "threadtrace.problem.threads": list(threads),
        }

        def span() -> None:
            now = runtime.clock.monotonic_ns() + _epoch_offset()
            span = self.tracer().start_span(
                f"threadtrace.{kind}",
                kind=trace.SpanKind.INTERNAL,
                attributes=attributes,
                start_time=now,
            )
            span.add_event(kind, {"threadtrace.report": text}, timestamp=now)
            if kind in ("deadlock", "held_by_finished_thread"):
                span.set_status(Status(StatusCode.ERROR, text.splitlines()[0]))
            span.end(end_time=now)

        def count() -> None:
            with self._setup_lock:
                counters = self._problem_counters
                if counters is None:
                    counters = self._problem_counters = self._make_problem_counters()
            for counter, active in counters:
                if active():
                    counter.add(1, {"threadtrace.problem.kind": kind})

        # Called from threadtrace's own work (the watchdog's look), which
        # _safely() would leave unrecorded: a problem is recorded deliberately.
        if self.spans_enabled:
            self._safely("spans", span, own_work=True)
        if self.metrics_enabled:
            self._safely("metrics", count, own_work=True)

    def _make_problem_counters(self) -> list[tuple[Any, Callable[[], bool]]]:
        version = __version__
        explicit = self._explicit_meter_provider
        providers: list[tuple[Any, Callable[[], bool]]] = [
            (explicit if explicit is not None else _global_meter_provider(), lambda: True)
        ]
        if explicit is None and self._app_meter_provider() is None and runtime.config.exporters:
            providers.append(
                (
                    self._fallback_unlocked().meter_provider,
                    lambda: self._app_meter_provider() is None,
                )
            )
        return [
            (
                provider.get_meter(SCOPE, version, SCHEMA_URL).create_counter(
                    "threadtrace.problems",
                    unit="{problem}",
                    description="Deadlocks, lock-order inversions, stuck threads and "
                    "primitives held by finished threads that threadtrace reported",
                ),
                active,
            )
            for provider, active in providers
        ]

    def _histogram_point_sets(self) -> tuple[Any, ...]:
        """The instrument sets that take a histogram point per wait (the app's providers').

        Worked out once per drained batch.
        """
        sets = self._histogram_sets
        if sets is None:
            sets = self._histogram_sets = tuple(
                s for s in self.instruments() if s.wait_duration is not None
            )
        return sets

    def ensure_ready(self) -> None:
        """Build providers and instruments now, on the caller's thread.

        So the observable counters report from the start, and no thread
        ever builds them lazily at an awkward moment (resource detection
        starts a thread pool of its own).
        """
        if self.metrics_enabled:
            self._safely("metrics", self.instruments)
            # Whether short waits are summed in place, settled now rather
            # than at the first drain (the watchdog's, half a second after
            # the first wait): until then every short wait was a record.
            self._safely("metrics", self._settle_short_waits)
        if self.spans_enabled:
            self._safely("spans", self.tracer)

    def prepare_exporters(self) -> None:
        """Build threadtrace's own exporters now if they will be used.

        Raises:
            ConfigurationError: an exporter cannot start (unwritable path,
                missing extra, invalid ``OTEL_*`` variable).
        """
        if not runtime.config.exporters:
            return
        if self._app_tracer_provider() is None or self._app_meter_provider() is None:
            with self._setup_lock, runtime.guarded():
                self._fallback_unlocked()

    def after_fork_in_child(self) -> None:
        """In a forked child: new locks, and threadtrace's own providers made afresh.

        Another thread may have held a lock at the fork.  The inherited
        providers and exporters are the parent's (their threads stayed
        there, their files are the parent's): they are left alone, and the
        child builds its own, on its own files, when it first records.
        What the parent had queued, the parent records.
        """
        self._setup_lock = _originals.RLock()
        self._drain_lock = _originals.allocate_lock()
        self._pending.clear()
        self._short_lock = _originals.allocate_lock()
        self._short = {}
        self._fallback = None
        self._instrument_sets = None
        self._problem_counters = None
        self._tracer = None
        self._tracer_source = None
        self.lost = 0

    def shutdown(self, timeout: float = 5.0, *, final: bool = False) -> None:
        """Flush and close threadtrace's own providers (never the app's).

        Idempotent.  What is queued is recorded first.  Recording afterwards
        builds fresh providers on demand, unless ``final`` (the exit flush)
        said it is over.
        """
        self.drain()
        with self._setup_lock:
            if final:
                self.closed = True
            fallback, self._fallback = self._fallback, None
            self._instrument_sets = None
            self._tracer = None
        if fallback is not None:
            with runtime.guarded():
                fallback.shutdown(timeout)
            runtime.export_stats.update(fallback.stats)


#: :meth:`Recorder.count_short` as written here: the C core, when in use,
#: replaces the method (``core.py``); the tests hold the two to the same answers.
count_short_in_python = Recorder.count_short


class _Closed:
    """Stands in for threadtrace's own providers once the exit flush has run."""

    def __init__(self) -> None:
        self.tracer_provider = trace.NoOpTracerProvider()
        self.meter_provider = NoOpMeterProvider()
        self.stats: dict[str, Any] = {}


_CLOSED = _Closed()


def _global_meter_provider() -> Any:
    """The global meter provider; a no-op one with OTEL_SDK_DISABLED=true."""
    return _CLOSED.meter_provider if runtime.sdk_disabled else metrics.get_meter_provider()


def _epoch_offset() -> int:
    """Nanoseconds to add to the monotonic clock to get epoch time."""
    clock = runtime.clock
    cached = getattr(clock, "_threadtrace_offset", None)
    if cached is None:
        cached = clock.time_ns() - clock.monotonic_ns()
        try:
            clock._threadtrace_offset = cached  # type: ignore[attr-defined]
        except AttributeError:
            return cached
    return int(cached)
