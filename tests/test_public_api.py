"""The public surface: exactly these names, and a complete drop-in threading module."""

from __future__ import annotations

import threading

import threadtrace
import threadtrace.threading as tt_threading

#: The drop-in classes, as threading names them.
CLASSES = (
    "Lock",
    "RLock",
    "Condition",
    "Semaphore",
    "BoundedSemaphore",
    "Event",
    "Barrier",
    "Thread",
    "Timer",
)


def test_exported_members_are_exactly_these() -> None:
    assert threadtrace.__all__ == sorted(threadtrace.__all__)
    assert threadtrace.__all__ == [
        "Barrier",
        "BoundedSemaphore",
        "Condition",
        "ConditionStatistics",
        "Config",
        "ConfigurationError",
        "ContentionReport",
        "DeadlockError",
        "Event",
        "Lock",
        "LockStatistics",
        "PatchHandle",
        "RLock",
        "Semaphore",
        "Thread",
        "Timer",
        "WaitStatistics",
        "__version__",
        "configure",
        "current_config",
        "is_patched",
        "local",
        "patch",
        "report",
        "shutdown",
        "unpatch",
    ]
    for name in threadtrace.__all__:
        assert hasattr(threadtrace, name), name


def test_the_drop_in_module_has_everything_threading_exports() -> None:
    missing = [name for name in threading.__all__ if not hasattr(tt_threading, name)]
    assert missing == []
    assert sorted(set(threading.__all__) - set(tt_threading.__all__)) == []
    for name in CLASSES:
        assert getattr(tt_threading, name) is getattr(threadtrace, name), name
    for name in ("current_thread", "enumerate", "active_count", "main_thread", "get_ident",
                 "get_native_id", "excepthook", "settrace", "setprofile", "stack_size",
                 "TIMEOUT_MAX", "currentThread", "activeCount", "BrokenBarrierError", "local"):  # fmt: skip
        assert getattr(tt_threading, name) is getattr(threading, name), name


def test_the_drop_in_module_falls_back_to_threading_for_private_names() -> None:
    assert tt_threading._shutdown is threading._shutdown  # type: ignore[attr-defined]
    assert tt_threading._active is threading._active  # type: ignore[attr-defined]


def test_a_program_written_against_the_drop_in_module_runs() -> None:
    threading_ = tt_threading
    results: list[int] = []
    lock = threading_.Lock()
    done = threading_.Event()

    def work(n: int) -> None:
        with lock:
            results.append(n)
        if len(results) == 4:
            done.set()

    workers = [threading_.Thread(target=work, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    assert done.wait(10)
    for w in workers:
        w.join(10)
    assert sorted(results) == [0, 1, 2, 3]
    assert threading_.current_thread() is threading.main_thread()
    assert isinstance(workers[0], threading.Thread)


def test_every_public_class_and_function_says_it_lives_in_threadtrace() -> None:
    for name in threadtrace.__all__:
        obj = getattr(threadtrace, name)
        if name in ("__version__", "local"):  # a string; threading's own local
            continue
        assert obj.__module__ == "threadtrace", name
