"""Lesson 1: start a thread, and wait for it to finish.

A ``threading.Thread`` runs its ``target`` in a new thread of the same
process: ``start()`` launches it, ``join()`` waits until it has returned.

    threadtrace run examples/lessons/01_simple_thread.py

In the trace: the worker's ``Thread.run __main__.worker`` span (named after
its target: ``threading`` named the thread ``Thread-1 (worker)``), and the
main thread's ``Thread.join __main__.worker``, which lasts as long as the
worker's remaining work and is linked (``joined``) to the run it waited
for.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


def worker():
    """The thread's work: say so, then work for a moment."""
    print("worker: working")
    time.sleep(DELAY)


def main():
    thread = threading.Thread(target=worker)
    print("main: starting a worker")
    thread.start()
    thread.join()  # the worker prints while the main thread waits here
    print("main: the worker has finished")


if __name__ == "__main__":
    main()
