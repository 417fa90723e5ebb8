"""The configuration model: every setting, its default, and its validation."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ._exceptions import ConfigurationError

#: Exporters this release knows.  ``memory`` keeps spans and metrics in memory
#: for tests (see :mod:`threadtrace.testing`); ``console`` writes them to stderr.
KNOWN_EXPORTERS = ("console", "memory")

#: Modules whose primitives and threads are never traced: telemetry plumbing
#: whose locks would otherwise feed back into the telemetry they produce.
DEFAULT_EXCLUDED_MODULES = (
    "threadtrace",
    "opentelemetry",
    "logging",
    "grpc",
    "google.protobuf",
    "urllib3",
    "requests",
    "http.client",
    "importlib",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """What threadtrace records, and where it sends it.

    Attributes:
        wait_threshold: A blocking operation (contended acquire, ``wait``,
            ``join``) that waited at least this many seconds becomes a span.
            ``0`` records every operation that blocked at all.  Every
            contended wait is counted and lands in the wait histogram
            whatever this is.
        hold_threshold: A measured hold of a lock at least this long, in
            seconds, becomes a span.  ``0`` records every measured hold.
        sample_every: Measure the hold time (and acquire site) of one in
            this many uncontended acquisitions; contended acquisitions are
            always measured.  ``1`` measures every acquisition (slow),
            ``0`` samples none.
        exporters: Where threadtrace's own providers send data when the
            application has not set OpenTelemetry providers itself.
        exclude_modules: More module prefixes whose primitives are never
            traced, added to the built-in list.
    """

    wait_threshold: float = 0.001
    hold_threshold: float = 0.010
    sample_every: int = 100
    exporters: tuple[str, ...] = ("console",)
    exclude_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("wait_threshold", "hold_threshold"):
            value = getattr(self, field)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(f"{field} must be a number of seconds >= 0, got {value!r}")
            object.__setattr__(self, field, float(value))
        sample_every = self.sample_every
        if isinstance(sample_every, bool) or not isinstance(sample_every, int) or sample_every < 0:
            raise ConfigurationError(
                f"sample_every must be a whole number >= 0, got {sample_every!r}"
            )
        exporters = _names(self.exporters)
        for name in exporters:
            if name not in KNOWN_EXPORTERS:
                raise ConfigurationError(
                    f"unknown exporter {name!r}; installed exporters: {', '.join(KNOWN_EXPORTERS)}"
                )
        object.__setattr__(self, "exporters", exporters)
        object.__setattr__(self, "exclude_modules", _names(self.exclude_modules))

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied and validated.

        Raises:
            ConfigurationError: a value is invalid, or a name is not a setting.
        """
        names = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in names:
                raise ConfigurationError(
                    f"unknown setting {key!r}; settings: {', '.join(sorted(names))}"
                )
        return dataclasses.replace(self, **changes)

    @property
    def excluded_modules(self) -> tuple[str, ...]:
        """Every module prefix whose primitives are left untraced."""
        return DEFAULT_EXCLUDED_MODULES + self.exclude_modules


def _names(given: Any) -> tuple[str, ...]:
    """A tuple of names from a tuple, a list, or one comma-separated string.

    ``"console,json"`` is how an environment variable spells a list.
    """
    if isinstance(given, str):
        return tuple(name.strip() for name in given.split(",") if name.strip())
    return tuple(given)
