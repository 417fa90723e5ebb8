"""``perfetto``: a timeline file that https://ui.perfetto.dev and ``chrome://tracing`` open.

Spans are kept in memory and written to ``perfetto_path`` as Chrome
trace-event JSON when threadtrace shuts down (at exit, or
:func:`threadtrace.shutdown`), and rewritten on every force flush.  One
track per thread, slices for waits, holds and thread runs, arrows from the
thread that woke a waiter to it, and counters of waiters on the most
contended primitives: the format is described in :mod:`threadtrace._formats.perfetto`.

At most :data:`MAX_SPANS` spans are kept; later ones are dropped, counted
(:attr:`~threadtrace.exporters.Exporter.dropped_spans`, which the
``threadtrace run`` summary shows), logged once, and reported in the file as
``threadtrace.dropped_spans``.  The path is checked when the exporter is
made: a directory, a FIFO or a device, or a directory where no file can be
made, is a :class:`~threadtrace.ConfigurationError`; a symbolic link is
followed, and the file it leads to replaced
(:mod:`threadtrace._formats.files`).  A file that cannot be written later
is logged once; the spans stay buffered for the next attempt.  Metrics are
not exported.

The timeline is laid out all at once, in Python: roughly 25 µs a span
here, spent at exit within ``flush_timeout``.  A file is
written only when there is something new since the last one.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence

from .._formats.files import check_writable, same_file
from .._formats.perfetto import write_timeline
from .._formats.records import SpanRecord, from_readable
from .._support import originals as _originals
from .._support.errors import ConfigurationError
from . import Exporter

logger = logging.getLogger("threadtrace")

#: Spans kept for the timeline; the ones after are dropped and counted.  The
#: layout is done at exit, within ``flush_timeout`` (5 s by default), at about
#: 25 µs a span here (CPython 3.11, 2 cores; the program's garbage collector
#: is left alone): about 1.3 s for the cap.  For longer runs write ``json``
#: and use ``threadtrace convert``, which has no such deadline and lays out
#: twice as fast in its own process.
MAX_SPANS = 50_000


class PerfettoExporter(Exporter):
    """Buffers spans and writes them as one timeline file.

    Thread-safe: spans arrive on the export thread while flushes and the
    shutdown may come from others.

    Attributes:
        path: the timeline file.
        dropped_spans: spans not kept because the buffer was full.
        drop_reason: that the buffer was full, and how many it holds.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.path: str = config.perfetto_path
        # The file checked now is the one written at exit, whatever the
        # program's working directory is by then (the json files are opened now).
        self._file = os.path.abspath(self.path)
        self.dropped_spans = 0
        self._records: list[SpanRecord] = []
        self._version = 0  # changes whenever the buffer or the count does
        self._written: Optional[int] = None  # the version the file holds
        self._warned = False
        self._lock = _originals.allocate_lock()  # guards the buffer, the count and the version
        # Serialises writes, so an older snapshot never replaces a newer file.
        self._write_lock = _originals.allocate_lock()
        # Checked now, so that a path that cannot be written fails in
        # configure() (and `threadtrace run` with status 2), not at exit.
        reason = None
        if "json" in config.exporters and any(
            same_file(self.path, other) for other in (config.json_path, config.json_metrics_file)
        ):
            reason = "it is a file of the json exporter"
        else:
            try:
                check_writable(self._file)
            except OSError as error:
                reason = error.strerror or str(error)
        if reason is not None:
            raise ConfigurationError(f"perfetto_path: cannot write {self.path}: {reason}")

    def export_spans(self, spans: Sequence[Any]) -> bool:
        records = [from_readable(span) for span in spans]
        with self._lock:
            room = MAX_SPANS - len(self._records)
            kept = records[: max(0, room)]
            self._records.extend(kept)
            dropped = len(records) - len(kept)
            first_drop = dropped > 0 and self.dropped_spans == 0
            self.dropped_spans += dropped
            if first_drop:
                self.drop_reason = f"the timeline keeps at most {MAX_SPANS}"
            self._version += 1
        if first_drop:
            logger.warning(
                "threadtrace: the perfetto exporter keeps at most %d spans; later "
                "ones are dropped and counted in %s",
                MAX_SPANS,
                self.path,
            )
        return True

    def force_flush(self, timeout: float) -> bool:
        return self._write()

    def shutdown(self, timeout: float) -> None:
        self._write()

    def destination(self) -> str:
        return self.path

    def _write(self) -> bool:
        """Write the file unless it already holds everything; False if it cannot be written."""
        with self._write_lock:
            with self._lock:
                version = self._version
                records = list(self._records)
                dropped = self.dropped_spans
            if version == self._written:
                # The exit flush is a force_flush and then a shutdown: the
                # second write would cost as much as the first, for nothing.
                return True
            try:
                write_timeline(records, self._file, dropped_spans=dropped)
            except OSError as error:
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "threadtrace: cannot write the timeline %s: %s",
                        self.path,
                        error.strerror or error,
                    )
                return False
            self._written = version
        return True
