"""Small helpers shared by the tests."""

from __future__ import annotations

import sys


def line() -> int:
    """The line number of the caller: ``lock, where = threading.Lock(), line()``."""
    return sys._getframe(1).f_lineno
