"""threadtrace's modules import in one direction, down its layers, and never in a cycle.

The layers, lowest first, are :data:`LAYERS` (``docs/architecture.md``
draws them).  A module may import any module of its own layer or of a lower
one; every import counts, those placed inside functions included (only
those under ``if TYPE_CHECKING:`` do not run, so they do not count).  An
import left inside a function must say why it is lazy, as
``# noqa: PLC0415 - <why>`` (ruff's rule against such imports is on).

Run on a source tree too: ``python tests/test_architecture.py threadtrace``
(``scripts/lint`` does).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = "threadtrace"

#: Lowest first.  Each entry is the first component below ``threadtrace``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_support",),  # leaves: originals, clock, errors, units, config, names, sites
    ("_formats",),  # OTLP JSON Lines and Perfetto files, in and out
    ("_runtime",),  # the one object holding all process-wide state
    ("exporters",),  # the plugin API and the built-in exporters
    ("_export",),  # threadtrace's own providers, the export queue
    ("_recording",),  # spans, metrics, the contention profile
    ("_detect",),  # the watchdog, deadlocks, stuck threads, lock order
    ("_primitives",),  # the drop-in classes and the lock hot path
    ("_report",),  # the contention report: model and text
    ("_control",),  # configure(), patch(), the exit
    ("_cli",),  # the threadtrace command
    ("__init__", "__main__", "threading", "testing", "pytest_plugin", "instrumentation"),  # public
)

_LAZY_REASON = re.compile(r"#\s*noqa:[^#]*\bPLC0415\b[^#]*?-\s*\S")


class Import(NamedTuple):
    source: str  # the importing module
    target: str  # the imported threadtrace module (or the outside one)
    line: int
    lazy: bool  # inside a function
    text: str  # the source line


def _module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str, is_package: bool, level: int, name: Optional[str]) -> str:
    if not level:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, *([name] if name else [])])


def imports(package_dir: Path) -> tuple[set[str], list[Import]]:
    """Every module of the package, and every import each makes."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        modules[_module_name(path, package_dir)] = path
    found: list[Import] = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, lazy: bool, module: str = module, is_package: bool = is_package,
                  lines: list[str] = lines) -> None:  # fmt: skip
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child):
                    for other in child.orelse:
                        visit(other, lazy)
                    continue
                inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                targets: list[str] = []
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = _absolute(module, is_package, child.level, child.module)
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        targets.append(sub if sub in modules else base)
                for target in targets:
                    text = lines[child.lineno - 1]
                    found.append(Import(module, target, child.lineno, lazy, text))
                visit(child, inner)

        visit(ast.parse(source, str(path)), False)
    return set(modules), found


def layer_of(module: str) -> int:
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "__init__"
    for index, names in enumerate(LAYERS):
        if first in names:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def _edges(modules: set[str], found: list[Import]) -> dict[str, set[str]]:
    """Module -> the threadtrace modules it imports, their parent packages included."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for imp in found:
        if imp.target not in modules or imp.target == imp.source:
            continue
        parts = imp.target.split(".")
        # Importing a.b.c runs a.b's __init__ first, unless the importer is
        # inside a.b (its __init__ ran before it) or a.b is the root.
        for end in range(2, len(parts) + 1):
            target = ".".join(parts[:end])
            inside = imp.source.startswith(target + ".")
            if target in modules and target != imp.source and not inside:
                graph[imp.source].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


def problems(package_dir: Path) -> list[str]:
    """Everything wrong with the package's imports, one line each."""
    modules, found = imports(package_dir)
    out = []
    for imp in found:
        where = f"{imp.source}:{imp.line}"
        if imp.target in modules and imp.target != ROOT:
            if layer_of(imp.target) > layer_of(imp.source):
                out.append(f"{where} imports {imp.target}, a higher layer")
        elif imp.target == ROOT and imp.source != ROOT and layer_of(imp.source) < len(LAYERS) - 1:
            out.append(f"{where} imports the public package {ROOT} from below it")
        if imp.lazy and not _LAZY_REASON.search(imp.text):
            out.append(f"{where} imports {imp.target} inside a function without saying why")
    for component in cycles(_edges(modules, found)):
        out.append("import cycle: " + " -> ".join(component))
    return out


def _installed() -> Path:
    import threadtrace

    return Path(threadtrace.__file__).parent


def test_imports_go_down_the_layers_and_never_round() -> None:
    """No import cycle, no import up a layer, and every lazy import says why."""
    assert problems(_installed()) == []


def test_every_module_is_in_a_layer() -> None:
    modules, _ = imports(_installed())
    for module in modules:
        layer_of(module)


def test_the_runtime_has_the_one_fork_handler() -> None:
    """Layers add to runtime.fork_hooks / child_hooks; only _runtime.py registers with os."""
    registering = sorted(
        str(path.relative_to(_installed()))
        for path in _installed().rglob("*.py")
        if "os.register_at_fork(" in path.read_text(encoding="utf-8")
    )
    assert registering == ["_runtime.py"]


def test_the_checker_finds_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a made-up package with both faults."""
    package = tmp_path / ROOT
    (package / "_support").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_support" / "__init__.py").write_text("")
    (package / "_support" / "a.py").write_text("from . import b\n")
    (package / "_support" / "b.py").write_text(
        "def f():\n    from . import a\n    from .._runtime import x\n"
    )
    (package / "_runtime.py").write_text("x = 1\n")
    assert problems(package) == [
        f"{ROOT}._support.b:2 imports {ROOT}._support.a inside a function without saying why",
        f"{ROOT}._support.b:3 imports {ROOT}._runtime, a higher layer",
        f"{ROOT}._support.b:3 imports {ROOT}._runtime inside a function without saying why",
        f"import cycle: {ROOT}._support.a -> {ROOT}._support.b",
    ]


if __name__ == "__main__":  # python tests/test_architecture.py threadtrace
    found = problems(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT).resolve())
    for line in found:
        print(line)
    print(f"layers: {len(found)} problem(s)" if found else "layers: no cycle, all imports go down")
    raise SystemExit(1 if found else 0)
