#!/usr/bin/env python3
"""A long mixed threaded workload, for memory soak tests (tests/test_soak.py).

    python bench/soak.py SECONDS            # bare
    threadtrace run bench/soak.py SECONDS   # traced

Until SECONDS have passed it keeps, at once: a thread pool whose tasks share
a cache behind an RLock and make locks of their own; a producer feeding two
consumers through a bounded queue; short threads started and joined; and a
loop that makes and drops every kind of primitive.  Once a second it prints
its resident set size in MB (one number per line), and at the end ``done``
with the work counts.  Deterministic work per round; the number of rounds
depends on the machine's speed.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import sys
import threading
import time


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(seconds: float) -> None:  # noqa: PLR0915 - one scenario, read in one place
    deadline = time.monotonic() + seconds
    stop = threading.Event()
    counts = {"tasks": 0, "items": 0, "threads": 0, "primitives": 0}
    counts_lock = threading.Lock()
    cache: dict[int, int] = {}
    cache_lock = threading.RLock()

    def task(i: int) -> int:
        own = threading.Lock()  # a lock per task, dropped with it
        with own, cache_lock:
            value = cache.get(i % 200)
            if value is None:
                with cache_lock:  # re-entered
                    value = cache[i % 200] = i * 7 % 1000
        return value

    def pool_loop() -> None:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            while not stop.is_set():
                futures = [pool.submit(task, i) for i in range(100)]
                total = sum(f.result() for f in futures)
                with counts_lock:
                    counts["tasks"] += len(futures)
                assert total >= 0

    items: queue.Queue[int] = queue.Queue(maxsize=50)

    def produce() -> None:
        i = 0
        while not stop.is_set():
            items.put(i)
            i += 1
        for _ in range(2):
            items.put(-1)

    def consume() -> None:
        while True:
            item = items.get()
            items.task_done()
            if item < 0:
                return
            with counts_lock:
                counts["items"] += 1

    def churn_threads() -> None:
        while not stop.is_set():
            wave = [threading.Thread(target=sum, args=([1, 2, 3],)) for _ in range(8)]
            for thread in wave:
                thread.start()
            for thread in wave:
                thread.join(30)
            with counts_lock:
                counts["threads"] += len(wave)

    def churn_primitives() -> None:
        while not stop.is_set():
            for _ in range(200):
                lock, rlock = threading.Lock(), threading.RLock()
                condition = threading.Condition(lock)
                semaphore = threading.BoundedSemaphore(2)
                event = threading.Event()
                with lock, rlock, semaphore:
                    event.set()
                with condition:
                    condition.notify_all()
            with counts_lock:
                counts["primitives"] += 200 * 5
            time.sleep(0.001)

    workers = [
        threading.Thread(target=pool_loop, name="pool"),
        threading.Thread(target=produce, name="producer"),
        threading.Thread(target=consume, name="consumer-1"),
        threading.Thread(target=consume, name="consumer-2"),
        threading.Thread(target=churn_threads, name="thread-churn"),
        threading.Thread(target=churn_primitives, name="primitive-churn"),
    ]
    for worker in workers:
        worker.start()
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        print(f"{rss_mb():.1f}", flush=True)
    stop.set()
    for worker in workers:
        worker.join(60)
    alive = [worker.name for worker in workers if worker.is_alive()]
    if alive:
        sys.exit(f"still running after 60 s: {', '.join(alive)}")
    print("done", " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
