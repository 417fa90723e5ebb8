"""Lesson 18: a ``Barrier``: wait until everyone has arrived.

``Barrier(n)`` holds the first ``n - 1`` threads that call ``wait()``
until the ``n``-th arrives, then lets them all go at once.  Threads that
each prepare something use one to start the next phase together.

    threadtrace run examples/lessons/18_barrier.py

In the trace: ``Barrier.wait start_line`` spans of the two first runners
(``runner-0`` and ``runner-1``, most likely), each woken by the last to
arrive (``threadtrace.waker.thread.name``), which did not wait.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

start_line = threading.Barrier(3)
places = []


def runner(number):
    time.sleep(number * DELAY)  # getting ready takes longer for some
    place = start_line.wait(timeout=100 * DELAY)  # a timeout, in case a runner never comes
    places.append(place)  # wait() gives each thread a different number, 0 to 2


def main():
    runners = [
        threading.Thread(name=f"runner-{number}", target=runner, args=(number,))
        for number in range(3)
    ]
    for thread in runners:
        thread.start()
    for thread in runners:
        thread.join()
    print(f"{len(runners)} runners passed the barrier together; places {sorted(places)}")


if __name__ == "__main__":
    main()
