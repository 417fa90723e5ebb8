"""A heartbeat thread waits on a stop event for the program's whole life: reported once.

The heartbeat waits with no timeout; the main thread works for 2.5 s (in
steps, so other waits come and go), then sets the event.
"""

import threading
import time

stop = threading.Event()
beats = []


def heartbeat():
    stop.wait()  # for the whole run: one stuck report at most
    beats.append("stopped")


def monitor():
    while not stop.wait():
        pass


threads = [
    threading.Thread(target=heartbeat, name="heartbeat"),
    threading.Thread(target=monitor, name="monitor"),
]
for thread in threads:
    thread.start()
for _ in range(5):
    time.sleep(0.5)  # the program's work
stop.set()
for thread in threads:
    thread.join(timeout=10)
print(beats)
