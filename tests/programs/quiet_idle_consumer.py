"""Quiet: a consumer waits on an empty queue for work that comes every 1.5 s."""

import queue
import threading
import time

inbox = queue.Queue()


def consume():
    while (item := inbox.get()) is not None:
        print("got", item)


consumer = threading.Thread(target=consume, name="consumer")
consumer.start()
for item in ("a", "b"):
    time.sleep(1.5)
    inbox.put(item)
inbox.put(None)
consumer.join(timeout=10)
