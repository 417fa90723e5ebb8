"""Where a primitive was created, and whether it should be traced at all.

A primitive is named after the first frame outside the modules that build
primitives on the user's behalf (``threading``, ``queue``,
``concurrent.futures`` and threadtrace itself), so the three conditions
inside a ``queue.Queue`` are named after the line that made the queue, and
after the variable that line assigns it to (``jobs (Queue@app.py:12)``, see
:attr:`Site.label` and :mod:`threadtrace._support.targets`).

The same walk decides exclusion.  A primitive is left untraced (the factory
returns the stdlib object) when:

* the code that asked for it is ``threading`` itself composing its own
  primitives (``Event`` builds a ``Condition(Lock())``, ``Thread`` an
  ``Event``): threadtrace traces the outer primitive instead;
* the first frame outside the pass-through modules belongs to telemetry
  plumbing (the OpenTelemetry SDK and its exporters, ``logging``, threadtrace);
* the thread is inside threadtrace's own recording (see
  :meth:`threadtrace._runtime.Runtime.recording`).

The walk costs a few hundred nanoseconds per *construction*; nothing here
runs when a primitive is acquired or released.  Names are formatted only when
first asked for.  A :class:`ModuleFilter` is made for one exclusion list
(the runtime keeps the one in force) and caches each module's category.
"""

from __future__ import annotations

import dis
import itertools
import os
import sys
from types import CodeType, FrameType
from typing import Optional

from .targets import TargetNames

#: Modules that create primitives on the user's behalf: skipped when naming.
#: OpenTelemetry's instrumentations wrap the user's calls (``Thread.start`` among
#: them), so their frames are skipped rather than excluded.
PASS_THROUGH = (
    "threading",
    "queue",
    "concurrent.futures",
    "threadtrace",
    "_threading_local",
    "multiprocessing",
    "opentelemetry.instrumentation",
    "wrapt",
)

_NORMAL, _PASS, _EXCLUDED = 0, 1, 2


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _line_of(code: CodeType, offset: int) -> int:
    """The line of the instruction at byte ``offset`` in ``code`` (Python's own tables)."""
    if hasattr(code, "co_lines"):  # 3.10+
        for start, end, line in code.co_lines():
            if start <= offset < end:
                return line if line is not None else code.co_firstlineno
        return code.co_firstlineno
    line = code.co_firstlineno
    for start, starts_line in dis.findlinestarts(code):  # 3.9
        if start > offset:
            break
        line = starts_line
    return line


class Site:
    """A place in the program: a code object and a line, formatted lazily.

    The line may be given, or found from the instruction's byte ``offset``
    when first asked for (the C lock core records offsets: cheaper than a
    line).  ``offset`` also tells apart two calls on one line.

    Attributes:
        via: the library class the primitive was made through
            (``"Queue"``, ``"ThreadPoolExecutor"``), or ``None``.
    """

    __slots__ = ("_kind", "_label", "_lineno", "code", "offset", "via")

    #: Finds a line from an offset; the C core, when built, provides a faster one.
    line_of = staticmethod(_line_of)
    #: Reads the variable a creation site assigns to; the runtime installs its own.
    targets: Optional[TargetNames] = None

    def __init__(
        self,
        code: Optional[CodeType],
        lineno: int = -1,
        via: Optional[str] = None,
        offset: int = -1,
    ) -> None:
        self.code = code
        self._lineno = lineno
        self.offset = offset
        self.via = via
        self._label: Optional[str] = None
        self._kind = 0

    @property
    def lineno(self) -> int:
        line = self._lineno
        if line < 0:
            code = self.code
            line = Site.line_of(code, self.offset) if code is not None and self.offset >= 0 else 0
            self._lineno = line
        return line

    @classmethod
    def of_frame(cls, frame: FrameType, via: Optional[str] = None) -> Site:
        # ``f_lasti`` is in bytes on every version (3.10's frame struct counts
        # instructions, but its Python attribute converts).
        return cls(frame.f_code, frame.f_lineno, via, frame.f_lasti)

    @property
    def filename(self) -> str:
        return self.code.co_filename if self.code is not None else "<unknown>"

    @property
    def function(self) -> str:
        """The fully qualified function name, as ``code.function.name`` wants."""
        if self.code is None:
            return "<unknown>"
        return getattr(self.code, "co_qualname", self.code.co_name)

    @property
    def kind(self) -> int:
        """A number for every primitive made at this file and line: lock order's unit.

        Two sites share it when they share a file and a line (two ``Lock()``
        on one line, one line reached through two code objects), and only
        then.  Never 0; a site keeps its number, and so does the C lock core,
        which asks for it at a lock's first nesting.
        """
        kind = self._kind
        if not kind:
            place = (self.filename, self.lineno)
            known = _KINDS.get(place)
            # next() before setdefault(): numbers stay unique when threads race here.
            kind = self._kind = known or _KINDS.setdefault(place, next(_KIND_NUMBERS))
        return kind

    @property
    def label(self) -> str:
        """The name of a primitive made here: ``cache_lock (app.py:12)``.

        The variable the call's value is assigned to, as written
        (``cache_lock``, ``self._lock``), then the place in parentheses.  The
        place is ``app.py:12``, or ``Queue@app.py:12`` when made through a
        library class: the variable then holds the library's object (the
        queue), or whatever its method returned (a ``Future``), so the class
        stays with the place rather than read as the variable's type.  With
        no variable to read (``register(Lock())``, ``return Lock()``, no
        source and no bytecode that says), the label is the place alone.
        Two calls alike on one line get their order on it: ``app.py:12#2``.

        Computed once per Site (and the variable once per call site), when
        first asked for; never raises.
        """
        label = self._label
        if label is None:
            label = self._make_label()
            self._label = label
        return label

    def _make_label(self) -> str:
        place = f"{os.path.basename(self.filename)}:{self.lineno}"
        variable, order = None, 0
        targets = Site.targets
        if targets is not None and self.code is not None and self.offset >= 0:
            variable, order = targets.lookup(self.code, self.offset)
        if order:
            place = f"{place}#{order}"
        if self.via:
            place = f"{self.via}@{place}"
        return f"{variable} ({place})" if variable else place

    def __repr__(self) -> str:
        return f"<Site {self.label} in {self.function}>"


