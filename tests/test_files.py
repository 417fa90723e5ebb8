"""Files threadtrace writes and reads: never harmed, never a traceback.

The timeline is written whole and atomically through symbolic links, never
over a FIFO, a device or a directory, and never over the trace it is made
from.  Paths that cannot be written fail when the exporters are made, not at
exit.  The exit summary says what a capped exporter kept.  A trace or metrics
file whose last line a killed writer cut short is read up to that line, with
a warning; any other malformed input is one line and status 2.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import random
import stat
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from helpers import threadtrace_cmd

import threadtrace
from threadtrace import exporters
from threadtrace._cli.main import main
from threadtrace._cli.summary import summary
from threadtrace._export import queue as _export
from threadtrace._formats.perfetto import write_timeline
from threadtrace._formats.records import SpanRecord
from threadtrace._runtime import runtime as _state

GOLDEN = Path(__file__).parent / "data" / "golden"
#: The saved run the inputs below are made from: two threads, one join waited for.
TRACE_LINE = gzip.decompress((GOLDEN / "lock_order.jsonl.gz").read_bytes())
METRICS_LINE = gzip.decompress((GOLDEN / "lock_order.metrics.jsonl.gz").read_bytes())
WROTE = "threadtrace: wrote {}: 2 spans on 1 threads; open it in https://ui.perfetto.dev\n"
CUT = (
    "{}, line {} is cut short (the file ends in the middle of it, as when its writer is "
    "killed); left out"
)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def symlink(link: Path, target: Path) -> Path:
    """``link`` -> ``target``; skips the test where symbolic links cannot be made."""
    try:
        link.symlink_to(target)
    except (OSError, NotImplementedError) as error:  # Windows without the privilege
        pytest.skip(f"cannot make symbolic links here: {error}")
    return link


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def record() -> SpanRecord:
    return SpanRecord("ab" * 16, "cd" * 8, None, "Thread.run", 10**18, 10**18 + 1000, {})


def convert(cwd: Path, trace: str, output: str) -> Any:
    return threadtrace_cmd(["convert", trace, "--to", "perfetto", "-o", output], cwd)


@pytest.fixture
def own_providers() -> Iterator[None]:
    """threadtrace's own exporters for the test, and everything put back after."""
    saved = _state.snapshot()
    _state.start_afresh()
    try:
        yield
    finally:
        threadtrace.shutdown(5)
        _state.restore(saved)


# -- 5. the timeline is written through links, and never over what is not a file ------------


def test_write_timeline_follows_a_symlink_and_replaces_its_target_in_place(
    tmp_path: Path,
) -> None:
    """The link stays a link, the file it leads to is replaced, and nothing else is left."""
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    target = tmp_path / "there" / "t.json"
    target.write_text("old")
    link = symlink(tmp_path / "here" / "t.json", Path("..") / "there" / "t.json")
    write_timeline([record()], str(link))
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("..", "there", "t.json")
    assert json.loads(target.read_text())["traceEvents"]
    assert sorted(os.listdir(tmp_path / "here")) == ["t.json"]
    assert sorted(os.listdir(tmp_path / "there")) == ["t.json"]


def test_write_timeline_through_a_dangling_symlink_makes_its_target(tmp_path: Path) -> None:
    link = symlink(tmp_path / "t.json", tmp_path / "made" / "real.json")
    write_timeline([record()], str(link))
    assert link.is_symlink()
    assert json.loads((tmp_path / "made" / "real.json").read_text())["traceEvents"]


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX's")
def test_write_timeline_keeps_the_permissions_of_the_file_it_replaces(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("old")
    path.chmod(0o600)
    write_timeline([record()], str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@needs_fifo
@pytest.mark.parametrize("through_link", [False, True], ids=["fifo", "link-to-fifo"])
def test_convert_refuses_to_write_a_fifo(tmp_path: Path, through_link: bool) -> None:
    """Renaming over it would put a regular file where the FIFO was."""
    (tmp_path / "trace.jsonl").write_bytes(TRACE_LINE)
    pipe = fifo(tmp_path / "pipe")
    output = "pipe"
    if through_link:
        output = symlink(tmp_path / "out.json", pipe).name
    done = convert(tmp_path, "trace.jsonl", output)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"threadtrace convert: error: cannot write {output}: not a regular file (a FIFO)\n",
    )
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_convert_refuses_to_write_a_directory(tmp_path: Path) -> None:
    (tmp_path / "trace.jsonl").write_bytes(TRACE_LINE)
    (tmp_path / "out").mkdir()
    done = convert(tmp_path, "trace.jsonl", "out")
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "threadtrace convert: error: cannot write out: not a regular file (a directory)\n",
    )
    assert os.listdir(tmp_path / "out") == []


