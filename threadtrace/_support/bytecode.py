"""What a function's bytecode does with the value of one of its calls.

Used to name a primitive after the variable it is assigned to when there
are no column positions to find the call in the source (CPython 3.9 and
3.10) or no source at all (``python -c``, ``exec`` of a string, frozen
modules).  See :mod:`threadtrace._support.targets`, which asks.

The instructions of the call's line are run on a stack of *symbols*: the
call's value, the dotted names loaded (``self``, ``self.cache``),
containers built from them, and "something else".  The run starts where
the line does, so that what was loaded before the call is known
(``self.locks += [Lock()]`` loads ``self.locks`` first), or at the call
when the line begins with something not modelled.  The value's fate is the
first instruction that consumes it: a store names it (``STORE_FAST cache_lock``,
``LOAD_FAST self; STORE_ATTR _lock`` is ``self._lock``); tuple unpacking
works out by itself, since ``ROT_TWO``/``SWAP``, ``BUILD_TUPLE`` and
``UNPACK_SEQUENCE`` move symbols like values; a call that takes it as an
argument, a subscript store, a ``return`` or a ``POP_TOP`` leave it
unnamed.  Only straight-line code is followed (and the forward jump out of
a conditional expression); any instruction not modelled here ends the run
unnamed, so the model can be wrong only by naming less.

The cost is a few microseconds per call site, paid once (the caller keeps
the answer); nothing here runs when a primitive is made or used.
"""

from __future__ import annotations

import dis
import sys
from typing import Any, Optional, Union

#: The call instructions of CPython 3.9 to 3.13 (``PRECALL`` only prepares one).
CALLS = frozenset(
    ("CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_FUNCTION_EX", "CALL_METHOD", "CALL", "CALL_KW")
)

#: The value went into a comprehension's result (``LIST_APPEND`` and the like).
COLLECTED = "<collected>"

_LOADS = frozenset(
    ("LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_NAME", "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_CLASSDEREF")
)
_STORES = frozenset(("STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF"))
_INERT = frozenset(("NOP", "EXTENDED_ARG", "PRECALL", "KW_NAMES", "CACHE", "NOT_TAKEN"))
_JUMPS = frozenset(("JUMP_FORWARD", "JUMP_ABSOLUTE", "JUMP"))
_ONE_RESULT_PREFIXES = ("BINARY_", "INPLACE_", "UNARY_")
_ONE_RESULT = frozenset(
    ("COMPARE_OP", "IS_OP", "CONTAINS_OP", "TO_BOOL", "FORMAT_VALUE", "BUILD_STRING")
)
#: From 3.11 a global loaded to be called comes with a NULL (``LOAD_GLOBAL``'s
#: low bit); from 3.12 ``LOAD_ATTR`` loads a method with its own (low bit too).
_NULL_BIT_GLOBAL = sys.version_info >= (3, 11)
_METHOD_BIT_ATTR = sys.version_info >= (3, 12)
_PRECALLS = sys.version_info[:2] == (3, 11)
#: Run at most this many instructions (the line up to the call, and after it:
#: a store comes within a few).
_MAX_STEPS = 200
#: What a run that stopped before the call says (it knows nothing).
_LOST = "<lost>"


class _Value:
    """The call's value on the symbolic stack (one object, compared by identity)."""


_VALUE = _Value()
#: A stack symbol: the call's value, a dotted name, a container of symbols, or None.
Symbol = Union[_Value, str, tuple[Any, ...], None]


def _holds(symbol: Symbol) -> bool:
    if symbol is _VALUE:
        return True
    return isinstance(symbol, tuple) and any(_holds(item) for item in symbol)


def _take(stack: list[Symbol], count: int) -> list[Symbol]:
    """Pop the top ``count`` symbols (in stack order); past the bottom is an IndexError."""
    if count > len(stack):
        raise IndexError("the model of the stack ran out")
    if count <= 0:
        return []
    taken = stack[-count:]
    del stack[-count:]
    return taken


def _effect(instruction: dis.Instruction) -> int:
    """The instruction's stack effect when it does not jump.

    3.11 splits a call's effect: ``PRECALL n`` pops the arguments and
    ``CALL`` the callable and its NULL.  Counted here as one ``CALL``.
    """
    if instruction.opname == "PRECALL":
        return 0
    if instruction.opname == "CALL" and _PRECALLS:
        return -(instruction.arg or 0) - 1
    if instruction.arg is None:
        return dis.stack_effect(instruction.opcode, jump=False)
    return dis.stack_effect(instruction.opcode, instruction.arg, jump=False)


