"""Lesson 21: a ``threading.local`` subclass with defaults.

A subclass's ``__init__`` runs again in every thread, the first time that
thread touches the object, with the arguments the object was made with:
so every thread starts from the same defaults, whatever the others have
changed.

    threadtrace run examples/lessons/21_local_defaults.py

As in lesson 20, the trace has only the ``Thread.run worker`` spans and
the joins; the defaults show in the output.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


class Settings(threading.local):
    """Per-thread settings, starting from the same defaults in every thread."""

    def __init__(self, retries):
        super().__init__()
        self.retries = retries  # runs once in each thread that uses the object


settings = Settings(retries=3)
seen = {}


def worker(number):
    before = settings.retries
    settings.retries = number
    time.sleep(DELAY)  # the other workers change theirs meanwhile
    seen[number] = (before, settings.retries)


def main():
    settings.retries = 99  # the main thread's own value: no other thread sees it
    threads = [
        threading.Thread(name=f"worker-{number}", target=worker, args=(number,))
        for number in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for number, (before, after) in sorted(seen.items()):
        print(f"worker-{number}: retries started at {before}; set to {after}")
    print(f"MainThread: retries = {settings.retries}")


if __name__ == "__main__":
    main()
