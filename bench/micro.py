#!/usr/bin/env python3
"""Uncontended microbenchmark: threadtrace primitives against the stdlib.

Every case is one row: a loop body (``with obj: pass``), the stdlib object
and the threadtrace one.  ``harness.py`` times the two sides interleaved
(stdlib, threadtrace, stdlib, ...), each with its own compiled copy of the
loop and gc off, and reports the median per-pair ratio with its min-max.

How the threadtrace side is made:

* "under patch" cases: the stdlib object is created before
  ``threadtrace.patch(exporters=())`` and the traced one while patched; the
  objects keep their identity after ``unpatch()``, so repeats can be
  interleaved without patching inside a timing loop.  With
  ``--patch-mode toggle`` the traced side's repeats additionally run while
  patched (patch/unpatch around each traced repeat, outside the timing).
  Thread start+join makes new primitives on every iteration, so it is
  always timed that way.
* The direct cases (``threadtrace.Lock()`` ...) are built after that window,
  unpatched, with patch()'s settings still in force.

Detectors (rows added on request; the default run is unchanged):

* ``--lock-order``: ``with lock:`` and ``with a: with b:`` (two locks, the
  a -> b order known after the first iteration) on locks made under
  ``threadtrace.patch(exporters=(), lock_order=True)``, with
  ``lock_order=True`` in force around their threadtrace repeats only, against
  the stdlib; plus ``with a: with b:`` under plain ``patch()`` for reference.
  Then two rows that make new locks as they go: a new ``Lock()`` taken under
  one held lock of another kind (a lock per job under a registry's lock: one
  order between the kinds), and two new ``Lock()`` of one kind taken one
  inside the other (a new order every time: the Python call, priced).
* ``--watchdog``: a contended hand-off, one round trip of a ``Condition``
  (on a ``Lock``) ping-pong between the timing loop and a partner thread,
  under ``patch(watchdog=True)`` and ``patch(watchdog=False)`` against the
  stdlib; then the same traced objects with ``watchdog=True`` against
  ``watchdog=False`` (repeats longer than one watchdog interval, so each
  watchdog=True repeat contains a wake-up and a scan).
* ``--detectors``: both.

Run from the repository root::

    python3 bench/micro.py --quick          # smoke run, a few seconds
    python3 bench/micro.py                  # full run, under a minute
    python3 bench/micro.py --detectors      # also the lock_order and watchdog rows
    python3 bench/micro.py --json out.json  # also write the results as JSON
    python3 bench/micro.py --only lock      # only cases whose id contains "lock"
    python3 bench/micro.py --list           # list the case ids

Only the standard library and threadtrace are used.  Runs on Python 3.9+.
"""

import argparse
import dataclasses
import os
import queue
import statistics
import sys
import threading
import traceback
from typing import Any, Callable, Optional

import harness

# The real factories, captured before anything can patch ``threading``.
_NAMES = "Lock RLock Condition Semaphore BoundedSemaphore Event Barrier Thread"
STD = {name: getattr(threading, name) for name in _NAMES.split()}

