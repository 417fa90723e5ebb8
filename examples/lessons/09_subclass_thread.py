"""Lesson 9: subclass ``Thread`` and override ``run()``.

Instead of passing a ``target``, a subclass puts the thread's work in
``run()``; ``start()`` calls it in the new thread.  The object can then
carry the thread's state and results as attributes, read after ``join()``.

    threadtrace run examples/lessons/09_subclass_thread.py

In the trace: the ``Thread.run`` spans of the subclass's threads, named
after the threads (``Thread.run squarer``), whose ``code.function.name``
is ``__main__.Squarer.run``: a subclass without a target is traced as its
``run`` method.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


class Squarer(threading.Thread):
    """A thread that squares one number, and keeps the answer."""

    number = 0
    result = None

    def run(self):
        time.sleep(DELAY)
        self.result = self.number**2


def main():
    threads = []
    for number in range(3):
        thread = Squarer(name=f"squarer-{number}")
        thread.number = number
        threads.append(thread)
        thread.start()
    for thread in threads:
        thread.join()
        print(f"{thread.name}: {thread.number} ** 2 = {thread.result}")


if __name__ == "__main__":
    main()
