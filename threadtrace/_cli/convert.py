"""``threadtrace convert``: a saved JSON trace, as a Perfetto timeline."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .._formats.files import output_target, same_file
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
        "-o",
        "--output",
        required=True,
        metavar="PATH",
        help="file to write (replaced whole; a symbolic link is followed; not the trace itself)",
    )
    options = parser.parse_args(argv)
    trace, output = options.trace, options.output

    def cannot_write(reason: str) -> UsageError:
        return UsageError(f"{parser.prog}: error: cannot write {output}: {reason}")

    # The output is looked at before the trace is read: a big trace takes a while.
    if same_file(output, trace):
        raise cannot_write(f"it is the input file {trace}")
    try:
        output_target(output)
    except OSError as error:
        raise cannot_write(error.strerror or str(error)) from None
    try:
        records = read_trace_file(trace, warn=lambda text: _warn(parser.prog, text))
    except TraceFileError as error:
        raise UsageError(f"{parser.prog}: error: {error}") from None
    try:
        with collector_paused():  # our own process: half the time, for a big trace
            write_timeline(records, output)
    except OSError as error:
        raise cannot_write(error.strerror or str(error)) from None
    threads = len({record.thread_id for record in records})
    sys.stderr.write(
        f"threadtrace: wrote {output}: {len(records)} spans on {threads} threads; "
        f"open it in https://ui.perfetto.dev\n"
    )
    return 0


def _warn(prog: str, text: str) -> None:
    sys.stderr.write(f"{prog}: warning: {text}\n")
