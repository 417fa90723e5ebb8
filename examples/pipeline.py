"""A producer/consumer pipeline on ``queue.Queue``: read, parse, write.

A reader puts raw records on a bounded queue, two parsers take them off,
parse them and put the results on a second queue, and a writer stores them.
The queues are bounded (``maxsize``), so a stage that runs ahead blocks
until the next one catches up: backpressure instead of unbounded memory.
``Queue.join()`` waits until every record put has been marked done with
``task_done()``; a ``None`` per consumer then tells it to stop.

    threadtrace run examples/pipeline.py
    threadtrace report threadtrace-trace.jsonl

What to look at: the report's blocks for the queues, named after their
variables (``Condition raw (Queue@pipeline.py:28)``), with the ``waiting
at`` lines telling a full queue (at ``put``, the reader held back) from an
empty one (at ``get``, a stage waiting for work); in the trace, the
``Condition.wait raw`` and ``Condition.wait parsed`` spans of each stage.
"""

import os
import queue
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

RECORDS = 20
raw = queue.Queue(maxsize=4)  # reader -> parsers
parsed = queue.Queue(maxsize=4)  # parsers -> writer
written = []


def reader():
    for number in range(RECORDS):
        raw.put(f"{number},{number * number}")  # blocks while the parsers are behind


def parser():
    while True:
        line = raw.get()
        if line is None:
            raw.task_done()
            return
        time.sleep(DELAY / 10)  # parsing is the slow stage
        key, value = line.split(",")
        parsed.put((int(key), int(value)))
        raw.task_done()


def writer():
    while True:
        record = parsed.get()
        if record is None:
            parsed.task_done()
            return
        written.append(record)
        parsed.task_done()


def main():
    parsers = [threading.Thread(name=f"parser-{n}", target=parser) for n in range(2)]
    stages = [threading.Thread(name="reader", target=reader), *parsers]
    stages.append(threading.Thread(name="writer", target=writer))
    for thread in stages:
        thread.start()
    stages[0].join()  # everything is read ...
    raw.join()  # ... and parsed ...
    parsed.join()  # ... and written
    for _ in parsers:
        raw.put(None)
    parsed.put(None)
    for thread in stages:
        thread.join()
    total = sum(value for _, value in written)
    print(f"read {RECORDS}, parsed and wrote {len(written)} records; sum of values {total}")


if __name__ == "__main__":
    main()
