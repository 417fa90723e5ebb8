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
    python3 bench/micro.py                  # full run, ~1 minute
    python3 bench/micro.py --json out.json  # also write the results as JSON
    python3 bench/micro.py --only lock      # only cases whose id contains "lock"
    python3 bench/micro.py --list           # list the case ids

Only the standard library and threadtrace are used.  Runs on Python 3.9+.
"""

from __future__ import annotations

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
if os.path.isfile(os.path.join(_REPO_ROOT, "threadtrace", "__init__.py")):
    # Benchmark the working tree, not whatever copy may be installed.
    sys.path.insert(0, _REPO_ROOT)

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

#: Loop bodies, indented for the template.  ``obj`` is the primitive (or the
#: factory, or the ``threading`` module for the thread case).
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
    src = _LOOP_TEMPLATE.format(body=body)
    namespace = {
        "__name__": __name__,
        "_repeat": itertools.repeat,
        "_clock": _clock,
        "_noop": _noop,
    }
    exec(compile(src, "<bench loop %s %s>" % (body_key, label), "exec"), namespace)
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
        self.count = 0

    def patch(self):
        if self.handle is not None:
            raise RuntimeError("bench bug: already patched")
        if self.description is None or "exporters=()" in self.description:
            try:
                self.handle = self.tt.patch(exporters=())
                self.description = "threadtrace.patch(exporters=())"
            except TypeError as exc:
                if "exporters" not in str(exc):
                    raise
                self.handle = self.tt.patch()
                self.description = "threadtrace.patch()  [exporters= not accepted: %s]" % exc
        else:
            self.handle = self.tt.patch()
        self.count += 1
        if threading.Lock is _STD["Lock"]:
            raise RuntimeError(
                "%s left threading.Lock untouched; nothing to benchmark" % self.description
            )

    def unpatch(self):
        handle, self.handle = self.handle, None
        if handle is not None and hasattr(handle, "unpatch"):
            handle.unpatch()
        else:
            self.tt.unpatch()
        changed = [n for n, f in _STD.items() if getattr(threading, n) is not f]
        if changed:
            raise RuntimeError("unpatch() did not restore threading.%s" % ", threading.".join(changed))

    def __enter__(self):
        self.patch()
        return self

    def __exit__(self, *exc):
        self.unpatch()


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


class Case:
    """One row of the table.

    Attributes:
        id: stable identifier (``--only`` matches on it, JSON uses it).
        title: what the table prints.
        group: ``"hot"`` or ``"construction"``.
        body: key into :data:`BODIES`.
        make_std: builds the stdlib ``obj`` (called unpatched, before patching).
        make_tt: builds the threadtrace ``obj``; called while patched when
            ``patched`` is true, else unpatched.
        patched: the threadtrace side is "the stdlib API under patch()".
        always_toggle: run every threadtrace repeat while patched.
        check: ``check(std_obj, tt_obj)`` returns a warning string or ``None``.
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
        fixed_loops=None,
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
        self.fixed_loops = fixed_loops


def _check_types_differ(std_obj, tt_obj):
    if type(std_obj) is type(tt_obj):
        return "threadtrace side is a plain %s: not traced?" % type(tt_obj).__name__
    return None


def _check_factories_differ(std_factory, tt_factory):
    if std_factory is tt_factory:
        return "threadtrace side is the stdlib factory itself"
    return None


def _check_queue(std_q, tt_q):
    if type(std_q.mutex) is type(tt_q.mutex):
        return "Queue.mutex under patch is a plain %s: not traced?" % type(tt_q.mutex).__name__
    return None


def _check_nothing(std_obj, tt_obj):
    return None


def _set_event(factory):
    event = factory()
    event.set()
    return event


