"""What the kinds of primitive are called, in span names, reports and logs."""

from __future__ import annotations

#: Display names of the primitive kinds, for span names ("Lock.acquire").
DISPLAY = {
    "lock": "Lock",
    "rlock": "RLock",
    "condition": "Condition",
    "semaphore": "Semaphore",
    "bounded_semaphore": "BoundedSemaphore",
    "event": "Event",
    "barrier": "Barrier",
    "thread": "Thread",
}

#: The kinds whose waits are for something another thread holds.
ACQUIRED = ("lock", "rlock", "semaphore", "bounded_semaphore")
