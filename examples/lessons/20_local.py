"""Lesson 20: ``threading.local``: one value per thread.

Attributes of a ``threading.local()`` object are seen only by the thread
that set them: each thread starts with none, and no thread's writes
disturb another's.  (Good for a per-thread connection or request context;
pass values explicitly where you can.)

    threadtrace run examples/lessons/20_local.py

``threading.local`` involves no waiting, so the trace has only the
workers' ``Thread.run worker`` spans and the main thread's joins; the
lesson is in the output.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

data = threading.local()
seen = {}


def value_of(local):
    try:
        return local.value
    except AttributeError:
        return "no value yet"


def worker(number):
    before = value_of(data)
    data.value = number * 10
    time.sleep(DELAY)  # the other workers set their own values meanwhile
    seen[number] = (before, value_of(data))


def main():
    data.value = "main's"
    threads = [
        threading.Thread(name=f"worker-{number}", target=worker, args=(number,))
        for number in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for number, (before, after) in sorted(seen.items()):
        print(f"worker-{number}: before: {before}; after setting: {after}")
    print(f"MainThread: {value_of(data)}")


if __name__ == "__main__":
    main()
