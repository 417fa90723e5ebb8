"""A consumer that waits for a notification it already missed, and a leaked permit.

    threadtrace run examples/stuck.py

After about 5 seconds threadtrace reports the consumer stuck in
Condition.wait with nobody to notify it (the wake-up was lost), with every
thread's stack.  Before that, it reports the worker that finished while
still holding a connection permit.  The program gives up after 7 seconds.
"""

import threading

orders = []
new_order = threading.Condition()
connections = threading.BoundedSemaphore(2)


def place_order():
    with new_order:
        orders.append("order-1")
        new_order.notify()  # nobody waits yet: this wake-up is lost


def consume():
    with new_order:
        new_order.wait()  # the bug: it should check `orders` first (or use wait_for)
        print("consumed", orders.pop())


def report_usage():
    connections.acquire()  # the bug: never released
    print("usage reported")


place_order()
leaker = threading.Thread(target=report_usage, name="usage-reporter")
leaker.start()
leaker.join()
consumer = threading.Thread(target=consume, name="consumer", daemon=True)
consumer.start()
consumer.join(timeout=7)
print("gave up waiting for the consumer")
