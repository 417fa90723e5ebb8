"""``threadtrace convert``: a saved JSON trace, as a Perfetto timeline."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .._formats.otlp_jsonl import TraceFileError, read_trace_file
from .._formats.perfetto import collector_paused, write_timeline
from .usage import PROG, Parser, UsageError


def command(argv: Sequence[str]) -> int:
    """``threadtrace convert TRACE --to perfetto -o OUT``."""
    parser = Parser(
        prog=f"{PROG} convert",
        description="Turn a trace saved by the json exporter (OTLP JSON Lines) into "
        "another format.",
        epilog="example:\n  threadtrace convert threadtrace-trace.jsonl --to perfetto "
        "-o timeline.json\n  then open timeline.json in https://ui.perfetto.dev",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("trace", help="an OTLP JSON Lines trace file (json exporter output)")
    parser.add_argument(
        "--to",
        required=True,
        choices=("perfetto",),
        help="output format: perfetto (Chrome trace-event JSON for ui.perfetto.dev "
        "and chrome://tracing)",
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="file to write (replaced)"
    )
    options = parser.parse_args(argv)
    try:
        records = read_trace_file(options.trace)
    except TraceFileError as error:
        raise UsageError(f"{parser.prog}: error: {error}") from None
    try:
        with collector_paused():  # our own process: half the time, for a big trace
            write_timeline(records, options.output)
    except OSError as error:
        raise UsageError(
            f"{parser.prog}: error: cannot write {options.output}: {error.strerror or error}"
        ) from None
    threads = len({record.thread_id for record in records})
    sys.stderr.write(
        f"threadtrace: wrote {options.output}: {len(records)} spans on {threads} threads; "
        f"open it in https://ui.perfetto.dev\n"
    )
    return 0
