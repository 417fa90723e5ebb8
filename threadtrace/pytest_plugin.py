"""The pytest plugin at work: ``pytest --threadtrace`` and ``@pytest.mark.threadtrace``.

pytest loads :mod:`threadtrace_pytest` (the ``pytest11`` entry point), which
adds the options, the ini settings and the marker, and imports this module
only once the plugin is turned on.  Then :class:`Tracing` is registered:

* with ``--threadtrace`` (or ``threadtrace = true`` in the ini file)
  ``threading`` is patched for the whole session, before test modules are
  imported;
* otherwise, for a test marked ``@pytest.mark.threadtrace``, it is patched
  from before that test's fixtures are set up until after they are torn
  down, and only primitives created in that span are traced;

either way with lock-order tracking on and ``on_deadlock="raise"`` (a
deadlocked test ends with :class:`threadtrace.DeadlockError` instead of
hanging the run).  A traced test during which threadtrace found a deadlock
or a lock-order inversion fails, with the report as its failure message (an
inversion fails the test whose locking closed the cycle, even if the run
never hung).  The session ends with the contention report of what was traced.

Settings come from the ``THREADTRACE_*`` variables as usual; the plugin only
changes the defaults of ``lock_order`` (true), ``on_deadlock`` (raise) and
``exporters`` (none).  See docs/pytest.md.

``-p threadtrace.pytest_plugin`` still works (with plugin autoloading off, it
is all it takes): it brings :mod:`threadtrace_pytest` along.
"""

from __future__ import annotations

import os
from typing import Any, Generator, Optional

import pytest

import threadtrace
import threadtrace_pytest

# Asked for on the command line, the plugin patches even with
# OTEL_SDK_DISABLED=true (which only stops the telemetry: docs/pytest.md).
from threadtrace._control.patch import apply as apply_patch
from threadtrace._detect.problems import publish_pending
from threadtrace._runtime import runtime

#: Problems that fail the test they happened in.
FAILING = ("deadlock", "lock_order_inversion")

#: The plugin's defaults, each used unless its THREADTRACE_* variable is set.
PLUGIN_DEFAULTS = {"lock_order": True, "on_deadlock": "raise", "exporters": ()}

#: The name of the entry point in the pytest11 group, which loads threadtrace_pytest.
ENTRY_POINT = "threadtrace"


def plugin_settings() -> dict[str, Any]:
    """The plugin's defaults that no ``THREADTRACE_*`` variable overrides."""
    return {
        name: value
        for name, value in PLUGIN_DEFAULTS.items()
        if f"THREADTRACE_{name.upper()}" not in os.environ
    }


def marked(item: Any) -> bool:
    """Whether a test is marked ``@pytest.mark.threadtrace`` (or its class or module is)."""
    return item.get_closest_marker("threadtrace") is not None


class Tracing:
    """threadtrace in a pytest session, once turned on; one per session.

    Not thread-safe: pytest calls its hooks from the main thread.
    """

    def __init__(self, config: Any, *, whole_session: bool) -> None:
        self._config = config
        self._whole_session = whole_session
        self._settings = plugin_settings()
        self._problems: list[Any] = []
        self._listeners = runtime.detect.listeners
        self._publish_pending = publish_pending
        self._session_patch: Optional[threadtrace.PatchHandle] = None
        self._test_patch: Optional[threadtrace.PatchHandle] = None
        if whole_session:
            self._session_patch = apply_patch(**self._settings)
        self._listeners.append(self._problems.append)

    def close(self) -> None:
        if self._problems.append in self._listeners:
            self._listeners.remove(self._problems.append)
        for handle in (self._test_patch, self._session_patch):
            if handle is not None:
                handle.unpatch()
        self._test_patch = self._session_patch = None

    def _traced(self, item: Any) -> bool:
        return self._whole_session or marked(item)

    # tryfirst on the two wrappers: the outermost, so a marked test is patched
    # before any fixture of it is set up and unpatched after the last is torn down.
    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: Any) -> Generator[None, Any, None]:
        if not self._whole_session and marked(item):
            self._test_patch = apply_patch(**self._settings)
        self._publish_pending()  # what earlier tests left queued is theirs
        self._problems.clear()
        yield

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> Generator[None, Any, None]:
        yield
        handle, self._test_patch = self._test_patch, None
        if handle is not None:
            handle.unpatch()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Generator[None, Any, None]:
        outcome = yield
        report = outcome.get_result()
        self._publish_pending()  # lock-order findings are queued, not logged, in acquire
        found = [p for p in self._problems if p.kind in FAILING]
        self._problems.clear()
        if found and report.outcome != "skipped" and self._traced(item):
            text = "\n\n".join(problem.text for problem in found)
            if report.failed and report.longrepr is not None:
                text = f"{text}\n\n{report.longreprtext}"
            report.outcome = "failed"
            report.longrepr = text

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        top = threadtrace_pytest.report_top(self._config)
        if not top:
            return
        text = _contention_text(top)
        if text:
            terminalreporter.write_sep("=", "threadtrace contention report")
            terminalreporter.write_line(text.rstrip("\n"))


def _contention_text(top: int) -> Optional[str]:
    return str(threadtrace.report(top=top))


def pytest_addhooks(pluginmanager: Any) -> None:
    """With ``-p threadtrace.pytest_plugin``: bring the options, ini settings and marker.

    They are :mod:`threadtrace_pytest`'s, registered under the entry point's
    name unless the entry point has already loaded them (or ``-p
    no:threadtrace`` blocks them), so they are never added twice.
    """
    if pluginmanager.is_registered(threadtrace_pytest) or pluginmanager.is_blocked(ENTRY_POINT):
        return
    if pluginmanager.get_plugin(ENTRY_POINT) is None:
        pluginmanager.register(threadtrace_pytest, ENTRY_POINT)