def build_cases(tt):
    T = lambda name: (lambda: getattr(tt, name))  # noqa: E731  the traced factory
    S = lambda name: (lambda: _STD[name])  # noqa: E731  the stdlib factory
    # Patched side: look the factory up on ``threading`` at call time, from
    # this module, while patched.
    P = lambda name: (lambda: getattr(threading, name)())  # noqa: E731

    return [
        # 1. with lock  (headline: threading.Lock() created under patch())
        Case("with-lock.direct", "with Lock            [threadtrace.Lock()]", "with",
             lambda: _STD["Lock"](), lambda: tt.Lock()),
        Case(HEADLINE, "with Lock            [threading.Lock() under patch]", "with",
             lambda: _STD["Lock"](), P("Lock"), patched=True),
        # 2. acquire/release
        Case("acquire-release-lock", "Lock.acquire(); .release()", "acquire-release",
             lambda: _STD["Lock"](), lambda: tt.Lock()),
        # 3. RLock
        Case("with-rlock", "with RLock", "with",
             lambda: _STD["RLock"](), lambda: tt.RLock()),
        Case("with-rlock-nested", "with RLock: with RLock (reentrant)", "with-nested",
             lambda: _STD["RLock"](), lambda: tt.RLock()),
        # 4. Condition
        Case("with-condition", "with Condition", "with",
             lambda: _STD["Condition"](), lambda: tt.Condition()),
        Case("condition-notify", "with Condition: notify() (no waiters)", "with-notify",
             lambda: _STD["Condition"](), lambda: tt.Condition()),
        # 5. semaphores
        Case("with-semaphore", "with Semaphore(1)", "with",
             lambda: _STD["Semaphore"](1), lambda: tt.Semaphore(1)),
        Case("with-bounded-semaphore", "with BoundedSemaphore(1)", "with",
             lambda: _STD["BoundedSemaphore"](1), lambda: tt.BoundedSemaphore(1)),
        # 6. Event
        Case("event-is_set", "Event.is_set() (set)", "is_set",
             lambda: _set_event(_STD["Event"]), lambda: _set_event(tt.Event)),
        Case("event-wait", "Event.wait() (set)", "wait",
             lambda: _set_event(_STD["Event"]), lambda: _set_event(tt.Event)),
        Case("event-set", "Event.set() (already set)", "set",
             lambda: _set_event(_STD["Event"]), lambda: _set_event(tt.Event)),
        # 8. queue.Queue under patch
        Case("queue-put-get.patched", "Queue.put(); .get()  [Queue() under patch]", "put-get",
             queue.Queue, queue.Queue, patched=True, check=_check_queue),
        # 9. Thread start + join under patch
        Case("thread-start-join.patched", "Thread start+join    [under patch]", "thread",
             lambda: threading, lambda: threading, patched=True, always_toggle=True,
             check=_check_nothing, fixed_loops="thread"),
        # 7. construction
        Case("new-lock", "Lock()", "construct", S("Lock"), T("Lock"),
             group="construction", check=_check_factories_differ),
        Case("new-rlock", "RLock()", "construct", S("RLock"), T("RLock"),
             group="construction", check=_check_factories_differ),
        Case("new-condition", "Condition()", "construct", S("Condition"), T("Condition"),
             group="construction", check=_check_factories_differ),
        Case("new-event", "Event()", "construct", S("Event"), T("Event"),
             group="construction", check=_check_factories_differ),
        Case("new-semaphore", "Semaphore()", "construct", S("Semaphore"), T("Semaphore"),
             group="construction", check=_check_factories_differ),
    ]


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


class Side:
    def __init__(self, name, obj, loop, ctx=None):
        self.name = name
        self.obj = obj
        self.loop = loop
        self.ctx = ctx  # a Patcher to hold patched around each repeat, or None
        self.samples = []  # total ns per repeat

    def run(self, n):
        """One repeat of ``n`` iterations; returns elapsed ns.  gc is off."""
        if self.ctx is not None:
            self.ctx.patch()
        try:
            gc.collect()
            gc.disable()
            try:
                return self.loop(self.obj, n)
            finally:
                gc.enable()
        finally:
            if self.ctx is not None:
                self.ctx.unpatch()


