#!/usr/bin/env python3
"""Uncontended microbenchmark: threadtrace primitives against the stdlib.

For every case the stdlib side and the threadtrace side are timed in the same
process, *interleaved*: repeat 1 stdlib, repeat 1 threadtrace, repeat 2
stdlib, repeat 2 threadtrace, ...  Each (stdlib, threadtrace) pair gives one
ratio, so a burst of machine noise lands on both sides of a pair; the table
reports the median of those per-pair ratios with their min and max, and the
median ns/op of each side.

How the two sides are kept comparable:

* Both sides run the same loop: the same source text, compiled into two
  separate (byte-for-byte identical) functions, with the primitive passed in
  as an argument.  Two copies rather than one shared function so that the
  specialising interpreter (3.11+) keeps one set of inline caches per side
  instead of flip-flopping between the stdlib type and the traced type at
  every repeat.
* ``gc`` is disabled while timing, and collected before every repeat.
* Every case is warmed up (calibration runs plus ``--warmup`` full repeats
  per side) before anything is recorded.
* "under patch" cases: the stdlib object is created before
  ``threadtrace.patch(exporters=())`` and the traced one while patched; the
  objects keep their identity after ``unpatch()``, so repeats can be
  interleaved without patching inside a timing loop.  With
  ``--patch-mode toggle`` the traced side's repeats additionally run while
  patched (patch/unpatch around each traced repeat, outside the timing).
  Thread start+join makes new primitives on every iteration, so it is
  always timed that way.  The direct cases (``threadtrace.Lock()`` ...) are
  built after that window, unpatched, with patch()'s settings still in force.

Detectors (rows added on request; the default run is unchanged):

* ``--lock-order``: ``with lock:`` and ``with a: with b:`` (two locks, the
  a -> b order known after the first iteration) on locks made under
  ``threadtrace.patch(exporters=(), lock_order=True)``, with
  ``lock_order=True`` in force around their threadtrace repeats only, against
  the stdlib; plus ``with a: with b:`` under plain ``patch()`` for reference.
  If ``patch()`` does not accept ``lock_order`` (an older copy), the header
  says so and those rows are skipped.
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
import datetime
import gc
import itertools
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
import traceback

# Capture the real factories before anything can patch ``threading``.
_STD = {
    name: getattr(threading, name)
    for name in (
        "Lock",
        "RLock",
        "Condition",
        "Semaphore",
        "BoundedSemaphore",
        "Event",
        "Barrier",
        "Thread",
    )
}

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _choose_threadtrace():
    """Benchmark the working tree, unless an installed copy is the better measure.

    The tree's C core exists only once built in place (``pip install -e .``).
    When the tree has none but an installed threadtrace is importable (say,
    after ``pip install .``), that copy is measured instead: otherwise a plain
    clone would report the pure-Python fallback as threadtrace's cost.  The
    header says which copy and which core ran.
    """
    tree = os.path.join(_REPO_ROOT, "threadtrace")
    if not os.path.isfile(os.path.join(tree, "__init__.py")):
        return
    built = any(
        name.startswith("_speedups") and name.endswith((".so", ".pyd")) for name in os.listdir(tree)
    )
    if not built:
        import importlib.util

        saved = list(sys.path)
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _REPO_ROOT]
        try:
            installed = importlib.util.find_spec("threadtrace") is not None
        finally:
            sys.path[:] = saved
        if installed:
            sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _REPO_ROOT]
            return
    sys.path.insert(0, _REPO_ROOT)


_choose_threadtrace()

HEADLINE = "with-lock.patched"
DEFAULT_TARGET_RATIO = 1.6

_clock = time.perf_counter_ns


# --------------------------------------------------------------------------
# Timing loops
# --------------------------------------------------------------------------

_LOOP_TEMPLATE = """
def loop(obj, n):
{setup}
    it = _repeat(None, n)
    t0 = _clock()
    for _ in it:
{body}
    return _clock() - t0
"""

#: Loop bodies.  ``obj`` is the primitive (or the factory, or the
#: ``threading`` module for the thread case).
BODIES = {
    "empty": "pass",
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
    "ping-pong": "cond = obj.cond",
}


def _noop():
    pass


def make_loop(body_key, label):
    """Compile a fresh copy of the timing loop for ``body_key``.

    The loop's globals carry this module's ``__name__``: threadtrace decides
    whether (and how) to trace a primitive from the module that creates it,
    so the loop must look like ordinary application code.
    """
    body = "\n".join("        " + line for line in BODIES[body_key].splitlines())
    setup = "    " + SETUPS.get(body_key, "pass")
    source = _LOOP_TEMPLATE.format(setup=setup, body=body)
    return _compile(source, f"<bench loop {body_key} {label}>", "loop")


def _compile(source, filename, name):
    namespace = {
        "__name__": __name__,
        "_repeat": itertools.repeat,
        "_clock": _clock,
        "_noop": _noop,
    }
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


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
        partner = _compile(_PARTNER_SOURCE, f"<bench partner {self.label}>", "partner")
        self.turn, self.stop, self.error = 0, False, None
        self._thread = _STD["Thread"](
            target=partner, args=(self,), name=f"bench-partner-{self.label}", daemon=True
        )
        self._thread.start()

    def check(self):
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
# Patching
# --------------------------------------------------------------------------


class SettingNotAccepted(Exception):
    """This threadtrace's ``patch()`` does not know one of the settings asked for."""


