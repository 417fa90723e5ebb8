"""Thread pools seen from outside: their workers, their queued tasks, the task a worker runs.

A task that waits for the result of another task of its own pool needs a
free worker.  When every worker is busy doing the same, the queued tasks
can never start: pool starvation, a deadlock that involves no lock.  To see
it, the watchdog needs, for a future being waited on, the pool it is queued
on and that pool's workers, or the worker running it.

threadtrace does not wrap ``ThreadPoolExecutor``; it finds each pool through
its worker threads, whose target is ``concurrent.futures.thread._worker``
with ``(executor_reference, work_queue, ...)`` for arguments (3.9 to 3.13).
The work queue is a C ``SimpleQueue``, which has no way to look inside; its
items are what the garbage collector sees it refer to (on 3.9 to 3.12 a
list holding them, on 3.13 the items themselves).  All of this only when a
thread has waited on a future long enough to matter, from the watchdog's
thread.
"""

from __future__ import annotations

import concurrent.futures.thread as _futures_thread
import gc
from types import FrameType
from typing import Any, Optional

from .._support import originals as _originals


class Pool:
    """One ``ThreadPoolExecutor``: its queue and the idents of its live workers."""

    __slots__ = ("executor", "queue", "workers")

    def __init__(self, executor: Any, queue: Any) -> None:
        self.executor = executor
        self.queue = queue
        self.workers: list[int] = []

    @property
    def name(self) -> str:
        """The pool's name: that of its own lock (named after the line that made the pool)."""
        lock = getattr(self.executor, "_shutdown_lock", None)
        return str(getattr(lock, "name", None) or "ThreadPoolExecutor")

    @property
    def full(self) -> bool:
        """Whether it has all the workers it may have (a new task starts no new worker)."""
        most = getattr(self.executor, "_max_workers", None)
        return most is not None and len(self.workers) >= most

    def queued(self) -> list[Any]:
        """The work items waiting in its queue, oldest first."""
        items: list[Any] = []
        for referent in gc.get_referents(self.queue):
            if isinstance(referent, list):  # 3.9 to 3.12: the queue's own list
                items.extend(item for item in referent if _is_work_item(item))
            elif _is_work_item(referent):  # 3.13: the items
                items.append(referent)
        return items


def current_pools() -> list[Pool]:
    """Every pool with a live worker, found through the workers."""
    pools: dict[int, Pool] = {}
    for thread in list(_originals._active.values()):
        if getattr(thread, "_target", None) is not _futures_thread._worker:
            continue
        args = getattr(thread, "_args", None)
        if not args or len(args) < 2 or thread.ident is None:
            continue
        executor = args[0]() if callable(args[0]) else None
        pool = pools.get(id(args[1]))
        if pool is None:
            pool = pools[id(args[1])] = Pool(executor, args[1])
        pool.workers.append(thread.ident)
    return list(pools.values())


def queued_on(future: Any, pools: list[Pool]) -> Optional[tuple[Pool, Any]]:
    """The pool ``future`` waits in the queue of, and its work item."""
    for pool in pools:
        for item in pool.queued():
            if item.future is future:
                return pool, item
    return None


def running_item(frame: Optional[FrameType]) -> Optional[Any]:
    """The work item a worker thread is running, from its frames."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "run" and frame.f_globals.get("__name__") == _futures_thread.__name__:
            item = frame.f_locals.get("self")
            if _is_work_item(item):
                return item
        frame = frame.f_back
    return None


def task_name(item: Any) -> str:
    """What a work item runs: ``fetch_fragment``."""
    function = getattr(item, "fn", None)
    return str(getattr(function, "__qualname__", None) or getattr(function, "__name__", "a task"))


def _is_work_item(item: Any) -> bool:
    return isinstance(item, _originals.WorkItem)  # patch()'s subclass included
