"""Starvation: a job that takes the only connection back at once keeps a request waiting.

The nightly sync runs its queries back to back on the pool's one database
connection (``connections``), taking it again as soon as it gives it back.
The status request needs it once, and waits until the sync is over, 3 s
later: each time the sync lets go, it takes the connection again before
the request has even woken up.
"""

import threading
import time

connections = threading.BoundedSemaphore(1)  # a pool of one database connection
sync_started = threading.Event()


def query(sql):
    time.sleep(0.02)  # the database at work


def nightly_sync():
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        with connections:  # taken back at once, ahead of the request waiting for it
            sync_started.set()
            query("UPDATE totals SET n = n + 1")


def status():
    sync_started.wait(timeout=10)
    with connections:
        query("SELECT 1")
    print("status served")


threads = [
    threading.Thread(target=nightly_sync, name="nightly-sync"),
    threading.Thread(target=status, name="status"),
]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=10)
