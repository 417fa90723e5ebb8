"""The configuration entry points: ``configure()`` and ``shutdown()``."""

from __future__ import annotations

from typing import Any, Optional

from .._detect import watchdog
from .._recording.recorder import Recorder
from .._runtime import runtime
from .._support.config import Config
from .._support.errors import ConfigurationError


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
    # program sees (threading.active_count(), _thread._count()).
    watchdog.ensure_started()
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
