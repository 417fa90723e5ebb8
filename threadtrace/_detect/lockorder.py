"""Lock order: possible deadlocks found before they happen (lockdep's idea).

With ``lock_order=True`` every acquisition of a traced ``Lock``/``RLock``
takes the slow path, which keeps, per thread, the stack of locks it holds
and where it took each.  Taking B while holding A records the order A → B
with both sites.  Between locks of two *kinds* (the creation site's file and
line, or ``name=``) the order is kept between the kinds, which stand for
every lock made there, as lockdep's classes do: a program that makes a new
``Job`` with its own lock for every request, and takes it under one
registry lock, adds one order, not one per job.  Between locks of one kind
it is kept per instance (``Account`` locks taken in id order are fine).  The
first time an order closes a cycle (B → … → A already seen), a possible
deadlock is reported once, with both orders, their sites and a two-column
scenario of how two threads deadlock, even though this run did not hang.

Orders between instances of two kinds would add nothing: a cycle of them
passes through two kinds at least, and the orders between the kinds along
it close a cycle of kinds, which is reported.  And as lockdep does, a lock
is ordered after the held locks from the innermost down to the first taken
by a blocking acquire, not after every one: the orders from those below
follow (see :func:`_ordered_after`).

RLock recursion adds no order (it cannot deadlock), nor does a ``Condition``
re-acquiring its lock after a wait.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, NamedTuple, Optional, Sequence

from .._runtime import runtime
from .._support import originals as _originals
from .._support.sites import Site
from .describe import namesake_numbers, site_text
from .hooks import publish_later
from .problems import Problem

#: Orders kept; past this the orders of collected locks are dropped (a lock
#: that no longer exists cannot deadlock), and if that is not enough the table
#: starts afresh, as go-deadlock's does.  About 0.5 KB each.
MAX_ORDERS = 8192


class Order(NamedTuple):
    """``second`` was taken at ``second_site`` while holding ``first`` (taken at ``first_site``)."""

    first: str
    first_site: Optional[Site]
    second: str
    second_site: Optional[Site]
    thread: str
    #: Which lock each was (``_tt_serial``): two locks made on one line share a name.
    first_serial: int = -1
    second_serial: int = -1


class LockOrder:
    """The order graph, and the locks each thread holds (a runtime component).

    Thread-safe: each thread writes only its own held stack; the graph is
    changed under a raw lock of its own, taken only when a nesting is new.

    Attributes:
        held: thread ident -> the locks it holds, oldest first: [lock, site,
            taken by a blocking acquire].
        orders: (from, to) key -> the first Order seen.  Keys are
            ``("i", serial)`` for a lock, ``("k", Site.kind)`` or
            ``("n", name)`` for a kind (see :func:`_kind_of`).  A nesting seen
            before is one lookup here per held lock, without the lock.
        on_afresh: called when the graph starts afresh, with :attr:`lock`
            held: the C core forgets the pairs it has seen, which it would
            otherwise never tell again.
    """

    def __init__(self) -> None:
        self.held: dict[int, list[list[Any]]] = {}
        self.orders: dict[tuple[Any, Any], Order] = {}
        self.successors: dict[Any, set[Any]] = {}
        self.reported: set[frozenset[Any]] = set()
        self.lock = _originals.allocate_lock()
        self.on_afresh: Callable[[], object] = _nothing
        # Never reset (not even by fresh()): a serial is never reused.
        self.serials = itertools.count(1)

    def fresh(self) -> LockOrder:
        """No orders and no holds; serials go on counting."""
        fresh = LockOrder()
        fresh.serials = self.serials
        fresh.on_afresh = self.on_afresh
        return fresh

    def after_fork_in_child(self) -> None:
        """Another thread may have held the lock at the fork; only this thread's holds remain."""
        self.lock = _originals.allocate_lock()
        me = _originals.get_ident()
        for ident in list(self.held):
            if ident != me:
                self.held.pop(ident, None)

    def serial(self) -> int:
        """A number for a new lock, never reused (``id()`` is, after collection)."""
        return next(self.serials)

    def acquired(self, lock: Any, site: Optional[Site], reentered: bool = False) -> None:
        """The calling thread now holds ``lock``, taken at ``site``."""
        me = _originals.get_ident()
        stack = self.held.get(me)
        if stack is None:
            stack = self.held[me] = []
        if reentered:
            return
        if stack:
            self._record(_ordered_after(stack), lock, site)
        stack.append([lock, site, True])

    def nested(self, held: tuple[Any, ...], lock: Any) -> None:
        """The C lock core's held stack (oldest first) took ``lock``: a nesting it had not seen.

        The C core keeps the held stacks and the pairs seen; this records the
        orders and looks for a cycle, as :meth:`acquired` does.  ``held`` is
        what the C core ordered it after (see :func:`_ordered_after`).  Where
        each lock was taken is read only for an order that is new.
        """
        self._record([(first, None) for first in held], lock, None)

    def restored(self, lock: Any, site: Optional[Site]) -> None:
        """``lock`` is held again after a ``Condition`` wait, or tried: held, but no new order."""
        self.held.setdefault(_originals.get_ident(), []).append([lock, site, False])

    def released(self, lock: Any) -> None:
        """``lock`` was let go (its outermost hold), usually by the thread that took it."""
        if _drop(self.held.get(_originals.get_ident()), lock):
            return
        # A Lock may be released by another thread than the one that took it.
        for stack in list(self.held.values()):
            if _drop(stack, lock):
                return

    def acquire_site(self, lock: Any) -> Optional[Site]:
        """Where its current holder took ``lock``, if lock order tracking saw it."""
        owner = getattr(lock, "_owner", None)
        for entry in self.held.get(owner, ()) if owner is not None else ():
            if entry[0] is lock:
                site: Optional[Site] = entry[1]
                return site
        return None

    def thread_ended(self, ident: int) -> None:
        self.held.pop(ident, None)

    def _forget_the_dead(self) -> None:
        """Drop the orders of locks that were collected (a program that makes locks as it goes).

        Called with :attr:`lock` held.  Orders between kinds stay: they
        stand for every lock made at a place.
        """
        alive = {getattr(p, "_tt_serial", None) for p in runtime.primitives()}

        def lives(end: Any) -> bool:
            return end[0] != "i" or end[1] in alive

        self.orders = {key: o for key, o in self.orders.items() if lives(key[0]) and lives(key[1])}
        if len(self.orders) > MAX_ORDERS // 2:  # mostly live locks: start afresh
            self.orders.clear()
            self.on_afresh()
        self.successors = {}
        for first, second in self.orders:
            self.successors.setdefault(first, set()).add(second)

    def knows(self, first: Any, second: Any) -> bool:
        """Whether the order ``first`` -> ``second`` is recorded (between them, or their kinds)."""
        return _key(first, _kind_of(first), second, _kind_of(second)) in self.orders

    def _record(self, firsts: Sequence[Sequence[Any]], lock: Any, site: Optional[Site]) -> None:
        """``lock`` was taken at ``site`` after ``firsts``, (lock, site) entries (None: unknown)."""
        orders = self.orders
        kind = _kind_of(lock)
        fresh: list[tuple[Any, Optional[Site], tuple[Any, Any]]] = []
        for entry in firsts:
            first, first_site = entry[0], entry[1]
            if first is lock:
                continue
            key = _key(first, _kind_of(first), lock, kind)
            if key not in orders:
                fresh.append((first, first_site, key))
        if not fresh:
            return
        thread = _originals.current_thread_name()
        name = lock.name
        if site is None:  # the C core's: read for a new order only
            site = lock._site_acq
        new: list[tuple[Any, Any, Order]] = []
        with self.lock:
            if len(self.orders) > MAX_ORDERS:
                self._forget_the_dead()
            orders, successors = self.orders, self.successors
            for first, first_site, key in fresh:
                if key in orders:  # another thread's, since the look above
                    continue
                order = Order(
                    first.name,
                    first._site_acq if first_site is None else first_site,  # None: the C core's
                    name,
                    site,
                    thread,
                    first._tt_serial,
                    lock._tt_serial,
                )
                orders[key] = order
                successors.setdefault(key[0], set()).add(key[1])
                new.append((key[0], key[1], order))
            found = self._cycles(new)
        for order, others in found:
            _report(order, others)

    def _cycles(self, new: list[tuple[Any, Any, Order]]) -> list[tuple[Order, list[Order]]]:
        """The cycles the ``new`` orders close, not reported before.  With :attr:`lock` held."""
        orders, successors = self.orders, self.successors
        found = []
        for a, b, order in new:
            if b not in successors:  # nothing taken after it yet: no way back to a
                continue
            path = _path(successors, b, a)
            if path is None:
                continue
            cycle = frozenset(("n", orders[step].first, orders[step].second) for step in path)
            cycle |= {("n", order.first, order.second)}
            if cycle in self.reported:
                continue
            self.reported.add(cycle)
            found.append((order, [orders[step] for step in path]))
        return found


