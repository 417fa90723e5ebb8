"""``threadtrace report``: the contention report of a run saved by the json exporter."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import textwrap
from typing import Any, Optional, Sequence

from .._control.configure import current_config
from .._formats.otlp_jsonl import (
    MetricsFileError,
    TraceFileError,
    read_metrics_file,
    read_otlp_file,
)
from .._report.model import build, options
from .._support.config import REPORT_SORTS, Config
from .inputs import trace_files
from .usage import PROG, Parser, UsageError


def _top_option(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def command(argv: Sequence[str]) -> int:
    """``threadtrace report TRACE... [--metrics PATH] [--sort S] [--top N] [--json]``.

    Raises:
        UsageError: a bad option, or a file that cannot be read (one line,
            naming the file and the problem).
    """
    config = current_config()
    parser = Parser(
        prog=f"{PROG} report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Print the contention report of a run saved by the json exporter: the
            primitives that cost the most waiting, where threads blocked, and where
            the holders they waited behind had acquired them.  It is the report the
            program would have logged at exit (or returned from threadtrace.report()),
            computed from the metrics file the json exporter writes next to the trace.

            Given several traces (the processes of one run: threadtrace-trace.jsonl,
            threadtrace-trace.<pid>.jsonl...), or a quoted glob, it prints the report
            of each in turn, under a line naming its file.
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              threadtrace report threadtrace-trace.jsonl
              threadtrace report out/trace.jsonl --metrics out/metrics.jsonl --sort max --top 5
              threadtrace report threadtrace-trace.jsonl --json > report.json
              threadtrace report 'threadtrace-trace*.jsonl'   # every process of a run
            """
        ),
    )
    parser.add_argument(
        "trace",
        nargs="+",
        help="a trace file the json exporter wrote (OTLP JSON Lines), e.g. "
        "threadtrace-trace.jsonl; several, or a quoted glob, for several processes "
        "(their *.metrics.jsonl files are then left out)",
    )
    parser.add_argument(
        "--metrics",
        metavar="PATH",
        help="the metrics file of the same run (with one trace only). Default: the trace's "
        "path with "
        "'.metrics.jsonl' for its suffix, where the json exporter puts it unless "
        "json_metrics_path says otherwise. Example: --metrics out/metrics.jsonl",
    )
    parser.add_argument(
        "--sort",
        choices=REPORT_SORTS,
        help="order: wait (total wait), max (longest single wait) or count (number "
        "of waits), within each part of the report (locks and semaphores first). "
        f"Default: {config.report_sort} (THREADTRACE_REPORT_SORT). Example: --sort max",
    )
    parser.add_argument(
        "--top",
        type=_top_option,
        metavar="N",
        help=f"list at most N primitives. Default: {config.report_top} "
        "(THREADTRACE_REPORT_TOP). Example: --top 5",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (what ContentionReport.to_dict() gives) "
        "instead of text. Example: --json > report.json",
    )
    given = parser.parse_args(argv)

    def warn(text: str) -> None:
        sys.stderr.write(f"{parser.prog}: warning: {text}\n")

    traces = trace_files(parser.prog, given.trace)
    if given.metrics is not None and len(traces) > 1:
        raise UsageError(
            f"{parser.prog}: error: --metrics names the metrics of one trace; "
            f"got {len(traces)} traces (each one's metrics are found beside it)"
        )
    sort, top = options(given.sort, given.top)
    reports = [
        (trace, build(_points(parser.prog, trace, given.metrics, warn), sort, top))
        for trace in traces
    ]
    if len(reports) == 1:  # one trace: exactly the report, as always
        (_, result), *_ = reports
        sys.stdout.write((result.to_json(indent=2) if given.json else result.text()) + "\n")
    elif given.json:
        listed = [{"trace": trace, "report": result.to_dict()} for trace, result in reports]
        sys.stdout.write(json.dumps(listed, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(f"== {trace}\n\n{result.text()}\n" for trace, result in reports))
    return 0


def _points(prog: str, trace: str, metrics: Optional[str], warn: Any) -> Any:
    """The report's points of one trace, from its metrics file.

    Raises:
        UsageError: one line naming the file and the problem.
    """
    try:
        _check_trace(trace)
    except TraceFileError as error:
        raise UsageError(f"{prog}: error: {error}") from None
    path = metrics or _metrics_beside(trace)
    try:
        return read_metrics_file(path, warn)
    except MetricsFileError as error:
        hint = ""
        if metrics is None and not os.path.exists(path):
            hint = " (the json exporter writes it at exit; give its path with --metrics)"
        raise UsageError(f"{prog}: error: {error}{hint}") from None


def _check_trace(path: str) -> None:
    """Make sure ``path`` is a trace the json exporter wrote (its first line is).

    The rest is not read: the report is made from the metrics.

    Raises:
        TraceFileError: naming the file and the problem.
    """
    with contextlib.closing(read_otlp_file(path, "traces", TraceFileError)) as lines:
        next(lines, None)


def _metrics_beside(trace: str) -> str:
    """Where the json exporter put the metrics of a run whose trace is ``trace``."""
    return Config(json_path=trace).json_metrics_file
