"""Getting spans and metrics out: threadtrace's own providers and the bounded export queue.

Used only when the program set no OpenTelemetry providers of its own.  It
imports the exporters (the plugin API below it), never the reverse.
"""