def call_at(instructions: list[dis.Instruction], offset: int) -> Optional[int]:
    """The index of the call instruction at byte ``offset``, or ``None``.

    ``offset`` is where a frame stood when the call made something: the
    call itself, its ``PRECALL`` (3.11, which may make the call once
    specialised) or the last of its inline caches (a frame's ``f_lasti``
    while a Python function it called runs, 3.11 and 3.12).
    """
    low, high = 0, len(instructions)
    while low < high:  # the last instruction at or before offset
        middle = (low + high) // 2
        if instructions[middle].offset <= offset:
            low = middle + 1
        else:
            high = middle
    index = low - 1
    if index < 0:
        return None
    if instructions[index].opname == "PRECALL" and index + 1 < len(instructions):
        index += 1
    return index if instructions[index].opname in CALLS else None


def callee(instructions: list[dis.Instruction], index: int) -> Optional[str]:
    """The last name of what the call at ``index`` calls: ``Lock`` for ``threading.Lock()``.

    Walks back over the arguments by their stack effects to the start of
    the called expression, and reads its dotted name; ``None`` when it is
    not one (``factories[0]()``) or when the walk meets anything it cannot
    count.
    """
    need = 1 - _effect(instructions[index])  # what the call pops: callable, args...
    start = index
    while need > 0:
        start -= 1
        if start < 0:
            return None
        instruction = instructions[start]
        if instruction.opname in _JUMPS or instruction.is_jump_target:
            return None
        need -= _effect(instruction)
    name: Optional[str] = None
    for instruction in instructions[start:index]:
        op = instruction.opname
        if op in _INERT or op == "PUSH_NULL":
            continue
        if name is None and (op in _LOADS or op == "LOAD_FAST_LOAD_FAST"):
            argval = instruction.argval
            name = argval[0] if isinstance(argval, tuple) else argval
            if isinstance(argval, tuple):
                break  # the second name is the first argument
        elif name is not None and op in ("LOAD_ATTR", "LOAD_METHOD"):
            name = instruction.argval
        else:
            break
    return name if isinstance(name, str) else None


def _rotated(symbols: list[Symbol]) -> list[Symbol]:
    """``ROT_n``: the top symbol goes ``n - 1`` places down."""
    return [symbols[-1], *symbols[:-1]]


def _dotted(owner: Symbol, attribute: str) -> Optional[str]:
    return f"{owner}.{attribute}" if isinstance(owner, str) else None


def fate(
    instructions: list[dis.Instruction],
    index: int,
    indices: dict[int, int],
    collects: bool,
    start: Optional[int] = None,
) -> Optional[str]:
    """Where the value of the call at ``index`` is stored, as written, or ``None``.

    Args:
        instructions: the code's instructions (``dis``, without caches).
        index: the call's index in them.
        indices: instruction index by byte offset, to follow a jump.
        collects: whether the code is a comprehension's (3.9-3.11 give each
            its own code object): then a value appended to its result, or
            yielded by a generator expression, is :data:`COLLECTED`.
        start: the first instruction of the call's line.  Run from there
            when it can be, the model also knows what was loaded before the
            call (``self.locks += [Lock()]`` loads ``self.locks`` first);
            else it starts at the call.

    Returns:
        ``cache_lock``, ``self._lock``, :data:`COLLECTED`, or ``None``.
    """
    # What was on the stack before is unknown: a few Nones, enough for any
    # rotation a tuple assignment makes; popping past them means the model
    # is wrong, and ends the run unnamed.
    if start is not None and start < index:
        found = _run_from(instructions, start, index, indices, collects, _unknown())
        if found is not _LOST:
            return found
    return _run_from(instructions, index + 1, index, indices, collects, [*_unknown(), _VALUE])


def _unknown() -> list[Symbol]:
    """A stack of symbols whose values are not known."""
    return [None] * 8


def _run_from(
    instructions: list[dis.Instruction],
    position: int,
    mark: int,
    indices: dict[int, int],
    collects: bool,
    stack: list[Symbol],
) -> Optional[str]:
    try:
        return _run(instructions, position, mark, indices, collects, stack)
    except (IndexError, ValueError):  # past the model's stack; an effect dis cannot tell
        return _LOST if position <= mark else None


