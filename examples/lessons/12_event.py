"""Lesson 12: signal between threads with an ``Event``.

An ``Event`` is a flag that threads wait for: ``wait()`` blocks until
someone calls ``set()``; ``wait(timeout)`` gives up after ``timeout``
seconds and returns False, so the waiter can do something else and try
again.

    threadtrace run examples/lessons/12_event.py

In the trace: ``Event.wait ready`` of ``blocking``, which waited until
MainThread set the event (``threadtrace.waker.thread.name = MainThread``),
and of ``non-blocking``, whose first wait has ``threadtrace.timeout`` and
``threadtrace.timed_out = true``.  The report's block for ``Event ready``
counts the timed-out wait (``3 waits, 1 timed out``).
"""

import os
import threading

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

ready = threading.Event()
tried_once = threading.Event()
results = {}


def wait_for_event():
    results["blocking"] = ready.wait()  # waits as long as it takes


def wait_for_event_timeout():
    results["non-blocking, first try"] = ready.wait(timeout=DELAY)
    tried_once.set()
    # ... other work here, then wait again, this time long enough:
    results["non-blocking, second try"] = ready.wait(timeout=100 * DELAY)


def main():
    threads = [
        threading.Thread(name="blocking", target=wait_for_event),
        threading.Thread(name="non-blocking", target=wait_for_event_timeout),
    ]
    for thread in threads:
        thread.start()
    tried_once.wait(timeout=100 * DELAY)  # the first try timed out: now set the event
    ready.set()
    for thread in threads:
        thread.join()
    for waiter in ("blocking", "non-blocking, first try", "non-blocking, second try"):
        print(f"{waiter}: wait() returned {results[waiter]}")


if __name__ == "__main__":
    main()
