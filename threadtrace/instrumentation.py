"""threadtrace as an OpenTelemetry instrumentor, for ``opentelemetry-instrument``.

``opentelemetry-instrument python app.py`` (and OpenTelemetry distros) load
every installed ``opentelemetry_instrumentor`` entry point; threadtrace's
names :class:`ThreadtraceInstrumentor`, whose ``instrument()`` is
:func:`threadtrace.patch` and whose ``uninstrument()`` is
:func:`threadtrace.unpatch`.  By then ``opentelemetry-instrument`` has set
the global tracer and meter providers, and threadtrace records into those
(docs/configuration.md, "With opentelemetry-instrument").
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=threadtrace`` keeps it from loading.

Needs ``opentelemetry-instrumentation`` (``pip install
"threadtrace[instrument]"``); threadtrace itself never imports this module.

It coexists with OpenTelemetry's own ``threading`` instrumentor, which the
``opentelemetry-bootstrap`` default set installs, in whichever order the two
are loaded: that one wraps ``Thread.start``, ``Thread.run`` and
``ThreadPoolExecutor.submit``, none of which :func:`threadtrace.patch`
touches.
"""

from __future__ import annotations

import logging
from typing import Any, Collection

# instrumentor.py opens with `# type: ignore`, so mypy sees neither the class
# nor its type; hence the two ignores below.
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

import threadtrace

__all__ = ["ThreadtraceInstrumentor"]


class ThreadtraceInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Patches ``threading`` with :func:`threadtrace.patch`.

    ``ThreadtraceInstrumentor().instrument()`` patches and ``uninstrument()``
    undoes it; like every instrumentor it is a singleton, and a second
    ``instrument()`` only logs a warning.  ``tracer_provider=`` and
    ``meter_provider=`` are passed on to :func:`threadtrace.patch`; without
    them threadtrace uses the global providers.  Settings come from the
    ``THREADTRACE_*`` variables.

    Not thread-safe (``BaseInstrumentor`` keeps its flag without a lock);
    call it at startup, as ``opentelemetry-instrument`` does.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """None: threadtrace instruments the standard library."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        providers = {
            name: kwargs[name]
            for name in ("tracer_provider", "meter_provider")
            if kwargs.get(name) is not None
        }
        try:
            threadtrace.patch(**providers)
        except threadtrace.ConfigurationError as error:
            # Raised out of here, it would stop opentelemetry-instrument from
            # loading the instrumentors after this one: the app runs without
            # threadtrace, and says why.
            logging.getLogger("threadtrace").error("threadtrace is not instrumenting: %s", error)

    def _uninstrument(self, **kwargs: Any) -> None:
        threadtrace.unpatch()
