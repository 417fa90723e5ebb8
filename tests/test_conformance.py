"""One behaviour, three implementations: threading, threadtrace, patched threading.

Every test body here runs against the stdlib (the reference), against
threadtrace's classes used directly, and against ``threading`` while
patched, and must see exactly the same results, exceptions and messages.
"""

from __future__ import annotations

import abc
import copy
import inspect
import pickle
import re
import threading
import types
from typing import Any, Iterator, Optional

import pytest

import threadtrace
from threadtrace._support import originals as _originals
from threadtrace.testing import wait_for_waiters, wait_until

NAMES = (
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


@pytest.fixture(params=["threading", "threadtrace", "patched"])
def impl(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "threading":
        yield threading
    elif request.param == "threadtrace":
        yield types.SimpleNamespace(**{name: getattr(threadtrace, name) for name in NAMES})
    else:
        with threadtrace.patch(exporters=()):
            yield types.SimpleNamespace(**{name: getattr(threading, name) for name in NAMES})


def raises_exactly(exc: type[BaseException], message: str) -> Any:
    return pytest.raises(exc, match=f"^{re.escape(message)}$")


def test_lock_acquire_release_and_locked(impl: Any) -> None:
    lock = impl.Lock()
    assert lock.locked() is False
    assert lock.acquire() is True
    assert lock.locked() is True
    assert lock.acquire(False) is False
    assert lock.acquire(True, 0) is False
    assert lock.acquire(timeout=0.001) is False
    lock.release()
    assert lock.locked() is False
    with lock as entered:
        assert entered is True
        assert lock.locked()
    assert not lock.locked()


def outcome(call: Any) -> tuple[str, str]:
    try:
        return ("returned", repr(call()))
    except Exception as error:
        return (type(error).__name__, str(error))


@pytest.mark.parametrize(
    "args",
    [(False, 1), (True, -5), (True, 1e100), (True, "soon"), (True, None), ("yes", -1)],
    ids=["nonblocking-timeout", "negative", "huge", "str", "none", "truthy-blocking"],
)
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_acquire_argument_errors_match_the_stdlib(
    impl: Any, kind: str, args: tuple[Any, Any]
) -> None:
    """Same exception type and message as the stdlib's lock, on this very Python."""
    reference, ours = getattr(_originals, kind)(), getattr(impl, kind)()
    assert outcome(lambda: ours.acquire(*args)) == outcome(lambda: reference.acquire(*args))
    assert (
        repr(ours).split(" object")[1].split(" at ")[0]
        == repr(reference).split(" object")[1].split(" at ")[0]
    )


def test_lock_errors(impl: Any) -> None:
    lock = impl.Lock()
    with raises_exactly(RuntimeError, "release unlocked lock"):
        lock.release()
    assert not lock.locked()


def test_a_lock_may_be_released_by_another_thread(impl: Any) -> None:
    lock = impl.Lock()
    lock.acquire()
    other = threading.Thread(target=lock.release)
    other.start()
    other.join(10)
    assert not lock.locked()


def test_lock_repr_shape(impl: Any) -> None:
    lock = impl.Lock()
    assert re.fullmatch(r"<unlocked [\w.]+ object at 0x[0-9a-f]+>", repr(lock))
    with lock:
        assert re.fullmatch(r"<locked [\w.]+ object at 0x[0-9a-f]+>", repr(lock))


def test_rlock_reentrancy_and_ownership(impl: Any) -> None:
    lock = impl.RLock()
    assert lock.acquire()
    assert lock.acquire(False)
    assert re.fullmatch(
        rf"<locked [\w.]+ object owner={threading.get_ident()} count=2 at 0x[0-9a-f]+>", repr(lock)
    )
    assert lock._is_owned()
    errors: list[str] = []

    def foreign_release() -> None:
        try:
            lock.release()
        except RuntimeError as error:
            errors.append(str(error))
        errors.append(str(lock.acquire(False)))

    other = threading.Thread(target=foreign_release)
    other.start()
    other.join(10)
    assert errors == ["cannot release un-acquired lock", "False"]
    lock.release()
    lock.release()
    assert not lock._is_owned()
    assert re.fullmatch(r"<unlocked [\w.]+ object owner=0 count=0 at 0x[0-9a-f]+>", repr(lock))
    with raises_exactly(RuntimeError, "cannot release un-acquired lock"):
        lock.release()


def test_rlock_release_save_and_acquire_restore(impl: Any) -> None:
    """The private hooks Condition relies on."""
    lock = impl.RLock()
    with raises_exactly(RuntimeError, "cannot release un-acquired lock"):
        lock._release_save()
    lock.acquire()
    lock.acquire()
    state = lock._release_save()
    assert not lock._is_owned()
    other_got_it: list[bool] = []
    other = threading.Thread(
        target=lambda: other_got_it.append(lock.acquire(False) and (lock.release() or True))
    )
    other.start()
    other.join(10)
    assert other_got_it == [True]
    lock._acquire_restore(state)
    assert lock._is_owned()
    lock.release()
    assert lock._is_owned()
    lock.release()
    assert not lock._is_owned()


def test_condition_wait_notify_and_errors(impl: Any) -> None:
    cond = impl.Condition()
    with raises_exactly(RuntimeError, "cannot wait on un-acquired lock"):
        cond.wait(0)
    with raises_exactly(RuntimeError, "cannot notify on un-acquired lock"):
        cond.notify()
    with cond:
        assert cond.wait(0) is False
        assert cond.wait(0.001) is False
        assert cond.wait_for(lambda: 42, timeout=0) == 42
        assert cond.wait_for(lambda: 0, timeout=0.001) == 0
    woke: list[bool] = []

    def waiter() -> None:
        with cond:
            woke.append(cond.wait(30))

    workers = [threading.Thread(target=waiter) for _ in range(3)]
    for w in workers:
        w.start()
    wait_until(lambda: len(cond._waiters) == 3, what="three waiters")
    with cond:
        cond.notify()
    wait_until(lambda: len(woke) == 1, what="one woken")
    with cond:
        cond.notify_all()
    for w in workers:
        w.join(10)
    assert woke == [True, True, True]


def test_condition_over_a_plain_lock(impl: Any) -> None:
    lock = impl.Lock()
    cond = impl.Condition(lock)
    with cond:
        assert lock.locked()
        assert cond.wait(0) is False
        assert lock.locked()
    assert not lock.locked()


def test_a_conditions_own_is_owned_over_a_plain_lock_is_kept(impl: Any) -> None:
    """threading binds a lock's _is_owned only when the lock has one (an RLock)."""
    calls = []

    class Audited(impl.Condition):  # type: ignore[misc,name-defined]
        def _is_owned(self) -> bool:
            calls.append("asked")
            return True

    cond = Audited(impl.Lock())
    cond.notify()  # not held: only the subclass's answer lets it through
    assert calls  # (threadtrace's notify asks once more than threading's)


WAIT_KINDS = ("Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier")


@pytest.mark.parametrize("kind", WAIT_KINDS)
def test_a_subclass_with_an_init_of_its_own_takes_its_own_arguments(impl: Any, kind: str) -> None:
    """threading's classes take whatever their subclass's __init__ does (their
    __new__ is object's), and any attribute, a ``name`` too."""
    base = getattr(impl, kind)

    class Job(base):  # type: ignore[misc,valid-type]
        def __init__(self, title: str, *, name: str, retries: int = 0) -> None:
            if kind == "Barrier":
                super().__init__(1)
            else:
                super().__init__()
            self.title, self.name, self.retries = title, name, retries

    job = Job("nightly", name="job-7", retries=2)
    assert (job.title, job.name, job.retries) == ("nightly", "job-7", 2)
    assert isinstance(job, base)
    job.name = "job-8"
    assert job.name == "job-8"
    if impl is not threading:
        assert job.statistics().name == "job-8"  # reported under the program's name for it
    with pytest.raises(TypeError):
        Job()


def test_threadings_own_bounded_semaphores_are_made_while_patched() -> None:
    """threading's BoundedSemaphore.__init__ (3.9-3.12) calls Semaphore.__init__
    through its module's global, which patch() swaps: for the one threading
    hands an excluded caller, and for a program's subclass made before patch()."""
    assert threading.BoundedSemaphore is _originals.BoundedSemaphore

    class MadeBefore(threading.BoundedSemaphore):
        pass

    with threadtrace.patch(exporters=()):
        for semaphore in (_originals.BoundedSemaphore(2), MadeBefore(2)):
            assert semaphore.acquire(timeout=0)
            semaphore.release()
            with raises_exactly(ValueError, "Semaphore released too many times"):
                semaphore.release()


PICKLED_KINDS = ("Lock", "RLock", *WAIT_KINDS)
COPIERS = {"pickle": pickle.dumps, "deepcopy": copy.deepcopy, "copy": copy.copy}


def _what_threading_does(kind: str, how: str) -> Optional[str]:
    """The TypeError's message, or None where it works."""
    try:
        COPIERS[how](getattr(threading, kind)(*((2,) if kind == "Barrier" else ())))
    except TypeError as error:
        return str(error)
    return None


#: Read at import, unpatched: patched, pickle would not find threading's
#: classes under their names (a limitation of patching, docs/limitations.md).
THREADINGS_COPIES = {(k, h): _what_threading_does(k, h) for k in PICKLED_KINDS for h in COPIERS}


@pytest.mark.parametrize("kind", PICKLED_KINDS)
@pytest.mark.parametrize("how", list(COPIERS))
def test_pickling_and_copying_fail_or_work_as_threadings_do(impl: Any, kind: str, how: str) -> None:
    """People search for the message: "cannot pickle '_thread.lock' object"."""
    made = getattr(impl, kind)(*((2,) if kind == "Barrier" else ()))
    expected = THREADINGS_COPIES[kind, how]
    if (
        how == "pickle"
        and impl is not threading
        and threading.Condition is not _originals.Condition
    ):
        if kind in ("Semaphore", "BoundedSemaphore", "Event", "Barrier"):
            # It holds a Condition threading made, whose class pickle looks
            # up by name while patched (docs/limitations.md).
            with pytest.raises(pickle.PicklingError, match=re.escape("threading.Condition")):
                COPIERS[how](made)
            return
    if expected is None:
        assert isinstance(COPIERS[how](made), getattr(impl, kind))
    else:
        with raises_exactly(TypeError, expected):
            COPIERS[how](made)


def _abstract_job(base: type) -> Any:
    class Job(base, abc.ABC):  # type: ignore[misc,valid-type]
        @abc.abstractmethod
        def run(self) -> int: ...

    return Job


@pytest.mark.parametrize("kind", WAIT_KINDS)
def test_a_primitive_mixes_with_an_abstract_base(impl: Any, kind: str) -> None:
    """threading's classes are plain types: a class may add abc.ABC to them."""
    args = (1,) if kind == "Barrier" else ()
    with pytest.raises(TypeError) as refused:
        _abstract_job(getattr(_originals, kind))(*args)
    job = _abstract_job(getattr(impl, kind))

    class Nightly(job):  # type: ignore[misc,valid-type]
        def run(self) -> int:
            return 7

    with raises_exactly(TypeError, str(refused.value)):
        job(*args)
    nightly = Nightly(*args)
    assert nightly.run() == 7 and isinstance(nightly, getattr(impl, kind))


@pytest.mark.parametrize(
    ("kind", "args", "kwargs"),
    [
        ("Condition", (None, 2), {}),
        ("Condition", (), {"fair": True}),
        ("Semaphore", (1, 2), {}),
        ("BoundedSemaphore", (), {"initial": 2}),
        ("Event", (1,), {}),
        ("Barrier", (), {}),
        ("Barrier", (2, None, None, 4), {}),
    ],
)
def test_wrong_constructor_arguments_raise_threadings_error(
    impl: Any, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError) as expected:
        getattr(threading, kind)(*args, **kwargs)
    with raises_exactly(TypeError, str(expected.value)):
        getattr(impl, kind)(*args, **kwargs)


def test_a_condition_over_a_plain_lock_is_owned_while_any_thread_holds_it(impl: Any) -> None:
    """A plain lock has no owner: threading's Condition counts it owned while it
    is held by anyone, and its notify() from another thread goes through."""
    lock = impl.Lock()
    cond = impl.Condition(lock)
    assert cond._is_owned() is False
    with raises_exactly(RuntimeError, "cannot notify on un-acquired lock"):
        cond.notify()
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        assert cond._is_owned() is True
        cond.notify()  # nobody waits: nothing happens, as in threading
        if impl is not threading:
            # Asked of the lock's state, not tried: no acquisition counted.
            assert lock.statistics().acquisitions == 1
    finally:
        done.set()
        holder.join(10)
    assert cond._is_owned() is False
    if impl is not threading:
        assert lock.statistics().acquisitions == 1


def test_semaphore_counts_and_errors(impl: Any) -> None:
    with raises_exactly(ValueError, "semaphore initial value must be >= 0"):
        impl.Semaphore(-1)
    sem = impl.Semaphore(2)
    assert sem.acquire() and sem.acquire(blocking=False)
    assert sem.acquire(False) is False
    assert sem.acquire(timeout=0.001) is False
    assert sem.acquire(timeout=0) is False
    assert sem.acquire(True, -1) is False  # a timeout <= 0 is a try
    with raises_exactly(ValueError, "can't specify timeout for non-blocking acquire"):
        sem.acquire(False, 1)
    with raises_exactly(ValueError, "n must be one or more"):
        sem.release(0)
    sem.release(2)
    with sem:
        pass
    assert sem._value == 2
    assert sem.acquire(timeout=0) is True and sem.acquire(True, -5) is True
    assert sem._value == 0
    sem.release(2)


def test_bounded_semaphore_rejects_over_release(impl: Any) -> None:
    sem = impl.BoundedSemaphore(1)
    with raises_exactly(ValueError, "Semaphore released too many times"):
        sem.release()
    sem.acquire()
    sem.release()
    assert isinstance(sem, threading.BoundedSemaphore) or isinstance(
        sem, threadtrace.BoundedSemaphore
    )


def test_a_blocked_semaphore_is_released_by_another_thread(impl: Any) -> None:
    sem = impl.Semaphore(0)
    got: list[bool] = []
    taker = threading.Thread(target=lambda: got.append(sem.acquire(timeout=30)))
    taker.start()
    wait_until(lambda: len(sem._cond._waiters) == 1, what="a blocked acquire")
    sem.release()
    taker.join(10)
    assert got == [True]


def test_event(impl: Any) -> None:
    event = impl.Event()
    assert event.is_set() is False
    assert event.wait(0) is False
    assert event.wait(0.001) is False
    event.set()
    assert event.wait() is True
    assert event.wait(0) is True
    event.clear()
    assert event.wait(timeout=0.001) is False
    seen: list[bool] = []
    waiter = threading.Thread(target=lambda: seen.append(event.wait(30)))
    waiter.start()
    wait_until(lambda: len(event._cond._waiters) == 1, what="a waiter")
    event.set()
    waiter.join(10)
    assert seen == [True]


def test_barrier(impl: Any) -> None:
    barrier = impl.Barrier(3, timeout=30)
    assert (barrier.parties, barrier.n_waiting, barrier.broken) == (3, 0, False)
    indices: list[int] = []
    workers = [threading.Thread(target=lambda: indices.append(barrier.wait())) for _ in range(2)]
    for w in workers:
        w.start()
    wait_until(lambda: barrier.n_waiting == 2, what="two at the barrier")
    indices.append(barrier.wait())
    for w in workers:
        w.join(10)
    assert sorted(indices) == [0, 1, 2]
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.001)
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken


def test_barrier_action_failure_breaks_it(impl: Any) -> None:
    def action() -> None:
        raise KeyError("boom")

    barrier = impl.Barrier(1, action=action)
    with pytest.raises(KeyError):
        barrier.wait()
    assert barrier.broken


def test_lock_is_no_base_class(impl: Any) -> None:
    """threading.Lock never was one: a function before 3.13, a final type since."""
    with pytest.raises(TypeError):

        class MyLock(impl.Lock):  # type: ignore[name-defined,misc]
            pass


@pytest.mark.parametrize("kind", ["Condition", "Event", "Semaphore"])
def test_a_subclass_reaches_a_stdlib_subclass_it_mixes_in_through_super(kind: str) -> None:
    """threadtrace calls threading's methods directly only for exactly its own classes.

    In ``class Both(threadtrace.X, Mixin)`` with ``Mixin(threading.X)``, the
    MRO puts ``Mixin`` between threadtrace's class and threading's: what
    threadtrace's ``__init__`` (and a ``Condition``'s ``notify``, an
    ``Event``'s ``set`` and ``clear``) call must
    be ``Mixin``'s, as ``super()`` finds it.
    """
    calls: list[str] = []

    class Mixin(getattr(_originals, kind)):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append("__init__")
            super().__init__(*args, **kwargs)

        def notify(self, n: int = 1) -> None:
            calls.append("notify")
            super().notify(n)

        def set(self) -> None:
            calls.append("set")
            super().set()

        def clear(self) -> None:
            calls.append("clear")
            super().clear()

    class Both(getattr(threadtrace, kind), Mixin):  # type: ignore[misc]
        pass

    both = Both()
    assert calls == ["__init__"] and isinstance(both, Mixin)
    if kind == "Condition":
        with both:
            both.notify()
        assert calls == ["__init__", "notify"]
    elif kind == "Event":
        both.set()
        both.clear()
        assert calls == ["__init__", "set", "clear"]


def test_thread_subclass_with_its_own_init_and_run(impl: Any) -> None:
    class Worker(impl.Thread):  # type: ignore[name-defined,misc]
        def __init__(self, n: int) -> None:
            super().__init__(name=f"worker-{n}", daemon=True)
            self.n = n
            self.result = 0

        def run(self) -> None:
            self.result = self.n * 2

    worker = Worker(21)
    assert isinstance(worker, threading.Thread)
    assert not worker.is_alive()
    with raises_exactly(RuntimeError, "cannot join thread before it is started"):
        worker.join()
    worker.start()
    with raises_exactly(RuntimeError, "threads can only be started once"):
        worker.start()
    worker.join(10)
    assert (worker.result, worker.name, worker.daemon, worker.is_alive()) == (
        42,
        "worker-21",
        True,
        False,
    )
    assert re.fullmatch(r"<Worker\(worker-21, stopped daemon \d+\)>", repr(worker))


def test_thread_join_timeout_and_self_join(impl: Any) -> None:
    go = threading.Event()
    errors: list[str] = []

    def body() -> None:
        try:
            threading.current_thread().join()
        except RuntimeError as error:
            errors.append(str(error))
        go.wait(30)

    thread = impl.Thread(target=body)
    thread.start()
    assert thread.join(0.001) is None
    assert thread.is_alive()
    go.set()
    thread.join(10)
    assert not thread.is_alive()
    assert errors == ["cannot join current thread"]


#: threading's own, read before any test patches it: the reference messages.
_START, _JOIN = threading.Thread.start, threading.Thread.join


def _refusal(function: Any, *args: Any, **kwargs: Any) -> str:
    """The TypeError ``function`` raises for these arguments (3.9 names no class)."""
    with pytest.raises(TypeError) as refused:
        function(*args, **kwargs)
    return str(refused.value)


@pytest.mark.parametrize("kind", ["Thread", "Timer"])
def test_thread_start_and_join_refuse_arguments_as_threading_does(impl: Any, kind: str) -> None:
    cls = getattr(impl, kind)
    thread = cls(0, int) if kind == "Timer" else cls(target=int)
    with raises_exactly(TypeError, _refusal(_START, None, 1)):
        thread.start(1)
    with raises_exactly(TypeError, _refusal(_START)):
        cls.start()
    thread.start()
    with raises_exactly(TypeError, _refusal(_JOIN, None, 1, 2)):
        thread.join(1, 2)
    with raises_exactly(TypeError, _refusal(_JOIN, None, wait=1)):
        thread.join(wait=1)
    with raises_exactly(TypeError, _refusal(_JOIN, None, 1, timeout=2)):
        thread.join(1, timeout=2)
    with raises_exactly(TypeError, _refusal(_JOIN)):
        cls.join()
    assert thread.join(timeout=10) is None
    assert cls.join(thread, 10) is None
    assert str(inspect.signature(cls.join)) == "(self, timeout=None)"
    assert str(inspect.signature(thread.start)) == "()"


def test_timer_fires_and_cancels(impl: Any) -> None:
    fired = threading.Event()
    timer = impl.Timer(0.001, fired.set)
    assert isinstance(timer, threading.Thread)
    timer.start()
    assert fired.wait(10)
    timer.join(10)
    never: list[int] = []
    cancelled = impl.Timer(30, never.append, args=(1,))
    cancelled.start()
    cancelled.cancel()
    cancelled.join(10)
    assert never == []


def test_waiting_threads_are_visible_in_statistics() -> None:
    """threadtrace only: statistics() shows holders and waiters."""
    lock = threadtrace.Lock(name="visible")
    lock.acquire()
    taker = threading.Thread(target=lambda: (lock.acquire(), lock.release()), name="taker")
    taker.start()
    wait_for_waiters(lock, 1)
    stats = lock.statistics()
    assert (stats.holders, stats.holder_names, stats.waiters) == (
        (threading.get_ident(),),
        ("MainThread",),
        1,
    )
    lock.release()
    taker.join(10)
    stats = lock.statistics()
    assert (stats.acquisitions, stats.contended, stats.holders, stats.waiters) == (2, 1, (), 0)
    assert stats.total_wait > 0 and stats.max_wait == stats.total_wait


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {"x": 1}), ((True, -1, 3), {}), ((True,), {"blocking": False}), ((), {"timeout": 0})],
    ids=["unknown-keyword", "too-many", "given-twice", "timeout-keyword"],
)
def test_acquire_keyword_errors_match_the_stdlib(
    impl: Any, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    reference, ours = getattr(_originals, kind)(), getattr(impl, kind)()
    assert outcome(lambda: ours.acquire(*args, **kwargs)) == outcome(
        lambda: reference.acquire(*args, **kwargs)
    )
