"""The processes of one ``threadtrace run``: what those it starts inherit, and what they leave.

``threadtrace run`` traces the Python processes the program starts, as
``opentelemetry-instrument`` and ``ddtrace-run`` do: a directory holding a
``sitecustomize`` module (``boot/``) goes first on ``PYTHONPATH``, and every
Python process that inherits the environment (``subprocess`` running Python,
multiprocessing's ``spawn`` and ``forkserver`` workers, the interpreter of
``run -- COMMAND`` itself) imports it at startup, before its ``__main__``.
It calls :func:`start`, then the ``sitecustomize`` the program had, if any.

What a started process needs comes in the environment: its settings as the
``THREADTRACE_*`` variables, and the run's own state as JSON in
``THREADTRACE_RUN`` (:class:`RunState`): which process is the *top* one (the
program itself, which prints the summary), where the run's files go, and
the directory where each traced process leaves a note of its files, so that
the top one can say what its children wrote.  Forked children (``os.fork``,
multiprocessing's ``fork``) are the same process image: they write files of
their own already (``Config.for_child``), and note them here too.

Every process writes its own files: the top one the configured paths, each
other one those paths with its pid before the suffix
(``threadtrace-trace.4242.jsonl``), next to the top's whatever its working
directory.  Its resource says ``process.pid`` and ``process.parent_pid``.

Nothing here raises into the program: a process that cannot be traced
(another interpreter without threadtrace, an invalid setting) says so in one
line on stderr and runs untraced.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Callable, Optional

from .._control.configure import configure
from .._control.patch import patch
from .._runtime import runtime
from .._support.config import RUN_STATE, Config, as_text, env_var, from_environment

#: The directory this module's ``sitecustomize`` is in.
BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot")


@dataclasses.dataclass(frozen=True)
class RunState:
    """What the processes of one run share.

    Attributes:
        top: the pid of the program's own process, which prints the summary.
        notes: a private directory (0700) where each other traced process
            notes the files it writes; the top one removes it at exit.
        json_path, json_metrics_path, perfetto_path: the top's output
            paths, absolute: the others write theirs beside them.
        service: the default ``service.name`` of every process of the run
            (``threadtrace:<program>``), unless OpenTelemetry's variables
            name one.
        settings: the top's settings as text (``run -- COMMAND``: the top is
            a process the command starts, which reads them here).
        summary: whether the top prints the summary at exit.
        children: whether the processes the top starts are traced.
    """

    top: int
    notes: str
    json_path: str
    json_metrics_path: str
    perfetto_path: str
    service: str
    settings: dict[str, str]
    summary: bool = True
    children: bool = True

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_environment(cls) -> Optional[RunState]:
        """The run this process belongs to, if ``threadtrace run`` started it."""
        text = os.environ.get(RUN_STATE)
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):  # not ours to judge: left alone
            return None

    def paths_for(self, pid: int) -> Config:
        """The output paths of process ``pid`` of the run (a Config holding just those)."""
        base = Config(
            json_path=self.json_path,
            json_metrics_path=self.json_metrics_path,
            perfetto_path=self.perfetto_path,
        )
        return base if pid == self.top else base.for_child(pid)


def begin(config: Config, service: str, *, summary: bool, children: bool) -> RunState:
    """The state of a new run whose top process is this one (or the one it execs).

    Makes the notes directory (``mkdtemp``: private to the user).
    """
    paths = dataclasses.replace(
        config,
        json_path=os.path.abspath(config.json_path),
        json_metrics_path=os.path.abspath(config.json_metrics_file),
        perfetto_path=os.path.abspath(config.perfetto_path),
    )
    return RunState(
        top=os.getpid(),
        notes=tempfile.mkdtemp(prefix="threadtrace-run-"),
        json_path=paths.json_path,
        json_metrics_path=paths.json_metrics_path,
        perfetto_path=paths.perfetto_path,
        service=service,
        settings=as_text(config),
        summary=summary,
        children=children,
    )


def environment(
    state: RunState, child_settings: dict[str, str], base: Optional[dict[str, str]] = None
) -> dict[str, str]:
    """The environment the processes of the run inherit.

    ``child_settings`` are the settings of the processes the top starts, as
    text; ``base`` is the environment to start from (default: this one's).
    """
    env = dict(os.environ if base is None else base)
    for name, text in child_settings.items():
        env[env_var(name)] = text
    env[RUN_STATE] = state.to_json()
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join([BOOT, *([path] if path else [])])
    return env


def without_boot(path: str) -> str:
    """``PYTHONPATH`` without the run's ``sitecustomize`` directory."""
    return os.pathsep.join(part for part in path.split(os.pathsep) if part and part != BOOT)


# -- in a process the run started ---------------------------------------------------------


def start(finish: Callable[[bool, RunState], None]) -> None:
    """In a Python process of the run, from ``sitecustomize``: trace it.  Never raises.

    ``finish`` is ``threadtrace run``'s exit (flush, then the summary); the
    top process registers it as ``threadtrace run`` itself does.
    """
    state = RunState.from_environment()
    if state is None:
        return
    try:
        _start(state, finish)
    except Exception as error:  # noqa: BLE001 - the program runs, untraced, and is told why
        with contextlib.suppress(Exception):
            sys.stderr.write(f"threadtrace: this process runs untraced: {error}\n")


def _start(state: RunState, finish: Callable[[bool, RunState], None]) -> None:
    runtime.service_name = state.service
    pid = os.getpid()
    if pid == state.top:
        if not state.children:  # the processes it starts run as they would
            os.environ["PYTHONPATH"] = without_boot(os.environ.get("PYTHONPATH", ""))
            os.environ.pop(RUN_STATE, None)
        config = Config().replace_from_text(state.settings, env_var)
    else:
        config = from_environment()
        paths = state.paths_for(pid)
        config = config.replace(
            json_path=paths.json_path,
            json_metrics_path=paths.json_metrics_path,
            perfetto_path=paths.perfetto_path,
        )
        runtime.child_of = os.getppid()
    configure(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
    patch()
    if pid == state.top:
        atexit.register(finish, state.summary, state)
        runtime.exit_steps = lambda: finish(state.summary, state)  # on SIGTERM too
    else:
        note(state, pid, runtime.config)
    follow_forks(state)


def note(state: RunState, pid: int, config: Config) -> None:
    """Leave a note, for the top process, of the files process ``pid`` writes.  Never raises."""
    names = {
        "json": (config.json_path, config.json_metrics_file),
        "perfetto": (config.perfetto_path,),
    }
    paths = [path for name in config.exporters for path in names.get(name, ())]
    with contextlib.suppress(OSError):  # the top has ended (and removed the notes): no one to tell
        temporary = os.path.join(state.notes, f".{pid}.tmp")
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump([os.path.abspath(path) for path in paths], file)
        os.replace(temporary, os.path.join(state.notes, str(pid)))


def follow_forks(state: RunState) -> None:
    """From now on, a child this process forks notes its files too (once per process)."""
    if "run-forks" in runtime.installed:
        return
    runtime.installed.add("run-forks")
    runtime.child_hooks.append(lambda: _forked(state))


def _forked(state: RunState) -> None:
    """In a forked child of a process of the run: its files beside the top's, noted.

    Runs after the runtime's own fork handler, which gave the child the
    parent's paths with its pid in them: for a child of a child, that
    would be two pids; it gets the top's paths with its own.
    """
    try:
        pid = os.getpid()
        paths = state.paths_for(pid)  # not the parent's paths with one more pid in them
        runtime.set_config(
            runtime.config.replace(
                json_path=paths.json_path,
                json_metrics_path=paths.json_metrics_path,
                perfetto_path=paths.perfetto_path,
            )
        )
        note(state, pid, runtime.config)
    except Exception as error:  # noqa: BLE001 - a fork must never fail because of us
        runtime.internal_error("fork", error)


# -- in the top process, at exit -----------------------------------------------------------


def children_files(state: RunState) -> dict[int, list[str]]:
    """The files each other process of the run wrote (those that exist), by pid."""
    found: dict[int, list[str]] = {}
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(state.notes)):
            if not name.isdigit():
                continue
            try:
                with open(os.path.join(state.notes, name), encoding="utf-8") as file:
                    paths = json.load(file)
            except (OSError, ValueError):
                continue
            written = [p for p in paths if isinstance(p, str) and os.path.isfile(p)]
            if written:
                found[int(name)] = written
    return dict(sorted(found.items()))


def end(state: RunState) -> None:
    """Remove the notes directory (the top process, at exit)."""
    shutil.rmtree(state.notes, ignore_errors=True)


# -- naming the run -----------------------------------------------------------------------

#: A Python interpreter, by its file name: python, python3, python3.12, pythonw.
_PYTHON = re.compile(r"^python[\d.]*w?(\.exe)?$")
#: Interpreter options that take a value (``-X dev``, ``-W error``).
_WITH_VALUE = frozenset({"-X", "-W", "-Q"})


def program_name(command: list[str]) -> str:
    """What a command runs, for the default service name: the script, module or command.

    ``python app.py`` -> ``app.py``; ``python -m pkg.main`` -> ``pkg.main``;
    ``pytest -x`` -> ``pytest``.
    """
    first = os.path.basename(command[0])
    if not _PYTHON.match(first):
        return first
    args = iter(command[1:])
    for arg in args:
        if arg == "-m":
            return next(args, "python")
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
        if arg in {"-c", "-"}:
            return first
        if arg in _WITH_VALUE:
            next(args, None)
            continue
        if not arg.startswith("-"):
            return os.path.basename(arg)
    return first


def file_lines(paths: list[str], width: int) -> list[str]:
    """Lines naming ``paths`` (relative to here when below it), wrapped to ``width``."""
    lines: list[str] = []
    current = ""
    for number, path in enumerate(paths, 1):
        shown = os.path.relpath(path)
        if shown.startswith(".."):
            shown = path
        piece = shown if number == len(paths) else f"{shown},"
        if current and len(current) + 1 + len(piece) > width:
            lines.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        lines.append(current)
    return lines
