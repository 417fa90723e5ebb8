"""Quiet: the main thread joins, without a timeout, a worker that is busy for 2.5 s.

The worker shares a lock with a helper, so at any moment it may be briefly
waiting for it: busy, not stuck.
"""

import threading
import time

lock = threading.Lock()
done = threading.Event()


def helper():
    while not done.is_set():
        with lock:
            time.sleep(0.01)


def work():
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        with lock:
            pass
    done.set()


threading.Thread(target=helper, name="helper", daemon=True).start()
worker = threading.Thread(target=work, name="worker")
worker.start()
worker.join()
print("worker done")
