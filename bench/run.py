#!/usr/bin/env python3
"""Whole programs, bare against traced: run bench/workloads.py in fresh processes and compare.

Every measurement is a fresh process that runs one workload of
``bench/workloads.py`` once and prints its wall time (the workload call only),
checksum and peak RSS as JSON.  For each workload and each tool, the runner
makes N *pairs*: a bare run, then a run under the tool, then a bare run, then
one under the tool, and so on.  Each pair gives one ratio, tool / bare, so a
burst of machine noise tends to land on both halves of it; the table shows the
median of those per-pair ratios with their min and max, the median seconds of
each side, and the peak RSS of each side with the median per-pair difference.
Within a repeat the tools take turns in a rotating order, so no tool always
runs right after the same other one.

The tools (``--tools``; ``bare`` is always the baseline):

* ``patch``: ``import threadtrace; threadtrace.patch()`` with the defaults,
  before the workload.  The library's default exporter is ``console``, which
  prints a line per span on stderr: the runner captures the child's stderr,
  counts its lines and reports them.
* ``run``: the workload script run by ``python -m threadtrace run`` with its
  defaults there (the ``json`` exporter, the contention report at exit), the
  trace files written into a temporary directory (``--json-path``).
* ``ddtrace``: Datadog's profiler, its lock collector on, capturing 1 % of
  lock events: ``DD_PROFILING_ENABLED=true``, ``DD_PROFILING_LOCK_ENABLED=true``,
  ``DD_PROFILING_CAPTURE_PCT=1`` (names and defaults checked in ddtrace 4.16's
  ``ddtrace/internal/settings/profiling.py``), started by
  ``import ddtrace.profiling.auto`` as Datadog documents.  Its other
  collectors (stack, memory, ...) stay as they are by default.  There is no agent, so
  its uploads fail (one line on stderr); ``DD_INSTRUMENTATION_TELEMETRY_ENABLED``
  is set to false so no telemetry thread tries to send anything either.
* ``viztracer``: ``VizTracer(output_file=<tmp>, verbose=0)`` started before
  and stopped after the workload; saving the trace happens after the timing.
* ``yappi``: ``yappi.set_clock_type("wall"); yappi.start()`` before the
  workload, ``yappi.stop()`` after it.

The peers are optional: each is included only when it imports in the
interpreter that runs the children (``--python``); otherwise the header says
it was skipped and why.  They are never a dependency of threadtrace or of CI.

Children get the runner's environment minus any ``THREADTRACE_*`` variable
(so "defaults" means the defaults), except ``THREADTRACE_PURE_PYTHON``, which
is kept so that the pure-Python lock core can be measured on purpose.  Each
child runs in its own temporary directory, removed afterwards.

Usage, from the repository root::

    python bench/run.py                          # everything: takes several minutes
    python bench/run.py --quick                  # 2 pairs per cell, workloads at 1/5 size
    python bench/run.py --only queue --tools patch,run --repeats 9
    python bench/run.py --python .venv/peers/bin/python --json out.json

It prints progress on stderr, then a header (Python, machine, cores, load,
which threadtrace and whether its C lock core is in use, which peers) and one
markdown table on stdout.  The exit status is 1 if a checksum differed or a
run failed, 0 otherwise; timings never fail it.  Standard library only;
runs on Python 3.9+.  See bench/WORKLOADS.md for the method and a result.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS_PY = os.path.join(HERE, "workloads.py")
sys.path.insert(0, HERE)

from workloads import WORKLOADS  # noqa: E402 - bench/ is not a package

TOOLS = ("bare", "patch", "run", "ddtrace", "viztracer", "yappi")
PEERS = ("ddtrace", "viztracer", "yappi")
LABELS = {
    "patch": "threadtrace patch()",
    "run": "threadtrace run",
    "ddtrace": "ddtrace lock profiler (1%)",
    "viztracer": "viztracer",
    "yappi": "yappi (wall)",
}
#: Datadog's profiler with the lock collector at 1 % (ddtrace 4.16 names).
DD_ENV = {
    "DD_PROFILING_ENABLED": "true",
    "DD_PROFILING_LOCK_ENABLED": "true",
    "DD_PROFILING_CAPTURE_PCT": "1",
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
}
QUICK_SCALE = 0.2
QUICK_REPEATS = 2
#: A tool run whose stderr has more lines than this gets a note under the table.
CHATTY_LINES = 100

# What the probe prints about the interpreter that will run the children.
PROBE = r"""
import importlib, json, platform, sys
info = {"python": platform.python_version(), "implementation": platform.python_implementation(),
        "executable": sys.executable, "threadtrace": None, "peers": {}}
