"""Lesson 19: a ``Semaphore`` limits how many threads use something at once.

A ``Semaphore(n)`` hands out ``n`` permits: ``acquire()`` takes one, or
waits until one is given back by ``release()``.  Here 6 workers share 2
connections, so at most 2 work at a time.  (A ``BoundedSemaphore`` also
raises if it is released more often than acquired: prefer it for a pool.)

    threadtrace run examples/lessons/19_semaphore.py

In the trace: ``Semaphore.acquire connections`` spans of the workers that
waited for a permit, with the thread that gave one back as waker
(``threadtrace.waker.thread.name``).  The report's block for
``Semaphore connections`` says how many of the 6 acquisitions waited.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


class ActivePool:
    """Who is working now, and the most that ever were at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = []
        self.most = 0

    def make_active(self, name):
        with self.lock:
            self.active.append(name)
            self.most = max(self.most, len(self.active))

    def make_inactive(self, name):
        with self.lock:
            self.active.remove(name)


def worker(connections, pool):
    name = threading.current_thread().name
    with connections:
        pool.make_active(name)
        time.sleep(DELAY)  # use the connection
        pool.make_inactive(name)


def main():
    connections = threading.Semaphore(2)
    pool = ActivePool()
    threads = [
        threading.Thread(name=f"worker-{number}", target=worker, args=(connections, pool))
        for number in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{len(threads)} workers done; at most {pool.most} at once")


if __name__ == "__main__":
    main()
