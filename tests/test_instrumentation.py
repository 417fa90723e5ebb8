"""`opentelemetry-instrument` loads threadtrace through its entry point; OTel's switch turns it off."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import child_env

import threadtrace
from threadtrace._runtime import runtime
from threadtrace.instrumentation import ThreadtraceInstrumentor

#: A lock that one thread holds while another waits for it (handed over once the
#: other waits, when traced; untraced there is nothing to wait for).
APP = """\
import sys
import threading

print("threadtrace loaded:", "threadtrace" in sys.modules, file=sys.stderr)
ledger = threading.Lock()
ledger.acquire()
teller = threading.Thread(target=lambda: (ledger.acquire(), ledger.release()), name="teller")
teller.start()
if "threadtrace" in sys.modules:
    from threadtrace.testing import wait_for_waiters

    wait_for_waiters(ledger, 1)
ledger.release()
teller.join(10)
# OpenTelemetry's own threading instrumentor, installed alongside, wraps Thread.start.
print("also instrumented by OTel:", hasattr(threading.Thread.start, "__wrapped__"), file=sys.stderr)
"""


def _instrumented(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """`opentelemetry-instrument --traces_exporter console ... python app.py`."""
    (tmp_path / "app.py").write_text(APP)
    env = {k: v for k, v in child_env(**extra).items() if not k.startswith("OTEL_")}
    env["THREADTRACE_WAIT_THRESHOLD"] = "0"  # the hand-over may take less than the default 1 ms
    env.update(extra)
    command = Path(sys.executable).with_name("opentelemetry-instrument")
    exporters = ["--traces_exporter", "console", "--metrics_exporter", "none"]
    return subprocess.run(
        [str(command), *exporters, "--logs_exporter", "none", sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def _console_spans(stdout: str) -> list[dict[str, Any]]:
    """The spans OpenTelemetry's console exporter printed: JSON objects, one after another."""
    decoder = json.JSONDecoder()
    spans = []
    end = 0
    while True:
        start = stdout.find("{", end)
        if start == -1:
            return spans
        span, end = decoder.raw_decode(stdout, start)
        spans.append(span)


def test_opentelemetry_instrument_traces_the_programs_locks(tmp_path: Path) -> None:
    """The entry point patches threading; the spans go to the providers OTel set up."""
    done = _instrumented(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "threadtrace loaded: True" in done.stderr
    assert "also instrumented by OTel: True" in done.stderr  # the two coexist
    waits = [s for s in _console_spans(done.stdout) if s["name"].startswith("Lock.acquire")]
    assert len(waits) == 1, done.stdout
    assert waits[0]["attributes"]["threadtrace.primitive.name"] == "ledger (app.py:5)"
    assert waits[0]["attributes"]["thread.name"] == "teller"
    # The provider opentelemetry-instrument set up, not threadtrace's fallback.
    assert "telemetry.auto.version" in waits[0]["resource"]["attributes"]


def test_the_disabled_instrumentations_variable_turns_it_off(tmp_path: Path) -> None:
    done = _instrumented(tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="threadtrace")
    assert done.returncode == 0, done.stderr
    assert "threadtrace loaded: False" in done.stderr
    assert "also instrumented by OTel: True" in done.stderr
    assert [s["name"] for s in _console_spans(done.stdout)] == []


def test_instrument_patches_and_uninstrument_unpatches() -> None:
    instrumentor = ThreadtraceInstrumentor()
    assert instrumentor.instrumentation_dependencies() == ()
    try:
        instrumentor.instrument()
        assert threadtrace.is_patched()
    finally:
        instrumentor.uninstrument()
    assert not threadtrace.is_patched()


def test_a_bad_setting_leaves_the_program_untraced_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Raising would stop opentelemetry-instrument from loading the instrumentors after it."""
    error = threadtrace.ConfigurationError("THREADTRACE_SAMPLE_EVERY must be a whole number >= 0")
    monkeypatch.setattr(runtime, "environment_error", error)
    instrumentor = ThreadtraceInstrumentor()
    with caplog.at_level(logging.ERROR, logger="threadtrace"):
        try:
            instrumentor.instrument()
        finally:
            instrumentor.uninstrument()
    assert not threadtrace.is_patched()
    assert caplog.messages == [
        "threadtrace is not instrumenting: THREADTRACE_SAMPLE_EVERY must be a whole number >= 0"
    ]


def test_importing_threadtrace_needs_no_instrumentation_package() -> None:
    """The instrument extra is optional: threadtrace alone never imports it."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, threadtrace, threadtrace.testing; "
         "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.instrumentation')))"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")
