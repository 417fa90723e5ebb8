"""The leaves of threadtrace: what every layer above may use, and which uses nothing of theirs.

The real ``threading`` factories (:mod:`.originals`), clocks, errors,
units, the frozen statistics snapshots, the configuration model, the names
of kinds and metrics, and code sites.  Nothing here keeps run state: a
module here imports only the standard library, OpenTelemetry's API and
other modules of this package.  ``docs/architecture.md`` draws the layers.
"""