try:
    import threadtrace
    import threadtrace._primitives.core as core
    info["threadtrace"] = {"version": getattr(threadtrace, "__version__", "?"),
                           "file": threadtrace.__file__, "speedups": core.SPEEDUPS}
except Exception as exc:
    info["threadtrace_error"] = "%s: %s" % (type(exc).__name__, exc)
for peer, module in (("ddtrace", "ddtrace.profiling"), ("viztracer", "viztracer"),
                     ("yappi", "yappi")):
    try:
        importlib.import_module(module)
        try:
            from importlib.metadata import version
            found = version(peer)
        except Exception:
            found = "?"
        info["peers"][peer] = {"version": found}
    except Exception as exc:
        info["peers"][peer] = {"error": "%s: %s" % (type(exc).__name__, exc)}
print(json.dumps(info))
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _child_env() -> Tuple[Dict[str, str], List[str]]:
    """The children's environment, and the THREADTRACE_* variables taken out of it."""
    env = dict(os.environ)
    dropped = [
        name
        for name in env
        if name.startswith("THREADTRACE_") and name != "THREADTRACE_PURE_PYTHON"
    ]
    for name in dropped:
        del env[name]
    return env, sorted(dropped)


def probe(python: str, env: Dict[str, str]) -> Dict[str, Any]:
    """What the interpreter ``python`` has: its version, threadtrace, the peers."""
    # From an empty directory, as the children run: `python -c` puts the current
    # directory first on sys.path, and from the repository root that would find
    # the working tree's threadtrace instead of the one the children import.
    with tempfile.TemporaryDirectory(prefix="tt-bench-probe-") as empty:
        done = subprocess.run(
            [python, "-c", PROBE],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"run.py: cannot run {python}: {done.stderr.strip()}")
    result: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _load() -> Dict[str, Any]:
    """The load now: os.getloadavg() and, where there is one, `uptime`'s line."""
    load: Dict[str, Any] = {"loadavg": None, "uptime": None}
    if hasattr(os, "getloadavg"):
        load["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    if shutil.which("uptime"):
        try:
            out = subprocess.run(
                ["uptime"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
            load["uptime"] = out.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            load["uptime"] = f"uptime failed: {exc}"
    return load


def _command(python: str, workload: str, mode: str, scale: float, tmp: str) -> List[str]:
    if mode == "run":
        return [
            python,
            "-m",
            "threadtrace",
            "run",
            "--json-path",
            os.path.join(tmp, "threadtrace-trace.jsonl"),
            WORKLOADS_PY,
            workload,
            "--mode",
            "run",
            "--scale",
            repr(scale),
        ]
    return [python, WORKLOADS_PY, workload, "--mode", mode, "--scale", repr(scale), "--tmpdir", tmp]


def measure(
    python: str, workload: str, mode: str, scale: float, env: Dict[str, str], timeout: float
) -> Dict[str, Any]:
    """Run one fresh process: ``workload`` once under ``mode``; return what it reported."""
    tmp = tempfile.mkdtemp(prefix=f"tt-bench-{workload}-{mode}-")
    child_env = dict(env)
    if mode == "ddtrace":
        child_env.update(DD_ENV)
    sample: Dict[str, Any] = {"workload": workload, "mode": mode}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            _command(python, workload, mode, scale, tmp),
            cwd=tmp,
            env=child_env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        sample["error"] = f"timed out after {timeout:g} s"
        stderr = exc.stderr or b""
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        sample["stderr_tail"] = text.splitlines()[-5:]
        return sample
    finally:
        sample["process_seconds"] = round(time.perf_counter() - start, 4)
        shutil.rmtree(tmp, ignore_errors=True)
    lines = done.stderr.splitlines()
    sample["stderr_lines"] = len(lines)
    sample["stderr_bytes"] = len(done.stderr)
    sample["returncode"] = done.returncode
    reports = [line for line in done.stdout.splitlines() if line.startswith('{"workload"')]
    if done.returncode != 0 or not reports:
        sample["error"] = f"exit status {done.returncode}" if reports else "no JSON on stdout"
        sample["stderr_tail"] = lines[-5:]
        return sample
    sample.update(json.loads(reports[-1]))
    return sample


def _median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def summarise(
    workload: str, tool: str, pairs: List[Tuple[Dict[str, Any], Dict[str, Any]]]
) -> Dict[str, Any]:
    """One row of the table from the (bare, tool) pairs of one workload and tool."""
    good = [(b, t) for b, t in pairs if "error" not in b and "error" not in t]
    failed = [t for b, t in pairs if "error" in t] + [b for b, t in pairs if "error" in b]
    ratios = [t["seconds"] / b["seconds"] for b, t in good]
    rss_pairs = [
        (b["maxrss_kb"] / 1024, t["maxrss_kb"] / 1024)
        for b, t in good
        if b.get("maxrss_kb") is not None and t.get("maxrss_kb") is not None
    ]
    checksums_bare = {b["checksum"] for b, _ in good}
    mismatched = [t for b, t in good if t["checksum"] != b["checksum"]]
    return {
        "workload": workload,
        "tool": tool,
        "pairs": len(good),
        "failed": len(failed),
        "failures": [
            {"mode": s["mode"], "error": s["error"], "stderr_tail": s.get("stderr_tail", [])}
            for s in failed
        ],
        "bare_seconds": _median([b["seconds"] for b, _ in good]),
        "tool_seconds": _median([t["seconds"] for _, t in good]),
        "ratio": _median(ratios),
        "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "ratios": ratios,
        "rss_bare_mb": _median([b for b, _ in rss_pairs]),
        "rss_tool_mb": _median([t for _, t in rss_pairs]),
        "rss_diff_mb": _median([t - b for b, t in rss_pairs]),
        "rss_diff_max_mb": max((t - b for b, t in rss_pairs), default=None),
        "stderr_lines": _median([t.get("stderr_lines", 0) for _, t in good]),
        "stderr_lines_max": max((t.get("stderr_lines", 0) for _, t in good), default=None),
        "checksum_ok": not mismatched and len(checksums_bare) <= 1,
        "lock_factory": sorted({t.get("lock_factory", "?") for _, t in good}),
    }


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: List[Dict[str, Any]]) -> List[str]:
    """The markdown table, one line per (workload, tool)."""
    out = [
        "| workload | tool | bare s | tool s | ratio (median) | min-max "
        "| RSS bare MB | RSS tool MB | RSS diff MB | stderr lines | checksum |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row["pairs"] == 0:
            ratio = f"FAILED ({row['failed']} runs)"
            spread = "-"
        else:
            ratio = f"{row['ratio']:.2f}x"
            spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
            if row["failed"]:
                spread += f" ({row['failed']} failed)"
        out.append(
            f"| {row['workload']} | {LABELS[row['tool']]} | {_fmt(row['bare_seconds'], '.3f')} "
            f"| {_fmt(row['tool_seconds'], '.3f')} | {ratio} | {spread} "
            f"| {_fmt(row['rss_bare_mb'], '.1f')} | {_fmt(row['rss_tool_mb'], '.1f')} "
            f"| {_fmt(row['rss_diff_mb'], '+.1f')} | {_fmt(row['stderr_lines'], '.0f')} "
            f"| {'ok' if row['checksum_ok'] else 'DIFFERS'} |"
        )
    return out


def header(info: Dict[str, Any], args: argparse.Namespace, load: Dict[str, Any]) -> List[str]:
    tt = info.get("threadtrace")
    if tt:
        core = "C lock core in use" if tt["speedups"] else "pure-Python lock core"
        threadtrace_line = f"{tt['version']} from {tt['file']}; {core} (SPEEDUPS={tt['speedups']})"
    else:
        threadtrace_line = f"not importable: {info.get('threadtrace_error')}"
    cores = os.cpu_count()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    checkout = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "threadtrace"))
    elsewhere = tt is not None and os.path.realpath(os.path.dirname(tt["file"])) != checkout
    lines = [
        "# threadtrace whole-program workloads (bench/run.py)",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- python: {info['implementation']} {info['python']} ({info['executable']})",
        f"- machine: {platform.platform()}, {platform.machine()}, {cores} cores"
        + (f" ({affinity} usable)" if affinity is not None and affinity != cores else ""),
        f"- load at start: {load['uptime'] or load['loadavg']}",
        f"- threadtrace: {threadtrace_line}",
        *(
            [
                f"- note: that is not this checkout's threadtrace ({checkout}): an installed "
                "copy runs the code it was installed from (reinstall it to measure this one)"
            ]
            if elsewhere
            else []
        ),
        f"- peers: {_peers_line(info)}",
        f"- method: {args.repeats} pairs (bare, tool) per row, fresh process per run, "
        f"workload scale {args.scale:g}; times are the workload call only",
    ]
    if args.dropped_env:
        lines.append(f"- removed from the children's environment: {', '.join(args.dropped_env)}")
    return lines


def _peers_line(info: Dict[str, Any]) -> str:
    parts = []
    for peer in PEERS:
        found = info["peers"].get(peer, {})
        if "version" in found:
            parts.append(f"{peer} {found['version']}")
        else:
            parts.append(f"{peer} not importable ({found.get('error', '?')})")
    return "; ".join(parts)


def notes(rows: List[Dict[str, Any]], skipped: List[str]) -> List[str]:
    """The lines under the table: skipped tools, failures, mismatches, chatty runs."""
    out = [f"- skipped: {line}" for line in skipped]
    for row in rows:
        where = f"{row['workload']} / {LABELS[row['tool']]}"
        for failure in row["failures"]:
            tail = " | ".join(failure["stderr_tail"])
            out.append(f"- FAILED {where}: a {failure['mode']} run: {failure['error']}: {tail}")
        if not row["checksum_ok"]:
            out.append(f"- CHECKSUM DIFFERS {where}: the traced run computed something else")
        if row["stderr_lines_max"] is not None and row["stderr_lines_max"] > CHATTY_LINES:
            out.append(
                f"- {where} printed {row['stderr_lines']:.0f} lines on stderr per run "
                f"(median; max {row['stderr_lines_max']})"
            )
        if row["tool"] in ("patch", "run") and row["pairs"]:
            factories = [f for f in row["lock_factory"] if not f.startswith("threadtrace.")]
            if factories:
                out.append(f"- {where}: threading.Lock was {factories}, not threadtrace's")
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time bench/workloads.py bare and under threadtrace (and peers, where "
        "installed), one fresh process per run, in interleaved pairs."
    )
    parser.add_argument("--repeats", type=int, help="pairs per workload and tool (default 5)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="workloads whose name contains NAME (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="comma-separated, from: %(default)s (bare is always the baseline); "
        "peers that do not import are skipped with a note",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter that runs the children"
    )
    parser.add_argument("--json", metavar="OUT", help="also write every sample and row as JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_REPEATS} pairs and workloads at scale {QUICK_SCALE} (smoke run)",
    )
    parser.add_argument("--scale", type=float, help="workload size multiplier (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per run (default %(default)s)"
    )
    return parser


def _parse(argv: Optional[List[str]]) -> Tuple[argparse.Namespace, List[str], List[str]]:
    """The options, the workloads to run and the tools asked for."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else 5
    if args.scale is None:
        args.scale = QUICK_SCALE if args.quick else 1.0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    names = list(WORKLOADS)
    wanted = [part for only in args.only for part in only.split(",") if part]
    if wanted:
        names = [name for name in names if any(w in name for w in wanted)]
        if not names:
            parser.error(f"--only {','.join(wanted)} matches no workload; see workloads.py --list")
    requested = [tool for tool in args.tools.split(",") if tool]
    unknown = [tool for tool in requested if tool not in TOOLS]
    if unknown:
        parser.error(f"unknown tool {', '.join(unknown)}; tools: {', '.join(TOOLS)}")
    return args, names, requested


def _usable(requested: List[str], info: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    """The tools to compare with bare, and a line for each one skipped."""
    tools: List[str] = []
    skipped: List[str] = []
    for tool in requested:
        if tool == "bare" or tool in tools:
            continue
        if tool in ("patch", "run") and info.get("threadtrace") is None:
            skipped.append(f"{tool}: threadtrace does not import ({info.get('threadtrace_error')})")
        elif tool in PEERS and "error" in info["peers"].get(tool, {"error": "?"}):
            skipped.append(f"{tool}: {info['peers'][tool]['error']}")
        else:
            tools.append(tool)
    return tools, skipped


def run_all(
    python: str,
    names: List[str],
    tools: List[str],
    args: argparse.Namespace,
    env: Dict[str, str],
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Every pair of every workload and tool; returns the samples and the table's rows."""
    total = len(names) * len(tools) * args.repeats
    _log(
        f"run.py: {len(names)} workloads x {len(tools)} tools x {args.repeats} pairs = "
        f"{total} pairs ({2 * total} processes) with {python}"
    )
    samples: List[Dict[str, Any]] = []
    rows: List[Dict[str, Any]] = []
    done = 0
    for workload in names:
        pairs: Dict[str, List[Tuple[Dict[str, Any], Dict[str, Any]]]] = {t: [] for t in tools}
        for repeat in range(args.repeats):
            # Rotate the tools' order, so no tool always follows the same other one.
            shift = repeat % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                bare = measure(python, workload, "bare", args.scale, env, args.timeout)
                traced = measure(python, workload, tool, args.scale, env, args.timeout)
                for sample in (bare, traced):
                    sample["repeat"] = repeat
                    sample["pair_tool"] = tool
                samples += [bare, traced]
                pairs[tool].append((bare, traced))
                done += 1
                where = f"[{done}/{total}] {workload} {tool} {repeat + 1}/{args.repeats}:"
                _log(f"{where} {_progress(tool, bare, traced)}")
        rows += [summarise(workload, tool, pairs[tool]) for tool in tools]
    return samples, rows


def _mb(sample: Dict[str, Any]) -> str:
    kb = sample.get("maxrss_kb")
    return "?" if kb is None else f"{kb / 1024:.1f}"


def _progress(tool: str, bare: Dict[str, Any], traced: Dict[str, Any]) -> str:
    if "error" in bare or "error" in traced:
        failed = bare if "error" in bare else traced
        return f"{failed['mode']} run FAILED: {failed['error']}"
    ratio = traced["seconds"] / bare["seconds"]
    return (
        f"bare {bare['seconds']:.3f} s, {tool} {traced['seconds']:.3f} s = {ratio:.2f}x; "
        f"RSS {_mb(bare)} / {_mb(traced)} MB; "
        f"stderr {traced['stderr_lines']} lines; process {traced['process_seconds']:.1f} s"
    )


def main(argv: Optional[List[str]] = None) -> int:
    args, names, requested = _parse(argv)
    env, args.dropped_env = _child_env()
    # Absolute: every child runs in a temporary directory of its own.
    python = os.path.abspath(shutil.which(args.python) or args.python)
    info = probe(python, env)
    tools, skipped = _usable(requested, info)
    for line in skipped:
        _log(f"run.py: skipping {line}")
    if not tools:
        _log("run.py: no tool left to compare with bare")
        return 2

    load_start = _load()
    started = time.perf_counter()
    samples, rows = run_all(python, names, tools, args, env)
    elapsed = time.perf_counter() - started
    load_end = _load()

    lines = header(info, args, load_start)
    used = sorted(
        {s["threadtrace"]["file"] for s in samples if s.get("threadtrace")}
        - {(info.get("threadtrace") or {}).get("file")}
    )
    if used:
        lines.append(f"- NOTE: the children imported threadtrace from {', '.join(used)}")
    lines.append(f"- load at end: {load_end['uptime'] or load_end['loadavg']}")
    lines.append(f"- elapsed: {elapsed:.0f} s")
    lines += ["", *table(rows)]
    extra = notes(rows, skipped)
    if extra:
        lines += ["", *extra]
    print("\n".join(lines), flush=True)

    if args.json:
        result = {
            "probe": info,
            "load_start": load_start,
            "load_end": load_end,
            "elapsed_seconds": elapsed,
            "repeats": args.repeats,
            "scale": args.scale,
            "tools": tools,
            "skipped": skipped,
            "dropped_env": args.dropped_env,
            "dd_env": DD_ENV,
            "rows": rows,
            "samples": samples,
            "notes": extra,
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=1)
        _log(f"run.py: wrote {args.json}")
    bad = any(row["failed"] or not row["checksum_ok"] for row in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
