"""The package as users get it: the sdist carries its tests, the wheel its C core.

The two slow tests build and install threadtrace in fresh virtualenvs (pip
needs the network, as for ``scripts/test``), from a copy of the source tree.
They run once per interpreter: the second pass of ``scripts/test``
(``THREADTRACE_PURE_PYTHON=1``) skips them, since what gets packaged does not
depend on which lock core the tests run on.  The others check what a user
without the C core is told.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import child_env

import threadtrace
from threadtrace._control.configure import PURE_PYTHON_CORE, SOURCE_TREE_CORE
from threadtrace._primitives import core
from threadtrace._support.config import pure_python_requested

ROOT = Path(__file__).resolve().parent.parent

#: Not copied from the source tree: what scripts/test leaves out too, and caches.
NOT_STAGED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "*.so", "__pycache__", ".*_cache"
)

#: The tests run from the unpacked sdist: the public surface, the saved
#: outputs (tests/data), the settings against docs/configuration.md, the layers.
SDIST_TESTS = (
    "tests/test_public_api.py",
    "tests/test_golden.py",
    "tests/test_config.py",
    "tests/test_architecture.py",
)

building = pytest.mark.skipif(
    not (ROOT / "pyproject.toml").is_file() or os.name != "posix",
    reason="builds from the source tree, with POSIX tools",
)
once = pytest.mark.skipif(
    pure_python_requested()[0], reason="packaging is tested in the run on the C core"
)


def _env() -> dict[str, str]:
    """Ours, without what would point a child at this tree, this venv or these settings."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV")
    return {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith(("THREADTRACE_", "CPYTHON_SUITES"))
    }


def _run(args: list[str], cwd: Any = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, encoding="utf-8", timeout=600
    )
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


def _fresh_venv(path: Path, *install: str) -> Path:
    """A new virtualenv with ``install`` installed; its bin directory."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    python = path / "bin" / "python"
    # This interpreter's pip, installing into the new venv: no pip of its own to bootstrap.
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-input", *install])
    return python.parent


def _where_threadtrace_is(bin_dir: Path) -> tuple[Path, bool]:
    """Where the venv imports threadtrace from, and whether its C lock core is in use."""
    probe = "import threadtrace; from threadtrace._primitives import core; "
    probe += "print(threadtrace.__file__); print(core.SPEEDUPS)"
    path, speedups = _run([str(bin_dir / "python"), "-I", "-c", probe]).stdout.split()
    return Path(path), speedups == "True"


def _members(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        return {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}


def _unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.12+ warns without a filter
            tar.extractall(into, filter="data")
        else:  # pragma: no cover - CPython releases before the filters
            tar.extractall(into)  # our own sdist, just built
    (top,) = into.iterdir()
    return top


@pytest.mark.slow
@building
@once
def test_the_sdist_holds_what_its_tests_need_and_they_pass_from_it(tmp_path: Path) -> None:
    """Built without deprecation warnings; its tests pass against a fresh install of it."""
    stage = tmp_path / "tree"
    shutil.copytree(ROOT, stage, ignore=NOT_STAGED)
    built = _run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(stage)])
    assert "deprecat" not in (built.stdout + built.stderr).lower(), built.stdout + built.stderr
    (sdist,) = tmp_path.glob("*.tar.gz")

    needed = {"LICENSE", "README.md", "pyproject.toml", "threadtrace_pytest.py"}
    for folder, pattern in (("tests", "*"), ("docs", "*.md"), ("threadtrace", "*")):
        needed |= {
            path.relative_to(stage).as_posix()
            for path in (stage / folder).rglob(pattern)
            if path.is_file()
        }
    assert sorted(needed - _members(sdist)) == []

    unpacked = _unpack(sdist, tmp_path / "unpacked")
    bin_dir = _fresh_venv(tmp_path / "venv", str(sdist), "pytest")
    where, speedups = _where_threadtrace_is(bin_dir)
    assert where.is_relative_to(tmp_path / "venv")  # not this tree, not the unpacked one
    if core.lockcore is not None:  # built here, so it must have been built there too
        assert speedups
    # The venv's own pytest script, from the unpacked tree: its conftest,
    # helpers and data; importlib mode keeps its threadtrace/ off sys.path.
    options = ["-p", "no:cacheprovider", "--import-mode=importlib", "-q"]
    done = _run([str(bin_dir / "pytest"), *options, *SDIST_TESTS], cwd=unpacked)
    assert " passed" in done.stdout


@pytest.mark.slow
@building
@once
@pytest.mark.skipif(core.lockcore is None, reason="no C compiler here: the C core is not built")
def test_the_wheel_carries_the_c_core(tmp_path: Path) -> None:
    """scripts/wheel: a manylinux wheel whose install runs on the C core, `threadtrace run` too."""
    built = _run(["bash", str(ROOT / "scripts" / "wheel"), sys.executable, str(tmp_path)])
    wheel = Path(built.stdout.strip().splitlines()[-1])
    if sys.platform.startswith("linux"):
        assert "-manylinux" in wheel.name
    bin_dir = _fresh_venv(tmp_path / "venv", str(wheel))
    where, speedups = _where_threadtrace_is(bin_dir)
    assert where.is_relative_to(tmp_path / "venv")
    assert speedups
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import threading
            from threadtrace.testing import wait_for_waiters

            lock = threading.Lock()
            lock.acquire()
            taker = threading.Thread(target=lambda: (lock.acquire(), lock.release()))
            taker.start()
            wait_for_waiters(lock, 1)
            lock.release()
            taker.join(10)
            print("ran")
            """
        )
    )
    done = _run([str(bin_dir / "threadtrace"), "run", "--exporters", "", "app.py"], cwd=tmp_path)
    assert done.stdout == "ran\n"
    assert "threadtrace summary:" in done.stderr
    assert "Lock lock (app.py:5): waited" in done.stderr  # traced: that lock was patched
    assert "pure-Python" not in done.stderr


