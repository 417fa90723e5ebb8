"""The configuration entry points: ``configure()`` and ``shutdown()``."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

from .._detect import watchdog
from .._primitives import core
from .._recording.recorder import Recorder
from .._runtime import runtime
from .._support.config import Config, pure_python_requested
from .._support.errors import ConfigurationError

#: What the user is told, once, when the C lock core is not built (README, Performance).
PURE_PYTHON_CORE = (
    "the pure-Python lock core is in use because threadtrace's C extension "
    "(threadtrace._primitives._lockcore) was not built at install time: an uncontended "
    "`with lock:` costs about 2.4x a plain one instead of about 1.2x"
)

#: The same, when threadtrace was imported from a source checkout (whose C
#: extension is not built in place) rather than from where pip installed it:
#: ``python snippet.py`` in the root of a clone does that, because Python puts
#: the script's directory first on ``sys.path``.  ``{root}`` is the checkout.
SOURCE_TREE_CORE = (
    "threadtrace was imported from the source tree in {root}, not from the installed copy "
    "(Python puts the script's or the current directory first on sys.path), and the C "
    "extension is not built there, so the pure-Python lock core is in use: it records the "
    "same, only slower (about 2.4x a plain `with lock:` instead of about 1.2x). This is "
    "harmless; to use the installed copy, run from another directory"
)

# Whether PURE_PYTHON_CORE was said.  Kept here, not in the runtime, like the
# cache in _support/plugins.py: it is about the installation, so it is said
# once per process, and a captured block (which saves and restores the
# runtime) must not make it say so again.


def configure(
    *,
    tracer_provider: Optional[Any] = None,
    meter_provider: Optional[Any] = None,
    **settings: Any,
) -> Config:
    """Change what threadtrace records and where it sends it.

    Thread-safe.  Settings not given keep their current values.  Primitives
    pick up new thresholds at once and a new ``sample_every`` at their next
    sample.

    Args:
        tracer_provider: record spans here instead of the global provider.
        meter_provider: record metrics here instead of the global provider.
        **settings: fields of :class:`threadtrace.Config` (docs/configuration.md
            lists them all).

    Returns:
        The configuration now in force.

    Raises:
        ConfigurationError: a value is invalid or a name is not a setting, or
            a ``THREADTRACE_*`` variable is invalid; the configuration in
            force is left unchanged.
    """
    if runtime.environment_error is not None:
        raise runtime.environment_error
    old_config = runtime.config
    new = old_config.replace(**settings)
    providers_changed = tracer_provider is not None or meter_provider is not None
    outputs_changed = _outputs(new) != _outputs(old_config)
    runtime.set_config(new)
    if providers_changed or outputs_changed:
        old = runtime.recorder
        if old is not None:  # providers given earlier stay until replaced
            tracer_provider = tracer_provider or old._explicit_tracer_provider
            meter_provider = meter_provider or old._explicit_meter_provider
        replacement = Recorder(tracer_provider, meter_provider)
        try:
            # Build the exporters now, so an unwritable path or a missing
            # extra fails here, in the caller, instead of at the first span.
            replacement.prepare_exporters()
        except ConfigurationError:
            runtime.set_config(old_config)
            raise
        runtime.recorder = replacement
        if old is not None:
            old.shutdown(timeout=min(2.0, old_config.flush_timeout))
    recorder = runtime.recorder
    if recorder is not None:
        # The exporters may not exist yet (the THREADTRACE_* variables chose
        # them at import): build them now, so a missing extra fails here.
        recorder.prepare_exporters()
        recorder.ensure_ready()
    # The watchdog starts now, not at the program's first wait: a thread of
    # threadtrace's appearing mid-run would change the thread count the
    # program sees (threading.active_count(), _thread._count()).  Not with
    # OTEL_SDK_DISABLED=true, where threadtrace stays out of the way (patch()
    # patches nothing; a wait on a primitive of threadtrace's starts it).
    if not runtime.sdk_disabled:
        watchdog.ensure_started()
        _say_if_pure_python_core()  # (with nothing patched, the core is beside the point)
    return new


def pure_python_core_note() -> Optional[str]:
    """:data:`PURE_PYTHON_CORE` if the lock core is pure Python for want of the C one, else None.

    None also when ``THREADTRACE_PURE_PYTHON`` asked for the pure-Python core:
    who asked knows.
    """
    if core.lockcore is not None or pure_python_requested()[0]:
        return None
    root = source_tree()
    return PURE_PYTHON_CORE if root is None else SOURCE_TREE_CORE.format(root=root)


def source_tree() -> Optional[str]:
    """The source checkout threadtrace was imported from, or None when it is an installed copy.

    A checkout has ``pyproject.toml`` beside the package; site-packages does
    not.  A checkout that pip installed in editable mode (``pip install -e``)
    is the installed copy, so it does not count.
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isfile(os.path.join(root, "pyproject.toml")):
        return None
    import importlib.metadata  # noqa: PLC0415 - for a missing C core only (see _support/plugins.py)
    import pathlib  # noqa: PLC0415 - as above: at the top, every traced program would carry it

    for distribution in importlib.metadata.distributions(name="threadtrace"):
        try:
            direct = json.loads(distribution.read_text("direct_url.json") or "{}")
        except ValueError:  # a damaged file says nothing either way
            continue
        editable = isinstance(direct, dict) and direct.get("dir_info", {}).get("editable")
        if editable and direct.get("url") == pathlib.Path(root).as_uri():
            return None
    return root


def _say_if_pure_python_core() -> None:
    """Warn once per process, on the ``threadtrace`` logger, that the C core is missing."""
    note = pure_python_core_note()
    if note is None or "pure-python-core-said" in runtime.installed:
        return
    runtime.installed.add("pure-python-core-said")  # two first calls may both say it: harmless
    # Queued, not logged here: the caller may hold the program's locks (runtime.notice).
    if source_tree() is not None:
        runtime.notice(logging.WARNING, "threadtrace: %s", note)
        return
    runtime.notice(
        logging.WARNING,
        "threadtrace: %s (reinstall threadtrace where a C compiler is found to build it, "
        "or set THREADTRACE_PURE_PYTHON=1 to choose the pure-Python core without this warning)",
        note,
    )


def _outputs(config: Config) -> tuple[object, ...]:
    """The settings that shape the exporters: a change means new exporters."""
    return (
        config.exporters,
        config.json_path,
        config.json_metrics_file,
        config.perfetto_path,
    )


def current_config() -> Config:
    """The configuration in force."""
    return runtime.config


def shutdown(timeout: Optional[float] = None, *, _final: bool = False) -> None:
    """Flush and stop threadtrace's own exporters.

    Waits at most ``timeout`` seconds (default: the ``flush_timeout``
    setting).  Runs at interpreter exit on its own; the application's own
    providers are never shut down by threadtrace.  Recording afterwards
    starts new exporters.
    """
    recorder = runtime.recorder
    if recorder is not None:
        recorder.shutdown(
            runtime.config.flush_timeout if timeout is None else timeout, final=_final
        )


# The recorder threadtrace starts with; configure() replaces it when the
# exporters or the providers change.
runtime.recorder = Recorder()
