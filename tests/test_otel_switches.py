"""OpenTelemetry's own switches: OTEL_SDK_DISABLED, OTEL_*_EXPORTER and the service-name order.

threadtrace builds SDK providers of its own when the program has none, and
then reads these variables as the SDK does; docs/configuration.md says how
they combine with THREADTRACE_*.  Tested in-process where the choice is
made, through ``threadtrace run``, and under the real ``opentelemetry-instrument``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from helpers import child_env

import threadtrace
from threadtrace._export.providers import _resource
from threadtrace._runtime import runtime
from threadtrace._support.config import exporters_from_otel, from_environment, sdk_disabled, sends
from threadtrace.testing import capture

TRACE = "threadtrace-trace.jsonl"

#: Contends one lock once when traced; says what threading.Lock is either way.
APP = """\
import sys
import threading

print(threading.Lock.__module__, flush=True)
if threading.Lock.__module__ == "threadtrace":
    from threadtrace.testing import wait_for_waiters

    lock = threading.Lock()
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(), lock.release()), name="waiter")
    waiter.start()
    wait_for_waiters(lock, 1, timeout=30)
    lock.release()
    waiter.join(30)
"""


def otel_free(**extra: str) -> dict[str, str]:
    """The tests' child environment without any OTEL_* variable, plus ``extra``."""
    env = {key: value for key, value in child_env().items() if not key.startswith("OTEL_")}
    env.update(extra)
    return env


def run_app(tmp_path: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP)
    return subprocess.run(
        [sys.executable, "-m", "threadtrace", "run", "--wait-threshold", "0", *options, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


# -- OTEL_SDK_DISABLED ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "disabled", "problem"),
    [
        ("true", True, None),
        ("TRUE", True, None),
        ("false", False, None),
        ("", False, None),
        ("1", False, "OTEL_SDK_DISABLED must be true or false, got '1'; taken as false"),
    ],
)
def test_the_sdk_disabled_switch_reads_as_the_specification_says(
    value: str, disabled: bool, problem: Optional[str]
) -> None:
    assert sdk_disabled({"OTEL_SDK_DISABLED": value}) == (disabled, problem)


def test_with_the_sdk_disabled_patch_leaves_threading_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No telemetry means the standard library's primitives: patch() checks its settings only."""
    monkeypatch.setattr(runtime, "sdk_disabled", True)
    handle = threadtrace.patch()
    try:
        assert not threadtrace.is_patched()
        assert not handle.active
        import threading

        assert threading.Lock.__module__ == "_thread"
        with pytest.raises(threadtrace.ConfigurationError):
            threadtrace.patch(wait_threshold=-1)  # a bad setting is still refused
    finally:
        handle.unpatch()


def test_with_the_sdk_disabled_capture_still_records_into_its_own_providers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What is asked for explicitly (tests, the pytest plugin) still works."""
    monkeypatch.setattr(runtime, "sdk_disabled", True)
    with capture(wait_threshold=0) as cap:
        assert threadtrace.is_patched()
        from helpers import contend

        lock = threadtrace.Lock()
        contend(lock)
    assert [s.name for s in cap.spans() if s.name.startswith("Lock.acquire")] == [
        f"Lock.acquire {lock.name}"
    ]


def test_run_with_the_sdk_disabled_runs_the_program_untraced(tmp_path: Path) -> None:
    done = run_app(tmp_path, otel_free(OTEL_SDK_DISABLED="true"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "_thread\n"
    assert done.stderr == (
        "threadtrace summary: OTEL_SDK_DISABLED is true: nothing was traced or exported\n"
    )
    assert list(tmp_path.glob("*.jsonl")) == []


def test_opentelemetry_instrument_with_the_sdk_disabled_leaves_threading_alone(
    tmp_path: Path,
) -> None:
    """The real opentelemetry-instrument loads threadtrace's instrumentor, which patches nothing."""
    (tmp_path / "app.py").write_text(APP)
    command = Path(sys.executable).with_name("opentelemetry-instrument")
    done = subprocess.run(
        [str(command), sys.executable, "app.py"],
        cwd=tmp_path,
        env=otel_free(OTEL_SDK_DISABLED="true", THREADTRACE_WAIT_THRESHOLD="0"),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "_thread\n"


# -- OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER --------------------------------------------


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, ("json",)),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "otlp"}, ("console", "otlp")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, ()),
        # threadtrace's own setting wins over OpenTelemetry's
        ({"OTEL_TRACES_EXPORTER": "otlp", "THREADTRACE_EXPORTERS": "json"}, ("json",)),
        # a value only the SDK knows names nothing here (said where threadtrace needs it)
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, ("json",)),
    ],
)
def test_opentelemetrys_variables_name_the_exporters_unless_threadtraces_do(
    environ: dict[str, str], exporters: tuple[str, ...]
) -> None:
    assert from_environment(environ).exporters == exporters


