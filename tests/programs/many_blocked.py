"""A thousand requests blocked behind one slow holder of a lock.

The loader holds ``cache_lock`` for 3 s while it fetches the cache; every
request waits for the lock.  One report, with the thousand identical
stacks given once.
"""

import threading
import time

REQUESTS = 1000
cache_lock = threading.Lock()
everyone_started = threading.Barrier(REQUESTS + 1)
cache = {}


def load():
    with cache_lock:  # held for the whole fetch
        everyone_started.wait(timeout=30)
        time.sleep(3)  # a slow fetch, with the lock held
        cache["ready"] = True


def handle(request):
    everyone_started.wait(timeout=30)
    with cache_lock:  # every request waits here
        cache[request] = cache.get("ready")


requests = [
    threading.Thread(target=handle, args=(i,), name=f"request-{i}", daemon=True)
    for i in range(REQUESTS)
]
loader = threading.Thread(target=load, name="loader", daemon=True)
loader.start()
for request in requests:
    request.start()
loader.join(timeout=10)
for request in requests:
    request.join(timeout=10)
print("served", len(cache) - 1)
