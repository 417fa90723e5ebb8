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

Run from the repository root::

    python3 bench/micro.py --quick          # smoke run, a few seconds
    python3 bench/micro.py                  # full run, under a minute
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
    namespace = {
        "__name__": __name__,
        "_repeat": itertools.repeat,
        "_clock": _clock,
        "_noop": _noop,
    }
    code = compile(_LOOP_TEMPLATE.format(body=body), f"<bench loop {body_key} {label}>", "exec")
    exec(code, namespace)
    return namespace["loop"]


# --------------------------------------------------------------------------
# Patching
# --------------------------------------------------------------------------


class Patcher:
    """``threadtrace.patch(exporters=())``, falling back to ``patch()``."""

    def __init__(self, tt):
        self.tt = tt
        self.description = None
        self.handle = None
        self.accepts_exporters = True

    def patch(self):
        if self.handle is not None:
            raise RuntimeError("bench bug: already patched")
        if self.accepts_exporters:
            try:
                self.handle = self.tt.patch(exporters=())
                self.description = "threadtrace.patch(exporters=())"
            except TypeError as exc:
                if "exporters" not in str(exc):
                    raise
                self.accepts_exporters = False
                self.description = f"threadtrace.patch()  [exporters= not accepted: {exc}]"
        if not self.accepts_exporters:
            self.handle = self.tt.patch()
        if threading.Lock is _STD["Lock"]:
            raise RuntimeError(f"{self.description} left threading.Lock untouched")

    def unpatch(self):
        handle, self.handle = self.handle, None
        if handle is not None and hasattr(handle, "unpatch"):
            handle.unpatch()
        else:
            self.tt.unpatch()
        changed = [name for name, f in _STD.items() if getattr(threading, name) is not f]
        if changed:
            raise RuntimeError("unpatch() did not restore threading." + ", ".join(changed))


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
        group: ``"hot"`` or ``"construction"``.
        patched: the threadtrace side is "the stdlib API under patch()".
        always_toggle: run every threadtrace repeat while patched.
        check: ``check(std_obj, tt_obj)`` returns a warning string or ``None``.
        thread_loops: uses ``--thread-loops`` instead of calibration.
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


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


class Side:
    def __init__(self, obj, loop, patcher=None):
        self.obj = obj
        self.loop = loop
        self.patcher = patcher  # held patched around each repeat, or None
        self.samples = []  # total ns per timed repeat

    def run(self, n):
        """One repeat of ``n`` iterations; returns elapsed ns.  gc is off."""
        if self.patcher is not None:
            self.patcher.patch()
        try:
            gc.collect()
            gc.disable()
            try:
                return self.loop(self.obj, n)
            finally:
                gc.enable()
        finally:
            if self.patcher is not None:
                self.patcher.unpatch()


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


def print_table(title, rows, out):
    headers = ("case", "stdlib ns/op", "threadtrace ns/op", "ratio (median, min-max)")
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


def header_lines(args, tt, patcher, loop_ns):
    now = datetime.datetime.now(datetime.timezone.utc)
    build = " ".join(sys.version.split()[1:])
    where = os.path.dirname(getattr(tt, "__file__", None) or "?")
    if args.loops:
        loops = f"{args.loops} loops/repeat"
    else:
        loops = f"loops calibrated to ~{args.target_ms:g} ms/repeat"
    loop_use = "subtracted from both sides" if args.subtract_loop else "included in every ns/op"
    return [
        "threadtrace microbenchmark: uncontended single-thread operations, threadtrace / stdlib",
        f"python       {platform.python_implementation()} {platform.python_version()} ({build})",
        f"platform     {platform.platform()}, {platform.machine() or '?'}, "
        f"{os.cpu_count()} CPUs, load average {_loadavg()} at start",
        f"date         {now:%Y-%m-%d %H:%M:%S} UTC",
        f"threadtrace  {getattr(tt, '__version__', '?')} from {where}",
        f"lock core    {_lock_core()}",
        f"patch        {patcher.description}, patch-mode {args.patch_mode}",
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
    p.add_argument("--list", action="store_true", help="list the case ids and exit")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = p.parse_args(argv)
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
    """{case id: [stdlib obj, threadtrace obj]}; failures go to ``errors``.

    The stdlib objects are made before anything is patched; the "under
    patch" ones inside one patch() window; the direct threadtrace ones
    (``threadtrace.Lock()`` ...) after it, unpatched, as an application that
    never patches would make them (patch()'s settings stay in force).
    """
    objects = {}

    def make(c, index, factory, what):
        try:
            objects[c.id][index] = factory()
        except Exception as exc:  # noqa: BLE001 - reported in the table, the rest still runs
            errors[c.id] = f"{what} setup: {type(exc).__name__}: {_short(exc)}"

    for c in cases:
        objects[c.id] = [None, None]
        make(c, 0, c.make_std, "stdlib")
    patcher.patch()
    try:
        for c in cases:
            if c.patched and c.id not in errors:
                make(c, 1, c.make_tt, "threadtrace under patch")
    finally:
        patcher.unpatch()
    for c in cases:
        if not c.patched and c.id not in errors:
            make(c, 1, c.make_tt, "threadtrace")
    return objects


def run_case(c, objects, args, patcher, loop_ns):
    std_obj, tt_obj = objects[c.id]
    toggle = c.always_toggle or (c.patched and args.patch_mode == "toggle")
    std = Side(std_obj, make_loop(c.body, "stdlib"))
    trc = Side(tt_obj, make_loop(c.body, "threadtrace"), patcher if toggle else None)
    if c.thread_loops or args.loops:
        loops = args.thread_loops if c.thread_loops else args.loops
        std.run(min(loops, 1000))
        trc.run(min(loops, 1000))
    else:
        loops = calibrate(std, trc, args.target_ms * 1e6, args.max_loops)
    return measure(c, std, trc, loops, args.repeats, args.warmup, loop_ns)


def write_json(path, args, tt, patcher, loop_ns, results, ok, line):
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
    if args.list:
        for c in cases:
            print(f"{c.id:<28} {c.title}", file=out)
        return 0
    if args.only:
        cases = [c for c in cases if any(s in c.id for s in args.only)]
        if not cases:
            print(f"no case id contains any of {args.only}", file=sys.stderr)
            return 2

    patcher = Patcher(tt)
    errors = {}
    try:
        objects = build_objects(cases, patcher, errors)
    except Exception:  # noqa: BLE001 - patch()/unpatch() failing ends the run
        print("threadtrace patch()/unpatch() failed:", file=sys.stderr)
        traceback.print_exc()
        return 2

    loop_ns = measure_empty_loop(max(5, args.repeats), 50_000 if args.quick else 200_000)
    for line in header_lines(args, tt, patcher, loop_ns):
        print(line, file=out)
    print(file=out)
    out.flush()

    results = run_all(cases, objects, errors, args, patcher, loop_ns)
    hot = [r for r in results if r["group"] == "hot"]
    construction = [r for r in results if r["group"] == "construction"]
    if hot:
        print_table("hot path (uncontended)", hot, out)
    if construction:
        print_table("construction (not the hot path)", construction, out)
    ok, line = verdict(results, args.target_ratio)
    print(line, file=out)

    if args.json:
        write_json(args.json, args, tt, patcher, loop_ns, results, ok, line)
        print(f"wrote {args.json}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
