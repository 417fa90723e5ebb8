"""The uncontended hot path of the traced locks, in pure Python.

This is the fallback for ``_lockcore.c`` (the same logic in C) when the
extension is not built, or when ``THREADTRACE_PURE_PYTHON=1`` asks for it
(:mod:`.core` chooses).  Both call the same slow-path methods of
:mod:`threadtrace._primitives.locks` by name; keep the two in step.

Every write here happens while holding the lock, so the lock itself protects
these fields.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Optional

from .._support.originals import get_ident


class LockCore:
    """Hot path of :class:`threadtrace.Lock`."""

    __slots__ = ("_depth", "_hot", "_left", "_owner", "_raw", "_reentrant", "_rel", "_try")
    _try: Any
    _rel: Any
    _owner: Optional[int]
    _left: int
    _hot: bool

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        """Acquire the lock, exactly as threading's lock does.

        ``acquire(blocking=True, timeout=-1)``, parsed by hand (as the C core
        does) so that bad arguments raise threading's own exceptions.
        """
        if args or kwargs:
            return self._acquire_args(args, kwargs)  # type: ignore[attr-defined,no-any-return]
        if self._try(False):
            self._owner = get_ident()
            left = self._left - 1
            self._left = left
            if left <= 0:
                self._sampled(True)  # type: ignore[attr-defined]
            return True
        return self._acquire_slow(-1)  # type: ignore[attr-defined,no-any-return]

    # The same body as acquire(), not a call to it: one Python call per
    # `with` is the whole budget of this path.
    def __enter__(self) -> bool:
        if self._try(False):
            self._owner = get_ident()
            left = self._left - 1
            self._left = left
            if left <= 0:
                self._sampled(True)  # type: ignore[attr-defined]
            return True
        return self._acquire_slow(-1)  # type: ignore[attr-defined,no-any-return]

    def release(self) -> None:
        """Release the lock, exactly as threading's lock does."""
        self._owner = None
        if self._hot:
            self._release_slow()  # type: ignore[attr-defined]
        self._rel()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._owner = None
        if self._hot:
            self._release_slow()  # type: ignore[attr-defined]
        self._rel()


class RLockCore:
    """Hot path of :class:`threadtrace.RLock`."""

    __slots__ = ("_depth", "_hot", "_left", "_owner", "_raw", "_reentrant", "_rel", "_try")
    _try: Any
    _rel: Any
    _owner: Optional[int]
    _left: int
    _hot: bool
    _depth: int

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        """Acquire the lock, exactly as threading's reentrant lock does.

        ``acquire(blocking=True, timeout=-1)``, parsed by hand (as the C core
        does) so that bad arguments raise threading's own exceptions.
        """
        if args or kwargs:
            return self._acquire_args(args, kwargs)  # type: ignore[attr-defined,no-any-return]
        if self._try(False):
            self._owner = get_ident()
            depth = self._depth + 1
            self._depth = depth
            left = self._left - 1
            self._left = left
            if left <= 0:
                self._sampled(depth == 1)  # type: ignore[attr-defined]
            return True
        return self._acquire_slow(-1)  # type: ignore[attr-defined,no-any-return]

    __enter__ = acquire

    def release(self) -> None:
        """Release once, exactly as threading's reentrant lock does."""
        if self._owner != get_ident():
            self._rel()  # not ours: the real lock raises exactly as threading does
            return
        depth = self._depth - 1
        self._depth = depth
        if depth <= 0:
            self._owner = None
            if self._hot:
                self._release_slow()  # type: ignore[attr-defined]
        self._rel()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()