harness.choose_threadtrace(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HEADLINE = "with-lock.patched"
DEFAULT_TARGET_RATIO = 1.6

#: Loop bodies.  ``obj`` is the primitive (or the factory, or the
#: ``threading`` module for the thread case).
BODIES = {
    "with": "with obj:\n    pass",
    "acquire-release": "obj.acquire()\nobj.release()",
    "with-nested": "with obj:\n    with obj:\n        pass",
    "with-notify": "with obj:\n    obj.notify()",
    "is_set": "obj.is_set()",
    "wait": "obj.wait()",
    "set": "obj.set()",
    "construct": "obj()",
    "put-get": "obj.put(None)\nobj.get()",
    "thread": "t = obj.Thread(target=_noop)\nt.start()\nt.join()",
    "with-two": "with a:\n    with b:\n        pass",
    "with-new": "with outer:\n    with make():\n        pass",
    "with-new-pair": "a, b = make(), make()\nwith a:\n    with b:\n        pass",
    # One round trip of a hand-off: wake the partner, wait until it answers.
    "ping-pong": (
        "with cond:\n"
        "    obj.turn = 1\n"
        "    cond.notify()\n"
        "    while obj.turn and obj.error is None:\n"
        "        cond.wait()"
    ),
}

#: Lines run once before the clock starts, for bodies that need them.
SETUPS = {
    "with-two": "a, b = obj",
    "with-new": "outer, make = obj",
    "with-new-pair": "make = obj",
    "ping-pong": "cond = obj.cond",
}


def _noop():
    pass


def make_loop(body_key, side):
    return harness.make_loop(
        BODIES[body_key], SETUPS.get(body_key), f"{body_key} {side}", {"_noop": _noop}
    )


# --------------------------------------------------------------------------
# Contended hand-off (--watchdog)
# --------------------------------------------------------------------------

#: The partner thread of a ping-pong: answers every round trip of the loop.
_PARTNER_SOURCE = """
def partner(obj):
    cond = obj.cond
    try:
        with cond:
            while True:
                while not obj.turn:
                    cond.wait()
                if obj.stop:
                    return
                obj.turn = 0
                cond.notify()
    except BaseException as exc:
        obj.error = exc
        with cond:  # wake the timing loop: it stops waiting, the run reports the error
            cond.notify_all()
"""


class PingPong:
    """Two threads handing a ``Condition``'s lock back and forth.

    The timing loop is one side (``ping-pong`` in :data:`BODIES`); the other
    is a partner thread, started before the first repeat and stopped when
    the case ends.  Every round trip blocks both threads once: the loop in
    ``cond.wait()`` until the partner answers, the partner in its own
    ``cond.wait()`` until the next round.  The partner is a plain stdlib
    thread on both sides (and has its own compiled copy of its code), so the
    only difference between the sides is the Condition and its Lock.
    """

    def __init__(self, cond, label):
        self.cond = cond
        self.label = label
        self.turn = 0
        self.stop = False
        self.error = None
        self._thread = None

    def start(self):
        if self._thread is not None:
            return
        partner = harness.compile_function(
            _PARTNER_SOURCE, f"<bench partner {self.label}>", "partner"
        )
        self.turn, self.stop, self.error = 0, False, None
        self._thread = STD["Thread"](
            target=partner, args=(self,), name=f"bench-partner-{self.label}", daemon=True
        )
        self._thread.start()

    def check(self):
        """Raise what the partner thread failed with, if it did."""
        if self.error is not None:
            raise RuntimeError(f"ping-pong partner ({self.label}) failed: {self.error!r}")

    def close(self):
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with self.cond:
            self.stop = True
            self.turn = 1
            self.cond.notify()
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError(f"ping-pong partner ({self.label}) did not stop")


# --------------------------------------------------------------------------
# Patching and settings (held around a side's repeats: harness.Side's ``around``)
# --------------------------------------------------------------------------


def _settings_text(settings):
    return "".join(f", {k}={v!r}" for k, v in settings.items())


class Patch:
    """``threadtrace.patch(exporters=(), **settings)``, and ``unpatch()``.

    ``settings`` (``lock_order=True``, ``watchdog=False`` ...) are put back to
    their previous values on :meth:`exit`: ``unpatch()`` alone keeps the
    configuration, and the other cases must not run with them.
    """

    def __init__(self, tt, settings=None):
        self.tt = tt
        self.settings = dict(settings or {})
        self.description = f"threadtrace.patch(exporters=(){_settings_text(self.settings)})"
        self.handle = None
        self._saved = {}

    def enter(self):
        if self.handle is not None:
            raise RuntimeError("bench bug: already patched")
        config = self.tt.current_config()
        self._saved = {name: getattr(config, name) for name in self.settings}
        self.handle = self.tt.patch(exporters=(), **self.settings)
        if threading.Lock is STD["Lock"]:
            raise RuntimeError(f"{self.description} left threading.Lock untouched")

    def exit(self):
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.unpatch()
        if self._saved:
            self.tt.configure(**self._saved)
        changed = [name for name, f in STD.items() if getattr(threading, name) is not f]
        if changed:
            raise RuntimeError("unpatch() did not restore threading." + ", ".join(changed))


class Settings:
    """``threadtrace.configure(**settings)`` around a side's repeats, then the old values.

    Objects made under ``patch()`` keep being traced after ``unpatch()``, but
    the settings are read when they run: a ``lock_order=True`` case needs
    ``lock_order=True`` in force while it is timed, and every other case
    needs it off.
    """

    def __init__(self, tt, settings):
        self.tt = tt
        self.settings = dict(settings)
        self._saved = {}

    def enter(self):
        config = self.tt.current_config()
        self._saved = {name: getattr(config, name) for name in self.settings}
        self.tt.configure(**self.settings)

    def exit(self):
        saved, self._saved = self._saved, {}
        if saved:
            self.tt.configure(**saved)


def _around(tt, settings, toggle):
    """What a threadtrace side holds around its repeats, or None."""
    if toggle:
        return Patch(tt, settings)
    return Settings(tt, settings) if settings else None


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def _check_types_differ(std_obj, tt_obj):
    if type(std_obj) is type(tt_obj):
        return f"threadtrace side is a plain {type(tt_obj).__name__}: not traced?"
    return None


@dataclasses.dataclass
class Case:
    """One row of the table.

    Attributes:
        id: stable identifier (``--only`` matches on it, JSON uses it).
        title: what the table prints.
        body: key into :data:`BODIES`.
        make_std: builds the stdlib ``obj`` (called unpatched, before patching).
        make_tt: builds the threadtrace ``obj``; called while patched when
            ``patched`` is true, else unpatched after the patch window.
        group: which table: a key of :data:`TABLES`.
        patched: the threadtrace side is "the stdlib API under patch()".
        always_toggle: run every threadtrace repeat while patched.
        check: ``check(std_obj, tt_obj)`` returns a warning string or ``None``.
        thread_loops: uses ``--thread-loops`` instead of calibration.
        settings: threadtrace settings of this case (``{"lock_order": True}``):
            its objects are made in a ``patch(exporters=(), **settings)``
            window of their own, and the settings are in force around each
            of its threadtrace repeats (outside the timing), off otherwise.
        baseline_settings: instead of the stdlib, the baseline side is the
            same threadtrace object, run with these settings.
        option: the command-line flag that adds this case (``None``: always run).
        min_repeat_ms: a repeat lasts at least this long (not with ``--quick``).
        max_repeats: at most this many pairs, unless ``--repeats`` is given.
        calibrated: always calibrate, even with ``--loops``.
        probe: makes an object with ``install()``, ``remove()`` and
            ``record(row)``, installed while the case runs.
    """

    id: str
    title: str
    body: str
    make_std: Optional[Callable[[], Any]]
    make_tt: Callable[[], Any]
    group: str = "hot"
    patched: bool = False
    always_toggle: bool = False
    check: Callable[[Any, Any], Optional[str]] = _check_types_differ
    thread_loops: bool = False
    settings: dict = dataclasses.field(default_factory=dict)
    baseline_settings: Optional[dict] = None
    option: Optional[str] = None
    min_repeat_ms: Optional[float] = None
    max_repeats: Optional[int] = None
    calibrated: bool = False
    probe: Optional[Callable[[], Any]] = None


def _check_factories_differ(std_factory, tt_factory):
    if std_factory is tt_factory:
        return "threadtrace side is the stdlib factory itself"
    return None


def _check_queue(std_q, tt_q):
    if type(std_q.mutex) is type(tt_q.mutex):
        return f"Queue.mutex under patch is a plain {type(tt_q.mutex).__name__}: not traced?"
    return None


def _check_nothing(std_obj, tt_obj):
    return None


def _set_event(factory):
    event = factory()
    event.set()
    return event


def _returns(value):
    return lambda: value


def _patched_factory(name):
    def make():
        # Looked up on ``threading`` when called (while patched), from this module.
        return getattr(threading, name)()

    return make


def _construction(tt, name):
    """A construction case: the factories themselves, timed calling them."""
    return Case(
        f"new-{name.lower()}",
        f"{name}()",
        "construct",
        _returns(STD[name]),
        _returns(getattr(tt, name)),
        group="construction",
        check=_check_factories_differ,
    )


def build_cases(tt):
    """The rows of the default run, in table order."""
    return [
        # with lock (the headline: threading.Lock() created under patch())
        Case("with-lock.direct", "with Lock            [threadtrace.Lock()]", "with",
             STD["Lock"], tt.Lock),
        Case(HEADLINE, "with Lock            [threading.Lock() under patch]", "with",
             STD["Lock"], _patched_factory("Lock"), patched=True),
        Case("acquire-release-lock", "Lock.acquire(); .release()", "acquire-release",
             STD["Lock"], tt.Lock),
        Case("with-rlock", "with RLock", "with", STD["RLock"], tt.RLock),
        Case("with-rlock-nested", "with RLock: with RLock (reentrant)", "with-nested",
             STD["RLock"], tt.RLock),
        Case("with-condition", "with Condition", "with", STD["Condition"], tt.Condition),
        Case("condition-notify", "with Condition: notify() (no waiters)", "with-notify",
             STD["Condition"], tt.Condition),
        Case("with-semaphore", "with Semaphore(1)", "with",
             lambda: STD["Semaphore"](1), lambda: tt.Semaphore(1)),
        Case("with-bounded-semaphore", "with BoundedSemaphore(1)", "with",
             lambda: STD["BoundedSemaphore"](1), lambda: tt.BoundedSemaphore(1)),
        Case("event-is_set", "Event.is_set() (set)", "is_set",
             lambda: _set_event(STD["Event"]), lambda: _set_event(tt.Event)),
        Case("event-wait", "Event.wait() (set)", "wait",
             lambda: _set_event(STD["Event"]), lambda: _set_event(tt.Event)),
        Case("event-set", "Event.set() (already set)", "set",
             lambda: _set_event(STD["Event"]), lambda: _set_event(tt.Event)),
        Case("queue-put-get.patched", "Queue.put(); .get()  [Queue() under patch]", "put-get",
             queue.Queue, queue.Queue, patched=True, check=_check_queue),
        Case("thread-start-join.patched", "Thread start+join    [under patch]", "thread",
             _returns(threading), _returns(threading), patched=True, always_toggle=True,
             check=_check_nothing, thread_loops=True),
        *(_construction(tt, name) for name in ("Lock", "RLock", "Condition", "Event", "Semaphore")),
    ]  # fmt: skip


# Cases added by --lock-order / --watchdog (--detectors: both) --------------

#: Pairs of the watchdog on/off row (each repeat outlasts a watchdog interval).
WATCHDOG_PAIRS = 9


def _watchdog_interval_s():
    """How often the watchdog wakes at most, in seconds."""
    from threadtrace._detect import watchdog

    return watchdog.MAX_INTERVAL


def _two_std_locks():
    return STD["Lock"](), STD["Lock"]()


def _two_patched_locks():
    # Two lines, two creation sites: two lock names, as for two locks of an application.
    first = threading.Lock()
    second = threading.Lock()
    return first, second


def _outer_and_factory():
    import threadtrace

    return threadtrace.Lock(), threadtrace.Lock


def _direct_factory():
    import threadtrace

    return threadtrace.Lock


def _std_ping_pong():
    return PingPong(STD["Condition"](STD["Lock"]()), "stdlib")


def _patched_ping_pong():
    # Looked up on ``threading`` when called (while patched): a traced Condition on a traced Lock.
    return PingPong(threading.Condition(threading.Lock()), "threadtrace")


def _lock_order_off():
    """A warning if lock order is not tracked, else None."""
    from threadtrace._runtime import runtime

    if runtime.ordering:
        return None
    return "lock order was not tracked: lock_order did not take effect?"


def _check_lock_order_with(std_lock, tt_lock):
    return _check_types_differ(std_lock, tt_lock) or _lock_order_off()


def _check_two_locks(std_locks, tt_locks):
    return _check_types_differ(std_locks[0], tt_locks[0])


def _check_lock_order_two(std_locks, tt_locks):
    from threadtrace._runtime import runtime

    warning = _check_two_locks(std_locks, tt_locks)
    if warning is not None:
        return warning
    first, second = tt_locks
    if not runtime.lock_order.knows(first, second):
        return "no a -> b lock order was recorded: lock_order did not take effect?"
    return None


def _check_lock_order_new(std, tt):
    from threadtrace._runtime import runtime

    outer, make = tt
    warning = _check_lock_order_on(std[1], make)
    if warning is None:
        inner = make()
        with outer, inner:
            pass
        if not runtime.lock_order.knows(outer, inner):
            warning = "no outer -> new lock order was recorded: lock_order did not take effect?"
    return warning


def _check_lock_order_on(std_factory, tt_factory):
    return _check_factories_differ(std_factory, tt_factory) or _lock_order_off()


def _check_ping_pong(_std, tt):
    if type(tt.cond) is STD["Condition"] or type(tt.cond._lock) is type(STD["Lock"]()):
        return "the threadtrace side's Condition or its Lock is a plain stdlib one: not traced?"
    return None


def _check_watchdog_ran(_baseline, tt):
    from threadtrace._runtime import runtime

    warning = _check_ping_pong(None, tt)
    if warning is not None:
        return warning
    watchdog = runtime.detect.watchdog
    if watchdog is None or not watchdog.is_alive():
        return "the watchdog thread is not running: the watchdog=True side did not measure it"
    return None


class WatchdogScans:
    """Times every scan of the watchdog thread while one case runs.

    On a busy machine the wall-clock on/off ratio of a hand-off is limited by
    scheduling noise; this is the watchdog's own work, measured directly.  It
    wraps ``threadtrace._detect.watchdog.scan`` (what the watchdog thread
    calls on each wake-up) in this process, for the case only.
    """

    def __init__(self):
        self.durations = []  # ns per scan, appended by the watchdog thread
        self._original = None

    def install(self):
        from threadtrace._detect import watchdog

        original = self._original = watchdog.scan
        durations = self.durations
        clock = harness.clock

        def scan(*args, **kwargs):
            t0 = clock()
            try:
                return original(*args, **kwargs)
            finally:
                durations.append(clock() - t0)

        watchdog.scan = scan

    def remove(self):
        from threadtrace._detect import watchdog

        original, self._original = self._original, None
        if original is not None:
            watchdog.scan = original

    def record(self, row):
        durations = list(self.durations)
        row["watchdog_scan_ns"] = durations
        if not durations:
            row.setdefault("notes", []).append("watchdog thread: no scan during this row")
            return
        median = statistics.median(durations)
        interval = _watchdog_interval_s()
        row.setdefault("notes", []).append(
            f"watchdog thread: {len(durations)} scans during this row, "
            f"{median / 1000:.1f} us each (median wall time, GIL waits included; max "
            f"{max(durations) / 1000:.1f} us): one per {interval:g} s is at most "
            f"{100 * median / (interval * 1e9):.3f}% of one core"
        )


def build_detector_cases():
    """The rows added by --lock-order and --watchdog (both: --detectors)."""
    lock_order = {"lock_order": True}
    handoff = {
        "group": "handoff",
        "patched": True,
        "check": _check_ping_pong,
        "option": "--watchdog",
        "calibrated": True,
    }
    return [
        Case("lock-order.with-lock.patched",
             "with Lock            [threading.Lock() under patch(lock_order=True)]", "with",
             STD["Lock"], _patched_factory("Lock"), group="lock-order", patched=True,
             settings=lock_order, check=_check_lock_order_with, option="--lock-order"),
        Case("with-two-locks.patched",
             "with a: with b:      [2 Locks under patch(lock_order=False)]", "with-two",
             _two_std_locks, _two_patched_locks, group="lock-order", patched=True,
             settings={"lock_order": False}, check=_check_two_locks, option="--lock-order"),
        Case("lock-order.with-two-locks.patched",
             "with a: with b:      [2 Locks under patch(lock_order=True)]", "with-two",
             _two_std_locks, _two_patched_locks, group="lock-order", patched=True,
             settings=lock_order, check=_check_lock_order_two, option="--lock-order"),
        Case("lock-order.with-new-lock",
             "with a: with Lock()  [a new lock each time, another kind; lock_order=True]",
             "with-new", lambda: (STD["Lock"](), STD["Lock"]), _outer_and_factory,
             group="lock-order", settings=lock_order, check=_check_lock_order_new,
             option="--lock-order"),
        Case("lock-order.with-new-pair",
             "a, b = Lock(), Lock(); with a: with b:  [new, one kind; lock_order=True]",
             "with-new-pair", _returns(STD["Lock"]), _direct_factory, group="lock-order",
             settings=lock_order, check=_check_lock_order_on, option="--lock-order"),
        Case("handoff.watchdog-on.patched",
             "Condition ping-pong, 2 threads  [under patch(watchdog=True)]", "ping-pong",
             _std_ping_pong, _patched_ping_pong, settings={"watchdog": True}, **handoff),
        Case("handoff.watchdog-off.patched",
             "Condition ping-pong, 2 threads  [under patch(watchdog=False)]", "ping-pong",
             _std_ping_pong, _patched_ping_pong, settings={"watchdog": False}, **handoff),
        # Each watchdog=True repeat lasts longer than one watchdog interval, so
        # it contains at least one wake-up and scan.
        Case("watchdog.on-off.patched", "Condition ping-pong, 2 threads  [under patch]",
             "ping-pong", None, _patched_ping_pong, group="watchdog", patched=True,
             settings={"watchdog": True}, baseline_settings={"watchdog": False},
             check=_check_watchdog_ran, option="--watchdog",
             min_repeat_ms=1100 * _watchdog_interval_s(), max_repeats=WATCHDOG_PAIRS,
             calibrated=True, probe=WatchdogScans),
    ]  # fmt: skip


#: The tables, in print order: group -> (title, headers or None for the default).
TABLES = {
    "hot": ("hot path (uncontended)", None),
    "lock-order": (
        "lock order (--lock-order): lock_order=True (the default with the C lock core) "
        "keeps each thread's held locks; uncontended",
        None,
    ),
    "handoff": (
        "contended hand-off (--watchdog): one round trip of a Condition ping-pong between "
        "2 threads",
        None,
    ),
    "watchdog": (
        "watchdog cost on that hand-off (--watchdog): the same traced objects, "
        "watchdog=True / watchdog=False",
        ("case", "watchdog=False ns/op", "watchdog=True ns/op", "ratio on/off (median, min-max)"),
    ),
    "construction": ("construction (not the hot path)", None),
}


# --------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------


def build_objects(tt, cases, errors):
    """{case id: [stdlib obj, threadtrace obj]}; failures go to ``errors``.

    The stdlib objects are made before anything is patched; the "under
    patch" ones inside one patch() window, or, for cases with settings of
    their own (``lock_order=True`` ...), in a ``patch(exporters=(),
    **settings)`` window per distinct settings; the direct threadtrace ones
    (``threadtrace.Lock()`` ...) after them, unpatched, as an application
    that never patches would make them (patch()'s settings stay in force).
    A case with baseline settings times one threadtrace object against itself.
    """
    objects = {}

    def make(c, index, factory, what):
        try:
            objects[c.id][index] = factory()
        except Exception as exc:  # noqa: BLE001 - reported in the table, the rest still runs
            errors[c.id] = f"{what} setup: {type(exc).__name__}: {harness.short(exc)}"

    for c in cases:
        objects[c.id] = [None, None]
        if c.make_std is not None:
            make(c, 0, c.make_std, "stdlib")
    windows = {(): []}  # settings -> the patched cases made under them, in order
    for c in cases:
        if c.patched:
            windows.setdefault(tuple(sorted(c.settings.items())), []).append(c)
    for key, window in windows.items():
        patch = Patch(tt, dict(key))
        patch.enter()
        try:
            for c in (c for c in window if c.id not in errors):
                make(c, 1, c.make_tt, f"threadtrace under {patch.description}")
        finally:
            patch.exit()
    for c in cases:
        if not c.patched and c.id not in errors:
            make(c, 1, c.make_tt, "threadtrace")
        if c.baseline_settings is not None:
            objects[c.id][0] = objects[c.id][1]
    return objects


class _NoProbe:
    def install(self):
        pass

    def remove(self):
        pass

    def record(self, row):
        pass


def run_case(tt, c, objects, args, loop_ns):
    """Time one case; its result row."""
    std_obj, tt_obj = objects[c.id]
    toggle = c.always_toggle or (c.patched and args.patch_mode == "toggle")
    after = std_obj.check if isinstance(std_obj, PingPong) else None
    if c.baseline_settings is not None:
        baseline = _around(tt, c.baseline_settings, toggle)
        std = harness.Side(tt_obj, make_loop(c.body, "baseline"), baseline, after)
    else:
        std = harness.Side(std_obj, make_loop(c.body, "stdlib"), after=after)
    after = tt_obj.check if isinstance(tt_obj, PingPong) else None
    trc = harness.Side(
        tt_obj, make_loop(c.body, "threadtrace"), _around(tt, c.settings, toggle), after
    )

    repeats, target_ms, min_repeat_ms = args.repeats, args.target_ms, None
    if not args.quick:
        if c.max_repeats and not args.repeats_given:
            repeats = min(repeats, c.max_repeats)
        if c.min_repeat_ms:
            target_ms = max(target_ms, c.min_repeat_ms)
            min_repeat_ms = c.min_repeat_ms
    fixed = None
    if c.thread_loops:
        fixed = args.thread_loops
    elif args.loops and not c.calibrated:
        fixed = args.loops

    # One partner thread per PingPong (the watchdog on/off row has one object on both sides).
    partners = list({id(o): o for o in (std_obj, tt_obj) if isinstance(o, PingPong)}.values())
    probe = c.probe() if c.probe is not None else _NoProbe()
    try:
        probe.install()
        for partner in partners:
            partner.start()
        loops = harness.choose_loops(
            std,
            trc,
            fixed=fixed,
            target_ms=target_ms,
            max_loops=args.max_loops,
            min_repeat_ms=min_repeat_ms,
        )
        stats = harness.measure(std, trc, loops, repeats, args.warmup, loop_ns)
    finally:
        for partner in partners:
            partner.close()
        probe.remove()
    row = {"id": c.id, "case": c.title, "group": c.group, **stats}
    probe.record(row)
    if c.baseline_settings is not None:
        row["baseline"] = "threadtrace" + _settings_text(c.baseline_settings).replace(",", "", 1)
    return row


def run_all(tt, cases, objects, errors, args, loop_ns):
    """One result row per case, in order; a failing case gets an error row."""
    results = []
    for c in cases:
        row = None
        if c.id not in errors:
            try:
                row = run_case(tt, c, objects, args, loop_ns if args.subtract_loop else 0.0)
            except Exception as exc:  # noqa: BLE001 - reported in the table, the rest still runs
                errors[c.id] = f"{type(exc).__name__}: {harness.short(exc)}"
                traceback.print_exc(file=sys.stderr)
                if tt.is_patched():
                    tt.unpatch()
        if row is None:
            row = {"id": c.id, "case": c.title, "group": c.group, "error": errors[c.id]}
        warning = None if c.id in errors else c.check(*objects[c.id])
        if warning:
            row["warnings"] = [warning]
        results.append(row)
    return results


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def verdict(results, target):
    """(passed or None, the verdict line) for the headline case."""
    row = next((r for r in results if r["id"] == HEADLINE), None)
    if row is None:
        return None, f"verdict: headline case {HEADLINE!r} not run"
    if "error" in row:
        return False, f"verdict: FAIL  headline case errored: {row['error']}"
    ok = row["ratio_median"] <= target
    spread = ""
    if row["ratio_min"] <= target < row["ratio_max"]:
        spread = "; min-max straddles the target"
    return ok, (
        f"verdict: {'PASS' if ok else 'FAIL'}  with Lock [threading.Lock() under patch] "
        f"is {row['ratio_median']:.2f}x stdlib (median of {row['repeats']} pairs, "
        f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}) against the <= {target:.1f}x "
        f"target{spread}"
    )


