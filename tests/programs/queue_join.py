"""``Queue.join()`` that never returns: a worker skips ``task_done()`` on one path.

The workers skip the jobs they cannot handle, forgetting ``task_done()``
for them, so ``jobs.join()`` waits for ever.  The program gives up after
3 s (a real one would hang there).
"""

import os
import queue
import threading

jobs = queue.Queue()


def work():
    while True:
        job = jobs.get()
        if job % 4 == 0:
            continue  # the bug: a skipped job is never marked done
        jobs.task_done()


for i in range(2):
    threading.Thread(target=work, name=f"worker-{i}", daemon=True).start()
for job in range(1, 11):
    jobs.put(job)
threading.Timer(3, os._exit, (0,)).start()  # gives up: nothing else ends the wait below
jobs.join()
