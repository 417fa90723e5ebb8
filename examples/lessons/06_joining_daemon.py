"""Lesson 6: join a daemon thread to let it finish.

A daemon thread still gets to finish if someone waits for it:
``join()`` blocks until the thread has returned, daemon or not.

    threadtrace run examples/lessons/06_joining_daemon.py

In the trace: ``Thread.run daemon`` (``threadtrace.thread.daemon = true``)
and the main thread's ``Thread.join daemon``, which lasts as long as the
daemon's remaining work and links (``joined``) to its run.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


def daemon():
    print("daemon: Starting")
    time.sleep(DELAY)
    print("daemon: Exiting")


def main():
    thread = threading.Thread(name="daemon", target=daemon, daemon=True)
    thread.start()
    thread.join()
    print(f"daemon finished: alive={thread.is_alive()}")


if __name__ == "__main__":
    main()
