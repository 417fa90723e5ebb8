"""Lesson 5: daemon threads do not keep the program alive.

The interpreter exits when every non-daemon thread has finished; daemon
threads still running then are simply stopped, wherever they are.  Use
them for background work that may be abandoned, never for work that must
complete (files half written, locks held).

    threadtrace run examples/lessons/05_daemon_threads.py

The daemon's "Exiting" is never printed.  In the trace:
``Thread.run non-daemon``, with ``threadtrace.thread.daemon = false``, and
no run span for the daemon, which never ended; at exit the summary says
what it was still blocked in (``at exit   1 wait still blocked: Event
never (05_daemon_threads.py:24)``).
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

started = threading.Event()
never = threading.Event()  # nobody sets it: the daemon waits for good


def daemon():
    print("daemon: Starting")
    started.set()
    never.wait()  # a background loop that never finishes by itself
    print("daemon: Exiting")  # never printed


def non_daemon():
    print("non-daemon: Starting")
    time.sleep(DELAY)
    print("non-daemon: Exiting")


def main():
    threading.Thread(name="daemon", target=daemon, daemon=True).start()
    started.wait(timeout=10)  # so that the output always comes in this order
    threading.Thread(name="non-daemon", target=non_daemon).start()
    # No join: the interpreter waits for the non-daemon thread, not the daemon.


if __name__ == "__main__":
    main()
