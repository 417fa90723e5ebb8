#!/usr/bin/env python3
"""Whole-program workloads: threaded programs to time bare and traced, one per process.

``bench/micro.py`` times single operations in one process.  These are small
but complete threaded programs, the kind a user would run under
``threadtrace run``, so they also pay for what the microbenchmark leaves out:
contended paths, condition and queue hand-offs, futures, thread start and
join, and the construction of every primitive.  ``bench/run.py`` runs each one
in fresh processes, bare and under each tool, and compares them; see
``bench/WORKLOADS.md``.

The workloads (sizes at ``--scale 1``):

=====================  ========================================================
``uncontended_lock``   one thread, 1,500,000 uncontended ``with lock:``
``contended_counter``  4 threads, each adds 1 to a shared counter 150,000
                       times under one ``Lock``
``queue_fanout``       1 producer thread -> 4 consumer threads, 120,000 items
                       through ``queue.Queue(maxsize=100)``
``condition_buffer``   a bounded buffer (10 slots) on two ``Condition`` objects
                       sharing one ``Lock``: 2 producers x 50,000 items,
                       2 consumers
``pool_rlock_cache``   ``ThreadPoolExecutor(8)``: 25,000 tasks read a cache
                       of 500 entries behind an ``RLock`` (a miss re-enters
                       the ``RLock`` to store)
``thread_churn``       start and join 2,000 short threads, 10 at a time
``heavy_contention``   100 threads x 5,000 acquisitions of one ``Lock``, with
                       ``sys.setswitchinterval(2e-5)`` (restored afterwards)
=====================  ========================================================

They are sized so that each takes roughly 0.2-1 s bare on the 2-core CI
machine (CPython 3.11), which is larger than the sizes issue 10 first
quoted: 300k ``with lock:`` (``uncontended_lock --scale 0.2``), 600 threads
(``thread_churn --scale 0.3``) and 100 x 1,000 acquisitions
(``heavy_contention --scale 0.2``) each took well under 0.1 s bare, too
short to time apart from the noise of a shared machine.

Each workload is a plain function ``f(scale) -> int``:

* It creates every primitive, queue, pool and thread it uses inside itself,
  looking the factories up at call time (``threading.Lock()``, never a
  ``Lock`` imported earlier), so ``threadtrace.patch()``, ``threadtrace run``
  or a peer's lock profiler, all of which replace module attributes, apply.
* It is deterministic, and returns a checksum that depends only on its size,
  not on the scheduling: the runner checks that the traced run returned the
  same checksum as the bare one.  A lost update under a broken lock changes
  it.
* ``scale`` multiplies the number of operations (``--quick`` uses 0.2).
  ``heavy_contention`` keeps its 100 threads and ``thread_churn`` its 10
  threads per wave; only their iteration counts change.

Run one measurement (what ``bench/run.py`` does for every sample)::

    python bench/workloads.py queue_fanout --mode bare
    python bench/workloads.py queue_fanout --mode patch --scale 0.2
    python -m threadtrace run --json-path /tmp/t.jsonl bench/workloads.py queue_fanout --mode run
    python bench/workloads.py --list

Modes: ``bare`` (nothing imported), ``patch`` (``import threadtrace;
threadtrace.patch()`` with the defaults, before the workload), ``run`` (the
script is already running under ``threadtrace run``, which this mode checks),
``ddtrace`` (``import ddtrace.profiling.auto``, Datadog's profiler with its
lock collector, configured by ``DD_PROFILING_*`` variables), ``viztracer``
(``VizTracer`` started before and stopped after the workload, saved to
``--tmpdir``) and ``yappi`` (``yappi.start()``/``stop()`` around the workload,
wall clock).

It prints one line of JSON on stdout: the workload's wall time (the call of
the workload function only, not the interpreter's start-up, imports or exit),
its checksum, the process's peak RSS (``ru_maxrss``, read right after the
workload), and which ``threading.Lock`` factory was in force during the run.
Everything else a tool prints goes to stderr.  Standard library only, apart
from the tool being measured; runs on Python 3.9+.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import queue
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

# ---------------------------------------------------------------------------
# The workloads
# ---------------------------------------------------------------------------


def _scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def uncontended_lock(scale: float = 1.0) -> int:
    """One thread takes and releases one lock 1.5M times; nobody else wants it."""
    n = _scaled(1_500_000, scale)
    lock = threading.Lock()
    total = 0
    for i in range(n):
        with lock:
            total += i
    return total


def contended_counter(scale: float = 1.0) -> int:
    """4 threads add 1 to a shared counter under one lock, 150k times each."""
    n = _scaled(150_000, scale)
    lock = threading.Lock()
    go = threading.Event()
    counter = [0]

    def work() -> None:
        go.wait()
        for _ in range(n):
            with lock:
                # A read-modify-write the GIL may interrupt: without the lock
                # updates would be lost and the checksum would come out short.
                counter[0] += 1

    threads = [threading.Thread(target=work, name=f"counter-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join()
    return counter[0]


def queue_fanout(scale: float = 1.0) -> int:
    """A producer thread feeds 120k items to 4 consumer threads through ``Queue(maxsize=100)``."""
    n = _scaled(120_000, scale)
    consumers = 4
    q: queue.Queue[Optional[int]] = queue.Queue(maxsize=100)
    totals = [0] * consumers

    def produce() -> None:
        for i in range(n):
            q.put(i)
        for _ in range(consumers):
            q.put(None)

    def consume(slot: int) -> None:
        total = 0
        while True:
            item = q.get()
            if item is None:
                break
            total += item
        totals[slot] = total

    threads = [threading.Thread(target=produce, name="producer")]
    threads += [
        threading.Thread(target=consume, args=(i,), name=f"consumer-{i}") for i in range(consumers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals)


def condition_buffer(scale: float = 1.0) -> int:
    """A 10-slot buffer on two Conditions over one Lock: 2 producers x 50k items, 2 consumers."""
    n = _scaled(50_000, scale)
    capacity = 10
    producers = consumers = 2
    lock = threading.Lock()
    not_empty = threading.Condition(lock)
    not_full = threading.Condition(lock)
    buffer: List[Optional[int]] = []
    totals = [0] * consumers

    def put(item: Optional[int]) -> None:
        with not_full:
            while len(buffer) >= capacity:
                not_full.wait()
            buffer.append(item)
            not_empty.notify()

    def get() -> Optional[int]:
        with not_empty:
            while not buffer:
                not_empty.wait()
            item = buffer.pop(0)
            not_full.notify()
            return item

    def produce(first: int) -> None:
        for i in range(first, first + n):
            put(i)

    def consume(slot: int) -> None:
        total = 0
        while True:
            item = get()
            if item is None:
                break
            total += item
        totals[slot] = total

    makers = [
        threading.Thread(target=produce, args=(p * n,), name=f"producer-{p}")
        for p in range(producers)
    ]
    takers = [
        threading.Thread(target=consume, args=(c,), name=f"consumer-{c}") for c in range(consumers)
    ]
    for thread in makers + takers:
        thread.start()
    for thread in makers:
        thread.join()
    for _ in range(consumers):
        put(None)  # one stop marker per consumer, after every real item
    for thread in takers:
        thread.join()
    return sum(totals)


def pool_rlock_cache(scale: float = 1.0) -> int:
    """``ThreadPoolExecutor(8)`` runs 25k tasks that share a 500-entry cache behind an RLock."""
    n = _scaled(25_000, scale)
    keys = 500
    cache: Dict[int, int] = {}
    lock = threading.RLock()

    def compute(key: int) -> int:
        value = key
        for _ in range(200):
            value = (value * 1103515245 + 12345) & 0x7FFFFFFF
        return value

    def store(key: int, value: int) -> None:
        with lock:  # re-entered from lookup() on a miss
            cache[key] = value

    def lookup(key: int) -> int:
        with lock:
            value = cache.get(key)
            if value is None:
                value = compute(key)
                store(key, value)
            return value

    def task(i: int) -> int:
        # A little work of its own outside the lock, as a real task has.
        spread = 0
        for j in range(20):
            spread += (i ^ j) & 7
        return (lookup((i * 7919) % keys) + spread) & 0xFFFFFFFF

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(task, i) for i in range(n)]
        total = sum(future.result() for future in futures)
    return total + len(cache)


def thread_churn(scale: float = 1.0) -> int:
    """Start and join 2,000 short threads, in waves of 10."""
    n = _scaled(2_000, scale)
    wave = 10
    results = [0] * n

    def work(i: int) -> None:
        acc = 0
        for j in range(100):
            acc += (i * j) % 7
        results[i] = acc

    for first in range(0, n, wave):
        threads = [
            threading.Thread(target=work, args=(i,), name=f"short-{i}")
            for i in range(first, min(first + wave, n))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return sum(results)


def heavy_contention(scale: float = 1.0) -> int:
    """100 threads x 5,000 acquisitions of one Lock, switching threads every 20 us."""
    n = _scaled(5_000, scale)
    n_threads = 100
    lock = threading.Lock()
    go = threading.Event()
    counter = [0]

    def work() -> None:
        go.wait()
        for _ in range(n):
            with lock:
                counter[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(2e-5)
    try:
        threads = [threading.Thread(target=work, name=f"heavy-{i}") for i in range(n_threads)]
        for thread in threads:
            thread.start()
        go.set()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    return counter[0]


#: name -> (function, one-line description), in the order the runner reports them.
WORKLOADS: Dict[str, Tuple[Callable[[float], int], str]] = {
    "uncontended_lock": (uncontended_lock, "1 thread, 1.5M uncontended `with lock:`"),
    "contended_counter": (contended_counter, "4 threads x 150k `with lock:` on one counter"),
    "queue_fanout": (queue_fanout, "1 producer -> 4 consumers, Queue(maxsize=100), 120k items"),
    "condition_buffer": (condition_buffer, "10-slot buffer on 2 Conditions, 2 x 50k items, 2+2"),
    "pool_rlock_cache": (pool_rlock_cache, "ThreadPoolExecutor(8), 25k tasks, RLock-ed cache"),
    "thread_churn": (thread_churn, "start+join 2,000 short threads, 10 at a time"),
    "heavy_contention": (heavy_contention, "100 threads x 5,000 `with lock:`, switch 20 us"),
}

MODES = ("bare", "patch", "run", "ddtrace", "viztracer", "yappi")


# ---------------------------------------------------------------------------
# One measurement
# ---------------------------------------------------------------------------


def _describe(factory: Any) -> str:
    """``module.qualname`` of a factory such as ``threading.Lock``, whatever it is now."""
    kind = factory if isinstance(factory, type) or callable(factory) else type(factory)
    module = getattr(kind, "__module__", None) or type(kind).__module__
    name = getattr(kind, "__qualname__", None) or type(kind).__qualname__
    return f"{module}.{name}"


def _peak_rss_kb() -> Optional[int]:
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak // 1024 if sys.platform == "darwin" else peak


def _threadtrace_info() -> Optional[Dict[str, Any]]:
    """Which threadtrace is imported in this process, and its lock core; None if none is."""
    module = sys.modules.get("threadtrace")
    if module is None:
        return None
    core = sys.modules.get("threadtrace._primitives.core")
    return {
        "version": getattr(module, "__version__", None),
        "file": getattr(module, "__file__", None),
        "speedups": getattr(core, "SPEEDUPS", None),
    }


def _is_threadtraces(factory: Any) -> bool:
    return _describe(factory).startswith("threadtrace.")


def measure(
    name: str, mode: str, scale: float = 1.0, tmpdir: Optional[str] = None
) -> Dict[str, Any]:
    """Set up ``mode``, run workload ``name`` once and return the measurement.

    Args:
        name: a key of :data:`WORKLOADS`.
        mode: one of :data:`MODES`.
        scale: multiplies the workload's operation count.
        tmpdir: where a tool writes its output (viztracer); default the
            current directory.

    Returns:
        The record printed as JSON: ``seconds`` (the workload call only),
        ``checksum``, ``maxrss_kb`` and what was in force.

    Raises:
        RuntimeError: the mode could not be set up (``run`` outside
            ``threadtrace run``, or ``patch`` that left ``threading`` alone).
    """
    function = WORKLOADS[name][0]
    stop: Callable[[], None] = lambda: None  # noqa: E731 - the default: nothing to stop

    if mode == "patch":
        import threadtrace

        threadtrace.patch()
        if not _is_threadtraces(threading.Lock):
            raise RuntimeError(f"threadtrace.patch() left threading.Lock as {threading.Lock!r}")
    elif mode == "run":
        if "threadtrace" not in sys.modules or not _is_threadtraces(threading.Lock):
            raise RuntimeError("--mode run: not running under `threadtrace run`")
    elif mode == "ddtrace":
        # The variables bench/run.py sets, for a run by hand.
        os.environ.setdefault("DD_PROFILING_ENABLED", "true")
        os.environ.setdefault("DD_PROFILING_LOCK_ENABLED", "true")
        os.environ.setdefault("DD_PROFILING_CAPTURE_PCT", "1")
        import ddtrace.profiling.auto  # noqa: F401 - starts the profiler
    elif mode == "viztracer":
        from viztracer import VizTracer

        output = os.path.join(tmpdir or ".", "viztracer.json")
        tracer = VizTracer(output_file=output, verbose=0)
        tracer.start()

        def stop() -> None:
            tracer.stop()
            tracer.save()

    elif mode == "yappi":
        import yappi

        yappi.set_clock_type("wall")
        yappi.start()
        stop = yappi.stop
    elif mode != "bare":
        raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")

    lock_factory = _describe(threading.Lock)
    start = time.perf_counter()
    checksum = function(scale)
    seconds = time.perf_counter() - start
    peak = _peak_rss_kb()
    stop()
    return {
        "workload": name,
        "mode": mode,
        "scale": scale,
        "seconds": seconds,
        "checksum": checksum,
        "maxrss_kb": peak,
        "lock_factory": lock_factory,
        "python": platform.python_version(),
        "threadtrace": _threadtrace_info(),
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run one threaded workload once and print its timing as JSON "
        "(bench/run.py runs these in fresh processes and compares them)."
    )
    parser.add_argument("workload", nargs="?", choices=sorted(WORKLOADS), metavar="workload")
    parser.add_argument("--mode", choices=MODES, default="bare")
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (default 1)")
    parser.add_argument("--quick", action="store_true", help="the same as --scale 0.2")
    parser.add_argument("--tmpdir", help="where a tool writes its output (viztracer)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_, description) in WORKLOADS.items():
            print(f"{name:18} {description}")
        return 0
    if args.workload is None:
        parser.error("a workload is required (see --list)")
    scale = 0.2 if args.quick else args.scale
    record = measure(args.workload, args.mode, scale, args.tmpdir)
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
