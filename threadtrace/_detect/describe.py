"""How the detectors' reports name things: primitives, sites, holders and how threads ended.

Shared by every report (deadlock, stuck, held by a finished thread), so a
primitive or a thread reads the same in all of them.  Whole threads, with
their stacks, are :mod:`.dump`'s.
"""

from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from typing import Any, Hashable, Iterable, Iterator, Optional

from .._runtime import runtime
from .._support import originals as _originals
from .._support.names import DISPLAY
from .._support.sites import Site
from .state import Ending, name_of


def display(primitive: Any) -> str:
    """The primitive's kind as a class name: ``Lock``, ``Condition``..."""
    return DISPLAY.get(getattr(primitive, "_tt_kind", ""), type(primitive).__name__)


#: id(primitive) -> its number among the primitives of one report that share its name.
_NUMBERS: ContextVar[dict[int, int]] = ContextVar("_NUMBERS", default={})  # noqa: B039 - never mutated


def describe(primitive: Any) -> str:
    """``Lock ledger``: its kind and name (``Lock self.lock (bank.py:9) #2`` when told apart)."""
    return f"{display(primitive)} {label(primitive)}"


def label(primitive: Any) -> str:
    """Its name, and ``#2`` after it while :func:`told_apart` says which of its namesakes."""
    number = _NUMBERS.get().get(id(primitive))
    return primitive.name if number is None else f"{primitive.name} #{number}"


def namesake_numbers(named: Iterable[tuple[str, Hashable]]) -> dict[Any, int]:
    """key -> its number (1, 2...) among the keys given with the same name, in
    the order first given; a key whose name no other key has is left out."""
    namesakes: dict[str, list[Hashable]] = {}
    for name, key in named:
        same = namesakes.setdefault(name, [])
        if key not in same:
            same.append(key)
    return {
        key: number
        for same in namesakes.values()
        if len(same) > 1
        for number, key in enumerate(same, 1)
    }


@contextlib.contextmanager
def told_apart(primitives: Iterable[Any]) -> Iterator[None]:
    """Within the block, primitives that share a name are numbered in the order given.

    Locks made on one line (one per account, say) share a name: a deadlock
    between two of them must still say which one each thread holds.
    """
    # id() while the caller holds them: the same object, the same key.
    numbers = namesake_numbers((primitive.name, id(primitive)) for primitive in primitives)
    token = _NUMBERS.set(numbers)
    try:
        yield
    finally:
        _NUMBERS.reset(token)


def site_text(site: Optional[Site]) -> str:
    """``bank.py:42 in Bank.transfer``, or ``an unknown site``."""
    if site is None or site.code is None:
        return "an unknown site"
    return f"{os.path.basename(site.filename)}:{site.lineno} in {site.function}"


def made(primitive: Any, kind: bool = True) -> str:
    """``Lock ledger made at bank.py:10 in Bank.__init__``, or shorter when named after it.

    ``kind=False`` leaves the kind out: for a queue's conditions, which the
    program knows as the queue (``jobs (Queue@app.py:12)``).
    """
    site = primitive._tt_site
    what = describe(primitive) if kind else primitive.name
    if primitive._tt_name is None and site is not None and site.code is not None:
        return f"{what} made in {site.function}"  # the name is the site
    return f"{what} made at {site_text(site)}"


def acquire_site_text(lock: Any) -> str:
    """Where the current holder acquired ``lock``, when that acquisition was measured."""
    site = runtime.lock_order.acquire_site(lock)
    if site is None:
        site = lock._site_acq  # the core notes where every acquisition happens
    if site is None:
        return "an unknown site"
    return site_text(site)


def holder_text(lock: Any, owner: int) -> str:
    """``worker-1, acquired at bank.py:30 in Bank.audit``, marked when it finished."""
    return f"{name_of(owner)}{finished_text(owner)}, acquired at {acquire_site_text(lock)}"


def finished_text(ident: int) -> str:
    """`` (finished)``, `` (ended with KeyError: 'x' at app.py:9 in load)``, or nothing if alive."""
    return "" if ident in _originals._active else f" ({how_it_ended(ident)})"


def how_it_ended(ident: int) -> str:
    """``finished``, or ``ended with KeyError: 'x' at app.py:9 in load`` (a stand-in ident)."""
    ending = runtime.detect.endings.get(ident)
    return "finished" if ending is None or ending.error is None else ending_text(ending)


def ending_text(ending: Ending) -> str:
    """``ended with KeyError: 'port' at app.py:17 in load_config``."""
    where = f" at {site_text(ending.site)}" if ending.site is not None else ""
    return f"ended with {ending.error}{where}"
