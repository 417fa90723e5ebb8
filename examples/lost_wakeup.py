"""A worker that misses its wake-up, caught as a stuck thread.

A dispatcher hands jobs to a worker through a list and a ``Condition``.
The worker waits for a notification before it looks at the list: the bug.
The dispatcher adds two jobs in a row: the first ``notify()`` wakes the
worker, the second finds nobody waiting (the worker is on its way to the
first job), and a ``Condition`` does not remember notifications.  The
worker then waits for a wake-up that already happened, with a job in the
list.  (The fix: ``job_added.wait_for(lambda: jobs)``, which checks the
list first.)

    threadtrace run --stuck-after 0.3 examples/lost_wakeup.py

The worker is a daemon thread and the main thread gives up after 1.5 s, so
the program ends by itself.  Before that, threadtrace reports ``STUCK:
worker has been blocked ... in Condition.wait on job_added`` with the
diagnosis ``1 notify() call before it found no waiter: a wake-up may have
been lost``, and every thread's stack.  (With the default ``stuck_after``
of 5 s the program ends before the report, and the summary's ``at exit``
line names the wait still blocked.)
"""

import threading
import time

GIVE_UP = 1.5  # seconds the main thread waits for the worker
WORK = 0.1  # seconds a job takes

jobs = []  # guarded by job_added
job_added = threading.Condition()
ready = threading.Event()
done = []


def dispatch(job):
    with job_added:
        jobs.append(job)
        job_added.notify()


def worker():
    while True:
        with job_added:
            ready.set()  # the dispatcher can only take the lock once this thread waits
            job_added.wait()  # the bug: it waits without looking at `jobs` first
            job = jobs.pop(0)
        time.sleep(WORK)  # the job, outside the lock
        done.append(job)


def main():
    thread = threading.Thread(name="worker", target=worker, daemon=True)
    thread.start()
    ready.wait(timeout=GIVE_UP)
    dispatch("job-1")  # wakes the worker
    dispatch("job-2")  # the worker is not waiting any more: this notify() wakes nobody
    thread.join(timeout=GIVE_UP)
    print(f"done: {done}; still queued: {jobs}")


if __name__ == "__main__":
    main()
