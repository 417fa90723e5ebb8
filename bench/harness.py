"""Interleaved paired timing: one primitive against another, in the same process.

A *side* is one object and its own compiled copy of a timing loop.  Two
sides are timed interleaved, A B A B ...: each (A, B) pair gives one ratio
B / A, so a burst of machine noise lands on both halves of a pair, and a
result is the median of those per-pair ratios with their min and max, plus
the median ns/op of each side.

How the two sides are kept comparable:

* Both sides run the same loop: the same source text, compiled into two
  separate (byte-for-byte identical) functions by :func:`make_loop`, with the
  object passed in as an argument.  Two copies rather than one shared
  function so that the specialising interpreter (3.11+) keeps one set of
  inline caches per side instead of flip-flopping between the two types at
  every repeat.
* ``gc`` is collected before every repeat and disabled while it is timed
  (:meth:`Side.run`).
* Calibration (:func:`calibrate`) doubles as warm-up, and :func:`measure`
  runs ``warmup`` untimed full repeats per side before recording anything.
* Whatever a side needs around its repeats (``threadtrace.patch()``,
  settings) is entered and exited outside the timed region.

Also here: the table printer, the environment lines of the header (Python,
machine, which threadtrace and which lock core), and the JSON writer.  The
cases themselves are in ``micro.py``.  Standard library only; Python 3.9+.
"""

import datetime
import gc
import importlib.machinery
import importlib.util
import itertools
import json
import os
import platform
import statistics
import sys
import time

clock = time.perf_counter_ns

# --------------------------------------------------------------------------
# Which threadtrace
# --------------------------------------------------------------------------


def choose_threadtrace(repo_root):
    """Measure the tree at ``repo_root`` if its C lock core is built, else an installed copy.

    The tree's C core exists only once built in place (``pip install -e .``),
    and only for the interpreters it was built for: one built for 3.11 is no
    C core for 3.13.  Without it, an installed threadtrace (say, after ``pip
    install .``) is the better measure; with neither, the tree's pure-Python
    core is measured.  The header's ``threadtrace`` and ``lock core`` lines
    say which ran.
    """
    primitives = os.path.join(repo_root, "threadtrace", "_primitives")
    if not os.path.isdir(primitives):
        return  # not run from a source tree: whatever is installed
    built = any(
        os.path.exists(os.path.join(primitives, "_lockcore" + suffix))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )
    if built or importlib.util.find_spec("threadtrace") is None:
        sys.path.insert(0, repo_root)


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


def compile_function(source, filename, name, names=None):
    """Compile ``source`` and return its function ``name``.

    The function's globals carry this module's ``__name__``: threadtrace
    decides whether (and how) to trace a primitive from the module that
    creates it, so benchmark code must look like ordinary application code.
    ``names`` are further globals it may use.
    """
    namespace = {"__name__": __name__, "_repeat": itertools.repeat, "_clock": clock}
    namespace.update(names or {})
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def make_loop(body, setup=None, label="", names=None):
    """A fresh copy of the timing loop ``loop(obj, n) -> elapsed ns``.

    Args:
        body: the statements timed, run ``n`` times; ``obj`` is the object.
        setup: one line run before the clock starts (``a, b = obj``), or None.
        label: names the copy in tracebacks (``<bench loop LABEL>``).
        names: further globals the body uses.
    """
    indented = "\n".join("        " + line for line in body.splitlines())
    source = _LOOP_TEMPLATE.format(setup="    " + (setup or "pass"), body=indented)
    return compile_function(source, f"<bench loop {label}>", "loop", names)


class Side:
    """One side of a pair: an object, its own copy of the loop, and its samples.

    Args:
        obj: passed to the loop.
        loop: from :func:`make_loop`; a copy of its own per side.
        around: entered before and exited after each repeat, outside the
            timing (``enter()``/``exit()``), or None.
        after: called after each repeat, before ``around`` exits (say, to
            raise what a partner thread reported), or None.
    """

    def __init__(self, obj, loop, around=None, after=None):
        self.obj = obj
        self.loop = loop
        self.around = around
        self.after = after
        self.samples = []  # total ns per timed repeat

    def run(self, n):
        """One repeat of ``n`` iterations, with gc off; returns elapsed ns."""
        if self.around is not None:
            self.around.enter()
        try:
            gc.collect()
            gc.disable()
            try:
                elapsed = self.loop(self.obj, n)
            finally:
                gc.enable()
            if self.after is not None:
                self.after()
            return elapsed
        finally:
            if self.around is not None:
                self.around.exit()


