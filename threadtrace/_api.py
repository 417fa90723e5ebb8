"""The configuration entry points: ``configure()`` and ``shutdown()``."""

from __future__ import annotations

import atexit
import os
from typing import Any, Optional

from . import _originals, _sites, _state
from ._config import Config
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
        **settings: fields of :class:`threadtrace.Config`: ``wait_threshold``,
            ``hold_threshold``, ``sample_every``, ``exporters``,
            ``exclude_modules``.

    Returns:
        The configuration now in force.

    Raises:
        ConfigurationError: a value is invalid or a name is not a setting; the
            configuration in force is left unchanged.
    """
    new = _state.config.replace(**settings)
    providers_changed = tracer_provider is not None or meter_provider is not None
    exporters_changed = new.exporters != _state.config.exporters
    _state.config = new
    if "exclude_modules" in settings:
        _sites.forget_categories()
    if providers_changed or exporters_changed:
        old = _state.recorder
        if old is not None:  # providers given earlier stay until replaced
            tracer_provider = tracer_provider or old._explicit_tracer_provider
            meter_provider = meter_provider or old._explicit_meter_provider
        _state.recorder = Recorder(tracer_provider, meter_provider)
        if old is not None:
            old.shutdown(timeout=2.0)
    recorder = _state.recorder
    if recorder is not None:
        recorder.ensure_ready()
    return new


def current_config() -> Config:
    """The configuration in force."""
    return _state.config


def shutdown(timeout: float = 5.0) -> None:
    """Flush and stop threadtrace's own exporters, waiting at most ``timeout`` seconds.

    Runs at interpreter exit on its own; the application's own providers are
    never shut down by threadtrace.
    """
    recorder = _state.recorder
    if recorder is not None:
        recorder.shutdown(timeout)


def _after_fork_in_child() -> None:
    # Another thread may have held these at the fork; the child has only this one.
    _state.book = _originals.allocate_lock()
    recorder = _state.recorder
    if recorder is not None:
        recorder._setup_lock = _originals.RLock()


_state.recorder = Recorder()
atexit.register(shutdown, 5.0)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
