"""Waiting on a condition while holding the lock the notifier needs.

The reader finds the cache empty, asks for a refresh and waits for it,
still holding ``cache_lock``; the refresher needs ``cache_lock`` to fill
the cache, so it never gets to notify.  The program gives up after 3 s.
"""

import threading

cache = {}
cache_lock = threading.Lock()
refreshed = threading.Condition()
refresh_needed = threading.Event()


def read_prices():
    with cache_lock:
        if "prices" not in cache:
            refresh_needed.set()
            with refreshed:
                while "prices" not in cache:
                    refreshed.wait()  # the bug: still holding cache_lock
        print("prices:", cache["prices"])


def refresh():
    refresh_needed.wait(timeout=10)
    with cache_lock:  # the reader holds it while it waits
        cache["prices"] = [101, 102]
    with refreshed:
        refreshed.notify_all()


reader = threading.Thread(target=read_prices, name="reader", daemon=True)
refresher = threading.Thread(target=refresh, name="refresher", daemon=True)
reader.start()
refresher.start()
reader.join(timeout=3)
print("gave up waiting for the prices")
