"""The variable a primitive is assigned to where it is made: ``cache_lock (app.py:4)``.

A primitive without ``name=`` is named after its creation site
(:class:`threadtrace._support.sites.Site`): a code object and the byte
offset of the call that made it.  A line number alone says little in a
report (``Lock app.py:4``) and cannot tell apart ``a, b = Lock(), Lock()``;
the program's own name for the primitive says what it is.  This module
finds that name once per site, the first time a label is asked for, never
when a primitive is made.

How, per CPython version:

* **3.11 and later**: ``code.co_positions()`` gives the columns of the call
  instruction.  The file's source (``linecache``) is parsed with ``ast``, the
  ``Call`` node ending at those columns is found among the statements on
  that line, and its parents are walked up through what passes a value on
  unchanged (tuple and list displays, conditional expressions,
  comprehensions) to the ``Assign``, ``AnnAssign``, ``AugAssign``,
  ``NamedExpr`` or ``with ... as`` that keeps it.  A tuple element maps to
  the tuple target at the same place (``a, b = Lock(), Lock()``).  See
  :mod:`threadtrace._support.assignments`.
* **3.9 and 3.10** (no columns), and any version when the source is not
  there (``python -c``, ``exec`` of a string, a frozen module) or no longer
  matches: the bytecode after the call says where its value goes
  (:mod:`threadtrace._support.bytecode`).  Those versions compile a
  comprehension to a code object of its own, whose value goes nowhere
  named; the comprehension is then found in the source by its line and
  kind.

The name is the target as written when it is a simple name or a dotted
chain of attributes (``cache_lock``, ``self._lock``, ``cls.registry_lock``);
anything else (``locks[key]``, ``*rest``, an argument, a ``return``) leaves
no name, and the label is the site alone, as before.  When two calls on one
line would still read the same (``pair(Lock(), Lock())``), each gets its
order among the calls alike on that line, ``#1`` and ``#2``: calls are
alike when they call the same name and are assigned to the same variable.

Everything is memoised: the answer per (code, offset), for every call on a
line at once; the instructions of the last few code objects; the parsed
tree of the last few files.  The tables are plain dicts, assigned whole and
cleared when full, and no lock guards them: two threads that race compute
the same value twice.  Only the parser takes turns, under a lock of
threading's own (CPython 3.11's cannot run twice at once: see
``TargetNames._tree``), and a file is parsed once however many threads
ask for it at the same moment.  Nothing here may take a lock threadtrace traces, nor
raise: any error leaves the label as it was before, and an unexpected one
is counted as threadtrace's own (the runtime's ``internal_error``).
"""

from __future__ import annotations

import ast
import dis
import linecache
from types import CodeType
from typing import Callable, NamedTuple, Optional

from . import bytecode, originals
from .assignments import Position, Statements, call_at, statements_on, target_of

#: A name and the call's order among those alike on its line (0: it is alone).
Found = tuple[Optional[str], int]

_NOTHING: Found = (None, 0)

#: The names 3.9 to 3.11 give a comprehension's code object, and its node.
_COMPREHENSIONS: dict[str, type[ast.expr]] = {
    "<listcomp>": ast.ListComp,
    "<setcomp>": ast.SetComp,
    "<dictcomp>": ast.DictComp,
    "<genexpr>": ast.GeneratorExp,
}
#: The source is unusable: it does not parse (edited since), or is not text.
_UNPARSABLE = (SyntaxError, ValueError, OverflowError, RecursionError, UnicodeError, Warning)


def parse(source: str, filename: str) -> ast.Module:
    """``ast.parse``; a function of its own so that tests can count and break it."""
    return ast.parse(source, filename)


class _Code(NamedTuple):
    """What is read once per code object."""

    instructions: list[dis.Instruction]
    lines: list[int]  # the line of each instruction
    indices: dict[int, int]  # instruction index by offset
    positions: Optional[list[Position]]  # per code unit (3.11+)
    collects: bool  # a comprehension's own code object