def _settings_text(settings):
    return "".join(f", {k}={v!r}" for k, v in settings.items())


def _rejected(exc, settings):
    """The setting ``exc`` says was not accepted, if it names one of ``settings``."""
    text = str(exc)
    return next((name for name in settings if f"'{name}'" in text), None)


def _current_settings(tt, names):
    """The values in force of ``names``, to put back later ({} if unknown)."""
    current = getattr(tt, "current_config", None)
    if current is None or not names:
        return {}
    config = current()
    return {name: getattr(config, name) for name in names if hasattr(config, name)}


class Patcher:
    """``threadtrace.patch(exporters=(), **settings)``, falling back to ``patch(**settings)``.

    ``settings`` (``lock_order=True``, ``watchdog=False`` ...) are put back to
    their previous values by :meth:`unpatch`: ``unpatch()`` alone keeps the
    configuration, and the other cases must not run with them.
    """

    def __init__(self, tt, settings=None):
        self.tt = tt
        self.settings = dict(settings or {})
        self.description = None
        self.handle = None
        self.accepts_exporters = True
        self._saved = {}

    def patch(self):
        if self.handle is not None:
            raise RuntimeError("bench bug: already patched")
        extra = _settings_text(self.settings)
        self._saved = _current_settings(self.tt, self.settings)
        try:
            if self.accepts_exporters:
                try:
                    self.handle = self.tt.patch(exporters=(), **self.settings)
                    self.description = f"threadtrace.patch(exporters=(){extra})"
                except TypeError as exc:
                    if "exporters" not in str(exc) or _rejected(exc, self.settings):
                        raise
                    self.accepts_exporters = False
                    self.description = (
                        f"threadtrace.patch({extra[2:]})  [exporters= not accepted: {exc}]"
                    )
            if not self.accepts_exporters:
                self.handle = self.tt.patch(**self.settings)
        except (TypeError, ValueError) as exc:
            name = _rejected(exc, self.settings)
            if name is None:
                raise
            raise SettingNotAccepted(
                f"this threadtrace.patch() does not accept {name}= "
                f"({type(exc).__name__}: {_short(exc)})"
            ) from exc
        if threading.Lock is _STD["Lock"]:
            raise RuntimeError(f"{self.description} left threading.Lock untouched")

    def unpatch(self):
        handle, self.handle = self.handle, None
        if handle is not None and hasattr(handle, "unpatch"):
            handle.unpatch()
        else:
            self.tt.unpatch()
        if self._saved:
            self.tt.configure(**self._saved)
        changed = [name for name, f in _STD.items() if getattr(threading, name) is not f]
        if changed:
            raise RuntimeError("unpatch() did not restore threading." + ", ".join(changed))

    # Held around a side's repeats (outside the timing): see Side.
    enter = patch
    exit = unpatch


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
        self._saved = _current_settings(self.tt, self.settings)
        self.tt.configure(**self.settings)

    def exit(self):
        saved, self._saved = self._saved, {}
        if saved:
            self.tt.configure(**saved)


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


