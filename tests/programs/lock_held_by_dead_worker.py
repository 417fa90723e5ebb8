"""A worker dies holding a lock and a connection permit.

The cache refresher takes ``cache_lock`` with ``acquire()``/``release()``
and no ``try``/``finally``; a missing key raises between them, so the
thread ends with the lock held, and the database connection it took is
never given back.  The program's next request gives up after 3 s.
"""

import threading

source = {f"user:{n}": n for n in range(1, 300)}
cache = {}
cache_lock = threading.Lock()
connections = threading.BoundedSemaphore(2)


def refresh(keys):
    connections.acquire()  # never given back when a key is missing
    for key in keys:
        cache_lock.acquire()
        cache[key] = source[key]  # the bug: KeyError for user:300, with the lock held
        cache_lock.release()
    connections.release()


refresher = threading.Thread(
    target=refresh, args=([f"user:{n}" for n in range(1, 301)],), name="cache-refresher"
)
refresher.start()
refresher.join(timeout=10)
if cache_lock.acquire(timeout=3):
    print("cache is usable")
else:
    print("gave up waiting for the cache")
