"""Lesson 4: let logging say which thread wrote each line.

``logging`` is thread-safe, and ``%(threadName)s`` in the format puts the
name of the thread that logged into each line, so there is no need to pass
names around.  Here a service thread starts a worker thread and waits for
it; each logs its own start and end.

    threadtrace run examples/lessons/04_logging.py

In the trace: ``Thread.run my_service`` and ``Thread.run worker``, and the
``Thread.join worker`` span of the service, while the worker worked.  The
log goes to stderr, as ``basicConfig`` does by default.  Because the
program configured logging, threadtrace's contention report at exit goes
through the same handler and format (``[INFO] (MainThread) threadtrace
contention report: ...``).
"""

import logging
import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


def worker():
    logging.debug("Starting")
    time.sleep(DELAY)
    logging.debug("Exiting")


def my_service():
    logging.debug("Starting")
    helper = threading.Thread(name="worker", target=worker)
    helper.start()
    helper.join()
    logging.debug("Exiting")


def main():
    logging.basicConfig(
        level=logging.DEBUG, format="[%(levelname)s] (%(threadName)-10s) %(message)s"
    )
    service = threading.Thread(name="my_service", target=my_service)
    service.start()
    service.join()
    logging.debug("Done")


if __name__ == "__main__":
    main()