@pytest.mark.parametrize(
    ("environ", "spans", "metrics"),
    [
        ({}, {"otlp", "console", "json"}, {"otlp", "console", "json"}),
        ({"OTEL_TRACES_EXPORTER": "none"}, set(), {"otlp", "console", "json"}),
        ({"OTEL_METRICS_EXPORTER": "none"}, {"otlp", "console", "json"}, set()),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "console"},
            {"otlp", "json"},
            {"console", "json"},
        ),
        # a value only the SDK knows names none of threadtrace's: no error here
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, {"json"}, {"otlp", "console", "json"}),
    ],
)
def test_each_signal_goes_where_its_variable_says(
    environ: dict[str, str], spans: set[str], metrics: set[str]
) -> None:
    """none stops a signal for all; otherwise only otlp and console are OpenTelemetry's to name."""
    names = ("otlp", "console", "json")
    assert {n for n in names if sends("traces", n, environ)} == spans
    assert {n for n in names if sends("metrics", n, environ)} == metrics


def test_an_exporter_value_threadtrace_cannot_use_is_one_exact_error() -> None:
    with pytest.raises(
        threadtrace.ConfigurationError,
        match=r"^OTEL_METRICS_EXPORTER must be none, otlp or console \(comma-separated\), "
        r"got 'prometheus'$",
    ):
        exporters_from_otel({"OTEL_METRICS_EXPORTER": "prometheus"})


def test_run_refuses_an_exporter_value_it_cannot_use_with_status_2(tmp_path: Path) -> None:
    done = run_app(tmp_path, otel_free(OTEL_TRACES_EXPORTER="zipkin"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "threadtrace run: error: OTEL_TRACES_EXPORTER must be none, otlp or console "
        "(comma-separated), got 'zipkin'\n"
    )


def test_run_sends_spans_where_otel_traces_exporter_says(tmp_path: Path) -> None:
    """OTEL_TRACES_EXPORTER=console: console lines, and no json file (run's default) at all."""
    done = run_app(
        tmp_path, otel_free(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "threadtrace\n"
    assert "waiter       Lock.acquire " in done.stderr
    assert "  exported  3 spans to console (stderr)" in done.stderr
    assert list(tmp_path.glob("*.jsonl")) == []


def test_run_with_traces_off_still_writes_the_metrics_the_report_needs(tmp_path: Path) -> None:
    """OTEL_TRACES_EXPORTER=none: the json exporter gets no span, and its metrics still."""
    done = run_app(tmp_path, otel_free(OTEL_TRACES_EXPORTER="none"), "--exporters", "json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / TRACE).read_text() == ""
    assert "  exported  0 spans to json" in done.stderr
    report = subprocess.run(
        [sys.executable, "-m", "threadtrace", "report", TRACE],
        cwd=tmp_path, env=otel_free(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert re.search(r"^\d\. Lock .*app\.py:\d+", report.stdout, re.MULTILINE), report.stdout


# -- service.name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "service"),
    [
        ({}, "threadtrace:prog.py"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing,team=core"}, "billing"),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing", "OTEL_SERVICE_NAME": "ledger"},
            "ledger",
        ),
        ({"OTEL_SERVICE_NAME": "ledger"}, "ledger"),
    ],
)
def test_the_service_name_follows_the_specifications_order(
    environ: dict[str, str], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES, then threadtrace's."""
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["/somewhere/prog.py"])
    attributes = _resource().attributes
    assert attributes["service.name"] == service
    if "team" in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        assert attributes["team"] == "core"
    import os

    assert (attributes["process.pid"], attributes["process.parent_pid"]) == (
        os.getpid(),
        os.getppid(),
    )
