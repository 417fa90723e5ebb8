"""Shared fixtures: a fake clock, an in-memory capture, and a guard that
every test leaves ``threading`` unpatched."""

from __future__ import annotations

import os

# Before anything imports grpc (test_otlp's server does; the gRPC exporter
# too).  With fork support on, a process that has used gRPC restarts gRPC's
# epoll poller thread in every forked child.  On Python 3.9 subprocess.Popen
# forks (3.10+ uses vfork where it can, which runs no fork handlers); once
# Popen has closed the child's descriptors, that thread finds its epoll fd
# gone and aborts the child before exec (grpc/grpc#43055).  Every test after
# test_otlp that starts a subprocess lost about one child in a hundred to
# SIGABRT (7 in 600 measured, none with this setting).  The children that
# the tests fork without exec (test_safety, test_watch) never use gRPC, so
# no test needs gRPC's fork support.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import threading
from typing import Iterator

import pytest

import threadtrace
from threadtrace._support import originals as _originals
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