#: Makes ``from . import _lockcore`` fail, as when the extension was not built.
NOT_BUILT = "import sys\nsys.modules['threadtrace._primitives._lockcore'] = None\n"


def _without_the_c_core(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = child_env(**env)
    if "THREADTRACE_PURE_PYTHON" not in env:
        environ.pop("THREADTRACE_PURE_PYTHON", None)
    return subprocess.run(
        [sys.executable, "-c", NOT_BUILT + textwrap.dedent(code)],
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


CONFIGURED_TWICE = """
    import threadtrace
    from threadtrace._primitives import core

    assert not core.SPEEDUPS
    threadtrace.configure(exporters=())
    threadtrace.patch()
    threadtrace.unpatch()
    threadtrace.configure()
"""


def test_without_the_c_core_a_warning_says_what_it_costs_once() -> None:
    done = _without_the_c_core(CONFIGURED_TWICE)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"threadtrace: {PURE_PYTHON_CORE} (reinstall threadtrace where a C compiler is found "
        "to build it, or set THREADTRACE_PURE_PYTHON=1 to choose the pure-Python core "
        "without this warning)"
    ]
    assert "about 2.4x a plain one instead of about 1.2x" in PURE_PYTHON_CORE


def test_imported_from_a_source_tree_the_warning_says_so_and_that_it_is_harmless(
    tmp_path: Path,
) -> None:
    """`python snippet.py` in a clone's root imports the clone's threadtrace/, not the installed one."""
    clone = tmp_path / "clone"
    shutil.copytree(
        Path(threadtrace.__file__).parent,
        clone / "threadtrace",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    (clone / "pyproject.toml").write_text("[project]\nname = 'threadtrace'\n")
    (clone / "snippet.py").write_text(NOT_BUILT + textwrap.dedent(CONFIGURED_TWICE))
    environ = child_env()
    environ.pop("THREADTRACE_PURE_PYTHON", None)
    environ.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=clone,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"threadtrace: {SOURCE_TREE_CORE.format(root=clone)}"]
    assert "This is harmless; to use the installed copy, run from another directory" in (
        SOURCE_TREE_CORE
    )


@pytest.mark.parametrize("value", ["1", "true"])
def test_asking_for_the_pure_python_core_is_not_warned_about(value: str) -> None:
    done = _without_the_c_core(CONFIGURED_TWICE, THREADTRACE_PURE_PYTHON=value)
    assert (done.returncode, done.stderr) == (0, "")


RUN = """
    import sys
    from threadtrace._cli import main

    sys.exit(main(["run", "--exporters", "", "--watchdog", "false", "app.py"]))
"""


def test_without_the_c_core_the_run_summary_says_so(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('ran')\n")
    done = subprocess.run(
        [sys.executable, "-c", NOT_BUILT + textwrap.dedent(RUN)],
        cwd=tmp_path,
        env={k: v for k, v in child_env().items() if k != "THREADTRACE_PURE_PYTHON"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr[done.stderr.index("threadtrace summary:") :].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  speed     "))
    said = [lines[first][12:]]
    for line in lines[first + 1 :]:
        if not line.startswith(" " * 12):
            break
        said.append(line[12:])
    assert " ".join(said) == PURE_PYTHON_CORE
    asked = subprocess.run(
        [sys.executable, "-c", NOT_BUILT + textwrap.dedent(RUN)],
        cwd=tmp_path,
        env=child_env(THREADTRACE_PURE_PYTHON="1"),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert asked.returncode == 0, asked.stderr
    assert "threadtrace summary:" in asked.stderr
    assert "pure-Python" not in asked.stderr
