"""Lesson 17: a ``Condition``: consumers wait until a producer has something.

A ``Condition`` pairs a lock with a way to wait for a change of state made
under it: ``wait()`` releases the lock, sleeps until ``notify()`` or
``notify_all()``, and takes the lock back.  Wait with ``wait_for(predicate)``
(or ``wait()`` in a ``while`` loop on the state): a notify sent before the
wait began is not remembered (lesson ``examples/lost_wakeup.py``), and a
woken thread must check that the state is still what it wants.

    threadtrace run examples/lessons/17_condition.py

In the trace: ``Condition.wait condition`` spans of the two consumers, each
woken by ``producer`` (``threadtrace.waker.thread.name``, and a
``woken_by`` link to the producer's run).
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

condition = threading.Condition()
items = []  # guarded by condition
finished = False  # guarded by condition
consumed = []


def consumer():
    while True:
        with condition:
            condition.wait_for(lambda: items or finished)
            if not items:  # finished, and nothing left
                return
            item = items.pop(0)
        consumed.append(item)  # the work on the item, outside the lock


def producer():
    global finished
    for item in range(6):
        time.sleep(DELAY / 2)  # making an item takes a while
        with condition:
            items.append(item)
            condition.notify()  # one item: one consumer needs to wake up
    with condition:
        finished = True
        condition.notify_all()  # everyone: nothing more is coming


def main():
    consumers = [threading.Thread(name=f"consumer-{n}", target=consumer) for n in range(2)]
    for thread in consumers:
        thread.start()
    making = threading.Thread(name="producer", target=producer)
    making.start()
    for thread in [*consumers, making]:
        thread.join()
    print(f"consumed {len(consumed)} items: {sorted(consumed)}")


if __name__ == "__main__":
    main()
