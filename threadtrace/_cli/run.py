"""``threadtrace run``: a Python program, run as ``python`` would, with threading traced.

A script or ``-m module`` runs in this process: threading is patched before
the target imports anything, then it runs as ``python`` would run it (the
same ``sys.argv``, ``__main__``, ``sys.path[0]``, exit status,
uncaught-exception traceback and ``SIGINT`` behaviour).  Any other command
(``-- python app.py``, a console script such as ``pytest``) replaces this
process, and is traced from its own start by the ``sitecustomize`` that the
run puts on ``PYTHONPATH``, as are the Python processes the program starts
(:mod:`.processes`).  At exit the program's process flushes the exporters
and prints a short summary, which names the files its children wrote.
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import contextlib
import dataclasses
import importlib.machinery
import importlib.util
import logging
import os
import runpy
import shutil
import signal
import sys
import textwrap
import types
from types import TracebackType
from typing import Any, Optional, Sequence

from .._control.configure import configure
from .._control.exit import before_report, exit_steps_done, flush, log_report
from .._control.patch import patch
from .._runtime import runtime
from .._support.config import (
    _FALSE,
    _TRUE,
    Config,
    _flag,
    _flag_or_auto,
    as_text,
    env_var,
    exporters_from_otel,
    from_environment,
    pure_python_requested,
    sdk_disabled,
    setting_names,
    settings_help,
)
from .._support.errors import ConfigurationError
from . import processes
from .summary import summary
from .usage import PROG, Parser, UsageError, option

_exit: Any
try:
    from . import _exit
except ImportError:  # not built (no compiler at install time): see _die_of_sigint
    _exit = None

#: Where ``threadtrace run`` differs from the library's defaults, unless an
#: option or a THREADTRACE_* variable says otherwise: it writes a trace file
#: and logs the contention report at exit (the summary is always printed).
RUN_DEFAULTS: dict[str, Any] = {"exporters": ("json",), "report": True}


def _run_parser() -> Parser:
    parser = Parser(
        prog=f"{PROG} run",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{PROG} run [options] script.py [args...]\n"
        f"       {PROG} run [options] -m module [args...]\n"
        f"       {PROG} run [options] -- COMMAND [args...]",
        description=textwrap.dedent(
            """\
            Run a Python program with threading instrumented: its threads, locks,
            conditions, semaphores, events and barriers are traced, exactly as if it
            had called threadtrace.patch() before importing anything.

            Everything after the script (or -m module) goes to the program.  A
            COMMAND (after --, or any first word that is not a file) is looked up on
            PATH and run in place of threadtrace: python app.py, python -m pkg, or a
            console script such as pytest, gunicorn or celery.

            The Python processes the program starts are traced too (subprocesses
            running Python, multiprocessing workers with fork, spawn or forkserver),
            each writing files of its own: threadtrace-trace.<pid>.jsonl, beside the
            program's.  threadtrace report and convert take several files (or a
            quoted glob); the resource attribute process.pid tells processes apart.

            Every option is also an environment variable (shown in each option's
            help); an option wins over its variable.  By default the trace is written
            to threadtrace-trace.jsonl and a summary is printed to stderr at exit.
            OTEL_SDK_DISABLED=true turns all of it off; OTEL_TRACES_EXPORTER and
            OTEL_METRICS_EXPORTER are honoured (docs/configuration.md).
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              threadtrace run app.py --workers 8
              threadtrace run --exporters console,json --wait-threshold 0.005 app.py
              threadtrace run --exporters otlp -m myservice.main   # OTEL_EXPORTER_OTLP_* apply
              threadtrace run -- python -m pytest -x tests/
              threadtrace run --no-children -- gunicorn app:app
              threadtrace convert threadtrace-trace.jsonl --to perfetto -o timeline.json
            """
        ),
    )
    parser.add_argument("-m", dest="module", metavar="module", help="run a module as a script")
    parser.add_argument(
        "--no-summary", action="store_true", help="do not print the summary at exit"
    )
    parser.add_argument(
        "--no-children",
        action="store_true",
        help="do not trace the Python processes the program starts (subprocesses, "
        "spawn and forkserver workers); forked children are the program's own image "
        "and are traced regardless",
    )
    settings = parser.add_argument_group("settings (docs/configuration.md)")
    for name, metavar, help_text, example, default in settings_help():
        shown = RUN_DEFAULTS.get(name, default)
        if isinstance(shown, tuple):
            shown = ",".join(shown)
        elif isinstance(shown, bool) or shown in ("True", "False"):
            shown = str(shown).lower()
        extra: dict[str, Any] = {}
        if name in _flag_settings():
            extra = {"nargs": "?", "const": "true"}  # --lock-order alone means true
        settings.add_argument(
            option(name),
            dest=name,
            metavar=metavar,
            help=f"{help_text} Default: {shown or 'empty'}. "
            f"Example: {option(name)} {example}. Variable: {env_var(name)}.",
            **extra,
        )
    return parser


def _flag_settings() -> frozenset[str]:
    """The settings that are true or false: their option needs no value."""
    flags = (_flag, _flag_or_auto)
    return frozenset(f.name for f in dataclasses.fields(Config) if f.metadata.get("parse") in flags)


def _split_run_args(argv: Sequence[str], parser: Parser) -> tuple[list[str], list[str]]:
    """Split ``run``'s arguments into threadtrace's options and the target's command line.

    The target starts at the first argument that is not an option (the
    script) or at ``-m module``; everything from there on belongs to it.
    """
    # "spelling", not "option": on CPython 3.12.0 to 3.12.3 a comprehension's
    # variable hides the function option() from the next comprehension
    # (UnboundLocalError: python/cpython#118513, fixed in 3.12.4).
    takes_value = {
        spelling
        for action in parser._actions
        if action.nargs is None and action.option_strings
        for spelling in action.option_strings
        if not isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction))
    }
    may_take_value = {option(name) for name in _flag_settings()}
    ours: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return ours, list(argv[i + 1 :])
        if arg == "-m" or (arg.startswith("-m") and len(arg) > 2 and not arg.startswith("--")):
            module = argv[i + 1 : i + 2] if arg == "-m" else [arg[2:]]
            if not module:
                raise UsageError(f"{parser.prog}: error: -m needs a module name")
            return ours, ["-m", *module, *argv[i + (2 if arg == "-m" else 1) :]]
        if not arg.startswith("-") or arg == "-":
            return ours, list(argv[i:])
        ours.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if (
            "=" not in arg
            and following is not None
            and (
                arg in takes_value
                or (arg in may_take_value and following.lower() in _TRUE | _FALSE | {"auto"})
            )
        ):
            ours.append(following)
            i += 1
        i += 1
    return ours, []


def _config_from(options: argparse.Namespace) -> Any:
    """The configuration for ``run``: defaults, then THREADTRACE_*, then options."""
    base = Config(**RUN_DEFAULTS)
    config = from_environment(base=base)
    given = {
        name: getattr(options, name)
        for name in setting_names()
        if getattr(options, name, None) is not None
    }
    return config.replace_from_text(given, option)


def command(argv: Sequence[str]) -> int:
    """``threadtrace run [options] script.py|-m module [args...]``."""
    parser = _run_parser()
    ours, target = _split_run_args(argv, parser)
    if "-h" in ours or "--help" in ours:
        parser.print_help()
        return 0
    options = parser.parse_args(ours)
    if not target:
        raise UsageError(f"{parser.prog}: error: give a script, -m module or command to run")
    command = _command_of(target)
    module = _check_target(parser, target) if command is None else None
    try:
        config = _config_from(options)
        _check_opentelemetry_variables(options)
    except ConfigurationError as error:
        raise UsageError(f"{parser.prog}: error: {error}") from None
    if command is not None:
        return _replace_with(parser, command, config, options)
    args = target[2:] if module is not None else target[1:]

    # The program's own argv from here on: the resource's default service
    # name is taken from it when the providers are built.
    sys.argv = [module if module is not None else target[0], *args]
    try:
        configure(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
    except ConfigurationError as error:
        raise UsageError(f"{parser.prog}: error: {error}") from None
    state = processes.begin(
        config,
        _service_name(sys.argv[0]),
        summary=not options.no_summary,
        children=not options.no_children,
    )
    if state.children:
        os.environ.update(processes.environment(state, _child_settings(config, options)))
    patch()
    processes.follow_forks(state)
    atexit.register(_finish, state.summary, state)
    runtime.exit_steps = lambda: _finish(state.summary, state)  # on SIGTERM too
    return _execute(module, target[0] if module is None else None)


def boot() -> None:
    """In a Python process a run started, from its ``sitecustomize``: trace it."""
    processes.start(_finish)


def _check_opentelemetry_variables(options: argparse.Namespace) -> None:
    """OpenTelemetry's switches, checked before anything runs.

    ``OTEL_*_EXPORTER`` is checked where it names the exporters: not when
    ``--exporters`` or ``THREADTRACE_EXPORTERS`` does (a value only the SDK
    knows is then the program's own SDK's business).

    Raises:
        ConfigurationError: one of them holds a value it cannot.
    """
    _, problem = sdk_disabled()
    if problem is not None:
        raise ConfigurationError(problem.partition(";")[0])
    if options.exporters is None and env_var("exporters") not in os.environ:
        exporters_from_otel()


def _command_of(target: list[str]) -> Optional[list[str]]:
    """The command to run in place of threadtrace, or None for a script or ``-m module``.

    A script runs as a script, exactly as it always has: a ``.py`` file (or
    ``.pyz``, a directory, a file that is not executable).  Anything else
    found on ``PATH``, or an executable given by its path, is a command:
    ``python``, ``/usr/bin/python3``, ``pytest``, ``./manage``.
    """
    first = target[0]
    if first == "-m":
        return None
    if os.path.exists(first) and (
        os.path.isdir(first)
        or first.endswith((".py", ".pyw", ".pyz", ".pyc"))
        or not os.access(first, os.X_OK)
    ):
        return None
    return target if shutil.which(first) is not None else None


def _service_name(program: str) -> str:
    return f"threadtrace:{os.path.basename(program) or 'python'}"


def _child_settings(config: Config, options: argparse.Namespace) -> dict[str, str]:
    """The settings of the processes the program starts: its own, but the report.

    A contention report from every worker of a pool would bury the
    program's: they log one only if asked (``--report``, ``THREADTRACE_REPORT``).
    """
    settings = as_text(config)
    if options.report is None and env_var("report") not in os.environ:
        settings["report"] = "false"
    return settings


def _replace_with(
    parser: Parser, command: list[str], config: Config, options: argparse.Namespace
) -> int:
    """Run ``command`` in place of this process, traced from its start; returns only on failure.

    Its interpreter (and every Python process it starts) imports the run's
    ``sitecustomize``, which traces it; the command's own process is the
    program's, which prints the summary.
    """
    state = processes.begin(
        config,
        _service_name(processes.program_name(command)),
        summary=not options.no_summary,
        children=not options.no_children,
    )
    env = processes.environment(state, _child_settings(config, options))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as error:
        processes.end(state)
        raise UsageError(
            f"{parser.prog}: error: cannot run {command[0]!r}: "
            f"[Errno {error.errno}] {error.strerror}"
        ) from None


def _check_target(parser: Parser, target: list[str]) -> Optional[str]:
    """The module to run (None for a script), after checking the target exists.

    Nothing of the program is imported here: for ``-m pkg.mod`` only the
    top-level package is looked up (which runs none of its code), so the
    package's ``__init__`` runs patched, as part of the program.
    """
    if target[0] == "-m":
        module = target[1]
        top = module.partition(".")[0]
        sys.path.insert(0, os.getcwd())  # where python -m looks first
        try:
            found = importlib.util.find_spec(top) if top else None
        except (ImportError, ValueError) as error:
            found, reason = None, str(error)
        else:
            reason = f"No module named {top!r}"
        finally:
            del sys.path[0]
        if found is None:
            raise UsageError(f"{parser.prog}: error: {reason}")
        return module
    script = target[0]
    if not os.path.isdir(script):
        try:
            with open(script, "rb"):
                pass
        except OSError as error:
            raise UsageError(
                f"{parser.prog}: error: can't open file {script!r}: "
                f"[Errno {error.errno}] {error.strerror}"
            ) from None
    return None


def _die_of_sigint() -> None:
    """End the process by SIGINT once it is done, as python does after an
    uncaught KeyboardInterrupt.

    python's own decision to do so is forgotten whenever code compiled from a
    string runs at exit (``exec``, ``eval``, a new dataclass or namedtuple),
    which the exporters' flush does.  With the C extension, a low-level exit
    function kills the process after the interpreter has finalized, so every
    atexit handler runs first, as under python.  Without it, :func:`_finish`
    kills the process after the summary, and atexit handlers registered before
    threadtrace's (by ``sitecustomize``, say) do not run.
    """
    pure, _ = pure_python_requested()  # the tests' switch for "not built"
    if _exit is not None and not pure and _exit.die_of_sigint_at_exit():
        return
    runtime.sigint_at_exit = True


def _execute(module: Optional[str], script: Optional[str]) -> int:
    """Run the target as ``python`` would; return its exit status, or raise SystemExit."""
    safe_path = getattr(sys.flags, "safe_path", False)  # -P / PYTHONSAFEPATH: no path entry
    try:
        if module is not None:
            if not safe_path:
                sys.path[0] = os.getcwd()
            _run_module(module)
        else:
            assert script is not None
            if not safe_path:
                app = os.path.isdir(script) or not os.path.isfile(script)  # a dir or zip app
                real = os.path.realpath(script)
                sys.path[0] = real if app else os.path.dirname(real)
            _run_script(script)
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - reported as python would
        error = error.with_traceback(_trim(error.__traceback__))  # the hook reads it there
        sys.excepthook(type(error), error, error.__traceback__)
        if isinstance(error, KeyboardInterrupt):
            _die_of_sigint()
        return 1
    return 0


def _fresh_main() -> Any:
    """A new ``__main__`` module, installed for good (threads and atexit see it)."""
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main


def _run_script(script: str) -> None:
    if os.path.isdir(script) or not os.path.isfile(script):  # a directory or zip app
        runpy.run_path(os.path.realpath(script), run_name="__main__")
        return
    path = os.path.abspath(script)
    main = _fresh_main()
    main.__file__ = path
    main.__cached__ = None
    main.__package__ = None
    main.__spec__ = None
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    with open(path, "rb") as file:  # bytes: compile() honours the coding cookie
        source = file.read()
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)  # running the user's program is the point


def _run_module(module: str) -> None:
    run_as_main = getattr(runpy, "_run_module_as_main", None)
    if run_as_main is None:  # pragma: no cover - every supported CPython has it
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    _fresh_main()
    run_as_main(module, alter_argv=True)  # what python -m itself calls


def _summary_text(state: Optional[processes.RunState]) -> str:
    """The summary, and what the other processes of the run wrote."""
    if runtime.sdk_disabled:  # nothing was patched, recorded or written
        return "threadtrace summary: OTEL_SDK_DISABLED is true: nothing was traced or exported\n"
    text = summary(runtime.export_stats)
    files = processes.children_files(state) if state is not None else {}
    if not files:
        return text
    shown = sorted(
        path
        for paths in files.values()
        for path in paths
        if not path.endswith(".metrics.jsonl")  # found beside each trace
    )
    count = len(files)
    lines = [
        f"  children  {count} other process{'' if count == 1 else 'es'} wrote files of "
        f"{'its' if count == 1 else 'their'} own (process.pid tells them apart):"
    ]
    lines += [f"            {line}" for line in processes.file_lines(shown, 76)]
    if "json" in runtime.config.exporters:
        stem, _, suffix = os.path.basename(runtime.config.json_path).partition(".")
        pattern = os.path.join(os.path.dirname(runtime.config.json_path), f"{stem}*.{suffix}")
        lines.append(f"  all       threadtrace report '{pattern}'   (convert takes them too)")
    return text + "\n".join(lines) + "\n"


def _trim(tb: Optional[TracebackType]) -> Optional[TracebackType]:
    """Drop threadtrace's and runpy's frames from the top of a traceback."""
    skip = {os.path.normcase(os.path.abspath(__file__)), os.path.normcase(runpy.__file__)}
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if os.path.normcase(filename) in skip or filename == "<frozen runpy>":
            tb = tb.tb_next
            continue
        break
    return tb


@contextlib.contextmanager
def _visible_on_stderr() -> Any:
    """Make sure INFO records of the ``threadtrace`` logger reach someone.

    A program that configured logging gets them through its handlers (at
    INFO at least, for the while); one that did not gets them on stderr.
    """
    logger = logging.getLogger("threadtrace")
    level = logger.level
    handler = None
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)


def _finish(summarise: bool, state: Optional[processes.RunState] = None) -> None:
    """At exit: flush the exporters, then print the summary (and die of SIGINT if due).

    Only the program's own process prints the summary, naming the files the
    other processes of the run wrote; a forked child (a multiprocessing
    worker) flushes, and says nothing.
    """
    before_report()  # queued records and waits still going on, recorded
    with _visible_on_stderr():
        log_report()  # computed before the exporters' last export, from the same data
    flush()
    top = state is None or os.getpid() == state.top
    if summarise and top:
        try:
            sys.stderr.write(_summary_text(state))
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - stderr closed; nothing else to tell
            pass
    if state is not None and top:
        processes.end(state)
    exit_steps_done()  # a SIGTERM that came meanwhile ends the process now
    if runtime.sigint_at_exit:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # closed: nothing to flush
                stream.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
