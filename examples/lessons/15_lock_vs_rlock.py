"""Lesson 15: acquire the same lock twice: ``Lock`` versus ``RLock``.

A ``Lock`` does not know who holds it: a thread that acquires it again
waits for itself, forever.  An ``RLock`` (re-entrant lock) counts how many
times its owner acquired it, and is free once released as many times.  Use
one where a method that holds the lock calls another that takes it too.
Here the second ``Lock.acquire`` has a timeout, so the program shows the
hang without hanging.

    threadtrace run examples/lessons/15_lock_vs_rlock.py

In the trace: one ``Lock.acquire lock`` span, ``threadtrace.timed_out =
true``, whose holder (``threadtrace.holder.thread.name``) is MainThread
itself.  The ``RLock`` never waited, so it has no span.
"""

import os
import threading

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


def main():
    lock = threading.Lock()
    print(f"Lock, first acquire: {lock.acquire()}")
    print(f"Lock, second acquire: {lock.acquire(timeout=DELAY)}")  # without a timeout: forever
    lock.release()

    rlock = threading.RLock()
    print(f"RLock, first acquire: {rlock.acquire()}")
    print(f"RLock, second acquire: {rlock.acquire(timeout=DELAY)}")
    rlock.release()
    rlock.release()  # as many releases as acquires


if __name__ == "__main__":
    main()