#: (file, line) -> its Site.kind.  Never reset (a number handed out stays
#: someone's); it grows with the places whose primitives were nested, no faster.
_KINDS: dict[tuple[str, int], int] = {}
_KIND_NUMBERS = itertools.count(1)

UNKNOWN = Site(None, 0)


def place_key(code: CodeType, offset: int, line: Optional[int], via: Optional[CodeType]) -> int:
    """The key of a place in :attr:`SiteCache.places`: one int, as the C lock core makes it.

    Its bytes, least significant first: ``id(code)`` (8), ``offset`` (4),
    ``line + 1`` (4; 0 for no line) and ``id(via)`` (8).  Exact, unlike a
    hash, and one object where a tuple of four was five.
    """
    line = 0 if line is None else (line + 1) & 0xFFFFFFFF
    return id(code) | (offset & 0xFFFFFFFF) << 64 | line << 96 | id(via) << 128


class SiteCache:
    """One shared :class:`Site` per place: made once, however many locks are made there.

    Keyed by code object, its file, and offset (or line): code objects
    compare equal by their contents, not their file, so two files with the
    same function at the same line would otherwise share one Site (and its
    name).  Bounded: past :data:`MAX_SITES` distinct places it starts afresh
    (sites already handed out stay valid).
    """

    MAX_SITES = 100_000

    def __init__(self) -> None:
        #: place_key(code, offset, line, via code) -> (site, via code).  Keyed
        #: by identity: hashing a code object hashes its whole contents, and
        #: this is on every blocked wait's path.  The entry holds both code
        #: objects (the site holds ``code``), so neither id can be reused
        #: while the key is in the dict.  The C lock core reads it too, for
        #: a place seen before: ``creation()`` (line -1) and ``wait_site()``;
        #: it holds this dict from ``site_setup()`` on: cleared when full,
        #: never replaced.
        self.places: dict[int, tuple[Site, Optional[CodeType]]] = {}

    def get(
        self, code: CodeType, offset: int, line: int = -1, via: Optional[FrameType] = None
    ) -> Site:
        """The Site of ``code`` at ``offset`` (or ``line``), reached through ``via``.

        ``via`` is the library frame the primitive was made in (see
        :func:`_via`): only its code is part of the key, and its ``self`` is
        read only when the place is new (``f_locals`` is not cheap).
        """
        via_code = None if via is None else via.f_code
        key = place_key(code, offset, line, via_code)
        entry = self.places.get(key)
        if entry is None:
            if len(self.places) >= self.MAX_SITES:
                self.places.clear()
            name = None if via is None else _via(via)
            entry = self.places[key] = (Site(code, line, name, offset), via_code)
        return entry[0]


