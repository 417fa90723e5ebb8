"""The configuration entry points: ``configure()`` and ``shutdown()``."""

from __future__ import annotations

import atexit
import os
from typing import Any, Optional

from . import _originals, _sites, _state
from ._config import Config
from ._exceptions import ConfigurationError
from ._recorder import Recorder


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
    if _state.environment_error is not None:
        raise _state.environment_error
    old_config = _state.config
    new = old_config.replace(**settings)
    providers_changed = tracer_provider is not None or meter_provider is not None
    outputs_changed = _outputs(new) != _outputs(old_config)
    _state.config = new
    if "exclude_modules" in settings:
        _sites.forget_categories()
    if providers_changed or outputs_changed:
        old = _state.recorder
        if old is not None:  # providers given earlier stay until replaced
            tracer_provider = tracer_provider or old._explicit_tracer_provider
            meter_provider = meter_provider or old._explicit_meter_provider
        replacement = Recorder(tracer_provider, meter_provider)
        try:
            # Build the exporters now, so an unwritable path or a missing
            # extra fails here, in the caller, instead of at the first span.
            replacement.prepare_exporters()
        except ConfigurationError:
            _state.config = old_config
            raise
        _state.recorder = replacement
        if old is not None:
            old.shutdown(timeout=min(2.0, old_config.flush_timeout))
    recorder = _state.recorder
    if recorder is not None:
        # The exporters may not exist yet (the THREADTRACE_* variables chose
        # them at import): build them now, so a missing extra fails here.
        recorder.prepare_exporters()
        recorder.ensure_ready()
    return new


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
    return _state.config


def shutdown(timeout: Optional[float] = None, *, _final: bool = False) -> None:
    """Flush and stop threadtrace's own exporters.

    Waits at most ``timeout`` seconds (default: the ``flush_timeout``
    setting).  Runs at interpreter exit on its own; the application's own
    providers are never shut down by threadtrace.  Recording afterwards
    starts new exporters.
    """
    recorder = _state.recorder
    if recorder is not None:
        recorder.shutdown(_state.config.flush_timeout if timeout is None else timeout, final=_final)


def _at_exit() -> None:
    """At interpreter exit: log the contention report if asked, then flush.

    The report comes first so it is computed from the same data as the
    exporters' last metrics export (``threadtrace report`` reads that back).
    """
    from ._watch import publish_pending

    publish_pending()  # lock-order reports still queued
    if _state.config.report:
        from ._report import log_at_exit

        log_at_exit()
    shutdown(_final=True)


def _after_fork_in_child() -> None:
    # Another thread may have held these at the fork; the child has only this one.
    _state.book = _originals.allocate_lock()
    recorder = _state.recorder
    if recorder is not None:
        recorder._setup_lock = _originals.RLock()


_state.recorder = Recorder()
atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
