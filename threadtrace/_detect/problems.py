"""What the detectors found, and how each finding is told: logged, traced, counted, heard.

Every finding is a :class:`Problem`, told once by :func:`report`: on the
``threadtrace`` logger, as a ``threadtrace.<kind>`` span and count (through
the recorder), and to the listeners (the pytest plugin).  Findings made on a
program thread wait in ``runtime.detect.pending`` until the watchdog's
thread (or the exit) calls :func:`publish_pending`.
"""

from __future__ import annotations

import logging
from typing import Iterable

from .._runtime import runtime

logger = logging.getLogger("threadtrace")


class Problem:
    """One thing the detectors found, reported once."""

    def __init__(self, kind: str, level: int, text: str, threads: Iterable[str]) -> None:
        #: deadlock | stuck_thread | held_by_finished_thread | lock_order_inversion
        self.kind = kind
        self.level = level
        self.text = text
        self.threads = tuple(threads)

    def __repr__(self) -> str:
        return f"<Problem {self.kind}: {self.text.splitlines()[0]}>"


def report(problem: Problem) -> None:
    """Log ``problem``, record it on the trace, and tell the listeners.  Never raises."""
    logger.log(problem.level, "%s", problem.text)
    recorder = runtime.recorder
    if recorder is not None:
        recorder.problem(problem.kind, problem.text, problem.threads)
    for listener in list(runtime.detect.listeners):
        try:
            listener(problem)
        except Exception as error:  # noqa: BLE001 - a listener never breaks reporting
            runtime.internal_error("problem listener", error)


def publish_pending() -> list[Problem]:
    """Report what was queued on program threads; returns what this call reported.

    Returns only once every problem queued before the call is reported, by
    this thread or another: a caller that then asks its listener what was
    found (the pytest plugin, as a test ends) must not miss one that the
    watchdog had taken from the queue and not yet told.
    """
    state = runtime.detect
    pending = state.pending
    done = []
    with state.publishing:  # reentrant: a listener or handler may publish in turn
        while pending:
            problem = pending.popleft()
            report(problem)
            done.append(problem)
    return done
