"""What keeps the value of an expression in the statement around it: its assignment target.

The source half of :mod:`threadtrace._support.targets`.  Given a parsed
file and a line, :func:`statements_on` indexes the statements on that line
(their calls by where each ends, every node's parent, the comprehensions);
:func:`target_of` walks up from an expression through what passes its value
on unchanged (tuple and list displays, conditional expressions,
comprehensions, dict and set displays) to the ``Assign``, ``AnnAssign``,
``AugAssign``, ``NamedExpr`` or ``with ... as`` that keeps it, and reads the
target as written: ``name`` or a dotted chain of attributes, a tuple target
mapped element by element.  Anything else keeps no name.

Pure functions of the tree: nothing here is cached or shared.
"""

from __future__ import annotations

import ast
from typing import NamedTuple, Optional, Union

#: A ``co_positions()`` entry: line, end line, column, end column.
Position = tuple[Optional[int], Optional[int], Optional[int], Optional[int]]
#: The fields of a statement that hold statements (walked as statements of their own).
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")
_COMPREHENSION_NODES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class Statements(NamedTuple):
    """The statements on one line of a file, indexed."""

    calls: dict[tuple[int, int], ast.Call]  # by where each ends: (line, column)
    parents: dict[ast.AST, ast.AST]
    comprehensions: list[ast.expr]


def statements_on(tree: ast.Module, line: int) -> Statements:
    """The statements ``line`` is part of (header and all), indexed."""
    covering: list[ast.AST] = []
    _covering(tree.body, line, covering)
    statements = Statements({}, {}, [])
    for statement in covering:
        _index(statement, statements)
    return statements


def _covering(body: list[ast.stmt], line: int, out: list[ast.AST]) -> None:
    """The statements (and ``except`` clauses) ``line`` is part of, outermost first."""
    for statement in body:
        decorators = getattr(statement, "decorator_list", None) or ()
        start = min([statement.lineno, *(node.lineno for node in decorators)])
        end = statement.end_lineno or statement.lineno
        if not start <= line <= end:
            continue
        out.append(statement)
        for field in _BODIES:
            inner = getattr(statement, field, None)
            if not isinstance(inner, list):
                continue
            for item in inner:
                if isinstance(item, ast.ExceptHandler):
                    if item.lineno <= line <= (item.end_lineno or item.lineno):
                        out.append(item)
                        _covering(item.body, line, out)
                elif isinstance(item, ast.stmt):
                    _covering([item], line, out)
                elif hasattr(item, "body"):  # a match statement's case
                    _covering(item.body, line, out)


def _index(statement: ast.AST, into: Statements) -> None:
    """Note the calls, comprehensions and parents of ``statement``'s own expressions."""
    pending = [statement]
    while pending:
        node = pending.pop()
        for field, value in ast.iter_fields(node):
            if field in _BODIES and isinstance(value, list):
                continue  # statements: indexed when on the line
            for child in value if isinstance(value, list) else (value,):
                if not isinstance(child, ast.AST):
                    continue
                into.parents[child] = node
                if isinstance(child, ast.Call) and child.end_lineno is not None:
                    into.calls[(child.end_lineno, child.end_col_offset or 0)] = child
                elif isinstance(child, _COMPREHENSION_NODES):
                    into.comprehensions.append(child)
                pending.append(child)


def call_at(statements: Optional[Statements], position: Position) -> Optional[ast.Call]:
    """The ``Call`` node at ``position`` (a ``co_positions()`` entry), if the source has it.

    Found by where it ends, its closing parenthesis: 3.11 and 3.12 move the
    start of a method call spread over lines to its method's name.
    """
    if statements is None:
        return None
    end_line, end_column = position[1], position[3]
    if end_line is None or end_column is None:
        return None  # no columns (-X no_debug_ranges)
    return statements.calls.get((end_line, end_column))  # None: the source changed since


def target_of(
    node: ast.AST, parents: dict[ast.AST, ast.AST], *, collected: bool = False
) -> Optional[str]:
    """The variable the value of ``node`` is assigned to, as written, or ``None``.

    Args:
        node: the expression (a ``Call``, or a comprehension).
        parents: each node's parent, for the statement ``node`` is in.
        collected: ``node`` is a comprehension whose element was the value.
    """
    # Where the value sits inside the displays it passes through, innermost
    # first: (index, length) of a tuple or list element, or None once it is
    # one of many (a comprehension's element, a set or dict display).
    places: list[Optional[tuple[int, int]]] = [None] if collected else []
    child = node
    parent = parents.get(child)
    while parent is not None:
        if isinstance(parent, _KEEPERS):
            target = _target(parent, child)
            return _unpack(target, places) if target is not None else None
        place = _place(parent, child)
        if place is _STOP:
            return None
        if not isinstance(place, _Marker):
            places.append(place)
        child, parent = parent, parents.get(parent)
    return None


class _Marker:
    """How a value passes through an expression, when not as an element."""


_SAME, _STOP = _Marker(), _Marker()  # passed on unchanged; not kept under a name
_KEEPERS = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr, ast.withitem)


def _target(keeper: ast.AST, child: ast.AST) -> Optional[ast.expr]:
    """The target of an assignment (or ``with ... as``) whose value is ``child``.

    ``None`` when ``child`` is not the value (``make().attr = 1``: the call
    is in the target).
    """
    if isinstance(keeper, ast.withitem):
        return keeper.optional_vars if child is keeper.context_expr else None
    if isinstance(keeper, ast.Assign) and child is keeper.value:
        return keeper.targets[0]  # ``a = b = Lock()``: the first, as read
    if isinstance(keeper, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and child is keeper.value:
        return keeper.target
    return None


def _place(parent: ast.AST, child: ast.AST) -> Union[tuple[int, int], _Marker, None]:
    """Where ``child``'s value goes in ``parent``: see :func:`target_of`."""
    if isinstance(parent, (ast.Tuple, ast.List)):
        if any(isinstance(element, ast.Starred) for element in parent.elts):
            return _STOP
        return next((i, len(parent.elts)) for i, each in enumerate(parent.elts) if each is child)
    if isinstance(parent, ast.IfExp):
        return _STOP if child is parent.test else _SAME
    return None if _one_of_many(parent, child) else _STOP


def _one_of_many(parent: ast.AST, child: ast.AST) -> bool:
    """Whether ``child`` is an element of a comprehension, a set, or a dict's value."""
    if isinstance(parent, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
        return child is parent.elt
    if isinstance(parent, ast.DictComp):
        return child is parent.value
    if isinstance(parent, ast.Dict):
        return any(value is child for value in parent.values)
    return isinstance(parent, ast.Set)


def _unpack(target: ast.expr, places: list[Optional[tuple[int, int]]]) -> Optional[str]:
    """The part of ``target`` that receives the value at ``places`` (innermost first)."""
    for place in reversed(places):
        if not isinstance(target, (ast.Tuple, ast.List)):
            break  # the whole display is kept under one name: that name
        if place is None or any(isinstance(element, ast.Starred) for element in target.elts):
            return None
        index, length = place
        if len(target.elts) != length:
            return None
        target = target.elts[index]
    return dotted(target)


def dotted(node: ast.AST) -> Optional[str]:
    """``name`` or ``a.b.c`` as written; ``None`` for anything else (``a[0]``, ``f().x``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = dotted(node.value)
        return f"{owner}.{node.attr}" if owner is not None else None
    return None