def _run(  # noqa: PLR0911, PLR0912, PLR0915 - one branch per instruction kind
    instructions: list[dis.Instruction],
    position: int,
    mark: int,
    indices: dict[int, int],
    collects: bool,
    stack: list[Symbol],
) -> Optional[str]:
    """Run from ``position``; the call at ``mark`` pushes the value (if not run yet).

    Returns :data:`_LOST` when it stops before the call (an instruction it
    does not model, a jump).
    """
    push, pop = stack.append, stack.pop
    for _ in range(_MAX_STEPS):
        if position >= len(instructions):
            return None
        instruction = instructions[position]
        before = position <= mark  # the call has not run yet
        position += 1
        op, arg, argval = instruction.opname, instruction.arg or 0, instruction.argval
        if op in _INERT:
            continue
        if op in _STORES:
            if _holds(pop()):
                return str(argval)
        elif op == "STORE_FAST_STORE_FAST":  # 3.13: two stores in one
            for name in argval:
                if _holds(pop()):
                    return str(name)
        elif op == "STORE_ATTR":
            owner, value = pop(), pop()
            if _holds(value):
                return _dotted(owner, argval)
            if _holds(owner):
                return None
        elif op == "STORE_SUBSCR":
            if any(_holds(symbol) for symbol in (pop(), pop(), pop())):
                return None  # ``locks[key] = Lock()``: not a variable
        elif op in _LOADS:
            if op == "LOAD_GLOBAL" and _NULL_BIT_GLOBAL and arg & 1:
                push(None)
            push(str(argval))
        elif op == "LOAD_FAST_LOAD_FAST":  # 3.13: two loads in one
            push(str(argval[0]))
            push(str(argval[1]))
        elif op in ("LOAD_CONST", "PUSH_NULL", "LOAD_CLOSURE"):
            push(None)
        elif op in ("LOAD_ATTR", "LOAD_METHOD"):
            owner = pop()
            if _holds(owner):
                return None  # ``Lock().acquire``: the value is used, not kept
            if op == "LOAD_METHOD" or (_METHOD_BIT_ATTR and arg & 1):
                push(None)
                push(None)
            else:
                push(_dotted(owner, argval))
        elif op == "DUP_TOP":
            push(stack[-1])
        elif op == "DUP_TOP_TWO":
            stack.extend(stack[-2:])
        elif op == "COPY":
            push(stack[-arg])
        elif op == "SWAP":
            stack[-1], stack[-arg] = stack[-arg], stack[-1]
        elif op in ("ROT_TWO", "ROT_THREE", "ROT_FOUR", "ROT_N"):
            depth = {"ROT_TWO": 2, "ROT_THREE": 3, "ROT_FOUR": 4}.get(op, arg)
            stack.extend(_rotated(_take(stack, depth)))
        elif op == "POP_TOP":
            if _holds(pop()):
                return None
        elif op in ("BUILD_TUPLE", "BUILD_LIST", "BUILD_SET", "BUILD_MAP", "BUILD_CONST_KEY_MAP"):
            count = {"BUILD_MAP": 2 * arg, "BUILD_CONST_KEY_MAP": arg + 1}.get(op, arg)
            push(tuple(_take(stack, count)))
        elif op == "LIST_TO_TUPLE":
            pass
        elif op == "UNPACK_SEQUENCE":
            symbol = pop()
            if isinstance(symbol, tuple) and len(symbol) == arg:
                stack.extend(reversed(symbol))
            elif _holds(symbol):
                return None
            else:
                stack.extend([None] * arg)
        elif op in ("LIST_APPEND", "SET_ADD", "MAP_ADD", "YIELD_VALUE"):
            value = pop()
            if op == "MAP_ADD" and _holds(pop()):
                return None  # a key, not a value
            if _holds(value):
                return COLLECTED if collects else None
            if op == "YIELD_VALUE":
                push(None)
        elif op in ("SETUP_WITH", "BEFORE_WITH"):
            # ``with Manager() as name``: the name is read as the manager's.
            manager = pop()
            push(None)
            push(manager)
        elif op in _JUMPS:
            target = indices.get(argval) if isinstance(argval, int) else None
            if before or target is None or argval <= instruction.offset:
                return _LOST if before else None  # backwards: a loop, not an expression
            position = target
        elif op in CALLS or op.startswith(_ONE_RESULT_PREFIXES) or op in _ONE_RESULT:
            taken = _take(stack, 1 - _effect(instruction))
            if position - 1 == mark:
                push(_VALUE)
                continue
            in_place = op.startswith("INPLACE_") or "=" in instruction.argrepr  # ``+=``
            if in_place and taken and _holds(taken[-1]):
                push(_VALUE)  # ``locks += [Lock()]``: what is stored holds it
            elif any(_holds(symbol) for symbol in taken):
                return None  # an argument, an operand: not kept under a name
            else:
                push(None)
        else:
            return _LOST if before else None
    return _LOST if position <= mark else None