def detector_lines(args):
    """What the header says about --lock-order and --watchdog."""
    if not (args.lock_order or args.watchdog):
        return [
            "detectors    off: default settings only (--lock-order, --watchdog or "
            "--detectors add rows)"
        ]
    pad = " " * 13
    lines = []
    if args.lock_order:
        lines += [
            "lock order   lock_order=True rows: objects made under "
            "threadtrace.patch(exporters=(), lock_order=True),",
            f"{pad}lock_order=True held around their threadtrace repeats only "
            "(off for every other row)",
        ]
    if args.watchdog:
        pairs = args.repeats
        if not (args.quick or args.repeats_given):
            pairs = min(args.repeats, WATCHDOG_PAIRS)
        if args.quick:
            repeats = "--quick repeats (too short to contain a watchdog wake-up)"
        else:
            repeats = (
                f">= {1.1 * _watchdog_interval_s() * 1000:.0f} ms repeats "
                "(>= 1 watchdog wake-up each)"
            )
        lines += [
            "watchdog     on/off rows: Condition ping-pong between 2 threads under "
            "threadtrace.patch(exporters=(), watchdog=True|False);",
            f"{pad}on/off row: {pairs} pairs of {repeats}",
        ]
    return lines


def header_lines(args, tt, loop_ns):
    if args.loops:
        loops = f"{args.loops} loops/repeat"
    else:
        loops = f"loops calibrated to ~{args.target_ms:g} ms/repeat"
    loop_use = "subtracted from both sides" if args.subtract_loop else "included in every ns/op"
    what = "uncontended single-thread operations"
    if args.watchdog:
        what += " (and a contended 2-thread hand-off)"
    return [
        f"threadtrace microbenchmark: {what}, threadtrace / stdlib",
        *harness.environment_lines(tt),
        f"patch        {Patch(tt).description}, patch-mode {args.patch_mode}",
        *detector_lines(args),
        f"repeats      {args.repeats} interleaved pairs (stdlib, threadtrace, stdlib, ...), "
        f"warm-up {args.warmup}, {loops}",
        f"loop cost    {loop_ns:.2f} ns/iteration for an empty loop ({loop_use})",
        "ratio        per pair threadtrace_time / stdlib_time; median (min-max) over pairs",
    ]


