"""Lesson 14: try a lock without waiting for it.

``acquire(blocking=False)`` takes the lock if it is free and returns True,
or returns False at once; ``acquire(timeout=...)`` waits at most that
long.  A thread can do other work while a lock is busy instead of
blocking.  (A ``with`` statement always blocks; these calls need their own
``release()``.)

    threadtrace run examples/lessons/14_nonblocking_acquire.py

In the trace: the try that failed at once leaves nothing (it never
waited); the timed try is a ``Lock.acquire lock`` span with
``threadtrace.timeout`` and ``threadtrace.timed_out = true``, whose
``threadtrace.holder.thread.name`` is ``holder``; the last, blocking
acquire is woken by ``holder``'s release.
"""

import os
import threading

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

lock = threading.Lock()
held = threading.Event()
tried = threading.Event()


def holder():
    with lock:
        held.set()
        tried.wait()  # keep the lock until the worker has tried it twice


def worker():
    held.wait()
    got = lock.acquire(blocking=False)
    print(f"acquire(blocking=False) while held: {got}")
    got = lock.acquire(timeout=DELAY)
    print(f"acquire(timeout=...) while held: {got}")
    tried.set()
    got = lock.acquire()  # waits for the holder to let go
    print(f"acquire() once it is let go: {got}")
    lock.release()


def main():
    threads = [
        threading.Thread(name="holder", target=holder),
        threading.Thread(name="worker", target=worker),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
