"""threadtrace's pytest plugin as pytest loads it: the options, the ini settings, the marker.

pytest imports every installed plugin in every run.  This module is the one
the ``pytest11`` entry point names, and it imports nothing of threadtrace
until the plugin is turned on: by ``--threadtrace``, by ``threadtrace = true``
in the ini file, or by a collected test marked ``@pytest.mark.threadtrace``.
Only then does it import :mod:`threadtrace.pytest_plugin`, which does the
work.  A run that does not use threadtrace pays nothing for it: no import of
threadtrace (about 100 ms), no exit or fork handlers, no watchdog thread.

It is a top-level module, shipped in the threadtrace distribution, because
importing any module inside the ``threadtrace`` package would run the
package's ``__init__`` first.  See docs/pytest.md.
"""

from __future__ import annotations

from typing import Any

import pytest

#: The name the plugin object that does the work is registered under, once on.
ACTIVE = "threadtrace-session"

#: Primitives in the end-of-session contention report, unless told otherwise.
DEFAULT_TOP = 5

MARKER = (
    "threadtrace: trace threading during this test only (patched around it) and fail it "
    "if it deadlocks or takes locks in conflicting orders; see threadtrace's docs/pytest.md"
)


def pytest_addoption(parser: Any) -> None:
    """``--threadtrace``, ``--threadtrace-top`` and their ini settings."""
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
        default=None,
        metavar="N",
        help="primitives in the end-of-session contention report "
        f"(default: the threadtrace_top ini setting, else {DEFAULT_TOP}; 0 for none)",
    )
    parser.addini(
        "threadtrace",
        type="bool",
        default=False,
        help="trace threading in every run, as --threadtrace does (default false)",
    )
    parser.addini(
        "threadtrace_top",
        default=str(DEFAULT_TOP),
        help=f"as --threadtrace-top (default {DEFAULT_TOP}; 0 for none)",
    )


def report_top(config: Any) -> int:
    """How many primitives the contention report lists: the option, else the ini setting.

    Raises:
        pytest.UsageError: not a whole number ``>= 0``.
    """
    given = config.getoption("threadtrace_top")
    where = "--threadtrace-top"
    if given is None:
        given, where = config.getini("threadtrace_top"), "threadtrace_top"
    try:
        top = int(str(given).strip())
    except ValueError:
        top = -1
    if top < 0:
        raise pytest.UsageError(f"{where} must be a whole number >= 0, got {given!r}")
    return top


def pytest_configure(config: Any) -> None:
    """Register the marker; turn the plugin on for the whole run if asked to."""
    config.addinivalue_line("markers", MARKER)
    report_top(config)  # a bad value fails now, whether or not the plugin is on
    if config.getoption("threadtrace") or config.getini("threadtrace"):
        _turn_on(config, whole_session=True)


def pytest_collection_finish(session: Any) -> None:
    """Turn the plugin on, for the marked tests only, if any test about to run is marked."""
    config = session.config
    if config.pluginmanager.get_plugin(ACTIVE) is not None or config.getoption("collectonly"):
        return
    if any(item.get_closest_marker("threadtrace") is not None for item in session.items):
        _turn_on(config, whole_session=False)


def _turn_on(config: Any, *, whole_session: bool) -> None:
    # The one import of threadtrace, and only here: see the module docstring.
    from threadtrace.pytest_plugin import Tracing  # noqa: PLC0415 - only once turned on

    tracing = Tracing(config, whole_session=whole_session)
    config.pluginmanager.register(tracing, ACTIVE)
    config.add_cleanup(tracing.close)
