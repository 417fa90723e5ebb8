"""Two code paths take the same two locks in opposite orders; this run never hangs.

    threadtrace run --lock-order true examples/lock_order.py  # true: the default with the C core

reports the inversion as a possible deadlock, with both orders and where
each lock was taken: with other timing, the two threads would deadlock.
"""

import threading

cache_lock = threading.Lock()
db_lock = threading.Lock()


def refresh():
    with cache_lock:  # noqa: SIM117 - the nesting is the point
        with db_lock:  # cache, then db
            pass


def write_through():
    with db_lock:  # noqa: SIM117 - the nesting is the point
        with cache_lock:  # db, then cache: the opposite order
            pass


for target in (refresh, write_through):  # one after the other: no hang this time
    thread = threading.Thread(target=target, name=target.__name__)
    thread.start()
    thread.join()
print("finished without hanging")
