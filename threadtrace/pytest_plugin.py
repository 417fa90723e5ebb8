"""The pytest plugin: ``pytest --threadtrace``.

Installed with threadtrace and off until asked for.  With ``--threadtrace``:

* ``threading`` is patched for the whole session, before test modules are
  imported, with lock-order tracking on and ``on_deadlock="raise"`` (a
  deadlocked test ends with :class:`threadtrace.DeadlockError` instead of
  hanging the run);
* a test during which threadtrace found a deadlock or a lock-order
  inversion fails, with the report as its failure message (an inversion
  fails the test whose locking closed the cycle, even if the run never
  hung);
* the session ends with the contention report of the whole run.

Settings come from the ``THREADTRACE_*`` variables as usual; the plugin only
changes the defaults of ``lock_order`` (true), ``on_deadlock`` (raise) and
``exporters`` (none).  See docs/pytest.md.
"""

from __future__ import annotations

import os
from typing import Any, Generator, Optional

import pytest

import threadtrace
from threadtrace._detect.problems import publish_pending
from threadtrace._runtime import runtime

#: Problems that fail the test they happened in.
FAILING = ("deadlock", "lock_order_inversion")

#: The plugin's defaults, each used unless its THREADTRACE_* variable is set.
PLUGIN_DEFAULTS = {"lock_order": True, "on_deadlock": "raise", "exporters": ()}


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("threadtrace", "threadtrace: deadlocks and lock contention")
    group.addoption(
        "--threadtrace",
        action="store_true",
        default=False,
        help="trace threading during the run: fail tests that deadlock or take locks in "
        "conflicting orders, and print a contention report at the end",
    )
    group.addoption(
        "--threadtrace-top",
        type=int,
        default=5,
        metavar="N",
        help="primitives in the end-of-session contention report (default 5; 0 for none)",
    )


class _Plugin:
    def __init__(self, config: Any) -> None:
        self._config = config
        self._problems: list[Any] = []
        self._listeners = runtime.detect.listeners
        self._publish_pending = publish_pending
        settings = {
            name: value
            for name, value in PLUGIN_DEFAULTS.items()
            if f"THREADTRACE_{name.upper()}" not in os.environ
        }
        self._handle = threadtrace.patch(**settings)
        self._listeners.append(self._problems.append)

    def close(self) -> None:
        if self._problems.append in self._listeners:
            self._listeners.remove(self._problems.append)
        self._handle.unpatch()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: Any) -> Generator[None, Any, None]:
        self._publish_pending()  # what earlier tests left queued is theirs
        self._problems.clear()
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Generator[None, Any, None]:
        outcome = yield
        report = outcome.get_result()
        self._publish_pending()  # lock-order findings are queued, not logged, in acquire
        found = [p for p in self._problems if p.kind in FAILING]
        self._problems.clear()
        if found and report.outcome != "skipped":
            text = "\n\n".join(problem.text for problem in found)
            if report.failed and report.longrepr is not None:
                text = f"{text}\n\n{report.longreprtext}"
            report.outcome = "failed"
            report.longrepr = text

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        top = self._config.getoption("threadtrace_top")
        if not top:
            return
        text = _contention_text(top)
        if text:
            terminalreporter.write_sep("=", "threadtrace contention report")
            terminalreporter.write_line(text.rstrip("\n"))


def _contention_text(top: int) -> Optional[str]:
    return str(threadtrace.report(top=top))


def pytest_configure(config: Any) -> None:
    if config.getoption("threadtrace", False):
        plugin = _Plugin(config)
        config.pluginmanager.register(plugin, "threadtrace-session")
        config.add_cleanup(plugin.close)
