"""Lesson 16: locks are context managers.

``with lock:`` acquires the lock and releases it when the block ends, even
if the block raises: the same as ``acquire()`` and ``release()`` in a
``try``/``finally``, and much harder to get wrong.

    threadtrace run examples/lessons/16_lock_with.py

The main thread holds the lock while it starts both workers, and for a
moment after they are ready, so both wait.  In the trace: two
``Lock.acquire lock`` spans, one at the ``with`` line and one at the
``acquire()`` line (``code.line.number``), each with MainThread as the
holder, and a ``Lock.hold lock`` span for MainThread's hold.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

lock = threading.Lock()
ready = threading.Barrier(3)  # both workers and the main thread
done = []


def worker_with():
    ready.wait()
    with lock:  # acquired here, released when the block ends
        done.append("worker_with: lock acquired with 'with'")


def worker_no_with():
    ready.wait()
    lock.acquire()
    try:
        done.append("worker_no_with: lock acquired with acquire()")
    finally:
        lock.release()


def main():
    with lock:  # held while both workers start
        threads = [
            threading.Thread(name="worker_with", target=worker_with),
            threading.Thread(name="worker_no_with", target=worker_no_with),
        ]
        for thread in threads:
            thread.start()
        ready.wait()  # both workers are about to take the lock ...
        time.sleep(DELAY)  # ... and wait for it meanwhile
    for thread in threads:
        thread.join()
    for line in sorted(done):  # which worker got the lock first varies
        print(line)


if __name__ == "__main__":
    main()