def _nothing() -> None:
    return None


def _ordered_after(stack: list[list[Any]]) -> list[list[Any]]:
    """The held locks a lock taken now is ordered after, as lockdep has them.

    From the top of the stack down to the first taken by a blocking acquire,
    that one included: the locks below it were ordered before it when it was
    taken (or before one above it), so their orders to the new lock are
    implied, and a hundred locks taken one inside another make 99 orders,
    not 4,950.  A try or a Condition taking its lock back
    recorded no order of its own: the walk goes on past it.
    """
    for i in range(len(stack) - 1, -1, -1):
        if stack[i][2]:
            return stack[i:]
    return stack


def _drop(stack: Optional[list[list[Any]]], lock: Any) -> bool:
    if stack:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is lock:
                del stack[i]
                return True
    return False


def _kind_of(lock: Any) -> tuple[Any, ...]:
    """What stands for every lock made alike: its ``name=``, or its creation site's kind.

    The kind is the file's full path and the line (two ``util.py:2`` in two
    packages are two kinds of lock), not the short label of the report:
    :attr:`Site.kind`, the number the C core keys a pair of kinds by.
    """
    name = lock._tt_name
    if name is not None:
        return ("n", name)
    return ("k", lock._tt_site.kind)


def _key(first: Any, first_kind: tuple[Any, ...], second: Any, kind: tuple[Any, ...]) -> Any:
    """The graph's key of the order ``first`` -> ``second``: by kind, or by lock within one."""
    if first_kind == kind:
        return (("i", first._tt_serial), ("i", second._tt_serial))
    return (first_kind, kind)


