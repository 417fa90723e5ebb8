"""Lock order: possible deadlocks found before they happen (lockdep's idea).

With ``lock_order=True`` every acquisition of a traced ``Lock``/``RLock``
takes the slow path, which keeps, per thread, the stack of locks it holds
and where it took each.  Taking B while holding A records the order A → B
with both sites, twice: between the two lock *instances*, and between their
*names* (the creation site, or ``name=``), which stands for every lock made
there.  The first time an order closes a cycle (B → … → A already seen), a
possible deadlock is reported once, with both orders, their sites and a
two-column scenario of how two threads deadlock, even though this run did
not hang.  Orders between locks of one name are checked per instance only
(``Account`` locks taken in id order are fine).

RLock recursion adds no order (it cannot deadlock), nor does a ``Condition``
re-acquiring its lock after a wait.
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any, NamedTuple, Optional

from . import _originals, _state
from ._sites import Site

logger = logging.getLogger("threadtrace")

#: Orders kept before the table starts afresh (go-deadlock does the same).
MAX_ORDERS = 65536


class Order(NamedTuple):
    """``second`` was taken at ``second_site`` while holding ``first`` (taken at ``first_site``)."""

    first: str
    first_site: Optional[Site]
    second: str
    second_site: Optional[Site]
    thread: str


#: Thread ident -> the locks it holds, oldest first: [lock, site].
held: dict[int, list[list[Any]]] = {}

#: (from, to) key -> the first Order seen.  Keys are lock serials or names.
_orders: dict[tuple[Any, Any], Order] = {}
_successors: dict[Any, set[Any]] = {}
_reported: set[frozenset[Any]] = set()
_lock = _originals.allocate_lock()
_serials = itertools.count(1)


def serial() -> int:
    """A number for a new lock, never reused (``id()`` is, after collection)."""
    return next(_serials)


def enabled() -> bool:
    return _state.config.lock_order


def acquired(lock: Any, site: Optional[Site], reentered: bool = False) -> None:
    """The calling thread now holds ``lock``, taken at ``site``."""
    me = _originals.get_ident()
    stack = held.get(me)
    if stack is None:
        stack = held[me] = []
    if reentered:
        return
    if stack:
        _record(stack, lock, site)
    stack.append([lock, site])


def restored(lock: Any, site: Optional[Site]) -> None:
    """``lock`` is held again after a ``Condition`` wait: held, but no new order."""
    held.setdefault(_originals.get_ident(), []).append([lock, site])


def released(lock: Any) -> None:
    """``lock`` was let go (its outermost hold), usually by the thread that took it."""
    if _drop(held.get(_originals.get_ident()), lock):
        return
    # A Lock may be released by another thread than the one that took it.
    for stack in list(held.values()):
        if _drop(stack, lock):
            return


def _drop(stack: Optional[list[list[Any]]], lock: Any) -> bool:
    if stack:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is lock:
                del stack[i]
                return True
    return False


def acquire_site(lock: Any) -> Optional[Site]:
    """Where its current holder took ``lock``, if lock order tracking saw it."""
    owner = getattr(lock, "_owner", None)
    for entry in held.get(owner, ()) if owner is not None else ():
        if entry[0] is lock:
            site: Optional[Site] = entry[1]
            return site
    return None


def thread_ended(ident: int) -> None:
    held.pop(ident, None)


#: (first serial, second serial) pairs already recorded: the common case, a
#: nesting seen before, is one set lookup per held lock, without the lock.
_seen: set[tuple[int, int]] = set()


def _record(stack: list[list[Any]], lock: Any, site: Optional[Site]) -> None:
    serial = lock._tt_serial
    if all(first is lock or (first._tt_serial, serial) in _seen for first, _ in stack):
        return
    thread = _originals.current_thread_name()
    new: list[tuple[Any, Any, Order]] = []
    with _lock:
        _seen.update((first._tt_serial, serial) for first, _ in stack if first is not lock)
        if len(_orders) > MAX_ORDERS:
            _orders.clear()
            _successors.clear()
            _seen.clear()
        for first, first_site in stack:
            if first is lock:
                continue
            order = Order(first.name, first_site, lock.name, site, thread)
            keys = [(("i", first._tt_serial), ("i", lock._tt_serial))]
            first_kind, second_kind = _kind_of(first), _kind_of(lock)
            if first_kind != second_kind:
                keys.append((first_kind, second_kind))
            for key in keys:
                if key not in _orders:
                    _orders[key] = order
                    _successors.setdefault(key[0], set()).add(key[1])
                    new.append((key[0], key[1], order))
        found = []
        for a, b, order in new:
            path = _path(b, a)
            if path is None:
                continue
            cycle = frozenset(("n", _orders[step].first, _orders[step].second) for step in path)
            cycle |= {("n", order.first, order.second)}
            if cycle in _reported:
                continue
            _reported.add(cycle)
            found.append((order, [_orders[step] for step in path]))
    for order, others in found:
        _report(order, others)


def _kind_of(lock: Any) -> tuple[Any, ...]:
    """What stands for every lock made alike: its ``name=``, or its creation site.

    The site is the file's full path and the line (two ``util.py:2`` in two
    packages are two kinds of lock), not the short label of the report.
    """
    if lock._tt_name is not None:
        return ("n", lock._tt_name)
    site = lock._tt_site
    return ("s", site.filename, site.lineno)


def _path(start: Any, goal: Any) -> Optional[list[tuple[Any, Any]]]:
    """Orders leading from ``start`` to ``goal``, if any (depth first)."""
    stack: list[tuple[Any, list[tuple[Any, Any]]]] = [(start, [])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        for nxt in _successors.get(node, ()):
            step = [*path, (node, nxt)]
            if nxt == goal:
                return step
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, step))
    return None


def _where(site: Optional[Site]) -> str:
    if site is None or site.code is None:
        return "an unknown site"
    return f"{os.path.basename(site.filename)}:{site.lineno} in {site.function}"


def _report(order: Order, others: list[Order]) -> None:
    """Report the cycle closed by ``order``; ``others`` lead back round it."""
    chain = [*others, order]
    names = " -> ".join([chain[0].first, *(step.second for step in chain)])
    lines = [
        "threadtrace: POSSIBLE DEADLOCK: locks were taken in conflicting orders "
        "(this run did not hang, but it can)",
        f"  cycle: {names}",
    ]
    for step in chain:
        lines.append(
            f"  {step.thread} took {step.second} at {_where(step.second_site)}\n"
            f"      while holding {step.first}, taken at {_where(step.first_site)}"
        )
    lines.append("")
    lines.extend(_scenario(order, others))
    from ._watch import Problem, publish_later

    threads = list(dict.fromkeys(step.thread for step in chain))
    # Not logged here: this thread is inside acquire(), holding the lock it
    # just took, and a logging handler may want that very lock.
    publish_later(Problem("lock_order_inversion", logging.WARNING, "\n".join(lines), threads))


def _scenario(order: Order, others: list[Order]) -> list[str]:
    """lockdep's "possible unsafe locking scenario", one column per thread."""
    chain = [*others, order]
    columns = [step.thread for step in chain]
    if len({*columns}) < len(columns):  # same thread name twice: number them
        columns = [f"{name} ({i + 1})" for i, name in enumerate(columns)]
    width = max(28, *(len(f"lock({step.first})") + 4 for step in chain))
    rows = [["" for _ in chain] for _ in range(2 * len(chain))]
    for i, step in enumerate(chain):  # each thread takes its first lock...
        rows[i][i] = f"lock({step.first})"
    for i, step in enumerate(chain):  # ...then each waits for the next one's
        rows[len(chain) + i][i] = f"lock({step.second})"
    lines = ["  Possible unsafe scenario:", ""]
    lines.append("    " + "".join(name.ljust(width) for name in columns).rstrip())
    lines.append("    " + "".join(("-" * len(name)).ljust(width) for name in columns).rstrip())
    for row in rows:
        lines.append("    " + "".join(cell.ljust(width) for cell in row).rstrip())
    lines.append("")
    lines.append("    *** DEADLOCK ***")
    lines.append("")
    lines.append("  Take these locks in one order everywhere to make this impossible.")
    return lines


def _after_fork_in_child() -> None:
    """Another thread may have held the lock at the fork; only this thread's holds remain."""
    global _lock
    _lock = _originals.allocate_lock()
    me = _originals.get_ident()
    for ident in list(held):
        if ident != me:
            held.pop(ident, None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reset() -> None:
    """Forget every order and report (tests)."""
    with _lock:
        _orders.clear()
        _successors.clear()
        _reported.clear()
        _seen.clear()
    held.clear()
