"""The ``threadtrace`` command (and ``python -m threadtrace``): run, convert, report, dump."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .._support.version import __version__
from . import convert, dump, report, run
from .usage import PROG, UsageError

COMMANDS = {
    "run": ("run a Python program with threading traced", run.command),
    "convert": ("turn a saved JSON trace into a Perfetto timeline", convert.command),
    "report": ("print the contention report of a saved JSON trace", report.command),
    "dump": ("print every thread of a running traced process, now", dump.command),
}


def _main_help() -> str:
    lines = [
        f"usage: {PROG} <command> [options] ...",
        "",
        "threadtrace: Python's threading primitives, reporting what they do.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {text}" for name, (text, _) in COMMANDS.items()]
    lines += [
        "",
        f"Run '{PROG} <command> --help' for a command's options.",
        "",
        "examples:",
        f"  {PROG} run app.py",
        f"  {PROG} run -m mypackage.worker --threads 4",
        f"  {PROG} run -- python -m pytest -x",
        f"  {PROG} convert threadtrace-trace.jsonl --to perfetto -o timeline.json",
        f"  {PROG} report threadtrace-trace.jsonl --sort max --top 5",
        f"  {PROG} dump 4242",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``threadtrace`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            sys.stdout.write(_main_help())
            return 0 if argv else 2
        if argv[0] == "--version":
            sys.stdout.write(f"{PROG} {__version__}\n")
            return 0
        command = COMMANDS.get(argv[0])
        if command is None:
            raise UsageError(
                f"{PROG}: error: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)} "
                f"(see '{PROG} --help')"
            )
        return command[1](argv[1:])
    except UsageError as error:
        sys.stderr.write(f"{error}\n")
        return 2
