"""Lesson 3: name threads, and ask which thread is running.

Every thread has a ``name``; ``threading.current_thread()`` is the thread
running the code that asks.  A thread left unnamed gets ``Thread-N``
(``Thread-N (target)`` from Python 3.10).  Names are what logs, tracebacks
and traces show, so name threads after their role.

    threadtrace run examples/lessons/03_naming_threads.py

In the trace: ``Thread.run my_service`` and ``Thread.run worker``, named
after the threads (a span name drops a trailing counter: ``worker-2`` would
be ``worker`` too), and ``Thread.run __main__.worker`` for the unnamed
thread, named after its target because its name says nothing.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

seen = {}  # thread object -> the name current_thread() gave inside it


def worker():
    seen[threading.current_thread()] = threading.current_thread().name
    time.sleep(DELAY)


def my_service():
    seen[threading.current_thread()] = threading.current_thread().name
    time.sleep(2 * DELAY)


def main():
    threads = [
        threading.Thread(name="my_service", target=my_service),
        threading.Thread(name="worker", target=worker),
        threading.Thread(target=worker),  # no name: threading makes one up
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"main program runs in {threading.current_thread().name}")
    for thread in threads:
        print(f"{thread.name} saw current_thread().name == {seen[thread]!r}")


if __name__ == "__main__":
    main()
