"""CPython's own conformance tests for the threading primitives, run on threadtrace.

``test.lock_tests`` is the suite ``Lib/test/test_threading.py`` runs against
``threading``'s primitives.  It is wired up here twice, the way
test_threading.py wires it (``ConditionAsRLockTests`` and
``CRLockTests.test_signature`` included):

* against threadtrace's classes directly (the ``Traced*`` classes), and
* against the ``threading`` module while :func:`threadtrace.patch` is active
  (the ``Patched*`` classes): the factories look ``threading.<Name>`` up at
  call time, so they get whatever ``patch()`` installed, and ``setUp`` checks
  that it is threadtrace's class, so these can never quietly test the stdlib.

Every wait and hold is recorded (into memory) while they run: thresholds 0
and every acquisition sampled, so threadtrace's slow paths run inside
CPython's tests too.  After each test, no worker thread may have been
registered with ``threading`` (see :class:`_NoThreadObjectLeak`).

The module is skipped when the interpreter ships without the ``test`` package
(some distribution builds strip it).
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from typing import Any, Callable, Iterator

import pytest

import threadtrace
from threadtrace.testing import Capture, capture

try:
    from test import lock_tests
except ImportError as exc:  # the interpreter has no (or a stripped) test package
    pytest.skip(f"CPython's test.lock_tests is not importable: {exc}", allow_module_level=True)

# Only ``lock_tests`` itself is bound here, never its classes: pytest collects
# every unittest.TestCase in the module namespace, and the bases have no factory.

#: The names ``patch()`` replaces in ``threading``, and what it puts there.
PRIMITIVES = {
    "Lock": threadtrace.Lock,
    "RLock": threadtrace.RLock,
    "Condition": threadtrace.Condition,
    "Semaphore": threadtrace.Semaphore,
    "BoundedSemaphore": threadtrace.BoundedSemaphore,
    "Event": threadtrace.Event,
    "Barrier": threadtrace.Barrier,
}

#: Whether the stdlib ``threading.RLock`` warns when given arguments (gh-102029,
#: 3.13+): CPython's ``CRLockTests.test_signature`` checks that only there.
with warnings.catch_warnings(record=True) as _log:
    warnings.simplefilter("always")
    threading.RLock(1)
STDLIB_RLOCK_WARNS_ON_ARGS = any(issubclass(w.category, DeprecationWarning) for w in _log)
del _log

#: Every slow path on: each wait that blocks is a span, every acquisition's hold is measured.
RECORD_EVERYTHING = {"wait_threshold": 0, "hold_threshold": 0, "sample_every": 1}


@pytest.fixture(autouse=True, scope="module")
def _record_everything() -> Iterator[Capture]:
    """Record every wait and hold into memory; threadtrace's state is restored afterwards.

    Not ``configure()`` and back: restoring ``exporters=("console",)`` that way
    builds console exporters on pytest's captured stderr, closed by exit time.
    """
    with capture(patch=False, exporters=(), **RECORD_EVERYTHING) as recorded:
        yield recorded


def _late(name: str) -> Callable[..., Any]:
    """A factory that looks ``threading.<name>`` up at call time, as patched code does."""

    def factory(*args: Any, **kwargs: Any) -> Any:
        return getattr(threading, name)(*args, **kwargs)

    factory.__name__ = factory.__qualname__ = f"threading_{name}"
    return factory


# -- checks and mirrors shared by both flavours ------------------------------------------------


def _dummy_threads() -> set[Any]:
    return {t for t in threading.enumerate() if isinstance(t, threading._DummyThread)}


def _forget_dead_dummy_threads() -> None:
    """Unregister the ``_DummyThread`` objects whose threads have ended.

    Thread ids are reused: a worker whose id already has a (stale) dummy
    registered, left by an earlier test or test file, gets that one back from
    ``current_thread()`` instead of a new one, which would hide a leak.
    """
    alive = sys._current_frames().keys()
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        active = threading._active  # type: ignore[attr-defined]
        for ident, thread in list(active.items()):
            if isinstance(thread, threading._DummyThread) and ident not in alive:
                del active[ident]


class _NoThreadObjectLeak:
    """No ``threading.Thread`` object may be left behind for the suites' worker threads.

    lock_tests runs its workers with ``_thread.start_new_thread``: threads that
    ``threading`` does not know.  The stdlib primitives never register them;
    anything that calls ``threading.current_thread()`` in one does, with a
    ``_DummyThread`` that stays in ``threading.enumerate()`` for good on
    3.9-3.12 (3.13 drops it when the thread ends).  That is the requirement of
    lock_tests' own ``test_thread_leak`` ("The lock shouldn't leak a Thread
    instance when used from a foreign (non-threading) thread"), and 3.9's
    ``threading_cleanup`` flagged it after every test ("Dangling thread");
    here it is checked after every test, on every version, as a failure.
    The stdlib primitives pass this check on 3.9, 3.11 and 3.13.
    """

    _tt_dummies_before: set[Any]

    def setUp(self) -> None:
        _forget_dead_dummy_threads()
        self._tt_dummies_before = _dummy_threads()
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        leaked: set[Any] = set()
        for _ in range(100):  # 3.13 unregisters a dummy as its thread ends: give it a moment
            leaked = _dummy_threads() - self._tt_dummies_before
            if not leaked:
                return
            time.sleep(0.01)
        _forget_dead_dummy_threads()  # the workers have ended; don't leave their dummies behind
        raise AssertionError(
            f"threading.current_thread() was called in {len(leaked)} foreign worker "
            f"thread(s), registering a Thread object for each: {sorted(map(repr, leaked))[:2]}"
        )


class _ConditionAsRLock:
    """test_threading.ConditionAsRLockTests: a Condition exports its RLock's API."""

    if hasattr(lock_tests.RLockTests, "test_recursion_count"):  # 3.11+

        def test_recursion_count(self) -> None:
            # As in CPython's ConditionAsRLockTests: threading.Condition has no
            # _recursion_count() either, so there is nothing to conform to.
            self.skipTest("Condition does not expose _recursion_count()")  # type: ignore[attr-defined]


