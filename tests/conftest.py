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


@pytest.fixture(scope="session", autouse=True)
def _run_from_an_empty_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep child processes on the installed threadtrace, not the source tree's.

    ``python -c ...`` and ``python -m ...`` put their working directory
    first on ``sys.path``.  Started from the repository root, where the
    tests run, such a child would import the source tree's ``threadtrace/``
    (without its C core, and not what scripts/test installed) instead of the
    package under test.
    """
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(before)


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
