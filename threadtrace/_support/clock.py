"""Clocks.  Durations use a monotonic clock; spans need epoch nanoseconds.

Both are read through :attr:`threadtrace._runtime.Runtime.clock`, so tests can inject a
fake clock and get exact durations.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What threadtrace needs from a clock: monotonic and wall time in nanoseconds."""

    def monotonic_ns(self) -> int: ...

    def time_ns(self) -> int: ...


class SystemClock:
    """The real clocks of the machine."""

    monotonic_ns = staticmethod(time.monotonic_ns)
    time_ns = staticmethod(time.time_ns)