def json_meta(args, tt, loop_ns):
    return {
        **harness.environment_meta(tt),
        "patch": Patch(tt).description,
        "patch_mode": args.patch_mode,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "loops": args.loops,
        "target_ms": args.target_ms,
        "thread_loops": args.thread_loops,
        "empty_loop_ns_per_iteration": loop_ns,
        "loop_overhead_subtracted": args.subtract_loop,
        "quick": args.quick,
        "lock_order_rows": args.lock_order,
        "watchdog_rows": args.watchdog,
    }


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Uncontended microbenchmark: threadtrace / stdlib ratios, "
        "from interleaved repeats.",
    )
    add = p.add_argument
    add(
        "--repeats",
        type=int,
        help="timed (stdlib, threadtrace) pairs per case (default 21; --quick 5)",
    )
    add(
        "--loops", type=int, help="iterations per repeat of every per-op case (default: calibrated)"
    )
    add(
        "--target-ms",
        type=float,
        help="calibrated length of the average repeat (default 30; --quick 5)",
    )
    add(
        "--max-loops",
        type=int,
        default=5_000_000,
        help="at most this many calibrated loops (default 5000000)",
    )
    add(
        "--thread-loops",
        type=int,
        help="thread start+join iterations per repeat (default 200; --quick 30)",
    )
    add(
        "--warmup",
        type=int,
        default=1,
        help="untimed full repeats per side before timing (default 1)",
    )
    add("--quick", action="store_true", help="fast smoke run: 5 pairs of ~5 ms")
    add(
        "--patch-mode",
        choices=("window", "toggle"),
        default="window",
        help="window (default): 'under patch' objects are made in one patch() window and timed "
        "unpatched; toggle: also hold the patch around each of their threadtrace repeats",
    )
    add(
        "--subtract-loop",
        action="store_true",
        help="subtract the empty loop's cost from both sides",
    )
    add(
        "--target-ratio",
        type=float,
        default=DEFAULT_TARGET_RATIO,
        help=f"headline target (default {DEFAULT_TARGET_RATIO})",
    )
    add(
        "--only",
        action="append",
        default=[],
        metavar="SUBSTR",
        help="only cases whose id contains SUBSTR (repeatable)",
    )
    add(
        "--lock-order",
        action="store_true",
        help="also time with Lock and with a: with b: under patch(lock_order=True)",
    )
    add(
        "--watchdog",
        action="store_true",
        help="also time a contended hand-off (a Condition ping-pong between 2 threads) with "
        "watchdog=True and watchdog=False, against the stdlib and against each other",
    )
    add("--detectors", action="store_true", help="both --lock-order and --watchdog")
    add("--list", action="store_true", help="list the case ids and exit")
    add("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = p.parse_args(argv)
    args.repeats_given = args.repeats is not None
    if args.detectors:
        args.lock_order = args.watchdog = True
    if args.repeats is None:
        args.repeats = 5 if args.quick else 21
    if args.target_ms is None:
        args.target_ms = 5.0 if args.quick else 30.0
    if args.thread_loops is None:
        args.thread_loops = 30 if args.quick else 200
    loops = 1 if args.loops is None else args.loops
    if min(args.repeats, loops, args.thread_loops, args.max_loops) < 1:
        p.error("--repeats, --loops, --thread-loops and --max-loops must be >= 1")
    if args.warmup < 0 or args.target_ms <= 0:
        p.error("--warmup must be >= 0 and --target-ms > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = sys.stdout
    import threadtrace as tt

    cases = build_cases(tt)
    detectors = build_detector_cases()
    if args.list:
        for c in cases + detectors:
            option = f"[{c.option}] " if c.option else ""
            print(f"{c.id:<34} {option}{c.title}", file=out)
        return 0
    enabled = {"--lock-order": args.lock_order, "--watchdog": args.watchdog}
    cases += [c for c in detectors if enabled[c.option]]
    if args.only:
        cases = [c for c in cases if any(s in c.id for s in args.only)]
        if not cases:
            print(
                f"no case id contains any of {args.only} "
                "(--lock-order, --watchdog or --detectors add rows: see --list)",
                file=sys.stderr,
            )
            return 2

    errors = {}
    objects = build_objects(tt, cases, errors)
    loop_ns = harness.measure_empty_loop(max(5, args.repeats), 50_000 if args.quick else 200_000)
    for line in header_lines(args, tt, loop_ns):
        print(line, file=out)
    print(file=out)
    out.flush()

    results = run_all(tt, cases, objects, errors, args, loop_ns)
    for group, (title, headers) in TABLES.items():
        rows = [r for r in results if r["group"] == group]
        if rows:
            harness.print_table(title, rows, out, headers)
    ok, line = verdict(results, args.target_ratio)
    print(line, file=out)

    if args.json:
        headline = {"id": HEADLINE, "target_ratio": args.target_ratio, "pass": ok, "verdict": line}
        harness.write_json(args.json, json_meta(args, tt, loop_ns), headline, results)
        print(f"wrote {args.json}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
