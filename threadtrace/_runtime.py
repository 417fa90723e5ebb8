"""The runtime: everything threadtrace keeps process-wide, in one object.

There is one :class:`Runtime`, :data:`runtime`.  The configuration in force,
the clock, the registry of live primitives and the counters of collected
ones, the thread counts, the reentrancy guard, and the *components* that the
layers above own (the recorder, the contention profile, the detectors' state,
the lock-order graph, the patch) all hang off it, and nothing else in the
package keeps mutable module state.  Three things follow:

* Code reads ``runtime.<name>`` at call time, so :func:`threadtrace.configure`
  and the tests can swap any part.
* :meth:`Runtime.snapshot` and :meth:`Runtime.restore` save and put back the
  whole of it, which is how :func:`threadtrace.testing.capture` gives a block
  a fresh start (:meth:`Runtime.start_afresh`) and leaves no trace after it.
* One fork handler (:meth:`Runtime.after_fork_in_child`) makes the child's
  state consistent: the locks other threads may have held are new, and each
  component forgets the parent's other threads.

A component is any object with ``fresh()`` (an empty one, for a captured
block; it may share what must outlive the block, such as waits in progress)
and ``after_fork_in_child()``.  Its owner installs it at import with
:meth:`Runtime.install`; the slot is typed here so readers see every part.

Like trio's ``Runner``, this is the only state; unlike it, it lives for the
whole process (threadtrace has no "run" to scope it to).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import weakref
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Protocol

from ._support import originals
from ._support.clock import Clock, SystemClock
from ._support.config import Config, from_environment, sdk_disabled
from ._support.errors import ConfigurationError
from ._support.sites import ModuleFilter, Site, SiteCache
from ._support.targets import TargetNames

if TYPE_CHECKING:
    from ._control.patch import PatchHandle
    from ._detect.lockorder import LockOrder
    from ._detect.state import DetectorState
    from ._recording.profile import ContentionAggregator
    from ._recording.recorder import Recorder


class Component(Protocol):
    """What a part of the runtime owned by a layer above provides."""

    def fresh(self) -> Component:
        """An empty one for a captured block (what must outlive it may be shared)."""
        ...

    def after_fork_in_child(self) -> None:
        """Make the state consistent in a forked child (this thread is its only one)."""
        ...


#: The component slots, in the order they are reset and told of a fork.
COMPONENTS = ("profile", "detect", "lock_order")

#: What a snapshot leaves out: the lock and the guard are the process's, not a block's.
_NOT_SAVED = frozenset(
    {
        "book",
        "patch_lock",
        "publish_lock",
        "fold_lock",
        "_guard",
        "get_guard",
        "set_guard",
        "watchers",
        "listener",
    }
)

#: Collected primitives' counts queued before they are folded into the totals.
RETIRED_QUEUE = 4096

#: Distinct (kind, name) series the retired totals keep; past it, a collected
#: primitive of a new name is counted under :data:`OTHER` (a program that
#: names each of a million short-lived locks differently keeps bounded memory,
#: and the metrics stay under OpenTelemetry's default cardinality limit, 2000).
MAX_SERIES = 1500

#: The name the series past :data:`MAX_SERIES` are counted under.
OTHER = "(other)"


def _fold(previous: tuple[int, ...], counts: tuple[int, ...]) -> tuple[int, ...]:
    """Add a collected primitive's counters to its series' retired totals.

    The first five fields are sums; a sixth, the longest hold, is a maximum.
    """
    if len(previous) == len(counts):  # as almost always: one kind, one width
        if len(counts) == 6:  # a lock's
            a, b, c, d, e, f = previous
            g, h, i, j, k, m = counts
            return (a + g, b + h, c + i, d + j, e + k, f if f >= m else m)
        if len(counts) == 4:  # a waiting kind's
            a, b, c, d = previous
            g, h, i, j = counts
            return (a + g, b + h, c + i, d + j)
    width = max(len(previous), len(counts))
    previous = previous + (0,) * (width - len(previous))
    counts = counts + (0,) * (width - len(counts))
    folded = [a + b for a, b in zip(previous[:5], counts[:5])]
    if width > 5:
        folded.append(max(previous[5], counts[5]))
    return tuple(folded)


def peek(counter: itertools.count[int]) -> int:
    """The next value of ``counter``, not taken.

    ``next(counter)`` is an atomic, lock-free count; ``repr(count(5))`` is
    ``"count(5)"``, the only way to read one without advancing it.
    """
    return int(repr(counter)[6:-1])


class Runtime:
    """Everything threadtrace keeps process-wide.  See the module docstring.

    Attributes:
        config: the settings in force: the defaults, then ``THREADTRACE_*``.
        environment_error: an invalid ``THREADTRACE_*`` variable.  Importing
            never raises: the defaults stand, configure()/patch() raise this
            until it is fixed, and a program that calls neither gets a
            warning when threadtrace first exports.
        sdk_disabled: ``OTEL_SDK_DISABLED`` is true: threadtrace makes no
            telemetry of its own accord (``patch()`` leaves threading alone,
            no providers are built and the global ones get nothing).
        clock: monotonic and wall time, injectable (``FakeClock``).
        modules: which frames are the program's, for ``config``'s exclusions.
        site_cache: one shared Site per place in the program.
        target_names: the variable each creation site assigns its primitive
            to, read once per site for its label (``Site.targets`` is this).
        book: guards slow-path bookkeeping that threads other than a
            primitive's holder touch (waiter counts).  Never held while
            blocking or while calling out.  The paths every blocked wait
            and contended lock take hold it with ``acquire()`` and
            ``release()`` in ``try``/``finally``: ``with`` on a raw lock
            costs twice as much (about 90 ns more on 3.11; CPython looks up
            and binds ``__enter__`` and ``__exit__`` each time).
        patch_lock: serialises patching and unpatching.
        publish_lock: held while queued notices are written, so that a
            caller of :meth:`publish_notices` returns only once every notice
            queued before it has been written, by whichever thread.
        live: every traced primitive still alive, for the observable metrics.
        retired: counters of primitives that have been garbage collected,
            appended by ``__del__`` (an append is atomic, so no lock:
            ``__del__`` may run while this very thread holds ``book``).
        retired_totals: those counters summed by (kind, name), drained from
            ``retired`` by the metrics.
        retired_sources: where else such counters wait, each called by the
            fold for ``(kind, name, counts)`` rows (the C lock core sums its
            collected locks' in C).
        thread_runs: advanced (``next``) as a traced thread's run begins,
            and ``thread_ends`` as it ends; ``threads_started`` and
            ``threads_live`` read them.  Counters, not fields changed under
            ``book``: a lock taken twice per thread cost more than the rest
            of the count.
        export_stats: what each of threadtrace's own exporters did, kept
            after they shut down for the exit summary (name -> ExportStats).
        files_opened: files the json exporter opened in this process
            (a second exporter on the same file appends to it).
        internal_errors: errors inside threadtrace's own bookkeeping,
            swallowed (see :meth:`internal_error`).
        notices: log records waiting for a thread of threadtrace's own to
            write them (see :meth:`notice`).
        report_logged: whether the contention report was logged at exit.
        pid: this process's id (a forked child's own, from the fork on).
        forked_from: the parent's pid, in a forked child; else ``None``.
        child_of: the parent's pid, in a process ``threadtrace run`` started
            (not forked); else ``None``.
        service_name: the default ``service.name`` ``threadtrace run``
            chose for all its processes; ``None``: ``threadtrace:<argv[0]>``.
        fork_hooks: called in the parent just before a fork (layers above
            register what they need there).
        child_hooks: called in a forked child, last, after the runtime and
            its components are the child's own (the one fork handler runs
            them: no layer registers its own with ``os.register_at_fork``).
        watchdog_hooks: called when the watchdog thread starts (in a forked
            child: at its first blocking wait): a layer above that needs a
            thread of its own starts it then, so that no thread of
            threadtrace's appears at any other moment of the program's run.
        names_at_fork: the parent's thread names at the fork, by ident (a
            forked child reports locks that other threads held then).
        installed: hooks installed once per process, by name (the layers'
            business; a forked child inherits them).
        sdk_owners: OpenTelemetry SDK objects made for threadtrace (its
            metric readers): a thread one of them starts is threadtrace's
            own, also the ticker the SDK starts anew in a forked child.
        c_orders_for: the lock-order graph whose pairs the C core has seen
            (a new graph, as in a test's capture, makes every nesting news).
        exit_steps: what to do when the process ends early, on SIGTERM
            (``threadtrace run``'s exit with its summary); ``None``: the
            library's own (report, then flush).
        exiting: the exit steps have begun (a SIGTERM then waits for them).
        exit_done: the exit steps have ended (a SIGTERM then takes effect at once).
        sigterm_pending: a SIGTERM came while they ran: it takes effect after.
        sigint_at_exit: ``threadtrace run`` ends the process by SIGINT at the
            end of its exit handler (the program ended with KeyboardInterrupt
            and the C exit function is not built).
        recorder: turns what the primitives saw into spans and metrics.
        patch_handle: the :func:`threadtrace.patch` in force, if any.
        profile: the contention profile (who waited where, behind whom).
        detect: the watchdog's tables: waits in progress, what was reported.
        lock_order: the lock-order graph.
    """

    recorder: Optional[Recorder]
    patch_handle: Optional[PatchHandle]
    profile: ContentionAggregator
    detect: DetectorState
    lock_order: LockOrder

    def __init__(self) -> None:
        #: Called (with no arguments) after the configuration, the clock or
        #: the registries change: the C lock core keeps copies of them.
        self.watchers: list[Callable[[], None]] = []
        self.environment_error: Optional[ConfigurationError] = None
        try:
            config = from_environment()
        except ConfigurationError as error:
            config = Config()
            self.environment_error = error  # logged when threadtrace first exports
        self._config = config
        #: OTEL_SDK_DISABLED=true: no telemetry at all (see _control/patch.py).
        self.sdk_disabled, problem = sdk_disabled()
        self.modules = ModuleFilter(config.excluded_modules)
        self.site_cache = SiteCache()
        #: Whether lock order is tracked now (``lock_order``, or its default
        #: for the lock core in use; settled by the core when the config changes).
        self.ordering = False
        self.target_names = TargetNames(self.internal_error)
        self._clock: Clock = SystemClock()
        self.book = originals.allocate_lock()
        self.patch_lock = originals.RLock()
        self.publish_lock = originals.allocate_lock()
        self.fold_lock = originals.allocate_lock()
        self._guard = originals.local()
        #: Read and set this thread's guard (the C lock core puts in its own,
        #: a C thread-local its constructor checks without a Python call).
        self.get_guard: Callable[[], bool] = self._get_guard
        self.set_guard: Callable[[bool], bool] = self._set_guard
        self.recorder = None
        self.patch_handle = None
        self._records_afresh()
        self.export_stats: dict[str, Any] = {}
        self.files_opened: set[str] = set()
        self.internal_errors = 0
        self.notices: collections.deque[tuple[int, str, tuple[Any, ...], Any]] = collections.deque(
            maxlen=1000
        )
        self.report_logged = False
        self.pid = os.getpid()
        self.forked_from: Optional[int] = None
        self.child_of: Optional[int] = None
        self.service_name: Optional[str] = None
        #: The ``threadtrace dump`` listener of this process, once listening
        #: (``_control/live.py``); the process's, not a captured block's.
        self.listener: Optional[Any] = None
        self.fork_hooks: list[Callable[[], None]] = []
        self.child_hooks: list[Callable[[], None]] = []
        self.retired_sources: list[Callable[[], list[tuple[str, str, tuple[int, ...]]]]] = []
        self.watchdog_hooks: list[Callable[[], None]] = []
        self.names_at_fork: dict[int, str] = {}
        self.installed: set[str] = set()
        self.sdk_owners: weakref.WeakSet[Any] = weakref.WeakSet()
        self.c_orders_for: Any = None
        self.sigint_at_exit = False
        self.exiting = False
        self.exit_done = False
        self.sigterm_pending = False
        self.exit_steps: Optional[Callable[[], None]] = None
        #: Ends the process with a status after the exit steps (on_deadlock=exit);
        #: set by the layer that owns the exit (_control/exit.py).
        self.end_process: Optional[Callable[[int], None]] = None
        if problem is not None:
            self.notice(logging.WARNING, "threadtrace: %s (as OpenTelemetry does)", problem)

    def _records_afresh(self) -> None:
        self.live: weakref.WeakSet[Any] = weakref.WeakSet()
        #: The registry the C lock core keeps its locks in (made by the core).
        self.locks: Any = None
        self.retired: collections.deque[tuple[str, str, tuple[int, ...]]] = collections.deque()
        self.retired_totals: dict[tuple[str, str], tuple[int, ...]] = {}
        self.thread_runs = itertools.count()
        self.thread_ends = itertools.count()
        self._threads_carried = 0  # a forked child's one thread, running since before

    @property
    def threads_started(self) -> int:
        """Traced threads whose run began."""
        return peek(self.thread_runs)

    @property
    def threads_live(self) -> int:
        """Traced threads running now (ends read first: never below zero)."""
        ended = peek(self.thread_ends)
        return peek(self.thread_runs) - ended + self._threads_carried

    # -- configuration -------------------------------------------------------------------

    def set_config(self, config: Config) -> None:
        """Put ``config`` in force (the module filter follows its exclusions)."""
        if config.excluded_modules != self.modules.excluded:
            self.modules = ModuleFilter(config.excluded_modules)
        self._config = config
        self.changed()

    def _set_clock(self, clock: Clock) -> None:
        self._clock = clock
        self.changed()

    if TYPE_CHECKING:

        @property
        def config(self) -> Config:
            """The settings in force (see :meth:`set_config`)."""

        @config.setter
        def config(self, config: Config) -> None: ...

        @property
        def clock(self) -> Clock:
            """Monotonic and wall time; injectable (a test's ``FakeClock``)."""

        @clock.setter
        def clock(self, clock: Clock) -> None: ...

    else:
        # Read with a getter in C, not a method: both are read on every wait.
        config = property(
            attrgetter("_config"),
            set_config,
            doc="The settings in force (see :meth:`set_config`).",
        )
        clock = property(
            attrgetter("_clock"),
            _set_clock,
            doc="Monotonic and wall time; injectable (a test's ``FakeClock``).",
        )

    def changed(self) -> None:
        """Tell the watchers that the configuration, clock or registries changed."""
        for watcher in list(self.watchers):
            watcher()

    # -- components ----------------------------------------------------------------------

    def install(self, slot: str, component: Component) -> None:
        """Fill ``slot`` (one of :data:`COMPONENTS`) with its owner's component."""
        if slot not in COMPONENTS:
            raise ValueError(f"no component slot {slot!r}")
        setattr(self, slot, component)

    # -- the reentrancy guard -------------------------------------------------------------

    def recording(self) -> bool:
        """Whether this thread is inside threadtrace's own recording right now.

        Primitives touched while this is true (by the OpenTelemetry SDK, an
        exporter, a logging handler) are neither created traced nor recorded,
        so recording can never re-enter itself.
        """
        return self.get_guard()

    def set_recording(self, value: bool) -> bool:
        """Mark this thread as recording (or not); returns what it was."""
        return self.set_guard(value)

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """Mark this thread as recording for the duration of the block."""
        previous = self.set_guard(True)
        try:
            yield
        finally:
            self.set_guard(previous)

    def _get_guard(self) -> bool:
        return getattr(self._guard, "busy", False)

    def _set_guard(self, value: bool) -> bool:
        previous = getattr(self._guard, "busy", False)
        self._guard.busy = value
        return previous

    def exporting(self) -> bool:
        """Whether this thread is inside a call to one of threadtrace's exporters."""
        return getattr(self._guard, "exporting", False)

    def set_exporting(self, value: bool) -> None:
        self._guard.exporting = value

    # -- primitives ----------------------------------------------------------------------

    def creation_site(self, depth: int) -> Optional[Site]:
        """Where the caller's caller's ``depth``-th caller made a primitive; None: untraced."""
        if self.recording():
            return None
        return self.modules.creation_site(depth + 1, sites=self.site_cache)

    def starts_traced(self, depth: int) -> bool:
        """Whether the thread being started ``depth`` frames above the caller is traced."""
        return not self.recording() and self.modules.starts_traced(depth + 1)

    def register(self, primitive: Any) -> None:
        """Add a new traced primitive to the live registry."""
        with self.book:
            self.live.add(primitive)

    def retire(self, kind: str, name: str, counts: tuple[int, ...]) -> None:
        """A traced primitive was collected: keep its counts (called as it dies).

        An append, from whatever thread drops the primitive.  Bounded: past
        :data:`RETIRED_QUEUE` queued, the queue is folded into the totals
        now (by whichever thread gets the fold lock; one that does not,
        perhaps this very thread inside a fold, leaves it to the next).
        """
        retired = self.retired
        retired.append((kind, name, counts))
        if len(retired) >= RETIRED_QUEUE and self.fold_lock.acquire(False):
            try:
                self._fold()
            finally:
                self.fold_lock.release()

    def retired_now(self) -> dict[tuple[str, str], tuple[int, ...]]:
        """The counts of every collected primitive, by (kind, name), all folded."""
        with self.fold_lock:
            self._fold()
        return self.retired_totals

    def _fold(self) -> None:
        retired, totals = self.retired, self.retired_totals
        for source in self.retired_sources:
            try:
                retired.extend(source())
            except Exception as error:  # noqa: BLE001 - those counts are lost, no more
                self.internal_error("collected primitives' counts", error)
        while retired:
            try:
                kind, name, counts = retired.popleft()
            except IndexError:
                return
            key = (kind, name)
            previous = totals.get(key)
            if previous is None and len(totals) >= MAX_SERIES:
                key = (kind, OTHER)
                previous = totals.get(key)
            totals[key] = counts if previous is None else _fold(previous, counts)

    def primitives(self) -> list[Any]:
        """Every traced primitive alive: the registry, and the C lock core's own."""
        with self.book:
            members = list(self.live)
        locks = self.locks
        return members + locks.list() if locks is not None else members

    def internal_error(self, where: str, error: BaseException) -> None:
        """Count an error in threadtrace's bookkeeping; log the first one.

        The operation it happened in goes on as threading would have done it.
        """
        self.internal_errors += 1
        if self.internal_errors == 1:
            self.notice(
                logging.WARNING,
                "threadtrace hit an internal error in %s; the program continues, "
                "further such errors are counted, not logged",
                where,
                exc_info=error,
            )

    # -- logging, never on the program's threads ------------------------------------------

    def notice(self, level: int, message: str, *args: Any, exc_info: Any = None) -> None:
        """Log ``message`` soon, from a thread of threadtrace's own, never from this one.

        The caller may be a program thread inside ``acquire()`` or holding
        the program's locks: writing to a slow (or blocked) stderr, or
        through a logging handler that takes a lock of the program, must
        not happen there.  The watchdog's and the exporters' threads, and
        the exit, publish what is queued (bounded: the oldest is dropped).
        """
        self.notices.append((level, message, args, exc_info))
        detect = getattr(self, "detect", None)
        if detect is not None:
            detect.wake.set()

    def publish_notices(self) -> None:
        """Log what :meth:`notice` queued.  Only threadtrace's threads and the exit call this."""
        logger = logging.getLogger("threadtrace")
        notices = self.notices
        with self.publish_lock:
            while notices:
                level, message, args, exc_info = notices.popleft()
                logger.log(level, message, *args, exc_info=exc_info)

    # -- saving and restoring -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything :meth:`restore` needs to put the runtime back as it is now."""
        return {name: value for name, value in vars(self).items() if name not in _NOT_SAVED}

    def restore(self, saved: dict[str, Any]) -> None:
        """Put back what :meth:`snapshot` saved."""
        for name, value in saved.items():
            setattr(self, name, value)
        self.changed()

    def start_afresh(self, clock: Optional[Clock] = None) -> None:
        """Empty registries, counts, profile and detector findings, for a captured block.

        Waits in progress and the watchdog carry over: other threads may be
        blocked right now and will end their waits inside the block.
        """
        self._records_afresh()
        self.export_stats = {}
        if clock is not None:
            self._clock = clock
        self.changed()
        for slot in COMPONENTS:
            component = getattr(self, slot, None)
            if component is not None:
                setattr(self, slot, component.fresh())

    # -- fork ----------------------------------------------------------------------------

    def before_fork(self) -> None:
        """In the parent, just before a fork: note thread names, run the layers' hooks."""
        try:
            self.names_at_fork = {
                ident: thread.name for ident, thread in list(originals._active.items())
            }
            for hook in list(self.fork_hooks):
                hook()
        except Exception as error:  # noqa: BLE001 - a fork must never fail because of us
            self.internal_error("fork", error)

    def after_fork_in_child(self) -> None:
        """In a forked child: its own locks, counts, files and report (the one fork handler).

        Another thread may have held a lock at the fork; the child has only
        this one.  The child reports what happens in it: its counts, its
        contention profile and its findings start afresh, and threadtrace's
        own exporters write files of its own (``trace.<pid>.jsonl``; see
        :meth:`Config.for_child <threadtrace.Config.for_child>`) instead of
        the parent's.
        """
        self.book = originals.allocate_lock()
        self.patch_lock = originals.RLock()
        self.publish_lock = originals.allocate_lock()
        self.fold_lock = originals.allocate_lock()
        self.forked_from, self.pid = self.pid, os.getpid()
        self.set_config(self.config.for_child(self.pid))
        me = originals._active.get(originals.get_ident())
        self.retired = collections.deque()
        self.retired_totals = {}
        self.thread_runs = itertools.count()
        self.thread_ends = itertools.count()
        self._threads_carried = 1 if getattr(me, "_tt_traced", False) else 0
        self.export_stats = {}
        self.report_logged = self.exiting = self.exit_done = self.sigterm_pending = False
        for primitive in self.primitives():
            try:
                primitive._tt_forget_counts()
            except Exception as error:  # noqa: BLE001 - the child goes on regardless
                self.internal_error("fork", error)
        recorder = self.recorder
        if recorder is not None:
            recorder.after_fork_in_child()
        for slot in COMPONENTS:
            component = getattr(self, slot, None)
            if component is not None:
                component.after_fork_in_child()
        for hook in list(self.child_hooks):
            try:
                hook()
            except Exception as error:  # noqa: BLE001 - the child goes on regardless
                self.internal_error("fork", error)


#: The runtime of this process.
runtime = Runtime()
# Sites are made on the hot path and ask for their labels much later, from
# any thread: the class attribute spares each Site a reference of its own.
Site.targets = runtime.target_names

if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=runtime.before_fork, after_in_child=runtime.after_fork_in_child)