def test_the_perfetto_exporter_writes_through_a_symlink_at_exit(tmp_path: Path) -> None:
    """--perfetto-path link.json writes the file the link leads to, and keeps the link."""
    (tmp_path / "script.py").write_text("pass\n")
    (tmp_path / "out").mkdir()
    link = symlink(tmp_path / "t.json", Path("out") / "real.json")
    done = threadtrace_cmd(
        [
            "run",
            "--no-summary",
            "--exporters",
            "perfetto",
            "--perfetto-path",
            "t.json",
            "script.py",
        ],
        tmp_path,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert link.is_symlink()
    assert json.loads((tmp_path / "out" / "real.json").read_text())["traceEvents"] == []
    assert sorted(os.listdir(tmp_path / "out")) == ["real.json"]


# -- 6. convert never writes over its input ------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "trace.jsonl",
        "./trace.jsonl",
        "sub/../trace.jsonl",
        "{absolute}",
        "link.jsonl",
    ],
    ids=["same", "dot", "dot-dot", "absolute", "symlink"],
)
def test_convert_refuses_to_write_over_its_input(tmp_path: Path, output: str) -> None:
    """The same file by any name: one line, status 2, and the trace untouched."""
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(TRACE_LINE)
    (tmp_path / "sub").mkdir()
    if output == "link.jsonl":
        symlink(tmp_path / "link.jsonl", Path("trace.jsonl"))
    output = output.format(absolute=trace)
    done = convert(tmp_path, "trace.jsonl", output)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"threadtrace convert: error: cannot write {output}: it is the input file trace.jsonl\n",
    )
    assert trace.read_bytes() == TRACE_LINE


# -- 7. a last line cut short by a killed writer ---------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [TRACE_LINE[: len(TRACE_LINE) // 2], TRACE_LINE[:-1][:-2], b'{"resourceSpans":[{"\xc2'],
    ids=["half", "all-but-the-end", "inside-a-utf8-character"],
)
def test_convert_uses_the_good_lines_when_the_last_is_cut_short(tmp_path: Path, cut: bytes) -> None:
    (tmp_path / "whole.jsonl").write_bytes(TRACE_LINE)
    (tmp_path / "cut.jsonl").write_bytes(TRACE_LINE + cut)
    whole = convert(tmp_path, "whole.jsonl", "whole.json")
    done = convert(tmp_path, "cut.jsonl", "cut.json")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "",
        f"threadtrace convert: warning: {CUT.format('cut.jsonl', 2)}\n{WROTE.format('cut.json')}",
    )
    assert whole.returncode == 0, whole.stderr
    assert (tmp_path / "cut.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            TRACE_LINE + b'{"resourceSpans":[\n' + TRACE_LINE,
            "trace.jsonl, line 2: not an OTLP JSON trace line (Expecting value: line 2 column "
            "1 (char 19))",
            id="cut-line-in-the-middle",
        ),
        pytest.param(
            TRACE_LINE + b'{"resourceSpans":[\n',
            "trace.jsonl, line 2: not an OTLP JSON trace line (Expecting value: line 2 column "
            "1 (char 19))",
            id="bad-last-line-with-its-newline",
        ),
        pytest.param(
            b'{"resourceSpans":[',
            "trace.jsonl, line 1: not an OTLP JSON trace line (Expecting value: line 1 column "
            "19 (char 18))",
            id="nothing-but-a-cut-line",
        ),
    ],
)
def test_a_bad_line_that_is_not_a_cut_last_line_is_still_an_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Only a last line without its newline, after good ones, is taken for a killed writer's."""
    (tmp_path / "trace.jsonl").write_bytes(content)
    done = convert(tmp_path, "trace.jsonl", "t.json")
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"threadtrace convert: error: {message}\n",
    )
    assert not (tmp_path / "t.json").exists()


def test_report_uses_the_last_whole_collection_when_the_metrics_end_cut_short(
    tmp_path: Path,
) -> None:
    (tmp_path / "run.jsonl").write_bytes(TRACE_LINE)
    (tmp_path / "run.metrics.jsonl").write_bytes(METRICS_LINE)
    (tmp_path / "cut.metrics.jsonl").write_bytes(
        METRICS_LINE + METRICS_LINE[: len(METRICS_LINE) // 3]
    )
    whole = threadtrace_cmd(["report", "run.jsonl"], tmp_path)
    done = threadtrace_cmd(["report", "run.jsonl", "--metrics", "cut.metrics.jsonl"], tmp_path)
    assert (whole.returncode, whole.stderr) == (0, "")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        whole.stdout,
        f"threadtrace report: warning: {CUT.format('cut.metrics.jsonl', 2)}\n",
    )


