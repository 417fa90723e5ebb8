"""``threadtrace convert``: saved JSON traces, as one Perfetto timeline."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

from .._formats.files import output_target, same_file
from .._formats.otlp_jsonl import TraceFileError, read_otlp_file, read_trace_file, records_of
from .._formats.perfetto import collector_paused, write_timeline
from .._formats.records import SpanRecord
from .inputs import trace_files
from .usage import PROG, Parser, UsageError


def command(argv: Sequence[str]) -> int:
    """``threadtrace convert TRACE... --to perfetto -o OUT``."""
    parser = Parser(
        prog=f"{PROG} convert",
        description="Turn a trace saved by the json exporter (OTLP JSON Lines) into "
        "another format.  Several traces (the processes of one run), or a quoted glob, "
        "make one timeline, a process each (told apart by the resource's process.pid).",
        epilog="examples:\n  threadtrace convert threadtrace-trace.jsonl --to perfetto "
        "-o timeline.json\n  threadtrace convert 'threadtrace-trace*.jsonl' --to perfetto "
        "-o timeline.json\n  then open timeline.json in https://ui.perfetto.dev",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "trace",
        nargs="+",
        help="an OTLP JSON Lines trace file (json exporter output); several, or a quoted "
        "glob, for several processes (their *.metrics.jsonl files are then left out)",
    )
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
    traces, output = trace_files(parser.prog, options.trace), options.output

    def cannot_write(reason: str) -> UsageError:
        return UsageError(f"{parser.prog}: error: cannot write {output}: {reason}")

    # The output is looked at before the trace is read: a big trace takes a while.
    for trace in traces:
        if same_file(output, trace):
            raise cannot_write(f"it is the input file {trace}")
    try:
        output_target(output)
    except OSError as error:
        raise cannot_write(error.strerror or str(error)) from None
    records: list[SpanRecord] = []
    try:
        if len(traces) == 1:
            records = read_trace_file(traces[0], warn=lambda text: _warn(parser.prog, text))
        else:
            # A process that recorded nothing wrote a trace with no spans: not an error here.
            for trace in traces:
                lines = read_otlp_file(
                    trace, "traces", TraceFileError, lambda text: _warn(parser.prog, text)
                )
                read = [record for _, data in lines for record in records_of(data)]
                records.extend(_one_process(read, trace))
            if not records:
                raise TraceFileError(f"none of the {len(traces)} traces holds a span")
    except TraceFileError as error:
        raise UsageError(f"{parser.prog}: error: {error}") from None
    try:
        with collector_paused():  # our own process: half the time, for a big trace
            write_timeline(records, output)
    except OSError as error:
        raise cannot_write(error.strerror or str(error)) from None
    threads = len({(record.service_name, record.thread_id) for record in records})
    count = len({record.service_name for record in records})
    processes = f" of {count} process{'' if count == 1 else 'es'}" if len(traces) > 1 else ""
    sys.stderr.write(
        f"threadtrace: wrote {output}: {len(records)} spans on {threads} threads{processes}; "
        f"open it in https://ui.perfetto.dev\n"
    )
    return 0


def _one_process(records: list[SpanRecord], trace: str) -> list[SpanRecord]:
    """A file's records, their process named apart from the other files'.

    The timeline has a process per service name; the processes of one run
    share theirs, and their thread idents may coincide: each gets its pid
    (its ``process.pid``, else the file's name) after the service's name.
    """
    return [
        dataclasses.replace(
            record,
            service_name=f"{record.service_name or 'threadtrace'} (process "
            f"{record.process_id if record.process_id is not None else os.path.basename(trace)})",
        )
        for record in records
    ]


def _warn(prog: str, text: str) -> None:
    sys.stderr.write(f"{prog}: warning: {text}\n")
