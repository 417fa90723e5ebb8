"""Numbers for people: durations and counts scaled for reading."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``0.0000123`` → ``"12.3 µs"``; three significant digits, unit scaled."""
    if seconds < 0:
        return f"-{duration(-seconds)}"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{_three(seconds / scale)} {unit}"
    return f"{_three(seconds / 1e-9)} ns" if seconds else "0 s"


def _three(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
