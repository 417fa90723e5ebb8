"""Lesson 8: list the running threads with ``threading.enumerate()``.

``threading.enumerate()`` lists every thread of the process that is alive:
the main thread, yours, and any that libraries started.  Under
``threadtrace run`` that includes threadtrace's own (its exporter and
watchdog) and OpenTelemetry's metric reader: daemon threads that never end.
Joining *every* listed thread would wait for them forever, so skip the
main thread (joining yourself raises RuntimeError) and daemon threads you
did not start.

    threadtrace run examples/lessons/08_enumerate_threads.py

In the trace: a ``Thread.run worker`` span for each worker, the main
thread's joins, and ``Event.wait go`` spans woken by MainThread (for the
workers that waited 1 ms or more; the report's ``Event go`` block counts
them all).
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

go = threading.Event()


def worker():
    go.wait()  # everyone waits until the main thread has listed them
    time.sleep(DELAY)


def main():
    for number in range(3):
        threading.Thread(name=f"worker-{number}", target=worker).start()
    main_thread = threading.main_thread()
    running = [t for t in threading.enumerate() if t is not main_thread and not t.daemon]
    go.set()
    for thread in running:
        thread.join()
        print(f"joined {thread.name}")


if __name__ == "__main__":
    main()