class _RLockSignature:
    """test_threading.CRLockTests.test_signature (gh-102029), where threading.RLock warns."""

    def _rlock_class(self) -> Any:
        raise NotImplementedError

    if STDLIB_RLOCK_WARNS_ON_ARGS:

        def test_signature(self) -> None:
            case: Any = self
            rlock = self._rlock_class()
            # "always": under pytest's "error" filter a warning would raise, not be recorded.
            with warnings.catch_warnings(record=True) as warnings_log:
                warnings.simplefilter("always")
                rlock()
            case.assertEqual([str(w.message) for w in warnings_log], [])

            arg_types = [
                ((1,), {}),
                ((), {"a": 1}),
                ((1, 2), {"a": 1}),
            ]
            for args, kwargs in arg_types:
                with case.subTest(args=args, kwargs=kwargs), case.assertWarns(DeprecationWarning):
                    rlock(*args, **kwargs)

            # Subtypes with custom `__init__` are allowed (but, not recommended):
            class CustomRLock(rlock):  # type: ignore[misc, valid-type]
                def __init__(self, a: Any, *, b: Any) -> None:
                    super().__init__()

            with warnings.catch_warnings(record=True) as warnings_log:
                warnings.simplefilter("always")
                CustomRLock(1, b=2)
            case.assertEqual([f"{w.filename}:{w.lineno}: {w.message}" for w in warnings_log], [])


# -- flavour (a): threadtrace's classes directly -------------------------------------------


class TracedLockTests(_NoThreadObjectLeak, lock_tests.LockTests):
    locktype = staticmethod(threadtrace.Lock)


class TracedRLockTests(_NoThreadObjectLeak, _RLockSignature, lock_tests.RLockTests):
    locktype = staticmethod(threadtrace.RLock)

    def _rlock_class(self) -> Any:
        return threadtrace.RLock


class TracedEventTests(_NoThreadObjectLeak, lock_tests.EventTests):
    eventtype = staticmethod(threadtrace.Event)


class TracedConditionAsRLockTests(_NoThreadObjectLeak, _ConditionAsRLock, lock_tests.RLockTests):
    locktype = staticmethod(threadtrace.Condition)


class TracedConditionTests(_NoThreadObjectLeak, lock_tests.ConditionTests):
    condtype = staticmethod(threadtrace.Condition)


class TracedSemaphoreTests(_NoThreadObjectLeak, lock_tests.SemaphoreTests):
    semtype = staticmethod(threadtrace.Semaphore)


