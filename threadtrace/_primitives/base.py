"""What every traced primitive shares: its type, its name, its registration."""

from __future__ import annotations

import abc
import inspect
import sys
import threading
from typing import Any, Callable, Optional, TypeVar

from .._runtime import runtime
from .._support.sites import UNKNOWN, Site
from .core import creation as _creation
from .core import site_for as _site_for
from .core import site_setup as _site_setup

#: The namespace of threading's own code (patching swaps its classes, not it).
_THREADING_GLOBALS = threading.__dict__

#: What ``super().__new__(cls)`` finds for a traced class itself: nothing in
#: its MRO defines ``__new__`` between it and ``object``.  The constructors
#: call this, and threading's ``__init__`` (and a ``Condition``'s ``notify``,
#: an ``Event``'s ``set`` and ``clear``), directly when the instance's type
#: is their own class: a zero-argument ``super()`` costs a walk of the MRO,
#: about 75 ns on 3.11 (30 on 3.13), twice on every ``Future``'s
#: ``Condition``.  A subclass still goes through ``super()``: its MRO may
#: put a cooperating class there.
object_new = object.__new__

_F = TypeVar("_F", bound=Callable[..., Any])


def shown_as(stub: Callable[..., Any]) -> Callable[[_F], _F]:
    """Give a constructor's ``__new__`` the signature of ``stub`` for ``inspect``.

    The ``__new__`` of a class that threading's code subclasses takes any
    arguments, as ``object.__new__`` does for threading's classes: ``type``
    hands it what the call got, and a subclass's ``__init__`` may take
    arguments of its own (``Job("nightly")``).  It reads only ``name=``; the
    ``__init__`` checks the rest and raises threading's own ``TypeError``.
    What ``inspect.signature()`` shows of the class stays ``stub``'s (set on
    the function, not the class: a subclass's own ``__init__`` still shows).
    """

    def show(function: _F) -> _F:
        function.__signature__ = inspect.signature(stub)  # type: ignore[attr-defined]
        return function

    return show


class PrimitiveType(abc.ABCMeta):
    """Metaclass of the traced primitives.

    ``isinstance(obj, threadtrace.Event)`` (and, under :func:`threadtrace.patch`,
    ``isinstance(obj, threading.Event)``) is also true for the stdlib objects the
    factories hand out to excluded callers and for those made before patching,
    so swapping the classes in ``threading`` never turns an ``isinstance``
    check false.  Subclasses of the traced classes behave as usual.

    An ``ABCMeta``: a program's class that mixes a primitive with an
    abstract base (``class Job(threading.Event, abc.ABC)``), which threading's
    classes (plain ``type``) allow, would otherwise fail to be made while
    patched (a metaclass conflict).
    """

    def __instancecheck__(cls, instance: Any) -> bool:
        if type.__instancecheck__(cls, instance):
            return True
        original = cls.__dict__.get("_tt_original")
        return original is not None and isinstance(instance, original)


class Traced:
    """Mixin with the naming and bookkeeping every traced primitive has.

    Subclasses set ``_tt_kind`` and define ``_tt_counters()``.
    """

    __slots__ = ()
    _tt_kind: str = ""
    _tt_site: Site
    _tt_name: Optional[str]

    @property
    def name(self) -> str:
        """The name given with ``name=``, or its creation site's: ``cache_lock (app.py:4)``."""
        explicit = self._tt_name
        return explicit if explicit is not None else self._tt_site.label

    def _tt_counters(self) -> tuple[int, ...]:
        """(operations, contentions, wait ns, hold ns) for the metrics.

        Locks add (measured holds, longest hold ns), so that a collected
        lock's holds stay counted (:func:`threadtrace._recording.metrics.snapshot_holds`).
        """
        raise NotImplementedError

    def _tt_retire(self) -> None:
        try:
            counts = self._tt_counters()
            if any(counts):
                runtime.retire(self._tt_kind, self.name, counts)
        except Exception:  # noqa: BLE001 - a finaliser must never raise; counts are lost
            return


def site_for(name: Optional[str], depth: int) -> Optional[Site]:
    """The creation site for a new primitive, or ``None`` when it must stay untraced.

    A primitive given an explicit ``name`` is always traced.  With the C
    core the walk to the program's frame is made in C, and a place seen
    before is one lookup; every ``Future`` and ``Queue`` makes its
    ``Condition`` through a library's frames.  Else (the pure-Python core, a
    new place), one that ``threading`` makes for itself (every ``Thread``
    makes an ``Event``, and the ``Event`` a ``Condition``) is told apart
    first, by the identity of the caller's globals: the full check costs a
    few calls more on each.
    """
    if _creation is not None:
        found = _creation(depth + 1, runtime.site_cache.places)
        if found is None:
            return None if name is None else UNKNOWN
        if found is not ...:  # the Site of a place seen before
            return found  # type: ignore[no-any-return]
    return _walk(name, depth + 1)


def _walk(name: Optional[str], depth: int) -> Optional[Site]:
    """What :func:`site_for` answers when the C core's walk leaves it undecided."""
    if name is None:
        try:
            if sys._getframe(depth + 1).f_globals is _THREADING_GLOBALS:
                return None
        except ValueError:  # no such caller: the full check says what it is
            pass
    site = runtime.creation_site(depth + 1)
    if site is None and name is not None:
        return UNKNOWN
    return site


if _site_for is not None:  # the C core's: the same answer, a Python frame fewer
    assert _site_setup is not None
    _site_setup(runtime, UNKNOWN, _walk)
    site_for = _site_for  # type: ignore[assignment]
