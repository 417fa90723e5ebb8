"""Lesson 7: join with a timeout.

``join(timeout)`` returns after at most ``timeout`` seconds whether the
thread has finished or not, and returns None either way: ask
``is_alive()`` to know which.

    threadtrace run examples/lessons/07_join_timeout.py

In the trace: a ``Thread.join daemon`` span with ``threadtrace.timeout``
(the timeout given) and ``threadtrace.timed_out = true``.  The daemon's
``Event.wait release`` span is woken by MainThread
(``threadtrace.waker.thread.name``); the second, untimed join waits only
for the daemon to wind up (in the report: ``2 waits, 1 timed out``).
"""

import os
import threading

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

release = threading.Event()


def daemon():
    release.wait()  # works until the main thread says stop
    print("daemon: Exiting")


def main():
    thread = threading.Thread(name="daemon", target=daemon, daemon=True)
    thread.start()
    thread.join(timeout=DELAY)
    print(f"after join(timeout): alive={thread.is_alive()}")
    release.set()
    thread.join()
    print(f"after join(): alive={thread.is_alive()}")


if __name__ == "__main__":
    main()
