"""Shared fixtures: a fake clock, an in-memory capture, and a guard that
every test leaves ``threading`` unpatched."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

import threadtrace
from threadtrace import _originals
from threadtrace.testing import Capture, FakeClock, capture


@pytest.fixture(autouse=True)
def _leaves_threading_unpatched() -> Iterator[None]:
    yield
    assert not threadtrace.is_patched(), "test left threading patched"
    assert threading.Lock is _originals.Lock
    assert threading.Condition is _originals.Condition


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cap(clock: FakeClock) -> Iterator[Capture]:
    """Everything recorded (thresholds 0, every hold measured), threading patched."""
    with capture(clock=clock, wait_threshold=0, hold_threshold=3600, sample_every=1) as recorded:
        yield recorded