def _path(
    successors: dict[Any, set[Any]], start: Any, goal: Any
) -> Optional[list[tuple[Any, Any]]]:
    """Orders leading from ``start`` to ``goal``, if any (depth first)."""
    stack: list[tuple[Any, list[tuple[Any, Any]]]] = [(start, [])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        for nxt in successors.get(node, ()):
            step = [*path, (node, nxt)]
            if nxt == goal:
                return step
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, step))
    return None


def _told_apart(chain: list[Order]) -> list[Order]:
    """``chain`` with ``#1``, ``#2``... after names that stand for more than one lock.

    Locks made on one line (one per account, say) share a name; a cycle
    through two of them would otherwise read ``self.lock -> self.lock``.
    """
    numbers = namesake_numbers(
        (name, (name, serial))
        for step in chain
        for name, serial in ((step.first, step.first_serial), (step.second, step.second_serial))
    )

    def label(name: str, serial: int) -> str:
        number = numbers.get((name, serial))
        return name if number is None else f"{name} #{number}"

    return [
        step._replace(
            first=label(step.first, step.first_serial),
            second=label(step.second, step.second_serial),
        )
        for step in chain
    ]


def _report(order: Order, others: list[Order]) -> None:
    """Report the cycle closed by ``order``; ``others`` lead back round it."""
    *others, order = _told_apart([*others, order])
    chain = [*others, order]
    names = " -> ".join([chain[0].first, *(step.second for step in chain)])
    lines = [
        "threadtrace: POSSIBLE DEADLOCK: locks were taken in conflicting orders "
        "(this run did not hang, but it can)",
        f"  cycle: {names}",
    ]
    for step in chain:
        lines.append(
            f"  {step.thread} took {step.second} at {site_text(step.second_site)}\n"
            f"      while holding {step.first}, taken at {site_text(step.first_site)}"
        )
    lines.append("")
    lines.extend(_scenario(order, others))
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


runtime.install("lock_order", LockOrder())
