"""Lesson 13: a ``Lock`` protects a shared counter.

``value = self.value; ...; self.value = value + 1`` is three steps, and
another thread can run between them: two threads read the same value and
one increment is lost.  Holding a ``Lock`` around the read-modify-write
lets one thread at a time through.  The pause inside stands for any slow
step (here it makes lost updates certain without the lock, and makes the
workers wait for each other with it).

    threadtrace run examples/lessons/13_lock_counter.py

In the trace: ``Lock.acquire self.lock`` spans, on the lock named
``self.lock (13_lock_counter.py:30)``: each is a worker that waited, with
the holder's thread and the line where it took the lock
(``threadtrace.holder.*``).  The report's block for ``Lock self.lock``
says how many of the 12 acquisitions had to wait, and where.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


class Counter:
    """A counter that any number of threads may increment."""

    def __init__(self, start=0):
        self.lock = threading.Lock()
        self.value = start

    def increment(self):
        with self.lock:
            value = self.value
            time.sleep(DELAY / 4)  # a slow step between reading and writing
            self.value = value + 1


def worker(counter, times):
    for _ in range(times):
        counter.increment()


def main():
    counter = Counter()
    threads = [
        threading.Thread(name=f"worker-{number}", target=worker, args=(counter, 4))
        for number in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"counter: {counter.value} (3 workers x 4 increments)")


if __name__ == "__main__":
    main()
