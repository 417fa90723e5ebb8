"""One configuration model: keywords, THREADTRACE_* variables and CLI options agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import threadtrace
from threadtrace._support.config import Config, env_var, from_environment, setting_names

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_a_variable_with_the_same_name() -> None:
    config = from_environment(
        {
            "THREADTRACE_WAIT_THRESHOLD": "0.005",
            "THREADTRACE_HOLD_THRESHOLD": "1",
            "THREADTRACE_SPAN_LIMIT": "0",
            "THREADTRACE_SAMPLE_EVERY": " 10 ",
            "THREADTRACE_EXPORTERS": "console, json",
            "THREADTRACE_EXCLUDE_MODULES": "kafka,myapp.vendor",
            "THREADTRACE_JSON_PATH": "out/t.jsonl",
            "THREADTRACE_JSON_METRICS_PATH": "out/m.jsonl",
            "THREADTRACE_PERFETTO_PATH": "out/p.json",
            "THREADTRACE_FLUSH_TIMEOUT": "2",
            "THREADTRACE_REPORT": "yes",
            "THREADTRACE_REPORT_TOP": "3",
            "THREADTRACE_REPORT_SORT": "max",
            "THREADTRACE_WATCHDOG": "off",
            "THREADTRACE_DEADLOCK_AFTER": "0.5",
            "THREADTRACE_STUCK_AFTER": "0",
            "THREADTRACE_ON_DEADLOCK": "raise",
            "THREADTRACE_LOCK_ORDER": "TRUE",
            "THREADTRACE_PURE_PYTHON": "1",  # not a setting, and not an error
            "UNRELATED": "x",
        }
    )
    assert config == Config(
        wait_threshold=0.005,
        hold_threshold=1.0,
        span_limit=0,
        sample_every=10,
        exporters=("console", "json"),
        exclude_modules=("kafka", "myapp.vendor"),
        json_path="out/t.jsonl",
        json_metrics_path="out/m.jsonl",
        perfetto_path="out/p.json",
        flush_timeout=2.0,
        report=True,
        report_top=3,
        report_sort="max",
        watchdog=False,
        deadlock_after=0.5,
        stuck_after=0.0,
        on_deadlock="raise",
        lock_order=True,
    )
    assert set(setting_names()) == {
        "wait_threshold",
        "hold_threshold",
        "span_limit",
        "sample_every",
        "exporters",
        "exclude_modules",
        "json_path",
        "json_metrics_path",
        "perfetto_path",
        "flush_timeout",
        "report",
        "report_top",
        "report_sort",
        "watchdog",
        "deadlock_after",
        "stuck_after",
        "on_deadlock",
        "lock_order",
    }


def test_an_empty_exporters_variable_exports_nothing() -> None:
    assert from_environment({"THREADTRACE_EXPORTERS": ""}).exporters == ()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"THREADTRACE_WAIT_THRESHOLD": "fast"},
            "THREADTRACE_WAIT_THRESHOLD must be a number of seconds >= 0, got 'fast'",
        ),
        (
            {"THREADTRACE_HOLD_THRESHOLD": "-1"},
            "THREADTRACE_HOLD_THRESHOLD must be a number of seconds >= 0, got '-1'",
        ),
        (
            {"THREADTRACE_SAMPLE_EVERY": "1.5"},
            "THREADTRACE_SAMPLE_EVERY must be a whole number >= 0, got '1.5'",
        ),
        (
            {"THREADTRACE_FLUSH_TIMEOUT": "inf"},
            "THREADTRACE_FLUSH_TIMEOUT must be a number of seconds >= 0, got 'inf'",
        ),
        (
            {"THREADTRACE_EXPORTERS": "console,jaeger"},
            "THREADTRACE_EXPORTERS: unknown exporter 'jaeger'; installed exporters: "
            "console, json, memory, otlp, perfetto",
        ),
        (
            {"THREADTRACE_REPORT": "maybe"},
            "THREADTRACE_REPORT must be true or false, got 'maybe'",
        ),
        (
            {"THREADTRACE_REPORT_TOP": "0"},
            "THREADTRACE_REPORT_TOP must be a whole number >= 1, got '0'",
        ),
        (
            {"THREADTRACE_REPORT_SORT": "name"},
            "THREADTRACE_REPORT_SORT must be one of wait, max, count, got 'name'",
        ),
        (
            {"THREADTRACE_DEADLOCK_AFTER": "0"},
            "THREADTRACE_DEADLOCK_AFTER must be a number of seconds > 0, got '0'",
        ),
        (
            {"THREADTRACE_ON_DEADLOCK": "panic"},
            "THREADTRACE_ON_DEADLOCK must be one of log, raise, exit, got 'panic'",
        ),
        (
            {"THREADTRACE_JSON_PATH": ""},
            "THREADTRACE_JSON_PATH must be a file path, got ''",
        ),
        (
            {"THREADTRACE_WAIT_TRESHOLD": "1"},
            "unknown environment variable THREADTRACE_WAIT_TRESHOLD; settings: "
            "THREADTRACE_WAIT_THRESHOLD, THREADTRACE_HOLD_THRESHOLD, THREADTRACE_SPAN_LIMIT, "
            "THREADTRACE_SAMPLE_EVERY, "
            "THREADTRACE_EXPORTERS, THREADTRACE_EXCLUDE_MODULES, THREADTRACE_JSON_PATH, "
            "THREADTRACE_JSON_METRICS_PATH, THREADTRACE_PERFETTO_PATH, "
            "THREADTRACE_FLUSH_TIMEOUT, THREADTRACE_REPORT, THREADTRACE_REPORT_TOP, "
            "THREADTRACE_REPORT_SORT, THREADTRACE_WATCHDOG, THREADTRACE_DEADLOCK_AFTER, "
            "THREADTRACE_STUCK_AFTER, THREADTRACE_ON_DEADLOCK, THREADTRACE_LOCK_ORDER",
        ),
    ],
)
def test_an_invalid_variable_names_itself_and_what_it_accepts(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(threadtrace.ConfigurationError) as raised:
        from_environment(environ)
    assert str(raised.value) == message


def test_variables_apply_at_import_and_keywords_win(tmp_path: Path) -> None:
    program = (
        "import threadtrace\n"
        "print(threadtrace.current_config().wait_threshold)\n"
        "threadtrace.configure(wait_threshold=0.5, exporters=())\n"
        "print(threadtrace.current_config().wait_threshold)\n"
    )
    env = {**os.environ, "THREADTRACE_WAIT_THRESHOLD": "0.25"}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "0.25\n0.5\n", "")


def test_an_invalid_variable_never_breaks_import_and_fails_configure() -> None:
    program = (
        "import threadtrace\n"
        "print(threadtrace.current_config().wait_threshold)\n"
        "try:\n"
        "    threadtrace.patch()\n"
        "except threadtrace.ConfigurationError as error:\n"
        "    print('refused:', error)\n"
        "print(threadtrace.is_patched())\n"
    )
    env = {**os.environ, "THREADTRACE_WAIT_THRESHOLD": "soon"}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "0.001\n"
        "refused: THREADTRACE_WAIT_THRESHOLD must be a number of seconds >= 0, got 'soon'\n"
        "False\n"
    )


def test_the_metrics_file_sits_next_to_the_trace_file() -> None:
    assert Config(json_path="out/run.jsonl").json_metrics_file == "out/run.metrics.jsonl"
    assert Config(json_path="t.json").json_metrics_file == "t.metrics.jsonl"
    assert Config(json_path="trace").json_metrics_file == "trace.metrics.jsonl"
    assert Config(json_metrics_path="m.jsonl").json_metrics_file == "m.jsonl"


def test_the_docs_list_every_setting_its_variable_option_and_default() -> None:
    docs = DOCS.read_text()
    defaults = Config()
    for name in setting_names():
        row = next((text for text in docs.splitlines() if text.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/configuration.md has no row for {name}"
        assert f"`{env_var(name)}`" in row, name
        assert f"`--{name.replace('_', '-')}`" in row, name
        default = getattr(defaults, name)
        if default is None:
            shown = "auto"
        elif isinstance(default, tuple):
            shown = ",".join(default)
        else:
            shown = str(default)
        assert f"`{shown}`" in row or (shown == "" and "empty" in row), (name, shown)