# -- 8. paths checked when the exporters are made -------------------------------------------

SCRIPT = "print('ran')\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            ["--json-metrics-path", "out"],
            "json_metrics_path: cannot write out: Is a directory",
            id="metrics-path-a-directory",
        ),
        pytest.param(
            ["--json-metrics-path", "file/m.jsonl"],
            "json_metrics_path: cannot create directory file: File exists",
            id="metrics-path-under-a-file",
        ),
        pytest.param(
            ["--json-metrics-path", "threadtrace-trace.jsonl"],
            "json_metrics_path: cannot write threadtrace-trace.jsonl: it is the trace file "
            "(json_path)",
            id="metrics-path-the-trace",
        ),
        pytest.param(
            ["--exporters", "perfetto", "--perfetto-path", "out"],
            "perfetto_path: cannot write out: not a regular file (a directory)",
            id="perfetto-path-a-directory",
        ),
        pytest.param(
            ["--exporters", "perfetto", "--perfetto-path", "file/t.json"],
            "perfetto_path: cannot write file/t.json: Not a directory",
            id="perfetto-path-under-a-file",
        ),
        pytest.param(
            ["--exporters", "json,perfetto", "--perfetto-path", "threadtrace-trace.jsonl"],
            "perfetto_path: cannot write threadtrace-trace.jsonl: it is a file of the json "
            "exporter",
            id="perfetto-path-the-trace",
        ),
    ],
)
def test_run_refuses_an_output_path_it_cannot_write_before_the_program_runs(
    tmp_path: Path, options: list[str], message: str
) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    (tmp_path / "out").mkdir()
    (tmp_path / "file").write_text("")
    done = threadtrace_cmd(["run", *options, "script.py"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"threadtrace run: error: {message}\n",
    )


@needs_fifo
def test_run_refuses_a_perfetto_path_that_is_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    fifo(tmp_path / "pipe")
    done = threadtrace_cmd(
        ["run", "--exporters", "perfetto", "--perfetto-path", "pipe", "script.py"], tmp_path
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "threadtrace run: error: perfetto_path: cannot write pipe: not a regular file (a FIFO)\n",
    )
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_the_timeline_is_written_where_its_path_was_checked(tmp_path: Path) -> None:
    """A program that changes its working directory does not move the timeline."""
    (tmp_path / "script.py").write_text("import os\nos.mkdir('elsewhere')\nos.chdir('elsewhere')\n")
    done = threadtrace_cmd(
        [
            "run",
            "--no-summary",
            "--exporters",
            "perfetto",
            "--perfetto-path",
            "t.json",
            "script.py",
        ],
        tmp_path,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "script.py", "t.json"]
    assert os.listdir(tmp_path / "elsewhere") == []


def not_a_file(kind: str, tmp_path: Path) -> tuple[str, str]:
    """A path of ``kind`` (made under tmp_path), and what it is called in the message."""
    if kind == "dev-null":
        if not os.path.exists(os.devnull) or os.devnull != "/dev/null":
            pytest.skip("no /dev/null here")
        return "/dev/null", "a character device"
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        return str(fifo(tmp_path / "pipe")), "a FIFO"
    (tmp_path / "dir").mkdir()
    return str(tmp_path / "dir"), "a directory"


@pytest.mark.parametrize("kind", ["dev-null", "fifo", "directory"])
def test_configure_refuses_a_timeline_path_that_is_not_a_regular_file(
    own_providers: None, tmp_path: Path, kind: str
) -> None:
    path, what = not_a_file(kind, tmp_path)
    before = threadtrace.current_config()
    with pytest.raises(
        threadtrace.ConfigurationError,
        match=rf"^perfetto_path: cannot write {path}: not a regular file \({what}\)$",
    ):
        threadtrace.configure(exporters=("perfetto",), perfetto_path=path)
    assert threadtrace.current_config() == before


def test_configure_refuses_a_metrics_path_it_cannot_write(
    own_providers: None, tmp_path: Path
) -> None:
    (tmp_path / "dir").mkdir()
    before = threadtrace.current_config()
    with pytest.raises(
        threadtrace.ConfigurationError,
        match=rf"^json_metrics_path: cannot write {tmp_path / 'dir'}: Is a directory$",
    ):
        threadtrace.configure(
            exporters=("json",),
            json_path=str(tmp_path / "t.jsonl"),
            json_metrics_path=str(tmp_path / "dir"),
        )
    assert threadtrace.current_config() == before


# -- 9. the summary says what a capped exporter kept ----------------------------------------


def test_the_summary_says_how_many_spans_the_timeline_kept_and_dropped(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(
        textwrap.dedent(
            """\
            import threading
            from threadtrace.exporters import perfetto
            perfetto.MAX_SPANS = 3  # the cap, made small
            threading.excepthook = lambda args: None
            def fail():
                raise ValueError
            for number in range(5):  # five Thread.run spans: a run that raised has one
                thread = threading.Thread(target=fail)
                thread.start()
                thread.join(10)
            """
        )
    )
    done = threadtrace_cmd(
        [
            "run",
            "--exporters",
            "perfetto",
            "--perfetto-path",
            "t.json",
            "--wait-threshold",
            "3600",  # no join makes a span
            "script.py",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary_lines = done.stderr[done.stderr.index("threadtrace summary:") :].splitlines()
    assert summary_lines == [
        "threadtrace summary:",
        "  threads   5 started",
        "  exported  3 of 5 spans to perfetto (t.json), 2 dropped (the timeline keeps at most 3)",
        "  hottest   no lock or semaphore was contended",
    ]
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["threadtrace.dropped_spans"] == 2
    assert [e["name"] for e in data["traceEvents"] if e["ph"] == "X"] == [
        "Thread.run __main__.fail"
    ] * 3


class KeepsTwo(exporters.Exporter):
    """Takes every batch, keeps two spans in all, and counts the rest as the API says."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.kept: list[Any] = []

    def export_spans(self, spans: Any) -> bool:
        room = 2 - len(self.kept)
        self.kept.extend(spans[:room])
        self.dropped_spans += len(spans[room:])
        self.drop_reason = "it keeps two"
        return True


def test_an_exporter_that_keeps_part_of_what_it_takes_says_so_in_the_summary() -> None:
    exporter = KeepsTwo(threadtrace.current_config())
    stats = _export.ExportStats("keeper", "memory")
    _export.deliver(stats, exporter, ["a", "b", "c"])  # type: ignore[list-item]
    _export.deliver(stats, exporter, ["d"])  # type: ignore[list-item]
    (line,) = [text for text in summary({"keeper": stats}).splitlines() if "exported" in text]
    assert line == "  exported  2 of 4 spans to keeper (memory), 2 dropped (it keeps two)"
    assert exporters.Exporter.dropped_spans == 0  # the class default is untouched


# -- 10. malformed input: one line and status 2, never a traceback ---------------------------


def nested(depth: int, signal: str = "resourceSpans") -> bytes:
    return f'{{"{signal}":{"[" * depth}{"]" * depth}}}\n'.encode()


@pytest.mark.parametrize("depth", [200_000, 990])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "deep.jsonl"], "deep.jsonl, line 1: not an OTLP JSON trace line"),
        (
            ["report", "trace.jsonl", "--metrics", "deep.jsonl"],
            "deep.jsonl, line 1: not an OTLP JSON metrics line",
        ),
        (
            ["convert", "deep.jsonl", "--to", "perfetto", "-o", "t.json"],
            "deep.jsonl, line 1: not an OTLP JSON trace line",
        ),
    ],
    ids=["report-trace", "report-metrics", "convert"],
)
def test_deeply_nested_json_is_one_line_and_status_2(
    tmp_path: Path, depth: int, args: list[str], message: str
) -> None:
    (tmp_path / "trace.jsonl").write_bytes(TRACE_LINE)
    signal = "resourceMetrics" if "--metrics" in args else "resourceSpans"
    (tmp_path / "deep.jsonl").write_bytes(nested(depth, signal))
    done = threadtrace_cmd(args, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"threadtrace {args[0]}: error: {message} (nested too deeply)\n",
    )


def metrics_with(change: Callable[[list[dict[str, Any]]], None]) -> bytes:
    """The saved metrics line, with ``change`` made to its metrics (a list of OTLP/JSON dicts)."""
    data = json.loads(METRICS_LINE)
    change(data["resourceMetrics"][0]["scopeMetrics"][0]["metrics"])
    return json.dumps(data).encode() + b"\n"


def point(metrics: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (metric,) = [m for m in metrics if m["name"] == name]
    kind = next(k for k in ("sum", "gauge", "histogram") if k in metric)
    first: dict[str, Any] = metric[kind]["dataPoints"][0]
    return first


def attribute(metrics: list[dict[str, Any]], name: str, key: str) -> dict[str, Any]:
    (pair,) = [a for a in point(metrics, name)["attributes"] if a["key"] == key]
    return pair  # type: ignore[no-any-return]


def _drop_name(metrics: list[dict[str, Any]]) -> None:
    attributes = point(metrics, "threadtrace.contention.count")["attributes"]
    attributes[:] = [a for a in attributes if a["key"] != "threadtrace.primitive.name"]


BAD_POINTS: list[Any] = [
    pytest.param(
        lambda m: point(m, "threadtrace.contention.count").update(asInt="-1"),
        "bad threadtrace.contention.count point (a count of -1)",
        id="negative-count",
    ),
    pytest.param(
        lambda m: point(m, "threadtrace.contention.time").update(asDouble="NaN"),
        "bad threadtrace.contention.time point (nan seconds)",
        id="nan-seconds",
    ),
    pytest.param(
        lambda m: attribute(m, "threadtrace.contention.count", "thread.name").update(
            value={"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}
        ),
        "bad threadtrace.contention.count point (thread.name is {'k': 'v'})",
        id="thread-name-not-text",
    ),
    pytest.param(
        lambda m: attribute(m, "threadtrace.contention.count", "code.line.number").update(
            value={"stringValue": "x"}
        ),
        "bad threadtrace.contention.count point (code.line.number is 'x')",
        id="line-number-not-a-number",
    ),
    pytest.param(
        _drop_name,
        "bad threadtrace.contention.count point (no threadtrace.primitive.name)",
        id="no-primitive-name",
    ),
    pytest.param(
        lambda m: point(m, "threadtrace.wait.duration").update(bucketCounts=["1", "0", "0"]),
        "bad threadtrace.wait.duration point (3 bucket counts for 25 bounds)",
        id="bucket-counts",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_POINTS)
def test_metrics_the_report_cannot_use_are_one_line_naming_the_line(
    tmp_path: Path, change: Callable[[list[dict[str, Any]]], None], message: str
) -> None:
    (tmp_path / "run.jsonl").write_bytes(TRACE_LINE)
    (tmp_path / "run.metrics.jsonl").write_bytes(METRICS_LINE + metrics_with(change))
    done = threadtrace_cmd(["report", "run.jsonl"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"threadtrace report: error: run.metrics.jsonl, line 2: {message}\n",
    )


def test_convert_takes_spans_whose_thread_id_is_not_a_number(tmp_path: Path) -> None:
    """Spans of other programs may carry anything: the timeline takes them as they are."""
    line = TRACE_LINE.replace(b'{"intValue":"', b'{"stringValue":"not a number ')
    assert line != TRACE_LINE
    (tmp_path / "trace.jsonl").write_bytes(line)
    done = convert(tmp_path, "trace.jsonl", "t.json")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", WROTE.format("t.json"))


#: Values a mangled file may hold where another was expected.
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, "x", "", [], {}, [1], {"a": 1}, "18446744073709551616", 1e308,
    "NaN", "-Infinity", "AAAA", {"stringValue": ""}, {"intValue": "x"}, {"doubleValue": "NaN"},
    {"kvlistValue": {"values": [{"key": "k", "value": {"arrayValue": {"values": [{}]}}}]}},
]  # fmt: skip


def mangled(data: Any, rng: random.Random, rate: float) -> Any:
    """``data`` with values replaced, and keys dropped, at random."""
    if rng.random() < rate / 10:
        return rng.choice(ODD_VALUES)
    if isinstance(data, dict):
        return {k: mangled(v, rng, rate) for k, v in data.items() if rng.random() > rate / 20}
    if isinstance(data, list):
        return [mangled(item, rng, rate) for item in data]
    return data


@pytest.mark.parametrize("command", ["convert", "report"])
def test_mangled_files_give_a_result_or_one_line_never_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """200 seeded manglings of a saved run, through the command in this process."""
    (tmp_path / "trace.jsonl").write_bytes(TRACE_LINE)
    source = json.loads(TRACE_LINE if command == "convert" else METRICS_LINE)
    monkeypatch.chdir(tmp_path)
    errors = 0
    for seed in range(200):
        rng = random.Random(seed)
        lines = [json.dumps(mangled(source, rng, rng.choice([0.05, 0.2, 0.5])))]
        (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
        if command == "convert":
            argv = ["convert", "in.jsonl", "--to", "perfetto", "-o", "t.json"]
        else:
            argv = ["report", "trace.jsonl", "--metrics", "in.jsonl", *(["--json"] * (seed % 2))]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
        assert status in (0, 2), (seed, err.getvalue())
        if status == 2:
            errors += 1
            assert err.getvalue().startswith(f"threadtrace {command}: error: "), seed
            assert err.getvalue().count("\n") == 1, (seed, err.getvalue())
    assert 0 < errors < 200  # both kinds of outcome were tried
