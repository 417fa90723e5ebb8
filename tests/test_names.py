"""A primitive without ``name=`` is named after the variable it is assigned to, then its site.

``cache_lock = threading.Lock()`` at line 4 of ``app.py`` is ``cache_lock
(app.py:4)``.  The same forms are read on every Python (from the source's
columns on 3.11+, from the bytecode on 3.9 and 3.10 and wherever there is
no source) and on both lock cores (the suite runs again with
``THREADTRACE_PURE_PYTHON=1``): a ``Lock`` made by the program is made in
the C core, a ``Condition`` in Python.
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import importlib.util
import logging
import os
import queue
import textwrap
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest
from helpers import line, named

import threadtrace
from threadtrace._detect.problems import publish_pending
from threadtrace._primitives import core
from threadtrace._runtime import runtime
from threadtrace._support.sites import place_key
from threadtrace.testing import Capture, capture, wait_until

HERE = os.path.basename(__file__)


def marked(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.endswith(f"# {marker}"))


@pytest.fixture
def patched() -> Iterator[Capture]:
    with capture() as recorded:
        yield recorded


def pair(*items: Any) -> tuple[Any, ...]:
    return items


class Holder:
    """Primitives kept in attributes."""

    registry_lock: Any = None

    def __init__(self) -> None:
        self._lock = threadtrace.Lock()  # holder
        self.ready = threadtrace.Condition()
        self.inner = Holder.__new__(Holder)
        self.inner.cond = threadtrace.Condition()
        self.locks: dict[str, Any] = {}
        self.locks["key"] = threadtrace.Lock()
        self.more: list[Any] = []
        self.more += [threadtrace.Lock()]

    @classmethod
    def make(cls) -> None:
        cls.registry_lock = threadtrace.RLock()


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Condition", "Semaphore", "Event"])
def test_a_primitive_is_named_after_the_variable_then_its_line(kind: str) -> None:
    """``cache_lock = Lock()`` on line N is ``cache_lock (test_names.py:N)``, for every kind."""
    cache_lock, where = getattr(threadtrace, kind)(), line()
    assert named("cache_lock", HERE, where) == cache_lock.name


def test_attribute_targets_are_read_as_written() -> None:
    """``self._lock``, ``self.inner.cond`` and ``cls.registry_lock``; a subscript is not a name."""
    holder = Holder()
    Holder.make()
    at = marked("holder")
    assert named("self._lock", HERE, at) == holder._lock.name
    assert named("self.ready", HERE, at + 1) == holder.ready.name
    assert named("self.inner.cond", HERE, at + 3) == holder.inner.cond.name
    assert named(None, HERE, at + 5) == holder.locks["key"].name
    assert named("self.more", HERE, at + 7) == holder.more[0].name
    assert named("cls.registry_lock", HERE, at + 11) == Holder.registry_lock.name


def test_each_element_of_a_tuple_assignment_has_its_own_name() -> None:
    """``a, b = Lock(), Lock()``: ``a (…:N)`` and ``b (…:N)``, nested tuples too."""
    where = line() + 1
    a, b = threadtrace.Lock(), threadtrace.Condition()
    c, d, e, f = threadtrace.Lock(), threadtrace.Lock(), threadtrace.Lock(), threadtrace.Lock()
    (g, h), i = (threadtrace.Lock(), threadtrace.Lock()), threadtrace.Lock()
    assert [named(n, HERE, where) for n in "ab"] == [a.name, b.name]
    assert [named(n, HERE, where + 1) for n in "cdef"] == [x.name for x in (c, d, e, f)]
    assert [named(n, HERE, where + 2) for n in "ghi"] == [x.name for x in (g, h, i)]


def test_other_assignments_name_their_target() -> None:
    """Annotated, walrus, chained, conditional, a display, a comprehension (``with`` below)."""
    where = line() + 1
    annotated: Any = threadtrace.Lock()
    if walrus := threadtrace.Semaphore(2):
        pass
    first = second = threadtrace.Lock()
    either = threadtrace.Lock() if walrus else threadtrace.RLock()
    displayed = {"key": threadtrace.Condition()}
    locks = [threadtrace.Lock() for _ in range(3)]
    conditions = [threadtrace.Condition() for _ in range(2)]
    assert annotated.name == named("annotated", HERE, where)
    assert walrus.name == named("walrus", HERE, where + 1)
    assert first.name == named("first", HERE, where + 3)
    assert second is first
    assert either.name == named("either", HERE, where + 4)
    assert displayed["key"].name == named("displayed", HERE, where + 5)
    assert {lock.name for lock in locks} == {named("locks", HERE, where + 6)}
    assert {c.name for c in conditions} == {named("conditions", HERE, where + 7)}


def made() -> Any:
    return threadtrace.Lock()  # returned


def test_without_a_target_the_name_is_the_site_as_before() -> None:
    """An argument, a return value, a default argument: ``test_names.py:N``."""
    where = line() + 1
    (argument,) = pair(threadtrace.Lock())
    returned = made()

    def defaulted(lock: Any = threadtrace.Condition()) -> Any:  # noqa: B008 - the point
        return lock

    assert argument.name == named(None, HERE, where)
    assert returned.name == named(None, HERE, marked("returned"))
    assert defaulted().name == named(None, HERE, where + 3)


def test_a_dataclass_default_factory_is_named_after_its_field() -> None:
    """``field(default_factory=Lock)`` is called by the generated ``__init__`` (no source)."""

    @dataclasses.dataclass
    class Account:
        lock: Any = dataclasses.field(default_factory=threadtrace.Lock)

    assert Account().lock.name.startswith("self.lock (<string>:")


def test_two_calls_on_one_line_without_targets_get_their_order() -> None:
    """``pair(Lock(), Lock())``: ``…:N#1`` and ``…:N#2``; other calls on the line do not count."""
    first, second = pair(threadtrace.Lock(), threadtrace.Lock())
    where = line() - 1
    only, _ = pair(threadtrace.Lock(), len(pair()))
    one, two = threadtrace.Lock(), threadtrace.Lock()
    both = [threadtrace.Lock(), threadtrace.Lock()]
    assert [first.name, second.name] == [f"{HERE}:{where}#1", f"{HERE}:{where}#2"]
    assert only.name == named(None, HERE, where + 2)
    assert [one.name, two.name] == [named("one", HERE, where + 3), named("two", HERE, where + 3)]
    assert [lock.name for lock in both] == [f"both ({HERE}:{where + 4}#{n})" for n in (1, 2)]