def _round_loops(n):
    """Round to two significant digits, at least 10."""
    n = max(10, int(n))
    magnitude = 10 ** max(0, len(str(n)) - 2)
    return max(10, (n // magnitude) * magnitude)


def calibrate(std, tt, target_ns, max_loops):
    """Loops per repeat so an average repeat of the pair takes ``target_ns``.

    Grows ``n`` until the pair takes at least a tenth of the target, then
    extrapolates.  Doubles as warm-up.
    """
    n = 10
    while True:
        s = std.run(n)
        t = tt.run(n)
        pair = s + t
        if pair >= target_ns / 5 or n >= max_loops:
            break
        n = min(max_loops, n * 10 if pair < target_ns / 100 else n * 4)
    per_op = pair / (2.0 * n)
    return min(max_loops, _round_loops(target_ns / max(per_op, 1e-3)))


def measure(case, std, tt, loops, repeats, warmup, baseline_ns):
    for _ in range(warmup):
        std.run(loops)
        tt.run(loops)
    for _ in range(repeats):
        std.samples.append(std.run(loops))
        tt.samples.append(tt.run(loops))

    sub = baseline_ns * loops
    std_ns = [max(s - sub, 1.0) for s in std.samples]
    tt_ns = [max(t - sub, 1.0) for t in tt.samples]
    ratios = [t / s for s, t in zip(std_ns, tt_ns)]
    return {
        "id": case.id,
        "case": case.title.strip(),
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
        "loop_overhead_subtracted_ns_per_op": baseline_ns,
    }


def measure_baseline(repeats, loops):
    """Median ns per iteration of the empty loop."""
    loop = make_loop("empty", "baseline")
    side = Side("baseline", None, loop)
    side.run(loops)
    return statistics.median(side.run(loops) for _ in range(repeats)) / loops


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _loadavg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except (AttributeError, OSError):
        return "n/a"


def _short(exc, limit=160):
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt_ns(v):
    if v is None:
        return "-"
    if v >= 10000:
        return "%.0f" % v
    if v >= 100:
        return "%.1f" % v
    return "%.2f" % v


def _fmt_ratio(r):
    return "%.2fx (%.2f-%.2f)" % (r["ratio_median"], r["ratio_min"], r["ratio_max"])


def print_table(title, rows, out):
    headers = ("case", "stdlib ns/op", "threadtrace ns/op", "ratio (median, min-max)")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append((r["case"], "-", "-", "ERROR: " + r["error"]))
        else:
            lines.append(
                (
                    r["case"],
                    _fmt_ns(r["stdlib_ns_per_op"]),
                    _fmt_ns(r["threadtrace_ns_per_op"]),
                    _fmt_ratio(r),
                )
            )
    w0 = max([len(headers[0])] + [len(line[0]) for line in lines])
    w1 = max([len(headers[1])] + [len(line[1]) for line in lines])
    w2 = max([len(headers[2])] + [len(line[2]) for line in lines])

    def fmt(cells):
        return "%-*s | %*s | %*s | %s" % (w0, cells[0], w1, cells[1], w2, cells[2], cells[3])

    print(title, file=out)
    print(fmt(headers), file=out)
    print("%s-+-%s-+-%s-+-%s" % ("-" * w0, "-" * w1, "-" * w2, "-" * len(headers[3])), file=out)
    for line in lines:
        print(fmt(line), file=out)
    for r in rows:
        for warning in r.get("warnings", ()):
            print("  note: %s: %s" % (r["id"], warning), file=out)
    print(file=out)


def verdict(results, target):
    row = next((r for r in results if r["id"] == HEADLINE), None)
    if row is None:
        return None, "verdict: headline case %r not run" % HEADLINE
    if "error" in row:
        return False, "verdict: FAIL  headline case errored: %s" % row["error"]
    ok = row["ratio_median"] <= target
    spread = ""
    if row["ratio_min"] <= target < row["ratio_max"]:
        spread = "; min-max straddles the target"
    return ok, "verdict: %s  with Lock [threading.Lock() under patch] is %.2fx stdlib " \
        "(median of %d pairs, %.2f-%.2f) against the <= %.1fx target%s" % (
            "PASS" if ok else "FAIL",
            row["ratio_median"],
            row["repeats"],
            row["ratio_min"],
            row["ratio_max"],
            target,
            spread,
        )


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Uncontended microbenchmark: threadtrace / stdlib ratios, "
        "interleaved repeats.",
    )
    p.add_argument("--repeats", type=int, default=None,
                   help="timed (stdlib, threadtrace) pairs per case (default 21; --quick 5)")
    p.add_argument("--loops", type=int, default=None,
                   help="iterations per repeat for every per-op case "
                   "(default: calibrated so a repeat takes about --target-ms)")
    p.add_argument("--target-ms", type=float, default=None,
                   help="calibration target for the average repeat of a pair "
                   "(default 30; --quick 5)")
    p.add_argument("--max-loops", type=int, default=5_000_000,
                   help="upper bound for calibrated loops (default 5000000)")
    p.add_argument("--thread-loops", type=int, default=None,
                   help="thread start+join iterations per repeat (default 200; --quick 30)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed full repeats per side before timing (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="fast smoke run: 5 repeats, ~5 ms repeats")
    p.add_argument("--patch-mode", choices=("window", "toggle"), default="window",
                   help="window: traced objects are made in one patch() window and timed "
                   "unpatched (default); toggle: also hold the patch around every "
                   "threadtrace repeat of the 'under patch' cases")
    p.add_argument("--subtract-loop", action="store_true",
                   help="subtract the empty-loop cost per iteration from both sides "
                   "before computing ns/op and ratios")
    p.add_argument("--target-ratio", type=float, default=DEFAULT_TARGET_RATIO,
                   help="headline target (default 1.6)")
    p.add_argument("--only", action="append", default=[], metavar="SUBSTR",
                   help="only cases whose id contains SUBSTR (repeatable)")
    p.add_argument("--list", action="store_true", help="list case ids and exit")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 21
    if args.target_ms is None:
        args.target_ms = 5.0 if args.quick else 30.0
    if args.thread_loops is None:
        args.thread_loops = 30 if args.quick else 200
    if args.repeats < 1 or (args.loops is not None and args.loops < 1) or args.thread_loops < 1:
        p.error("--repeats, --loops and --thread-loops must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = sys.stdout

    try:
        import threadtrace as tt
    except Exception:
        print("cannot import threadtrace:", file=sys.stderr)
        traceback.print_exc()
        return 2

    cases = build_cases(tt)
    if args.list:
        for c in cases:
            print("%-28s %s" % (c.id, c.title))
        return 0
    if args.only:
        cases = [c for c in cases if any(s in c.id for s in args.only)]
        if not cases:
            print("no case id matches %s" % args.only, file=sys.stderr)
            return 2

    patcher = Patcher(tt)

    # Build every object up front: the stdlib ones before anything is
    # patched; the "under patch" ones inside one patch() window; the direct
    # threadtrace ones (threadtrace.Lock() ...) after it, unpatched, as an
    # application that never patches would make them.  patch()'s settings
    # (exporters=()) stay in force after unpatch().
    objects = {}
    errors = {}
    warnings = {}

    def make_tt(c):
        try:
            objects[c.id][1] = c.make_tt()
        except Exception as exc:
            errors[c.id] = "threadtrace setup%s: %s: %s" % (
                " under patch" if c.patched else "", type(exc).__name__, _short(exc))

    for c in cases:
        try:
            objects[c.id] = [c.make_std(), None]
        except Exception as exc:
            errors[c.id] = "stdlib setup: %s: %s" % (type(exc).__name__, _short(exc))
    try:
        patcher.patch()
    except Exception:
        print("threadtrace.patch() failed:", file=sys.stderr)
        traceback.print_exc()
        return 2
    try:
        for c in cases:
            if c.patched and c.id not in errors:
                make_tt(c)
    finally:
        try:
            patcher.unpatch()
        except Exception:
            print("threadtrace unpatch failed:", file=sys.stderr)
            traceback.print_exc()
            return 2
    for c in cases:
        if not c.patched and c.id not in errors:
            make_tt(c)
    for c in cases:
        if c.id not in errors:
            w = c.check(*objects[c.id])
            if w:
                warnings.setdefault(c.id, []).append(w)

    baseline = measure_baseline(max(5, args.repeats), 200_000 if not args.quick else 50_000)

    header = [
        "threadtrace microbenchmark: uncontended single-thread operations, "
        "threadtrace / stdlib",
        "python       %s %s (%s)" % (
            platform.python_implementation(),
            platform.python_version(),
            " ".join(sys.version.split()[1:]),
        ),
        "platform     %s, %s, %s CPUs, load average %s at start" % (
            platform.platform(), platform.machine() or "?", os.cpu_count(), _loadavg()),
        "date         %s" % datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M:%S UTC"),
        "threadtrace  %s from %s" % (
            getattr(tt, "__version__", "?"), os.path.dirname(getattr(tt, "__file__", "?") or "?")),
        "patch        %s, patch-mode %s" % (patcher.description, args.patch_mode),
        "repeats      %d interleaved pairs (stdlib, threadtrace, stdlib, ...), "
        "warm-up %d, %s" % (
            args.repeats,
            args.warmup,
            "%d loops/repeat" % args.loops if args.loops
            else "loops calibrated to ~%g ms/repeat" % args.target_ms,
        ),
        "loop cost    %.2f ns/iteration for an empty loop (%s)" % (
            baseline, "subtracted from both sides" if args.subtract_loop
            else "included in every ns/op"),
        "ratio        per pair threadtrace_time / stdlib_time; median (min-max) over pairs",
    ]
    for line in header:
        print(line, file=out)
    print(file=out)
    out.flush()

    results = []
    sub = baseline if args.subtract_loop else 0.0
    for c in cases:
        row = None
        if c.id not in errors:
            std_obj, tt_obj = objects[c.id]
            toggle = c.always_toggle or (c.patched and args.patch_mode == "toggle")
            std = Side("stdlib", std_obj, make_loop(c.body, "stdlib"))
            trc = Side("threadtrace", tt_obj, make_loop(c.body, "threadtrace"),
                       ctx=patcher if toggle else None)
            try:
                if c.fixed_loops == "thread":
                    loops = args.thread_loops
                    std.run(max(1, loops // 10))
                    trc.run(max(1, loops // 10))
                elif args.loops:
                    loops = args.loops
                    std.run(min(loops, 1000))
                    trc.run(min(loops, 1000))
                else:
                    loops = calibrate(std, trc, args.target_ms * 1e6, args.max_loops)
                row = measure(c, std, trc, loops, args.repeats, args.warmup, sub)
            except Exception as exc:
                errors[c.id] = "%s: %s" % (type(exc).__name__, _short(exc))
                if patcher.handle is not None:
                    patcher.unpatch()
                traceback.print_exc(file=sys.stderr)
        if row is None:
            row = {"id": c.id, "case": c.title.strip(), "group": c.group, "error": errors[c.id]}
        if c.id in warnings:
            row["warnings"] = warnings[c.id]
        row["case"] = c.title.rstrip()
        results.append(row)

    hot = [r for r in results if r["group"] == "hot"]
    construction = [r for r in results if r["group"] == "construction"]
    if hot:
        print_table("hot path (uncontended)", hot, out)
    if construction:
        print_table("construction (not the hot path)", construction, out)
    ok, line = verdict(results, args.target_ratio)
    print(line, file=out)

    if args.json:
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
                "empty_loop_ns_per_iteration": baseline,
                "loop_overhead_subtracted": args.subtract_loop,
                "quick": args.quick,
            },
            "headline": {"id": HEADLINE, "target_ratio": args.target_ratio, "pass": ok,
                         "verdict": line},
            "results": results,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print("wrote %s" % args.json, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
