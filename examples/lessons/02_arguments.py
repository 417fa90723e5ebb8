"""Lesson 2: pass arguments to a thread.

``args`` (a tuple) and ``kwargs`` (a dict) are passed to the target, as in a
call.  A thread cannot return a value to ``join()``; here each worker writes
its answer into its own slot of a list that the main thread reads after
joining (one slot per thread, so no two threads write the same item).

    threadtrace run examples/lessons/02_arguments.py

In the trace: one ``Thread.run __main__.worker`` span per worker; each has
the worker's name and ``thread.id``, and the main thread's joins point at
them.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


def worker(number, results, *, power=2):
    """Work out ``number ** power`` slowly, and put it in ``results[number]``."""
    time.sleep(DELAY)
    results[number] = number**power


def main():
    results = [None] * 5
    threads = [
        threading.Thread(target=worker, args=(number, results), kwargs={"power": 3})
        for number in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for number, result in enumerate(results):
        print(f"Worker {number}: {number} ** 3 = {result}")


if __name__ == "__main__":
    main()