def test_two_statements_on_one_line_are_told_apart_by_their_targets() -> None:
    where = line() + 1
    left = threadtrace.Lock(); right = threadtrace.Lock()  # noqa: E702  # fmt: skip
    assert [left.name, right.name] == [named("left", HERE, where), named("right", HERE, where)]


def test_a_queue_and_a_pools_primitives_are_named_after_the_variable(patched: Capture) -> None:
    """``jobs = queue.Queue()``: ``jobs (Queue@…:N)``, the class it was made through kept."""
    jobs = queue.Queue()  # type: ignore[var-annotated]
    jobs_line = line() - 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(int)
        future.result(10)
    pool_line, future_line = jobs_line + 2, jobs_line + 3
    assert type(jobs.mutex) is threadtrace.Lock
    expected = named("jobs", HERE, jobs_line, via="Queue")
    assert [jobs.mutex.name, jobs.not_empty.name, jobs.not_full.name] == [expected] * 3
    assert pool._shutdown_lock.name == named("pool", HERE, pool_line, via="ThreadPoolExecutor")  # type: ignore[attr-defined]
    assert future._condition.name == named("future", HERE, future_line, via="Future")  # type: ignore[attr-defined]


def test_without_source_the_bytecode_names_the_variable() -> None:
    """Code compiled from a string (``python -c``, ``exec``): names from the bytecode alone."""
    source = textwrap.dedent(
        """\
        import threadtrace
        lock = threadtrace.Lock()
        a, b = threadtrace.Lock(), threadtrace.Condition()
        class Holder:
            def __init__(self):
                self.ready = threadtrace.Condition()
        holder = Holder()
        many = [threadtrace.Lock() for _ in range(2)]
        pair = (threadtrace.Lock, threadtrace.Lock)
        first, second = pair[0](), pair[1]()
        """
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    assert namespace["lock"].name == "lock (<generated>:2)"
    assert [namespace["a"].name, namespace["b"].name] == ["a (<generated>:3)", "b (<generated>:3)"]
    assert namespace["holder"].ready.name == "self.ready (<generated>:6)"
    # What needs the source (a comprehension's target) falls back to the site.
    assert {lock.name for lock in namespace["many"]} == {"<generated>:8"}
    assert [namespace["first"].name, namespace["second"].name] == [
        "first (<generated>:10)",
        "second (<generated>:10)",
    ]


def fresh_module(tmp_path: Path, source: str, stem: str = "made_here") -> ModuleType:
    """Import ``source`` as a module of a new file (no file parsed or code seen before)."""
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"made_here_{id(path)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_variable_is_read_once_per_site_however_many_primitives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 primitives from two lines: each line is read once, the file parsed once."""
    names = runtime.target_names
    resolved: list[int] = []
    resolve = names._resolve

    def counting(code: Any, offset: int) -> Any:
        resolved.append(offset)
        return resolve(code, offset)

    monkeypatch.setattr(names, "_resolve", counting)
    parses = names.parses
    module = fresh_module(
        tmp_path,
        """\
        import threadtrace
        def make():
            lock = threadtrace.Lock()
            ready = [threadtrace.Condition() for _ in range(1)]
            return lock, ready[0]
        made = [make() for _ in range(50)]
        """,
    )
    assert resolved == []  # nothing is read while primitives are made
    labels = {primitive.name for both in module.made for primitive in both}
    labels |= {primitive.name for both in module.made for primitive in both}
    assert labels == {"lock (made_here.py:3)", "ready (made_here.py:4)"}
    assert len(resolved) == 2  # once per line
    assert names.parses - parses == 1


def test_the_same_code_in_two_files_is_named_after_each_file(tmp_path: Path) -> None:
    """Code objects compare equal across files: each file's locks still carry its own name."""
    source = """\
        import threadtrace
        def make():
            lock = threadtrace.Lock()
            return lock
        """
    first = fresh_module(tmp_path, source, "first").make()
    second = fresh_module(tmp_path, source, "second").make()
    assert [first.name, second.name] == ["lock (first.py:3)", "lock (second.py:3)"]


def test_a_failure_while_reading_the_source_leaves_the_old_name_and_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser raising something unexpected: the site as before, one internal error, no raise."""
    from threadtrace._support import targets

    def broken(source: str, filename: str) -> Any:
        raise RuntimeError("parser broke")

    monkeypatch.setattr(targets, "parse", broken)
    with capture(patch=False):
        errors = runtime.internal_errors
        module = fresh_module(
            tmp_path,
            """\
            import threadtrace
            conditions = [threadtrace.Condition() for _ in range(2)]
            """,
        )
        assert {c.name for c in module.conditions} == {"made_here.py:2"}
        assert runtime.internal_errors == errors + 1


def test_a_parse_that_another_parse_broke_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython 3.11's AST constructor fails when two parses interleave: a retry, not a lost name."""
    from threadtrace._support import targets

    parse = targets.parse
    calls: list[str] = []

    def interleaved_once(source: str, filename: str) -> Any:
        # Only this module's parses: a site left by an earlier test (its primitive
        # collected, or its wait drained, now) may be named meanwhile.
        if not filename.endswith("made_here.py"):
            return parse(source, filename)
        calls.append(filename)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=84, after=69)")
        return parse(source, filename)

    monkeypatch.setattr(targets, "parse", interleaved_once)
    with capture(patch=False):
        errors = runtime.internal_errors
        module = fresh_module(  # a comprehension: read from the source on every version
            tmp_path,
            """\
            import threadtrace
            conditions = [threadtrace.Condition() for _ in range(2)]
            """,
        )
        assert {c.name for c in module.conditions} == {"conditions (made_here.py:2)"}
        assert runtime.internal_errors == errors
    assert len(calls) == 2  # the broken parse and the one after it; then memoised