class TracedBoundedSemaphoreTests(_NoThreadObjectLeak, lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(threadtrace.BoundedSemaphore)


class TracedBarrierTests(_NoThreadObjectLeak, lock_tests.BarrierTests):
    barriertype = staticmethod(threadtrace.Barrier)


# -- flavour (b): the threading module, patched ----------------------------------------------


class _UnderPatch:
    """Runs each test with ``threading`` patched, and proves the patch is in place."""

    _tt_handle: Any

    def setUp(self) -> None:
        case: Any = self
        case.assertFalse(threadtrace.is_patched(), "threading was left patched by an earlier test")
        self._tt_handle = threadtrace.patch(exporters=())
        try:
            for name, cls in PRIMITIVES.items():
                case.assertIs(getattr(threading, name), cls, f"threading.{name} is not patched")
            super().setUp()  # type: ignore[misc]  # BarrierTests builds its barrier here
        except BaseException:
            self._tt_handle.unpatch()  # tearDown does not run when setUp fails
            raise

    def tearDown(self) -> None:
        try:
            super().tearDown()  # type: ignore[misc]
        finally:
            self._tt_handle.unpatch()


class PatchedLockTests(_UnderPatch, _NoThreadObjectLeak, lock_tests.LockTests):
    locktype = staticmethod(_late("Lock"))


class PatchedRLockTests(_UnderPatch, _NoThreadObjectLeak, _RLockSignature, lock_tests.RLockTests):
    locktype = staticmethod(_late("RLock"))

    def _rlock_class(self) -> Any:
        return threading.RLock  # threadtrace.RLock while patched (setUp checked)


class PatchedEventTests(_UnderPatch, _NoThreadObjectLeak, lock_tests.EventTests):
    eventtype = staticmethod(_late("Event"))


class PatchedConditionAsRLockTests(
    _UnderPatch, _NoThreadObjectLeak, _ConditionAsRLock, lock_tests.RLockTests
):
    locktype = staticmethod(_late("Condition"))


class PatchedConditionTests(_UnderPatch, _NoThreadObjectLeak, lock_tests.ConditionTests):
    condtype = staticmethod(_late("Condition"))


class PatchedSemaphoreTests(_UnderPatch, _NoThreadObjectLeak, lock_tests.SemaphoreTests):
    semtype = staticmethod(_late("Semaphore"))


class PatchedBoundedSemaphoreTests(
    _UnderPatch, _NoThreadObjectLeak, lock_tests.BoundedSemaphoreTests
):
    semtype = staticmethod(_late("BoundedSemaphore"))


class PatchedBarrierTests(_UnderPatch, _NoThreadObjectLeak, lock_tests.BarrierTests):
    barriertype = staticmethod(_late("Barrier"))


# -- the suites above test what they claim to ------------------------------------------------

#: (primitive, flavour (a) factory, flavour (b) factory, constructor arguments), by suite.
FACTORIES = {
    "Lock": ("Lock", TracedLockTests.locktype, PatchedLockTests.locktype, ()),
    "RLock": ("RLock", TracedRLockTests.locktype, PatchedRLockTests.locktype, ()),
    "ConditionAsRLock": (
        "Condition",
        TracedConditionAsRLockTests.locktype,
        PatchedConditionAsRLockTests.locktype,
        (),
    ),
    "Condition": (
        "Condition",
        TracedConditionTests.condtype,
        PatchedConditionTests.condtype,
        (),
    ),
    "Semaphore": (
        "Semaphore",
        TracedSemaphoreTests.semtype,
        PatchedSemaphoreTests.semtype,
        (2,),
    ),
    "BoundedSemaphore": (
        "BoundedSemaphore",
        TracedBoundedSemaphoreTests.semtype,
        PatchedBoundedSemaphoreTests.semtype,
        (2,),
    ),
    "Event": ("Event", TracedEventTests.eventtype, PatchedEventTests.eventtype, ()),
    "Barrier": ("Barrier", TracedBarrierTests.barriertype, PatchedBarrierTests.barriertype, (2,)),
}


def _made_in_lock_tests(factory: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call ``factory`` from a frame whose module is ``test.lock_tests``.

    That is where the suites call their factories from, and the module of the
    calling frame decides whether threadtrace traces a new primitive at all.
    """
    namespace = {"__name__": lock_tests.__name__, "factory": factory, "args": args}
    return eval("factory(*args)", namespace)


@pytest.mark.parametrize("suite", list(FACTORIES))
def test_suites_get_traced_objects(suite: str) -> None:
    name, direct, late, args = FACTORIES[suite]
    cls = PRIMITIVES[name]
    assert type(direct(*args)) is cls
    assert type(_made_in_lock_tests(direct, args)) is cls

    assert not threadtrace.is_patched()
    with threadtrace.patch(exporters=()):
        assert getattr(threading, name) is cls
        assert type(getattr(threading, name)(*args)) is cls
        assert type(late(*args)) is cls
        assert type(_made_in_lock_tests(late, args)) is cls
    # Undone: the same factory reaches the stdlib again.
    assert getattr(threading, name) is not cls
    assert type(late(*args)) is not cls
