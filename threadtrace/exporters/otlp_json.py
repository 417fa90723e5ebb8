"""``json``: OTLP JSON Lines files, the OpenTelemetry file-exporter format.

Spans go to ``json_path`` and metrics to ``json_metrics_path`` (by default
next to it, ``*.metrics.jsonl``): one ``TracesData`` or ``MetricsData``
object per line, written as each batch is exported.  The OpenTelemetry
Collector's ``otlpjsonfile`` receiver and Jaeger's "upload JSON" page read
these files, and ``threadtrace convert``/``threadtrace report`` read them
back.  Encoding uses the official OTLP encoders
(``opentelemetry-exporter-otlp-proto-common``) and protobuf's JSON mapping,
imported at the first export: until then a program under threadtrace does
not carry them (3.7 MB; a short program exports only at exit).

Each run starts its files afresh.  Both files are opened when the exporter
is made, so a path that cannot be written is a
:class:`~threadtrace.ConfigurationError` there.  They are written through
what the paths name: a symbolic link is followed, and a FIFO or a device
(``/dev/stderr``) is written to as a stream.
"""

from __future__ import annotations

import os
from typing import IO, Any, Sequence

from .._formats.files import same_file
from .._formats.otlp_jsonl import to_otlp_json
from .._runtime import runtime
from .._support.errors import ConfigurationError
from . import Exporter


class JsonExporter(Exporter):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.path = config.json_path
        self.metrics_path = config.json_metrics_file
        if same_file(self.metrics_path, self.path):
            raise ConfigurationError(
                f"json_metrics_path: cannot write {self.metrics_path}: it is the trace file "
                "(json_path)"
            )
        self._spans = _open(self.path, "json_path")
        # Opened now rather than at the first collection (a minute in, or at
        # exit), so that an unwritable path fails here, in configure().
        try:
            self._metrics = _open(self.metrics_path, "json_metrics_path")
        except ConfigurationError:
            self._spans.close()
            raise

    def export_spans(self, spans: Sequence[Any]) -> bool:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import (  # noqa: PLC0415 - see the module
            encode_spans,
        )

        self._spans.write(to_otlp_json(encode_spans(spans)) + "\n")
        self._spans.flush()
        return True

    def export_metrics(self, metrics: Any) -> bool:
        from opentelemetry.exporter.otlp.proto.common.metrics_encoder import (  # noqa: PLC0415 - as above
            encode_metrics,
        )

        self._metrics.write(to_otlp_json(encode_metrics(metrics)) + "\n")
        self._metrics.flush()
        return True

    def shutdown(self, timeout: float) -> None:
        self._spans.close()
        self._metrics.close()

    def destination(self) -> str:
        return str(self.path)


def _open(path: str, setting: str) -> IO[str]:
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        try:
            os.makedirs(directory)
        except OSError as error:
            raise ConfigurationError(
                f"{setting}: cannot create directory {directory}: {error.strerror or error}"
            ) from None
    # A run starts its files afresh; a second exporter on the same file in
    # the same process (after configure() or shutdown()) adds to it instead.
    key = os.path.abspath(path)
    mode = "a" if key in runtime.files_opened else "w"
    runtime.files_opened.add(key)
    try:
        return open(path, mode, encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"{setting}: cannot write {path}: {error.strerror or error}"
        ) from None