class TargetNames:
    """The variable each creation site's value is assigned to, memoised.

    Thread-safe: the tables need no lock (see the module docstring); the
    parser takes turns.

    Attributes:
        report: called as ``report(where, error)`` with an unexpected error.
        parses: how many times a file was parsed (tests count them).
    """

    MAX_NAMES = 100_000
    MAX_CODES = 8
    MAX_FILES = 4

    def __init__(self, report: Optional[Callable[[str, BaseException], None]] = None) -> None:
        self.report = report
        self.parses = 0
        # Code objects compare equal by their contents, not their file: the
        # file is in the key, as the same code in two files may be assigned
        # differently (a comprehension's own code object, 3.9 and 3.10).
        self._names: dict[tuple[CodeType, str, int], Found] = {}
        self._codes: dict[CodeType, _Code] = {}
        self._trees: dict[str, tuple[list[str], Optional[ast.Module]]] = {}
        #: One parse at a time (see _tree); reentrant: a finaliser run by the
        #: parse's own allocations may name a primitive too.
        self._parsing = originals.RLock()

    def lookup(self, code: CodeType, offset: int) -> Found:
        """The variable the call at ``offset`` in ``code`` is assigned to, and its order.

        Returns:
            ``(name, order)``: ``name`` is ``None`` when there is none to
            read; ``order`` is 0, or the call's place (from 1) among the
            calls alike on its line when there are several.  Never raises.
        """
        key = (code, code.co_filename, offset)
        found = self._names.get(key)
        if found is None:
            try:
                found = self._resolve(code, offset)
            except Exception as error:  # noqa: BLE001 - naming never fails a program: the site stands
                found = _NOTHING
                if self.report is not None:
                    self.report("naming a primitive after its variable", error)
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[CodeType, str, int], found: Found) -> None:
        if len(self._names) >= self.MAX_NAMES:
            self._names = {}
        self._names[key] = found

    # -- one line of one code object, all its calls at once -------------------------------

    def _resolve(self, code: CodeType, offset: int) -> Found:
        info = self._code(code)
        index = bytecode.call_at(info.instructions, offset)
        if index is None:
            return _NOTHING
        line = info.lines[index]
        calls = [
            i
            for i, instruction in enumerate(info.instructions)
            if info.lines[i] == line and instruction.opname in bytecode.CALLS
        ]
        statements: list[Optional[Statements]] = []  # read once, when first needed
        # Calls alike: same name, same callee.  One call in the source may
        # compile to two instructions (3.13 calls a ``with``'s ``__exit__``
        # at the place of its manager): those count once.
        alike: dict[tuple[Optional[str], Optional[str]], list[object]] = {}
        keys: list[tuple[tuple[Optional[str], Optional[str]], object]] = []
        for i in calls:
            name, call = self._name(code, info, i, line, statements)
            try:
                called = bytecode.callee(info.instructions, i)
            except ValueError:  # an instruction dis cannot count
                called = None
            same = alike.setdefault((name, called), [])
            if call not in same:
                same.append(call)
            keys.append(((name, called), call))
        mine = _NOTHING
        for i, (key, call) in zip(calls, keys):
            same = alike[key]
            found = (key[0], same.index(call) + 1 if len(same) > 1 else 0)
            self._remember((code, code.co_filename, info.instructions[i].offset), found)
            if i == index:
                mine = found
        return mine

    def _code(self, code: CodeType) -> _Code:
        info = self._codes.get(code)
        if info is None:
            instructions = list(dis.get_instructions(code))
            positions = None
            if hasattr(code, "co_positions"):  # 3.11+
                positions = list(code.co_positions())
            info = _Code(
                instructions,
                _lines(code, [instruction.offset for instruction in instructions]),
                {instruction.offset: i for i, instruction in enumerate(instructions)},
                positions,
                code.co_name in _COMPREHENSIONS,
            )
            if len(self._codes) >= self.MAX_CODES:
                self._codes = {}
            self._codes[code] = info
        return info

    def _name(
        self,
        code: CodeType,
        info: _Code,
        index: int,
        line: int,
        statements: list[Optional[Statements]],
    ) -> tuple[Optional[str], object]:
        """The name of the call at ``index``, and what stands for that call in the source."""
        if info.positions is not None:
            if not statements:
                statements.append(self._statements(code.co_filename, line))
            source = statements[0]
            call = call_at(source, info.positions[info.instructions[index].offset // 2])
            if call is not None and source is not None:
                return target_of(call, source.parents), call
        start = index
        while start > 0 and info.lines[start - 1] == line:
            start -= 1
        name = bytecode.fate(info.instructions, index, info.indices, info.collects, start)
        if name == bytecode.COLLECTED:
            name = self._from_comprehension(code)
        return name, index

    # -- the source ---------------------------------------------------------------------

    def _tree(self, filename: str) -> Optional[ast.Module]:
        lines = linecache.getlines(filename)
        if not lines:
            return None
        cached = self._parsed(filename, lines)
        if cached is not None:
            return cached[1]
        tree: Optional[ast.Module] = None
        # CPython 3.11's AST constructor counts its depth per interpreter, not
        # per parse: two parses interleaved (another thread's, or one that a
        # finaliser started inside this one) fail with "AST constructor
        # recursion depth mismatch" (CPython gh-106905).  Ours take turns; one
        # that another parse broke all the same is tried once more.  The
        # threads that queued behind a parse of the same file take its tree:
        # a thousand threads naming one site at once parse it once, not a
        # thousand times in turn.
        with self._parsing:
            cached = self._parsed(filename, lines)
            if cached is not None:
                return cached[1]
            self.parses += 1
            source = "".join(lines)
            for _ in range(2):
                try:
                    tree = parse(source, filename)
                    break
                except SystemError:
                    continue
                except _UNPARSABLE:
                    break
            if len(self._trees) >= self.MAX_FILES:
                self._trees = {}
            self._trees[filename] = (lines, tree)
        return tree

    def _parsed(
        self, filename: str, lines: list[str]
    ) -> Optional[tuple[list[str], Optional[ast.Module]]]:
        """The memo's entry for ``filename`` if it was parsed from ``lines``.

        Usually the very list ``linecache`` gave then; threads that read a file
        into ``linecache`` at the same moment each get a list of their own.
        """
        cached = self._trees.get(filename)
        if cached is not None and (cached[0] is lines or cached[0] == lines):
            return cached
        return None

    def _statements(self, filename: str, line: int) -> Optional[Statements]:
        tree = self._tree(filename)
        return statements_on(tree, line) if tree is not None else None

    def _from_comprehension(self, code: CodeType) -> Optional[str]:
        """The target of the one comprehension of ``code``'s kind on its first line."""
        statements = self._statements(code.co_filename, code.co_firstlineno)
        if statements is None:
            return None
        kind = _COMPREHENSIONS[code.co_name]
        found = [
            node
            for node in statements.comprehensions
            if type(node) is kind and node.lineno == code.co_firstlineno
        ]
        if len(found) != 1:
            return None  # two on one line: which is this one?
        return target_of(found[0], statements.parents, collected=True)


def _lines(code: CodeType, offsets: list[int]) -> list[int]:
    """The line of each instruction offset (ascending), from the code's line table."""
    if hasattr(code, "co_lines"):  # 3.10+
        starts = [(start, line) for start, _end, line in code.co_lines()]
    else:  # 3.9
        starts = list(dis.findlinestarts(code))
    lines: list[int] = []
    current, position = code.co_firstlineno, 0
    for offset in offsets:
        while position < len(starts) and starts[position][0] <= offset:
            start_line = starts[position][1]
            current = start_line if start_line is not None else current
            position += 1
        lines.append(current)
    return lines