def round_loops(n):
    """Round down to two significant digits, at least 10."""
    n = max(10, int(n))
    magnitude = 10 ** max(0, len(str(n)) - 2)
    return max(10, (n // magnitude) * magnitude)


def calibrate(a, b, target_ns, max_loops):
    """Loops per repeat so that an average repeat of the pair takes ``target_ns``.

    Grows ``n`` until the pair takes at least a fifth of the target, then
    extrapolates.  Doubles as warm-up.
    """
    n = 10
    while True:
        pair = a.run(n) + b.run(n)
        if pair >= target_ns / 5 or n >= max_loops:
            break
        n = min(max_loops, n * 10 if pair < target_ns / 100 else n * 4)
    per_op = pair / (2.0 * n)
    return min(max_loops, round_loops(target_ns / max(per_op, 1e-3)))


def choose_loops(a, b, *, fixed=None, target_ms=30.0, max_loops=5_000_000, min_repeat_ms=None):
    """Iterations per repeat, after running both sides a little.

    Args:
        fixed: this many (both sides first run ``min(fixed, 1000)`` untimed).
        target_ms: otherwise calibrated so that the average repeat of a
            pair takes about this long.
        max_loops: upper bound for calibrated loops.
        min_repeat_ms: calibrated repeats of side ``b`` last at least this
            long (calibration runs short repeats: one real one is checked).
    """
    if fixed:
        a.run(min(fixed, 1000))
        b.run(min(fixed, 1000))
        return fixed
    loops = calibrate(a, b, target_ms * 1e6, max_loops)
    if min_repeat_ms:
        short = min_repeat_ms * 1e6 / b.run(loops)
        if short > 1:
            loops = min(max_loops, round_loops(loops * short * 1.25))
    return loops


def measure(a, b, loops, repeats, warmup, loop_ns=0.0):
    """Warm up, then time ``repeats`` interleaved pairs (a, b); the statistics.

    ``loop_ns`` (the empty loop's cost per iteration, or 0) is subtracted
    from every sample of both sides first.  The ``stdlib_``/``threadtrace_``
    keys are side ``a`` and side ``b``.
    """
    for _ in range(warmup):
        a.run(loops)
        b.run(loops)
    for _ in range(repeats):
        a.samples.append(a.run(loops))
        b.samples.append(b.run(loops))

    overhead = loop_ns * loops
    a_ns = [max(s - overhead, 1.0) for s in a.samples]
    b_ns = [max(t - overhead, 1.0) for t in b.samples]
    ratios = [t / s for s, t in zip(a_ns, b_ns)]
    return {
        "loops": loops,
        "repeats": repeats,
        "stdlib_ns_per_op": statistics.median(a_ns) / loops,
        "threadtrace_ns_per_op": statistics.median(b_ns) / loops,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratios": ratios,
        "stdlib_repeat_ns": a.samples,
        "threadtrace_repeat_ns": b.samples,
        "loop_overhead_subtracted_ns_per_op": loop_ns,
    }


def measure_empty_loop(repeats, loops):
    """Median ns per iteration of the empty loop."""
    side = Side(None, make_loop("pass", label="empty baseline"))
    side.run(loops)
    return statistics.median(side.run(loops) for _ in range(repeats)) / loops


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def loadavg():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def short(exc, limit=160):
    """The first line of ``exc``'s message, at most ``limit`` characters."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fmt_ns(v):
    if v >= 10000:
        return f"{v:.0f}"
    if v >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(row):
    return f"{row['ratio_median']:.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"


DEFAULT_HEADERS = ("case", "stdlib ns/op", "threadtrace ns/op", "ratio (median, min-max)")


def print_table(title, rows, out, headers=None):
    """One table: a line per row, then each row's ``warnings`` and ``notes``."""
    headers = headers or DEFAULT_HEADERS
    lines = []
    for r in rows:
        if "error" in r:
            lines.append((r["case"], "-", "-", "ERROR: " + r["error"]))
        else:
            ns_a = fmt_ns(r["stdlib_ns_per_op"])
            ns_b = fmt_ns(r["threadtrace_ns_per_op"])
            lines.append((r["case"], ns_a, ns_b, fmt_ratio(r)))
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


def lock_core():
    """Which hot path threadtrace's locks use: the C extension or the pure-Python one."""
    from threadtrace._primitives import core

    if core.SPEEDUPS:
        return "C (threadtrace._primitives._lockcore)"
    if core.lockcore is not None:
        return "pure Python (threadtrace/_primitives/pycore.py): THREADTRACE_PURE_PYTHON is set"
    return (
        "pure Python (threadtrace/_primitives/pycore.py): the C extension is not built here; "
        "`pip install -e .` builds it in place"
    )


def environment_lines(tt):
    """The header lines on what ran: Python, machine, threadtrace and its lock core."""
    now = datetime.datetime.now(datetime.timezone.utc)
    build = " ".join(sys.version.split()[1:])
    return [
        f"python       {platform.python_implementation()} {platform.python_version()} ({build})",
        f"platform     {platform.platform()}, {platform.machine() or '?'}, "
        f"{os.cpu_count()} CPUs, load average {loadavg()} at start",
        f"date         {now:%Y-%m-%d %H:%M:%S} UTC",
        f"threadtrace  {tt.__version__} from {os.path.dirname(tt.__file__)}",
        f"lock core    {lock_core()}",
    ]


def environment_meta(tt):
    """The same, for the JSON output."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "python_build": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": loadavg(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "threadtrace_version": tt.__version__,
        "threadtrace_path": tt.__file__,
        "lock_core": lock_core(),
    }


def write_json(path, meta, headline, results):
    """``{"meta": ..., "headline": ..., "results": [row, ...]}``, indented."""
    with open(path, "w") as f:
        json.dump({"meta": meta, "headline": headline, "results": results}, f, indent=2)
        f.write("\n")