def _is_method(code: CodeType) -> bool:
    """Whether ``code`` takes ``self`` first (read from the code: no ``f_locals``)."""
    return code.co_argcount > 0 and code.co_varnames[0] == "self"


def _via(frame: FrameType) -> Optional[str]:
    owner = frame.f_locals.get("self")
    if owner is None:
        return None
    return type(owner).__name__


class ModuleFilter:
    """Which frames are the program's, for one list of excluded module prefixes.

    Thread-safe: the cache is a dict that only ever gains entries, each
    the same whoever computes it.
    """

    def __init__(self, excluded: tuple[str, ...]) -> None:
        self.excluded = excluded
        self._categories: dict[str, int] = {}

    def _category(self, module: str) -> int:
        try:
            return self._categories[module]
        except KeyError:
            pass
        if _matches(module, PASS_THROUGH):
            category = _PASS
        elif _matches(module, self.excluded):
            category = _EXCLUDED
        else:
            category = _NORMAL
        self._categories[module] = category
        return category

    def category(self, module: str) -> int:
        """0 for the program's own module, 1 for one passed through, 2 for one excluded."""
        return self._category(module)

    def excludes(self, module: str) -> bool:
        """Whether ``module`` is telemetry plumbing (or threadtrace): never traced."""
        return _matches(module, self.excluded)

    def creation_site(self, depth: int, sites: Optional[SiteCache] = None) -> Optional[Site]:
        """The site to name a primitive after, or ``None`` to leave it untraced.

        One made straight from ``threading`` or threadtrace is an internal
        building block (every ``Thread`` makes an ``Event``), left untraced.

        Args:
            depth: how many frames above the caller the constructor call is.
            sites: where to get the shared :class:`Site` of the place (else a new one).
        """
        try:
            frame: Optional[FrameType] = sys._getframe(depth + 1)
        except ValueError:
            return UNKNOWN
        assert frame is not None
        module = frame.f_globals.get("__name__", "")
        if module in {"threading", "threadtrace"} or module.startswith("threadtrace."):
            return None
        category = self._category(module)
        via = None
        if category == _PASS:
            frame, category, via = self._past_pass_through(frame)
        if category == _EXCLUDED:
            return None
        if frame is None:
            return UNKNOWN
        if sites is not None:  # one shared Site per place: its name is worked out once
            return sites.get(frame.f_code, frame.f_lasti, -1, via)
        return Site.of_frame(frame, None if via is None else _via(via))

    def starts_traced(self, depth: int) -> bool:
        """Whether a thread started ``depth`` frames above the caller is the program's.

        The start passes through ``threading``'s ``Thread.start``; a thread
        that telemetry plumbing or threadtrace starts for itself (flush,
        watchdog...) is not traced.  Only the answer is wanted, not the place.
        """
        try:
            frame = sys._getframe(depth + 1)
        except ValueError:
            return True
        category = self._category(frame.f_globals.get("__name__", ""))
        if category == _PASS:
            category = self._past_pass_through(frame, starting=True)[1]
        return category != _EXCLUDED

    def _past_pass_through(
        self, frame: FrameType, starting: bool = False
    ) -> tuple[Optional[FrameType], int, Optional[FrameType]]:
        """The first caller outside the pass-through modules, its category, and the
        innermost method it went through, whose ``self`` names the site's class
        (the Future, not its pool; ``threading``'s own methods do not count).

        When ``starting`` a thread, one that threadtrace starts for itself
        counts as excluded.
        """
        via = None
        caller: Optional[FrameType] = frame
        while caller is not None:
            module = caller.f_globals.get("__name__", "")
            category = self._category(module)
            if category != _PASS:
                return caller, category, via
            if starting and module.startswith("threadtrace._"):
                return None, _EXCLUDED, None
            if via is None and module != "threading" and _is_method(caller.f_code):
                via = caller
            caller = caller.f_back
        return None, _PASS, via

    def user_frame(self, depth: int) -> Optional[FrameType]:
        """The first frame above ``depth`` that is neither pass-through nor excluded."""
        try:
            frame: Optional[FrameType] = sys._getframe(depth + 1)
        except ValueError:
            return None
        return self.first_user_frame(frame)

    def first_user_frame(self, frame: Optional[FrameType]) -> Optional[FrameType]:
        """``frame`` or the first caller of it that is neither pass-through nor excluded."""
        known = self._categories  # read in line: this walk is on every blocked wait's path
        while frame is not None:
            module = frame.f_globals.get("__name__", "")
            category = known.get(module)
            if category is None:
                category = self._category(module)
            if category == _NORMAL:
                return frame
            frame = frame.f_back
        return None
