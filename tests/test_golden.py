"""Saved outputs stay byte-identical: the public API, and what the CLI makes of saved traces.

The traces in ``tests/data/golden`` were written by ``threadtrace run`` on
three examples.  ``threadtrace report`` and ``threadtrace convert`` on them
must print exactly what ``tests/data/golden/expected.json`` holds, and the
public surface (names, the modules they say they live in, signatures, entry
points) must be what ``tests/data/golden/api.json`` holds.  A change to
either is a change users see: regenerate with
``python tests/test_golden.py --update`` and say why in the commit.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import inspect
import io
import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import threadtrace
import threadtrace.exporters
import threadtrace.testing
import threadtrace.threading
from threadtrace._cli import main
from threadtrace._primitives.core import SPEEDUPS

GOLDEN = Path(__file__).parent / "data" / "golden"
#: The entry-point groups threadtrace registers in; api.json pins all of them.
ENTRY_POINT_GROUPS = (
    "console_scripts",
    "opentelemetry_instrumentor",
    "pytest11",
    "threadtrace.exporters",
)
TRACES = ("contention", "demo", "lock_order")
#: (name, arguments after the trace path); "convert" is compared by digest.
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("report", ()),
    ("report --json", ("--json",)),
    ("report --sort max --top 3", ("--sort", "max", "--top", "3")),
    ("report --sort count --top 2", ("--sort", "count", "--top", "2")),
)


def _unpack(trace: str, into: Path) -> Path:
    for suffix in (".jsonl", ".metrics.jsonl"):
        with gzip.open(GOLDEN / f"{trace}{suffix}.gz", "rb") as packed:
            (into / f"{trace}{suffix}").write_bytes(packed.read())
    return into / f"{trace}.jsonl"


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(argv)
    return status, out.getvalue()


def outputs(workdir: Path) -> dict[str, Any]:
    """What the CLI prints (and writes) for each saved trace."""
    found: dict[str, Any] = {}
    for trace in TRACES:
        path = _unpack(trace, workdir)
        for name, extra in COMMANDS:
            status, text = _run(["report", str(path), *extra])
            found[f"{trace}: {name}"] = {"status": status, "stdout": text}
        timeline = workdir / f"{trace}.timeline.json"
        status, _ = _run(["convert", str(path), "--to", "perfetto", "-o", str(timeline)])
        digest = hashlib.sha256(timeline.read_bytes()).hexdigest()
        found[f"{trace}: convert --to perfetto"] = {"status": status, "sha256": digest}
    return found


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(no signature)"


def _surface(module: Any) -> dict[str, Any]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = sorted(n for n in vars(module) if not n.startswith("_"))
    members = {}
    for name in names:
        obj = getattr(module, name)
        entry: dict[str, Any] = {"type": type(obj).__name__}
        if inspect.isclass(obj) or inspect.isfunction(obj):
            entry["module"] = obj.__module__
            entry["signature"] = _signature(obj)
        if inspect.isclass(obj):
            entry["methods"] = {
                attr: _signature(getattr(obj, attr))
                for attr in sorted(vars(obj))
                if not attr.startswith("_") and callable(getattr(obj, attr))
            }
        members[name] = entry
    return {"__all__": list(names), "members": members}


def api() -> dict[str, Any]:
    """The public surface: every public module's names, and threadtrace's entry points."""
    dist = importlib.metadata.distribution("threadtrace")
    mirror = threadtrace.threading.__all__
    points = sorted(
        f"{point.group}: {point.name} = {point.value}"
        for point in dist.entry_points
        if point.group in ENTRY_POINT_GROUPS
    )
    return {
        "threadtrace": _surface(threadtrace),
        "threadtrace.exporters": _surface(threadtrace.exporters),
        "threadtrace.testing": _surface(threadtrace.testing),
        # threading's own names differ by version: only the difference is saved
        "threadtrace.threading": {
            "__all__ beyond threading's": sorted(set(mirror) - set(threading.__all__)),
            "threading's missing": sorted(set(threading.__all__) - set(mirror)),
        },
        "entry points": points,
    }


def _expected(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


@pytest.mark.skipif(
    not (3, 11) <= sys.version_info < (3, 13),
    reason="signatures are recorded on 3.11 and 3.12 (3.13's inspect reads more of C methods)",
)
@pytest.mark.skipif(not SPEEDUPS, reason="signatures are recorded with the C lock core")
def test_the_public_api_is_the_saved_one() -> None:
    """Names, modules, signatures and entry points, as saved in api.json."""
    assert api() == _expected("api.json")


def test_report_and_convert_print_the_saved_output(tmp_path: Path) -> None:
    """`threadtrace report` and `convert` on saved traces: byte for byte what was saved."""
    assert outputs(tmp_path) == _expected("expected.json")


if __name__ == "__main__":  # python tests/test_golden.py --update
    if sys.argv[1:] != ["--update"]:
        raise SystemExit("usage: python tests/test_golden.py --update")
    scratch = Path(sys.prefix) / "golden-scratch"
    scratch.mkdir(exist_ok=True)
    try:
        for name, data in (("expected.json", outputs(scratch)), ("api.json", api())):
            text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
            (GOLDEN / name).write_text(text, encoding="utf-8")
    finally:
        shutil.rmtree(scratch)
