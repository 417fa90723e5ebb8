"""Frozen snapshots returned by each primitive's ``statistics()``.

Durations are in seconds.  A snapshot is taken without stopping other
threads, so one taken while the primitive is busy may mix two moments.
"""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class LockStatistics:
    """What a ``Lock``, ``RLock``, ``Semaphore`` or ``BoundedSemaphore`` has seen.

    Attributes:
        kind: ``"lock"``, ``"rlock"``, ``"semaphore"`` or ``"bounded_semaphore"``.
        name: the primitive's name.
        acquisitions: successful acquisitions, contended or not.
        contended: acquisitions that had to wait.
        timeouts: waits that gave up (timeout expired).
        total_wait: seconds spent waiting, timed-out waits included.
        max_wait: the longest single wait.
        holds_measured: holds whose length was measured (sampled or contended
            acquisitions of locks; ``0`` for semaphores, whose permits need not
            be released by the thread that took them).
        total_hold: seconds of the measured holds.
        max_hold: the longest measured hold.
        holders: idents of the threads holding it (or a permit) now.
        holder_names: their names, in the same order.
        waiters: threads waiting to acquire it now.
    """

    kind: str
    name: str
    acquisitions: int
    contended: int
    timeouts: int
    total_wait: float
    max_wait: float
    holds_measured: int
    total_hold: float
    max_hold: float
    holders: tuple[int, ...]
    holder_names: tuple[str, ...]
    waiters: int


@dataclasses.dataclass(frozen=True)
class WaitStatistics:
    """What an ``Event``, ``Barrier`` or a thread's ``join`` has seen.

    Attributes:
        kind: ``"event"``, ``"barrier"`` or ``"thread"``.
        name: the primitive's name.
        waits: calls to ``wait`` (``join`` for threads).
        blocked: of those, the ones that had to block.
        timeouts: the ones that returned because the timeout expired.
        total_wait: seconds spent blocked.
        max_wait: the longest single block.
        waiters: threads blocked in it now.
    """

    kind: str
    name: str
    waits: int
    blocked: int
    timeouts: int
    total_wait: float
    max_wait: float
    waiters: int


@dataclasses.dataclass(frozen=True)
class ConditionStatistics(WaitStatistics):
    """What a ``Condition`` has seen: its waits, its notifies, and its lock.

    Attributes:
        notifies: calls to ``notify``/``notify_all`` that woke at least one waiter.
        lock: the statistics of the underlying lock when it is traced, else ``None``.
    """

    notifies: int = 0
    lock: Optional[LockStatistics] = None
