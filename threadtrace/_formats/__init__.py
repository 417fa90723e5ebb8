"""File formats, in and out: OTLP JSON Lines (traces and metrics) and the Perfetto timeline.

Pure functions of their input: nothing here reads threadtrace's runtime,
so ``threadtrace convert``/``report`` and the exporters share them.
"""