def test_threads_that_name_one_site_at_once_parse_its_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight threads queue behind the first parse of a file: they take its tree, none parses again.

    Parses take turns (see the test above); without taking the tree made
    meanwhile, a thousand threads leaving one barrier parse its file a
    thousand times, one after another, and all look blocked for seconds.
    """
    from threadtrace._support import targets

    source = tmp_path / "site.py"
    source.write_text("import threading\nready = threading.Condition()\n", encoding="utf-8")
    filename = str(source)
    names = targets.TargetNames()
    threads = 8
    queued = threading.Semaphore(0)
    parsing = names._parsing

    class Queue:  # counts who reached the parser's turn, then takes it
        def __enter__(self) -> None:
            queued.release()
            parsing.acquire()

        def __exit__(self, *exc: object) -> None:
            parsing.release()

    parse = targets.parse
    parsed: list[str] = []

    def slow(text: str, name: str) -> Any:
        if not parsed:  # the first parse ends when every thread has come to the parser's turn
            for _ in range(threads):
                assert queued.acquire(timeout=10)
        parsed.append(name)
        return parse(text, name)

    monkeypatch.setattr(names, "_parsing", Queue())
    monkeypatch.setattr(targets, "parse", slow)
    assert queued.acquire(timeout=0) is False
    trees: list[Any] = []
    start = threading.Barrier(threads)

    def name_it() -> None:
        start.wait(timeout=10)
        trees.append(names._tree(filename))

    workers = [threading.Thread(target=name_it) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert parsed == [filename]
    assert len(trees) == threads and all(tree is trees[0] for tree in trees)
    assert isinstance(trees[0], ast.Module)


def test_a_failure_in_the_bytecode_model_leaves_the_old_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from threadtrace._support import bytecode

    def broken(*args: Any) -> Any:
        raise RuntimeError("model broke")

    monkeypatch.setattr(bytecode, "fate", broken)
    with capture(patch=False):
        namespace: dict[str, Any] = {}
        exec(compile("import threadtrace\nlock = threadtrace.Lock()\n", "<x>", "exec"), namespace)
        assert namespace["lock"].name == "<x>:2"


def test_a_source_that_no_longer_parses_falls_back_to_the_bytecode(tmp_path: Path) -> None:
    """The file was edited since it was imported: the bytecode still names the variable."""
    module = fresh_module(
        tmp_path,
        """\
        import threadtrace
        def make():
            lock = threadtrace.Lock()
            return lock
        """,
    )
    (tmp_path / "made_here.py").write_text("def make(:\n", encoding="utf-8")
    import linecache

    linecache.checkcache(str(tmp_path / "made_here.py"))
    assert module.make().name == "lock (made_here.py:3)"


def test_a_lock_order_report_names_two_locks_made_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``a, b = Lock(), Lock()`` taken in both orders: ``cycle: a (…:N) -> b (…:N) -> a (…:N)``."""
    with capture(sample_every=1, lock_order=True):
        a, b = threadtrace.Lock(), threadtrace.Lock()
        where = line() - 1
        with caplog.at_level(logging.WARNING, logger="threadtrace"):
            with a, b:
                pass
            with b, a:
                pass
            publish_pending()  # here, or by a watchdog thread an earlier test started
            wait_until(lambda: any("POSSIBLE DEADLOCK" in r.getMessage() for r in caplog.records))
    (report,) = [r.getMessage() for r in caplog.records if "POSSIBLE DEADLOCK" in r.getMessage()]
    a_name, b_name = named("a", HERE, where), named("b", HERE, where)
    assert f"  cycle: {a_name} -> {b_name} -> {a_name}\n" in report


