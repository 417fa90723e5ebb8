"""CPython's own conformance tests for the threading primitives, run on threadtrace.

``test.lock_tests`` is the suite ``Lib/test/test_threading.py`` runs against
``threading``'s primitives.  It is wired up here twice, the way
test_threading.py wires it:

* against threadtrace's classes directly (``Traced*`` classes), and
* against the ``threading`` module while :func:`threadtrace.patch` is active
  (``Patched*`` classes): the factories look ``threading.<Name>`` up at call
  time, so they get whatever ``patch()`` installed, and ``setUp`` checks that
  it really is threadtrace's class, so these can never quietly test the stdlib.

The module is skipped when the interpreter ships without the ``test`` package
(some distribution builds strip it).
"""

from __future__ import annotations

import threading
import unittest
import warnings
from typing import Any, Callable

import pytest

import threadtrace

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

#: Whether the stdlib ``threading.RLock`` warns when given arguments (gh-102029, 3.13+),
#: which CPython's CRLockTests.test_signature checks.
STDLIB_RLOCK_WARNS_ON_ARGS = False
with warnings.catch_warnings(record=True) as _log:
    warnings.simplefilter("always")
    threading.RLock(1)
    STDLIB_RLOCK_WARNS_ON_ARGS = any(issubclass(w.category, DeprecationWarning) for w in _log)
del _log


@pytest.fixture(autouse=True, scope="module")
def _no_exporters() -> Any:
    """Record (so the recording paths run) but export nowhere; restore afterwards."""
    before = threadtrace.current_config()
    threadtrace.configure(exporters=())
    yield
    threadtrace.configure(exporters=before.exporters)


def _late(name: str) -> Callable[..., Any]:
    """A factory that looks ``threading.<name>`` up at call time, as patched code does."""

    def factory(*args: Any, **kwargs: Any) -> Any:
        return getattr(threading, name)(*args, **kwargs)

    factory.__name__ = factory.__qualname__ = f"threading_{name}"
    return factory


# -- mirrors of test_threading.py's extras ---------------------------------------------------


class _ConditionAsRLock:
    """test_threading.ConditionAsRLockTests: a Condition exports its RLock's API."""

    if hasattr(lock_tests.RLockTests, "test_recursion_count"):  # 3.11+

        def test_recursion_count(self) -> None:
            # Verbatim from CPython's ConditionAsRLockTests: the stdlib Condition
            # does not expose it either, so there is nothing to conform to.
            self.skipTest("Condition does not expose _recursion_count()")  # type: ignore[attr-defined]


class _RLockSignature:
    """test_threading.CRLockTests.test_signature (gh-102029), on Pythons whose RLock warns."""

    def _rlock_class(self) -> Any:
        raise NotImplementedError

    if STDLIB_RLOCK_WARNS_ON_ARGS:

        def test_signature(self) -> None:
            case: Any = self
            rlock = self._rlock_class()
            with warnings.catch_warnings(record=True) as warnings_log:
                warnings.simplefilter("always")  # pytest's "error" filter would raise instead
                rlock()
            case.assertEqual(warnings_log, [])

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
            case.assertEqual(warnings_log, [])


# -- flavour (a): threadtrace's classes directly -------------------------------------------


class TracedLockTests(lock_tests.LockTests):
    locktype = staticmethod(threadtrace.Lock)


class TracedRLockTests(_RLockSignature, lock_tests.RLockTests):
    locktype = staticmethod(threadtrace.RLock)

    def _rlock_class(self) -> Any:
        return threadtrace.RLock


class TracedEventTests(lock_tests.EventTests):
    eventtype = staticmethod(threadtrace.Event)


class TracedConditionAsRLockTests(_ConditionAsRLock, lock_tests.RLockTests):
    locktype = staticmethod(threadtrace.Condition)


class TracedConditionTests(lock_tests.ConditionTests):
    condtype = staticmethod(threadtrace.Condition)


class TracedSemaphoreTests(lock_tests.SemaphoreTests):
    semtype = staticmethod(threadtrace.Semaphore)


class TracedBoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(threadtrace.BoundedSemaphore)


class TracedBarrierTests(lock_tests.BarrierTests):
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


class PatchedLockTests(_UnderPatch, lock_tests.LockTests):
    locktype = staticmethod(_late("Lock"))


class PatchedRLockTests(_UnderPatch, _RLockSignature, lock_tests.RLockTests):
    locktype = staticmethod(_late("RLock"))

    def _rlock_class(self) -> Any:
        return threading.RLock  # threadtrace.RLock while patched (setUp checked)


class PatchedEventTests(_UnderPatch, lock_tests.EventTests):
    eventtype = staticmethod(_late("Event"))


class PatchedConditionAsRLockTests(_UnderPatch, _ConditionAsRLock, lock_tests.RLockTests):
    locktype = staticmethod(_late("Condition"))


class PatchedConditionTests(_UnderPatch, lock_tests.ConditionTests):
    condtype = staticmethod(_late("Condition"))


class PatchedSemaphoreTests(_UnderPatch, lock_tests.SemaphoreTests):
    semtype = staticmethod(_late("Semaphore"))


class PatchedBoundedSemaphoreTests(_UnderPatch, lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(_late("BoundedSemaphore"))


class PatchedBarrierTests(_UnderPatch, lock_tests.BarrierTests):
    barriertype = staticmethod(_late("Barrier"))


# -- the suites above test what they claim to ------------------------------------------------

#: (primitive name, flavour (a) factory, flavour (b) factory, constructor arguments)
FACTORIES = [
    ("Lock", TracedLockTests.locktype, PatchedLockTests.locktype, ()),
    ("RLock", TracedRLockTests.locktype, PatchedRLockTests.locktype, ()),
    ("Condition", TracedConditionTests.condtype, PatchedConditionTests.condtype, ()),
    ("Condition", TracedConditionAsRLockTests.locktype, PatchedConditionAsRLockTests.locktype, ()),
    ("Semaphore", TracedSemaphoreTests.semtype, PatchedSemaphoreTests.semtype, (2,)),
    (
        "BoundedSemaphore",
        TracedBoundedSemaphoreTests.semtype,
        PatchedBoundedSemaphoreTests.semtype,
        (2,),
    ),
    ("Event", TracedEventTests.eventtype, PatchedEventTests.eventtype, ()),
    ("Barrier", TracedBarrierTests.barriertype, PatchedBarrierTests.barriertype, (2,)),
]


def _made_in_lock_tests(factory: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call ``factory`` from a frame whose module is ``test.lock_tests``.

    That is where the suites call their factories from, and the module of the
    calling frame is what decides whether a primitive is traced at all.
    """
    namespace = {"__name__": lock_tests.__name__, "factory": factory, "args": args}
    return eval("factory(*args)", namespace)  # noqa: S307 - a fixed expression


@pytest.mark.parametrize(("name", "direct", "late", "args"), FACTORIES)
def test_factories_make_traced_objects(
    name: str, direct: Callable[..., Any], late: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    cls = PRIMITIVES[name]
    assert type(direct(*args)) is cls
    assert type(_made_in_lock_tests(direct, args)) is cls

    assert not threadtrace.is_patched()
    with threadtrace.patch(exporters=()):
        assert getattr(threading, name) is cls
        assert type(getattr(threading, name)(*args)) is cls
        assert type(late(*args)) is cls
        assert type(_made_in_lock_tests(late, args)) is cls
    # Undone: the same factory now reaches the stdlib again.
    assert getattr(threading, name) is not cls
    assert type(late(*args)) is not cls