class Case:
    """One row of the table.

    Attributes:
        id: stable identifier (``--only`` matches on it, JSON uses it).
        title: what the table prints.
        body: key into :data:`BODIES`.
        make_std: builds the stdlib ``obj`` (called unpatched, before patching).
        make_tt: builds the threadtrace ``obj``; called while patched when
            ``patched`` is true, else unpatched after the patch window.
        group: which table: ``"hot"``, ``"construction"``, ``"lock-order"``,
            ``"handoff"`` or ``"watchdog"`` (see :data:`TABLES`).
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

    def __init__(
        self,
        id,
        title,
        body,
        make_std,
        make_tt,
        group="hot",
        patched=False,
        always_toggle=False,
        check=None,
        thread_loops=False,
        settings=None,
        baseline_settings=None,
        option=None,
        min_repeat_ms=None,
        max_repeats=None,
        calibrated=False,
        probe=None,
    ):
        self.id = id
        self.title = title
        self.body = body
        self.make_std = make_std
        self.make_tt = make_tt
        self.group = group
        self.patched = patched
        self.always_toggle = always_toggle
        self.check = check if check is not None else _check_types_differ
        self.thread_loops = thread_loops
        self.settings = dict(settings or {})
        self.baseline_settings = baseline_settings
        self.option = option
        self.min_repeat_ms = min_repeat_ms
        self.max_repeats = max_repeats
        self.calibrated = calibrated
        self.probe = probe


def _check_types_differ(std_obj, tt_obj):
    if type(std_obj) is type(tt_obj):
        return f"threadtrace side is a plain {type(tt_obj).__name__}: not traced?"
    return None


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


def build_cases(tt):
    std = _STD
    construction = {"group": "construction", "check": _check_factories_differ}
    return [
        # 1. with lock (the headline: threading.Lock() created under patch())
        Case(
            "with-lock.direct",
            "with Lock            [threadtrace.Lock()]",
            "with",
            std["Lock"],
            tt.Lock,
        ),
        Case(
            HEADLINE,
            "with Lock            [threading.Lock() under patch]",
            "with",
            std["Lock"],
            _patched_factory("Lock"),
            patched=True,
        ),
        # 2. acquire/release
        Case(
            "acquire-release-lock",
            "Lock.acquire(); .release()",
            "acquire-release",
            std["Lock"],
            tt.Lock,
        ),
        # 3. RLock
        Case("with-rlock", "with RLock", "with", std["RLock"], tt.RLock),
        Case(
            "with-rlock-nested",
            "with RLock: with RLock (reentrant)",
            "with-nested",
            std["RLock"],
            tt.RLock,
        ),
        # 4. Condition
        Case("with-condition", "with Condition", "with", std["Condition"], tt.Condition),
        Case(
            "condition-notify",
            "with Condition: notify() (no waiters)",
            "with-notify",
            std["Condition"],
            tt.Condition,
        ),
        # 5. semaphores
        Case(
            "with-semaphore",
            "with Semaphore(1)",
            "with",
            lambda: std["Semaphore"](1),
            lambda: tt.Semaphore(1),
        ),
        Case(
            "with-bounded-semaphore",
            "with BoundedSemaphore(1)",
            "with",
            lambda: std["BoundedSemaphore"](1),
            lambda: tt.BoundedSemaphore(1),
        ),
        # 6. Event
        Case(
            "event-is_set",
            "Event.is_set() (set)",
            "is_set",
            lambda: _set_event(std["Event"]),
            lambda: _set_event(tt.Event),
        ),
        Case(
            "event-wait",
            "Event.wait() (set)",
            "wait",
            lambda: _set_event(std["Event"]),
            lambda: _set_event(tt.Event),
        ),
        Case(
            "event-set",
            "Event.set() (already set)",
            "set",
            lambda: _set_event(std["Event"]),
            lambda: _set_event(tt.Event),
        ),
        # 8. queue.Queue, made under patch
        Case(
            "queue-put-get.patched",
            "Queue.put(); .get()  [Queue() under patch]",
            "put-get",
            queue.Queue,
            queue.Queue,
            patched=True,
            check=_check_queue,
        ),
        # 9. Thread start + join, under patch
        Case(
            "thread-start-join.patched",
            "Thread start+join    [under patch]",
            "thread",
            _returns(threading),
            _returns(threading),
            patched=True,
            always_toggle=True,
            check=_check_nothing,
            thread_loops=True,
        ),
        # 7. construction
        Case("new-lock", "Lock()", "construct", *_factories(tt, "Lock"), **construction),
        Case("new-rlock", "RLock()", "construct", *_factories(tt, "RLock"), **construction),
        Case(
            "new-condition",
            "Condition()",
            "construct",
            *_factories(tt, "Condition"),
            **construction,
        ),
        Case("new-event", "Event()", "construct", *_factories(tt, "Event"), **construction),
        Case(
            "new-semaphore",
            "Semaphore()",
            "construct",
            *_factories(tt, "Semaphore"),
            **construction,
        ),
    ]


def _factories(tt, name):
    """(make_std, make_tt) for a construction case: the factories themselves."""
    return _returns(_STD[name]), _returns(getattr(tt, name))


# Cases added by --lock-order / --watchdog (--detectors: both) --------------

#: Pairs of the watchdog on/off row (each repeat outlasts a watchdog interval).
WATCHDOG_PAIRS = 9


def _watch_interval_s():
    """How often the watchdog wakes (threadtrace._watch.MAX_INTERVAL, else 0.5 s)."""
    try:
        from threadtrace import _watch
    except ImportError:
        return 0.5
    return float(getattr(_watch, "MAX_INTERVAL", 0.5))


def _two_std_locks():
    return _STD["Lock"](), _STD["Lock"]()


def _two_patched_locks():
    # Two lines, two creation sites: two lock names, as for two locks of an application.
    first = threading.Lock()
    second = threading.Lock()
    return first, second


def _std_ping_pong():
    return PingPong(_STD["Condition"](_STD["Lock"]()), "stdlib")


def _patched_ping_pong():
    # Looked up on ``threading`` when called (while patched): a traced Condition on a traced Lock.
    return PingPong(threading.Condition(threading.Lock()), "threadtrace")


def _check_lock_order_with(std_lock, tt_lock):
    warning = _check_types_differ(std_lock, tt_lock)
    period = getattr(tt_lock, "_period", 1)
    if warning is None and period != 1:
        warning = (
            f"the lock was sampled every {period} acquisitions, not every one: lock_order off?"
        )
    return warning


def _check_two_locks(std_locks, tt_locks):
    return _check_types_differ(std_locks[0], tt_locks[0])


def _check_lock_order_two(std_locks, tt_locks):
    warning = _check_two_locks(std_locks, tt_locks)
    if warning is not None:
        return warning
    try:
        from threadtrace import _lockorder

        first, second = (getattr(lock, "_tt_serial", None) for lock in tt_locks)
        recorded = (("i", first), ("i", second)) in _lockorder._orders
    except (ImportError, AttributeError):
        return None  # another version: nothing to check against
    if not recorded:
        return "no a -> b lock order was recorded: lock_order did not take effect?"
    return None


def _check_ping_pong(_std, tt):
    plain_lock = type(_STD["Lock"]())
    if type(tt.cond) is _STD["Condition"] or type(tt.cond._lock) is plain_lock:
        return "the threadtrace side's Condition or its Lock is a plain stdlib one: not traced?"
    return None


def _check_watchdog_ran(_baseline, tt):
    warning = _check_ping_pong(None, tt)
    if warning is not None:
        return warning
    try:
        from threadtrace import _watch
    except ImportError:
        return None
    watchdog = getattr(_watch, "_watchdog", None)
    if watchdog is None or not watchdog.is_alive():
        return "the watchdog thread is not running: the watchdog=True side did not measure it"
    return None


class WatchdogScans:
    """Times every scan of the watchdog thread while one case runs.

    On a busy machine the wall-clock on/off ratio of a hand-off is limited by
    scheduling noise; this is the watchdog's own work, measured directly.  It
    wraps ``threadtrace._watch.scan`` (what the watchdog thread calls on each
    wake-up) in this process, for the case only.
    """

    def __init__(self):
        self.durations = []  # ns per scan, appended by the watchdog thread
        self._module = None
        self._original = None

    def install(self):
        try:
            from threadtrace import _watch
        except ImportError:
            return
        original = getattr(_watch, "scan", None)
        if original is None:
            return
        durations = self.durations

        def scan(*args, **kwargs):
            t0 = _clock()
            try:
                return original(*args, **kwargs)
            finally:
                durations.append(_clock() - t0)

        self._module, self._original = _watch, original
        _watch.scan = scan

    def remove(self):
        module, self._module = self._module, None
        if module is not None:
            module.scan = self._original

    def record(self, row):
        durations = list(self.durations)
        row["watchdog_scan_ns"] = durations
        if not durations:
            row.setdefault("notes", []).append("watchdog thread: no scan during this row")
            return
        median = statistics.median(durations)
        interval = _watch_interval_s()
        row.setdefault("notes", []).append(
            f"watchdog thread: {len(durations)} scans during this row, "
            f"{median / 1000:.1f} us each (median wall time, GIL waits included; max "
            f"{max(durations) / 1000:.1f} us): one per {interval:g} s is at most "
            f"{100 * median / (interval * 1e9):.3f}% of one core"
        )


def build_detector_cases(tt):
    """The rows added by --lock-order and --watchdog (both: --detectors)."""
    lock_order = {"lock_order": True}
    # Each watchdog=True repeat of the on/off row lasts longer than one
    # watchdog interval, so it contains at least one wake-up and scan.
    on_off_ms = 1100 * _watch_interval_s()
    return [
        Case(
            "lock-order.with-lock.patched",
            "with Lock            [threading.Lock() under patch(lock_order=True)]",
            "with",
            _STD["Lock"],
            _patched_factory("Lock"),
            group="lock-order",
            patched=True,
            settings=lock_order,
            check=_check_lock_order_with,
            option="--lock-order",
        ),
        Case(
            "with-two-locks.patched",
            "with a: with b:      [2 Locks under patch, lock_order off]",
            "with-two",
            _two_std_locks,
            _two_patched_locks,
            group="lock-order",
            patched=True,
            check=_check_two_locks,
            option="--lock-order",
        ),
        Case(
            "lock-order.with-two-locks.patched",
            "with a: with b:      [2 Locks under patch(lock_order=True)]",
            "with-two",
            _two_std_locks,
            _two_patched_locks,
            group="lock-order",
            patched=True,
            settings=lock_order,
            check=_check_lock_order_two,
            option="--lock-order",
        ),
        Case(
            "handoff.watchdog-on.patched",
            "Condition ping-pong, 2 threads  [under patch(watchdog=True)]",
            "ping-pong",
            _std_ping_pong,
            _patched_ping_pong,
            group="handoff",
            patched=True,
            settings={"watchdog": True},
            check=_check_ping_pong,
            option="--watchdog",
            calibrated=True,
        ),
        Case(
            "handoff.watchdog-off.patched",
            "Condition ping-pong, 2 threads  [under patch(watchdog=False)]",
            "ping-pong",
            _std_ping_pong,
            _patched_ping_pong,
            group="handoff",
            patched=True,
            settings={"watchdog": False},
            check=_check_ping_pong,
            option="--watchdog",
            calibrated=True,
        ),
        Case(
            "watchdog.on-off.patched",
            "Condition ping-pong, 2 threads  [under patch]",
            "ping-pong",
            None,
            _patched_ping_pong,
            group="watchdog",
            patched=True,
            settings={"watchdog": True},
            baseline_settings={"watchdog": False},
            check=_check_watchdog_ran,
            option="--watchdog",
            min_repeat_ms=on_off_ms,
            max_repeats=WATCHDOG_PAIRS,
            calibrated=True,
            probe=WatchdogScans,
        ),
    ]


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


class Side:
    def __init__(self, obj, loop, around=None):
        self.obj = obj
        self.loop = loop
        # Entered before and exited after each repeat (outside the timing), or
        # None: a Patcher (patched), or Settings (lock_order=True ... in force).
        self.around = around
        self.samples = []  # total ns per timed repeat

    def run(self, n):
        """One repeat of ``n`` iterations; returns elapsed ns.  gc is off."""
        if self.around is not None:
            self.around.enter()
        try:
            gc.collect()
            gc.disable()
            try:
                elapsed = self.loop(self.obj, n)
            finally:
                gc.enable()
            if isinstance(self.obj, PingPong):
                self.obj.check()
            return elapsed
        finally:
            if self.around is not None:
                self.around.exit()


def _round_loops(n):
    """Round down to two significant digits, at least 10."""
    n = max(10, int(n))
    magnitude = 10 ** max(0, len(str(n)) - 2)
    return max(10, (n // magnitude) * magnitude)


def calibrate(std, tt, target_ns, max_loops):
    """Loops per repeat so that an average repeat of the pair takes ``target_ns``.

    Grows ``n`` until the pair takes at least a fifth of the target, then
    extrapolates.  Doubles as warm-up.
    """
    n = 10
    while True:
        pair = std.run(n) + tt.run(n)
        if pair >= target_ns / 5 or n >= max_loops:
            break
        n = min(max_loops, n * 10 if pair < target_ns / 100 else n * 4)
    per_op = pair / (2.0 * n)
    return min(max_loops, _round_loops(target_ns / max(per_op, 1e-3)))


def measure(case, std, tt, loops, repeats, warmup, loop_ns):
    """Warm up, then time ``repeats`` interleaved pairs; one result row."""
    for _ in range(warmup):
        std.run(loops)
        tt.run(loops)
    for _ in range(repeats):
        std.samples.append(std.run(loops))
        tt.samples.append(tt.run(loops))

    overhead = loop_ns * loops
    std_ns = [max(s - overhead, 1.0) for s in std.samples]
    tt_ns = [max(t - overhead, 1.0) for t in tt.samples]
    ratios = [t / s for s, t in zip(std_ns, tt_ns)]
    return {
        "id": case.id,
        "case": case.title,
        "group": case.group,
        "loops": loops,
        "repeats": repeats,
        "stdlib_ns_per_op": statistics.median(std_ns) / loops,
        "threadtrace_ns_per_op": statistics.median(tt_ns) / loops,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratios": ratios,
        "stdlib_repeat_ns": std.samples,
        "threadtrace_repeat_ns": tt.samples,
        "loop_overhead_subtracted_ns_per_op": loop_ns,
    }


def measure_empty_loop(repeats, loops):
    """Median ns per iteration of the empty loop."""
    side = Side(None, make_loop("empty", "baseline"))
    side.run(loops)
    return statistics.median(side.run(loops) for _ in range(repeats)) / loops


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _loadavg():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def _short(exc, limit=160):
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt_ns(v):
    if v >= 10000:
        return f"{v:.0f}"
    if v >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _fmt_ratio(r):
    return f"{r['ratio_median']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"


#: The tables, in print order: (group, title, headers).
TABLES = (
    ("hot", "hot path (uncontended)", None),
    (
        "lock-order",
        "lock order (--lock-order): with lock_order=True every Lock acquisition takes the "
        "slow path; uncontended",
        None,
    ),
    (
        "handoff",
        "contended hand-off (--watchdog): one round trip of a Condition ping-pong between "
        "2 threads",
        None,
    ),
    (
        "watchdog",
        "watchdog cost on that hand-off (--watchdog): the same traced objects, "
        "watchdog=True / watchdog=False",
        ("case", "watchdog=False ns/op", "watchdog=True ns/op", "ratio on/off (median, min-max)"),
    ),
    ("construction", "construction (not the hot path)", None),
)


def print_table(title, rows, out, headers=None):
    headers = headers or ("case", "stdlib ns/op", "threadtrace ns/op", "ratio (median, min-max)")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append((r["case"], "-", "-", "ERROR: " + r["error"]))
        else:
            ns_std = _fmt_ns(r["stdlib_ns_per_op"])
            ns_tt = _fmt_ns(r["threadtrace_ns_per_op"])
            lines.append((r["case"], ns_std, ns_tt, _fmt_ratio(r)))
    w0, w1, w2 = (max(len(cells[i]) for cells in [headers, *lines]) for i in range(3))

    def fmt(cells):
        return f"{cells[0]:<{w0}} | {cells[1]:>{w1}} | {cells[2]:>{w2}} | {cells[3]}"

    print(title, file=out)
    print(fmt(headers), file=out)
    print("-+-".join("-" * w for w in (w0, w1, w2, len(headers[3]))), file=out)
    for cells in lines:
        print(fmt(cells), file=out)
    for r in rows:
        for warning in r.get("warnings", ()):
            print(f"  note: {r['id']}: {warning}", file=out)
        for note in r.get("notes", ()):
            print(f"  {note}", file=out)
    print(file=out)


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


def _lock_core():
    """Which hot path the locks use: the C extension, or the pure-Python fallback."""
    try:
        from threadtrace import _locks
    except ImportError:
        return "?"
    if getattr(_locks, "SPEEDUPS", False):
        return "C (threadtrace._speedups)"
    return (
        "pure Python (threadtrace/_core.py): the C extension is not built here; "
        "`pip install -e .` builds it in place"
    )


def detector_lines(args, cases, skipped):
    """What the header says about --lock-order and --watchdog."""
    if not (args.lock_order or args.watchdog):
        return [
            "detectors    off: default settings only (--lock-order, --watchdog or "
            "--detectors add rows)"
        ]
    lines = []
    pad = " " * 13
    on_off_pairs = args.repeats
    if not (args.quick or args.repeats_given):
        on_off_pairs = min(args.repeats, WATCHDOG_PAIRS)
    for option, name, enabled, description in (
        (
            "--lock-order",
            "lock order",
            args.lock_order,
            "lock_order=True rows: objects made under threadtrace.patch(exporters=(), "
            f"lock_order=True),\n{pad}lock_order=True held around their threadtrace repeats "
            "only (off for every other row)",
        ),
        (
            "--watchdog",
            "watchdog",
            args.watchdog,
            "on/off rows: Condition ping-pong between 2 threads under "
            "threadtrace.patch(exporters=(), watchdog=True|False);\n"
            f"{pad}on/off row: {on_off_pairs} pairs of "
            + (
                "--quick repeats (too short to contain a watchdog wake-up)"
                if args.quick
                else f">= {1.1 * _watch_interval_s() * 1000:.0f} ms repeats "
                "(>= 1 watchdog wake-up each)"
            ),
        ),
    ):
        if not enabled:
            continue
        ids = [c.id for c in cases if c.option == option]
        reasons = sorted({skipped[i] for i in ids if i in skipped})
        count = sum(i in skipped for i in ids)
        text = f"{count} rows SKIPPED: " + "; ".join(reasons) if reasons else description
        lines.extend(
            f"{name:<12} {line}" if i == 0 else line for i, line in enumerate(text.split("\n"))
        )
    return lines


def header_lines(args, tt, patcher, loop_ns, detectors=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    build = " ".join(sys.version.split()[1:])
    where = os.path.dirname(getattr(tt, "__file__", None) or "?")
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
        f"python       {platform.python_implementation()} {platform.python_version()} ({build})",
        f"platform     {platform.platform()}, {platform.machine() or '?'}, "
        f"{os.cpu_count()} CPUs, load average {_loadavg()} at start",
        f"date         {now:%Y-%m-%d %H:%M:%S} UTC",
        f"threadtrace  {getattr(tt, '__version__', '?')} from {where}",
        f"lock core    {_lock_core()}",
        f"patch        {patcher.description}, patch-mode {args.patch_mode}",
        *detectors,
        f"repeats      {args.repeats} interleaved pairs (stdlib, threadtrace, stdlib, ...), "
        f"warm-up {args.warmup}, {loops}",
        f"loop cost    {loop_ns:.2f} ns/iteration for an empty loop ({loop_use})",
        "ratio        per pair threadtrace_time / stdlib_time; median (min-max) over pairs",
    ]


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Uncontended microbenchmark: threadtrace / stdlib ratios, "
        "from interleaved repeats.",
    )
    p.add_argument(
        "--repeats",
        type=int,
        help="timed (stdlib, threadtrace) pairs per case (default 21; --quick 5)",
    )
    p.add_argument(
        "--loops",
        type=int,
        help="iterations per repeat for every per-op case "
        "(default: calibrated so that a repeat takes about --target-ms)",
    )
    p.add_argument(
        "--target-ms",
        type=float,
        help="calibration target for the average repeat of a pair (default 30; --quick 5)",
    )
    p.add_argument(
        "--max-loops",
        type=int,
        default=5_000_000,
        help="upper bound for calibrated loops (default 5000000)",
    )
    p.add_argument(
        "--thread-loops",
        type=int,
        help="thread start+join iterations per repeat (default 200; --quick 30)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed full repeats per side before timing (default 1)",
    )
    p.add_argument("--quick", action="store_true", help="fast smoke run: 5 pairs of ~5 ms")
    p.add_argument(
        "--patch-mode",
        choices=("window", "toggle"),
        default="window",
        help="window (default): 'under patch' objects are made in one patch() window and "
        "timed unpatched; toggle: also hold the patch around each of their threadtrace "
        "repeats",
    )
    p.add_argument(
        "--subtract-loop",
        action="store_true",
        help="subtract the empty-loop cost per iteration from both sides first",
    )
    p.add_argument(
        "--target-ratio",
        type=float,
        default=DEFAULT_TARGET_RATIO,
        help=f"headline target (default {DEFAULT_TARGET_RATIO})",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SUBSTR",
        help="only cases whose id contains SUBSTR (repeatable)",
    )
    p.add_argument(
        "--lock-order",
        action="store_true",
        help="also time with Lock and with a: with b: (two Locks) under "
        "threadtrace.patch(lock_order=True), against the stdlib",
    )
    p.add_argument(
        "--watchdog",
        action="store_true",
        help="also time a contended hand-off (Condition ping-pong between 2 threads) under "
        "patch with watchdog=True and watchdog=False, and the two against each other",
    )
    p.add_argument(
        "--detectors",
        action="store_true",
        help="both --lock-order and --watchdog",
    )
    p.add_argument("--list", action="store_true", help="list the case ids and exit")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
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


def build_objects(cases, patcher, errors):
    """({case id: [stdlib obj, threadtrace obj]}, {case id: why skipped}).

    Failures go to ``errors``.  The stdlib objects are made before anything
    is patched; the "under patch" ones inside one patch() window, or for
    cases with settings of their own (``lock_order=True`` ...) in a
    ``patch(exporters=(), **settings)`` window per distinct settings; the
    direct threadtrace ones (``threadtrace.Lock()`` ...) after them,
    unpatched, as an application that never patches would make them
    (patch()'s settings stay in force).  A case whose settings this
    threadtrace does not accept is skipped.  A case with baseline settings
    times one threadtrace object against itself.
    """
    objects = {}
    skipped = {}

    def make(c, index, factory, what):
        try:
            objects[c.id][index] = factory()
        except Exception as exc:  # noqa: BLE001 - reported in the table, the rest still runs
            errors[c.id] = f"{what} setup: {type(exc).__name__}: {_short(exc)}"

    for c in cases:
        objects[c.id] = [None, None]
        if c.make_std is not None:
            make(c, 0, c.make_std, "stdlib")
    windows = {(): []}  # settings -> the patched cases made under them, in order
    for c in cases:
        if c.patched:
            windows.setdefault(tuple(sorted(c.settings.items())), []).append(c)
    for key, window in windows.items():
        window_patcher = Patcher(patcher.tt, dict(key)) if key else patcher
        try:
            window_patcher.patch()
        except SettingNotAccepted as exc:
            skipped.update((c.id, str(exc)) for c in window)
            continue
        try:
            for c in (c for c in window if c.id not in errors):
                make(c, 1, c.make_tt, f"threadtrace under {window_patcher.description}")
        finally:
            window_patcher.unpatch()
    for c in cases:
        if not c.patched and c.id not in errors:
            make(c, 1, c.make_tt, "threadtrace")
        if c.baseline_settings is not None:
            objects[c.id][0] = objects[c.id][1]
    return objects, skipped


def _around(patcher, settings, toggle):
    """What a threadtrace side holds around its repeats (see Side)."""
    if toggle:
        if not settings:
            return patcher
        case_patcher = Patcher(patcher.tt, settings)
        case_patcher.accepts_exporters = patcher.accepts_exporters
        return case_patcher
    return Settings(patcher.tt, settings) if settings else None


class _NoProbe:
    def install(self):
        pass

    def remove(self):
        pass

    def record(self, row):
        pass


def _repeat_plan(c, args):
    """(pairs, calibration target in ms) for case ``c``."""
    repeats, target_ms = args.repeats, args.target_ms
    if not args.quick:
        if c.max_repeats and not args.repeats_given:
            repeats = min(repeats, c.max_repeats)
        if c.min_repeat_ms:
            target_ms = max(target_ms, c.min_repeat_ms)
    return repeats, target_ms


def _loops(c, std, trc, args, target_ms):
    """Iterations per repeat: fixed, or calibrated (doubles as warm-up)."""
    if c.thread_loops or (args.loops and not c.calibrated):
        loops = args.thread_loops if c.thread_loops else args.loops
        std.run(min(loops, 1000))
        trc.run(min(loops, 1000))
        return loops
    loops = calibrate(std, trc, target_ms * 1e6, args.max_loops)
    if c.min_repeat_ms and not args.quick:
        # Calibration runs short repeats: make sure a real one is long enough.
        short = c.min_repeat_ms * 1e6 / trc.run(loops)
        if short > 1:
            loops = min(args.max_loops, _round_loops(loops * short * 1.25))
    return loops


def run_case(c, objects, args, patcher, loop_ns):
    std_obj, tt_obj = objects[c.id]
    toggle = c.always_toggle or (c.patched and args.patch_mode == "toggle")
    if c.baseline_settings is not None:
        baseline = _around(patcher, c.baseline_settings, toggle)
        std = Side(tt_obj, make_loop(c.body, "baseline"), baseline)
    else:
        std = Side(std_obj, make_loop(c.body, "stdlib"))
    trc = Side(tt_obj, make_loop(c.body, "threadtrace"), _around(patcher, c.settings, toggle))
    repeats, target_ms = _repeat_plan(c, args)
    partners = [
        o for o in {id(o): o for o in (std_obj, tt_obj)}.values() if isinstance(o, PingPong)
    ]
    probe = c.probe() if c.probe is not None else _NoProbe()
    try:
        probe.install()
        for partner in partners:
            partner.start()
        loops = _loops(c, std, trc, args, target_ms)
        row = measure(c, std, trc, loops, repeats, args.warmup, loop_ns)
    finally:
        for partner in partners:
            partner.close()
        probe.remove()
    probe.record(row)
    if c.baseline_settings is not None:
        row["baseline"] = "threadtrace" + _settings_text(c.baseline_settings).replace(",", "", 1)
    return row


def write_json(path, args, tt, patcher, loop_ns, results, ok, line, skipped):
    doc = {
        "meta": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "python_build": sys.version,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": _loadavg(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "threadtrace_version": getattr(tt, "__version__", None),
            "threadtrace_path": getattr(tt, "__file__", None),
            "patch": patcher.description,
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
            "skipped": skipped,
        },
        "headline": {
            "id": HEADLINE,
            "target_ratio": args.target_ratio,
            "pass": ok,
            "verdict": line,
        },
        "results": results,
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def run_all(cases, objects, errors, args, patcher, loop_ns):
    """One result row per case, in order; a failing case gets an error row."""
    results = []
    for c in cases:
        row = None
        if c.id not in errors:
            try:
                row = run_case(c, objects, args, patcher, loop_ns if args.subtract_loop else 0.0)
            except Exception as exc:  # noqa: BLE001 - reported in the table, the rest still runs
                errors[c.id] = f"{type(exc).__name__}: {_short(exc)}"
                traceback.print_exc(file=sys.stderr)
                if patcher.handle is not None:
                    patcher.unpatch()
        if row is None:
            row = {"id": c.id, "case": c.title, "group": c.group, "error": errors[c.id]}
        warning = None if c.id in errors else c.check(*objects[c.id])
        if warning:
            row["warnings"] = [warning]
        results.append(row)
    return results


def main(argv=None):
    args = parse_args(argv)
    out = sys.stdout
    try:
        import threadtrace as tt
    except Exception:  # noqa: BLE001 - any import failure ends the run with its traceback
        print("cannot import threadtrace:", file=sys.stderr)
        traceback.print_exc()
        return 2

    cases = build_cases(tt)
    detectors = build_detector_cases(tt)
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

    patcher = Patcher(tt)
    errors = {}
    try:
        objects, skipped = build_objects(cases, patcher, errors)
    except Exception:  # noqa: BLE001 - patch()/unpatch() failing ends the run
        print("threadtrace patch()/unpatch() failed:", file=sys.stderr)
        traceback.print_exc()
        return 2

    loop_ns = measure_empty_loop(max(5, args.repeats), 50_000 if args.quick else 200_000)
    for line in header_lines(args, tt, patcher, loop_ns, detector_lines(args, cases, skipped)):
        print(line, file=out)
    print(file=out)
    out.flush()

    cases = [c for c in cases if c.id not in skipped]
    results = run_all(cases, objects, errors, args, patcher, loop_ns)
    for group, title, headers in TABLES:
        rows = [r for r in results if r["group"] == group]
        if rows:
            print_table(title, rows, out, headers)
    ok, line = verdict(results, args.target_ratio)
    print(line, file=out)

    if args.json:
        write_json(args.json, args, tt, patcher, loop_ns, results, ok, line, skipped)
        print(f"wrote {args.json}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