def test_a_call_spread_over_lines_is_named_at_its_first_line() -> None:
    module = threadtrace
    lock = module.Lock(
        name=None,
    )
    condition = module.Condition(
        module.RLock(),
    )
    where = line() - 6
    assert [lock.name, condition.name] == [
        named("lock", HERE, where),
        named("condition", HERE, where + 3),
    ]
    assert condition._lock.name == named(None, HERE, where + 4)  # type: ignore[attr-defined]


def test_names_read_from_many_threads_at_once_agree() -> None:
    """Labels asked for from several threads at once (no lock guards the tables)."""
    conditions, where = [threadtrace.Condition() for _ in range(8)], line()
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda c=c: seen.append(c.name))  # type: ignore[misc]
        for c in conditions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert set(seen) == {named("conditions", HERE, where)}


def test_a_places_key_tells_every_part_of_the_place_apart() -> None:
    """The site cache's key (one int, made alike in C) is exact, not a hash."""
    one, other = (compile("x", name, "eval") for name in ("a.py", "b.py"))
    key = place_key(one, 10, -1, None)
    others = {
        place_key(other, 10, -1, None),
        place_key(one, 12, -1, None),
        place_key(one, 10, 3, None),
        place_key(one, 10, -1, one),
    }
    assert len(others) == 4 and key not in others
    assert place_key(one, 10, None, None) == key  # no line: what the C walk's -1 means


