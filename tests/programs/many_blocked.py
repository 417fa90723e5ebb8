"""A thousand requests blocked behind one slow holder of a lock.

The loader holds ``cache_lock`` for 5 s while it fetches the cache; every
request waits for the lock.  One report, with the thousand identical
stacks given once.  The test runs it with ``--stuck-after 3``: a thousand
threads leaving one barrier take their turns one by one (0.2-0.5 s on an
idle two-CPU machine, bare CPython), and all of them must be at the lock
before the first of them has waited ``stuck_after``.
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
        time.sleep(5)  # a slow fetch, with the lock held
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
