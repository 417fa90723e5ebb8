"""Pluggable exporters: where threadtrace's own providers send what it records.

An exporter is a class derived from :class:`Exporter`, registered under a
name in the ``threadtrace.exporters`` entry-point group.  The built-ins are
registered that way too, in threadtrace's own ``pyproject.toml``::

    [project.entry-points."threadtrace.exporters"]
    console = "threadtrace.exporters.console:ConsoleExporter"

A third-party package registers its own the same way, and
``threadtrace.configure(exporters=("console", "mine"))`` runs both.

threadtrace calls an exporter only from its own export thread, never from
the application's threads: spans are queued (bounded; what overflows is
dropped and counted) and handed over in batches, and metrics are collected
periodically by the OpenTelemetry SDK's reader.  An exporter that raises or
returns ``False`` loses that batch; the loss is counted and reported once.

An exporter that takes a batch (returns ``True``) but keeps only part of it,
say up to a cap of its own, counts what it left out in
:attr:`Exporter.dropped_spans` and says why in :attr:`Exporter.drop_reason`;
the ``threadtrace run`` summary then tells what was written and what was
dropped ("exported 50000 of 64145 spans to perfetto (...), 14145 dropped
(the timeline keeps at most 50000)").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Sequence

from .._support.errors import ConfigurationError
from .._support.plugins import (
    ENTRY_POINT_GROUP,
    find_exporter,
    installed_exporters,
    unknown_exporter,
)
from .._support.plugins import _cache as _cache  # the registry's cache: tests add fakes

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData
    from opentelemetry.sdk.trace import ReadableSpan

    from .._support.config import Config

__all__ = ["ENTRY_POINT_GROUP", "Exporter", "installed_exporters", "load_exporter"]

# Public where users import it from: the registry itself is read in _support.
installed_exporters.__module__ = __name__


class Exporter:
    """Base class of threadtrace exporters.

    Override :meth:`export_spans`, :meth:`export_metrics` or both; an
    exporter that overrides neither receives nothing.

    Attributes:
        config: The configuration the exporter was made with (output paths
            and the like).
        dropped_spans: Spans that :meth:`export_spans` took (it returned
            ``True``) but that the exporter did not keep, for instance past a
            cap of its own; 0 unless the exporter counts them.  Read after
            each batch, on the export thread.
        drop_reason: Why those spans were dropped, for people: a few words,
            such as ``"the timeline keeps at most 50000"``.
    """

    #: Spans are handed over as they end, on the thread that ended them,
    #: instead of in batches from the export thread.  Only for exporters
    #: that just keep spans in memory.
    synchronous: ClassVar[bool] = False

    dropped_spans: int = 0
    drop_reason: str = ""

    def __init__(self, config: Config) -> None:
        self.config = config

    def export_spans(self, spans: Sequence[ReadableSpan]) -> bool:
        """Send a batch of finished spans.  Returns whether it was delivered."""
        raise NotImplementedError

    def export_metrics(self, metrics: MetricsData) -> bool:
        """Send one collection of metrics.  Returns whether it was delivered."""
        raise NotImplementedError

    def force_flush(self, timeout: float) -> bool:
        """Deliver anything buffered, within ``timeout`` seconds."""
        return True

    def shutdown(self, timeout: float) -> None:
        """Flush and release resources, within ``timeout`` seconds.  Called once."""

    def destination(self) -> str:
        """Where the data goes, for people: a path, an endpoint, ``stderr``."""
        return type(self).__name__

    def handles_spans(self) -> bool:
        """Whether to send this exporter spans: by default, when it overrides export_spans."""
        return type(self).export_spans is not Exporter.export_spans

    def handles_metrics(self) -> bool:
        """Whether to send this exporter metrics: by default, when it overrides export_metrics."""
        return type(self).export_metrics is not Exporter.export_metrics


def load_exporter(name: str) -> type[Exporter]:
    """The exporter class registered as ``name``.

    Raises:
        ConfigurationError: no exporter has that name, or it does not load.
    """
    point = find_exporter(name)
    if point is None:
        raise ConfigurationError(unknown_exporter(name))
    try:
        cls = point.load()  # type: ignore[attr-defined]
    except ImportError as error:
        raise ConfigurationError(f"exporter {name!r} cannot be loaded: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, Exporter)):
        raise ConfigurationError(
            f"exporter {name!r} ({point.value}) is not a threadtrace.exporters.Exporter"  # type: ignore[attr-defined]
        )
    return cls