@pytest.mark.skipif(core.creation is None, reason="the pure-Python core walks in Python only")
def test_the_walk_in_c_finds_the_place_the_walk_in_python_finds() -> None:
    """Where a primitive is made, past libraries (and which method it went through), or untraced."""
    assert core.creation is not None
    creation = core.creation
    sites = runtime.site_cache

    def probe() -> tuple[Any, Any, Any]:
        """Both walks, from the caller of this function (a constructor's caller), and the
        C walk again once the Python walk has made the place's Site (the cache's lookup)."""
        return (
            creation(1),
            runtime.modules.creation_site(1, sites=sites),
            creation(1, sites.places),
        )

    def module(name: str, source: str) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": name, "probe": probe}
        exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), namespace)
        return namespace

    library = module(
        "concurrent.futures.made_up",
        """\
        class Future:
            def __init__(self):
                self.found = probe()
        def plain():
            return probe()
        """,
    )
    plumbing = module(
        "opentelemetry.sdk.made_up",
        """\
        def through(library):
            return library["Future"]().found
        def direct():
            return probe()
        """,
    )
    own = module("threadtrace.made_up", "def make():\n    return probe()\n")
    assert runtime.modules.excludes("opentelemetry.sdk.made_up")

    with capture(patch=False):
        for found, site, cached in (probe(), library["Future"]().found, library["plain"]()):
            assert isinstance(found, tuple) and site is not None
            # The same code, offset and method passed through: the cache's key.
            assert sites.places[place_key(found[0], found[1], -1, found[2])][0] is site
            assert cached is site
        assert library["Future"]().found[0][2] is library["Future"].__init__.__code__
        assert library["plain"]()[0][2] is None  # not a method: nothing to name the site after
        for untraced in (plumbing["through"](library), plumbing["direct"](), own["make"]()):
            assert untraced == (None, None, None)
        sites.places.clear()  # a place not in the cache: only the walk in Python makes its Site
        assert creation(0, sites.places) is ...


@pytest.mark.skipif(core.creation is None, reason="the pure-Python core walks in Python only")
@pytest.mark.parametrize("with_line", [False, True])
def test_where_a_wait_is_noted_in_c_is_where_python_notes_it(
    with_line: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a library's frames, to the program's, as the same cached Site."""
    namespace: dict[str, Any] = {"__name__": "concurrent.futures.made_up", "core": core}
    source = "def wait_here(with_line):\n    return core.waiting_site(0, with_line)\n"
    exec(compile(source, "<made_up>", "exec"), namespace)
    found = []
    for in_c in (True, False):
        if not in_c:
            monkeypatch.setattr(core, "_wait_site", None)  # the walk in Python
        found.append(namespace["wait_here"](with_line))  # one place, both walks
    assert found[0] is not None and found[0] is found[1]
    assert found[0].filename == __file__
    assert found[0].lineno == line() - 3


def test_a_hot_call_of_a_library_class_is_walked_past() -> None:
    """Made and acquired in a library's ``__init__`` from a hot loop: both walks reach the loop.

    CPython 3.13 specialises a hot class call and runs ``__init__`` above a
    shim frame that is never complete (its globals are never set); a walk
    that read it crashed the process.
    """
    shared = threadtrace.Lock(name="shared")
    namespace: dict[str, Any] = {"__name__": "concurrent.futures.made_up", "shared": shared}
    source = """\
        import threading
        class Job:
            def __init__(self):
                self.done = threading.Condition()
                with shared:
                    self.site = shared._site_acq
        """
    exec(compile(textwrap.dedent(source), "<made_up>", "exec"), namespace)
    job_class = namespace["Job"]
    with capture():
        jobs = [job_class() for _ in range(1000)]  # hot: the call is specialised  # hot jobs
    here = marked("hot jobs")
    assert {job.done.name for job in jobs} == {named("jobs", HERE, here, via="Job")}
    if core.creation is not None:  # the C core notes where each acquisition was made
        assert {(job.site.filename, job.site.lineno) for job in jobs} == {(__file__, here)}
