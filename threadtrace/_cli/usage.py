"""What every ``threadtrace`` command shares: its name, and bad usage as one line with status 2."""

from __future__ import annotations

import argparse
from typing import NoReturn

PROG = "threadtrace"


class UsageError(Exception):
    """Bad command line: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError`: one line, status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def option(name: str) -> str:
    """The command-line option of setting ``name``: ``wait_threshold`` -> ``--wait-threshold``."""
    return f"--{name.replace('_', '-')}"
