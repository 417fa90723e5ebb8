"""Every code block and every shown output of the docs is run and compared, or skipped for a reason.

The documents are README.md, docs/*.md and examples/README.md.  Each fenced
block in them is exactly one of these; a block that is none fails the test,
so nothing goes untested by accident:

* ```` ```python ````: run as a script by the interpreter under test; it must
  exit 0.  With ``<!-- docs: file: NAME -->`` on the line before, it is
  not run by itself: it is saved as NAME in every work directory of its
  document (below), for the commands of the document that name it
  (``threadtrace run NAME``, ``pytest NAME``).
* A block whose first line starts with ``$ ``: a terminal session.  Each
  ``$ `` line is a command; the lines after it, up to the next ``$ ``, are
  its output, compared by :func:`matches`.  ``$ echo $?`` shows the exit
  status of the command before it, compared exactly.
* ```` ```sh ```` (or ``console``, ``bash``) with no ``$ ``: a list of
  commands.  Each line (a trailing ``\\`` joins the next) is run and must
  exit 0; its output is not shown, so it is not compared.
* Any other block shows output, and the line before it says of what:
  ``<!-- docs: output of: COMMAND -->``.  COMMAND is run once per chain
  (below: blocks showing parts of one output name the same command) and
  the block is compared by :func:`matches`.
* ``<!-- docs: skip (REASON) -->`` on the line before a block, in any
  language: not run.  The reason is required: it needs a server (Jaeger, an
  OTLP collector), another process (``threadtrace dump PID``), pip and the
  network, or it is not a program (a diagram, a config file, a synopsis).

How commands run: with ``bash -c``, in a work directory that holds a fresh
copy of ``examples/`` and ``tests/programs/``.  ``threadtrace``, ``python``,
``python3`` and ``pytest`` on ``PATH`` are the interpreter under test, with
the settings of a user (the contention report on, no ``THREADTRACE_*``
variables).  stdout and stderr are kept apart, unbuffered, and a shown
output may interleave them in any way that keeps each one's order
(:func:`matches`).  A block that starts a program (a python block, or one
whose first command is a ``threadtrace run`` that has not run yet in its
chain) starts a *chain* in a new work directory; the blocks
after it, up to the next such block, run in order in that directory, so
``threadtrace report`` reads the trace that the ``threadtrace run`` above
it wrote.  The chains of all documents run side by side, four at a time:
most of their time is spent waiting for a deadlock or a stuck thread to be
reported (``examples/stuck.py`` alone takes 7 s, and docs/reports.md has a
dozen such runs), which is why they are marked ``slow``.  All of it takes
about 15 s on two cores.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

import pytest
from helpers import child_env

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = tuple(
    path.relative_to(ROOT).as_posix()
    for path in [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "examples" / "README.md",
    ]
)
#: Copied into each document's work directory: what its commands name.
WORK_TREE = ("examples", "tests/programs")
#: The most a command or a python block may take.
TIMEOUT = 60
#: How many times a command whose output does not match is run, in all.
ATTEMPTS = 3
#: Chains run at once: they mostly wait (for a watchdog's report, a timeout).
WORKERS = 4
#: What a skip without its reason is told.
NO_REASON = "a skip needs its reason: <!-- docs: skip (REASON) -->"
#: The languages of command lists.
SHELLS = ("sh", "console", "bash", "shell")

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs:\s*(?P<what>.*?)\s*-->\s*$")


# -- normalising output -------------------------------------------------------------------

#: What varies from run to run, and what it becomes.  In this order: an
#: ellipsis a document puts in a number or a path, dates and times (their
#: digits are not counts), the directories of paths (a file keeps its name),
#: durations, percentages, every number but a line after ``.py:``, then a
#: range of durations, and last the plural of a word after a count.
_VOLATILE = (
    (re.compile(r"(?<=\d)\.\.\."), ""),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: ?[+-]\d{4}|Z)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:\.\d+)?"), "<time>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<addr>"),
    (re.compile(r"(?:[\w.@+~-]*/)+(?=[\w.@+~-])"), "<dir>/"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s|min|h)\b"), "<t>"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?%"), "<pct>"),
    (re.compile(r"(?<!\.py:)(?<![\d.])\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"<t> to <t>"), "<t>"),
    (re.compile(r"(?<=<n> )([a-z]+)s\b"), r"\1"),
)

#: A traceback's line of markers under the failing expression: ``~~~~^^^^``.
_CARETS = re.compile(r"\s*[~^]+\s*")


def normalise(text: str) -> list[str]:
    """The lines of ``text`` with what varies between runs replaced, and blank lines left out.

    Durations (``1.23 ms``, ``2 s``) become ``<t>``, percentages ``<pct>``,
    dates and clock times ``<time>``, addresses ``<addr>``, the directories
    of paths ``<dir>/`` (``/tmp/x/app.py``, ``.../app.py`` and
    ``examples/app.py`` are all ``<dir>/app.py``) and every other number
    ``<n>`` (counts, pids, thread numbers, ids; ``1401...`` too), except line
    numbers after ``.py:``, which are kept.  A range of durations
    (``959 ms to 1.02 s``) is one ``<t>``, and a word after a count loses
    its plural ``s`` (``1 span``, ``2 spans``: ``<n> span``).  Runs of spaces become one
    (column widths follow the numbers).  A traceback's ``~~~^^^`` lines are
    left out: Python 3.11 and later print them, and not all alike.
    """
    lines = []
    for line in text.splitlines():
        if _CARETS.fullmatch(line):
            continue  # a traceback's markers under an expression (3.11+), not on every Python
        for pattern, placeholder in _VOLATILE:
            line = pattern.sub(placeholder, line)
        line = " ".join(line.split())
        if line:
            lines.append(line)
    return lines


def matches(shown: str, *streams: str) -> Optional[str]:
    """None if the output a document shows is in ``streams``, else what is missing.

    Every shown line, normalised, must be a line of one of the streams
    (stdout, stderr), normalised, and the lines taken from each stream must
    come in that stream's order: the document shows them interleaved as a
    terminal did, and threads of the program and of threadtrace may
    interleave them differently on every run.  A stream may have more lines
    (a document may show an excerpt), and a shown line ``...`` stands for
    lines left out.
    """
    have = [normalise(stream) for stream in streams]
    at = [0] * len(have)
    for want in normalise(shown):
        if want == "...":
            continue
        for i, lines in enumerate(have):
            if want in lines[at[i] :]:
                at[i] = lines.index(want, at[i]) + 1
                break
        else:
            got = "\n".join(f"    {line}" for lines in have for line in [*lines, "(end)"])
            return f"no line {want!r} (in order) in the output, normalised:\n{got}"
    return None


# -- reading the documents --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of a document, and the marker on the line before it."""

    document: str
    line: int  # of the opening fence, from 1
    language: str
    text: str
    marker: Optional[str]  # "skip (reason)", "output of: COMMAND", or None

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def blocks(document: str) -> list[Block]:
    """The fenced blocks of ``document`` (a path from the repository root), in order."""
    lines = (ROOT / document).read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent = fence["indent"]
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(before)
        body = "\n".join(
            line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]
        )
        found.append(
            Block(document, i + 1, fence["language"], body, marker["what"] if marker else None)
        )
        i = end + 1
    return found


def _commands(text: str) -> Iterator[str]:
    """The commands of a command list: ``\\`` continuations joined, comment lines dropped."""
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            yield command


def _session(text: str) -> Iterator[tuple[str, str]]:
    """The commands of a terminal session, each with the output shown after it."""
    command: Optional[str] = None
    output: list[str] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            if command is not None:
                yield command, "\n".join(output)
            command, output = line[2:], []
        else:
            output.append(line)
    if command is not None:
        yield command, "\n".join(output)


# -- running them -------------------------------------------------------------------------


def _file_name(block: Block) -> str:
    """The NAME of a block marked ``<!-- docs: file: NAME -->``."""
    return (block.marker or "")[len("file:") :].strip()


def files(found: list[Block]) -> dict[str, str]:
    """The blocks of a document that are files its commands name: NAME to text."""
    return {
        _file_name(block): block.text
        for block in found
        if block.language == "python" and (block.marker or "").startswith("file:")
    }


def _first_command(block: Block) -> str:
    """The command a block runs first, ``python`` for a python block; empty if none."""
    marker = block.marker or ""
    if marker.startswith("skip"):
        return ""
    if marker.startswith("output of:"):
        return marker[len("output of:") :].strip()
    if block.language == "python" and not marker.startswith("file:"):
        return "python"
    if block.text.lstrip().startswith("$ "):
        return next(_session(block.text))[0]
    if block.language in SHELLS:
        return next(_commands(block.text), "")
    return ""


def chains(found: list[Block]) -> list[list[Block]]:
    """``found`` cut where a block starts a program that its chain has not run yet."""
    cut: list[list[Block]] = []
    ran: set[str] = set()
    for block in found:
        first = _first_command(block)
        starts = first == "python" or re.match(r"(\w+=\S* )*threadtrace run\b", first) is not None
        if not cut or (starts and (first not in ran or first == "python")):
            cut.append([])
            ran = set()
        cut[-1].append(block)
        ran.add(first)
    return cut


class Chain:
    """A work directory, where blocks of one document run in order."""

    def __init__(
        self, tmp: Path, files: Optional[dict[str, str]] = None, bin_dir: Optional[Path] = None
    ) -> None:
        self.cwd = tmp / "work"
        for tree in WORK_TREE:
            shutil.copytree(
                ROOT / tree, self.cwd / tree, ignore=shutil.ignore_patterns("__pycache__")
            )
        for name, text in (files or {}).items():
            (self.cwd / name).write_text(text + "\n", encoding="utf-8")
        self.env = child_env(PYTHONUNBUFFERED="1")
        del self.env["THREADTRACE_REPORT"]  # on, as for users
        if bin_dir is None:
            bin_dir = _shims(tmp / "bin")
        self.env["PATH"] = os.pathsep.join([str(bin_dir), self.env.get("PATH", "")])
        self.outputs: dict[str, tuple[str, str]] = {}
        self.status = 0  # of the last command, for a shown `echo $?`

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run ``command``; ``$?`` in it is the exit status of the command before, as in a shell."""
        done = subprocess.run(
            ["bash", "-c", f"(exit {self.status}); {command}"],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=TIMEOUT,
        )
        self.status = done.returncode
        return done

    def output_of(self, command: str) -> tuple[str, str]:
        """What ``command`` printed (stdout, stderr), run once for all the blocks that show it."""
        if command not in self.outputs:
            done = self.run(command)
            self.outputs[command] = (done.stdout, done.stderr)
        return self.outputs[command]

    def check(self, block: Block) -> Optional[str]:
        """None if ``block`` ran as its document says, else why not; ``skip`` blocks are not run."""
        marker = block.marker or ""
        if marker.startswith("skip"):
            reason_given = re.fullmatch(r"skip \(.+\)", marker)
            return None if reason_given else f"{block.where}: {NO_REASON}"
        if marker.startswith("output of:"):
            command = marker[len("output of:") :].strip()
            return self._compare(block, [(command, block.text)], again=False)
        if block.language == "python":
            return self._run_python(block)
        if block.text.lstrip().startswith("$ "):
            return self._compare(block, list(_session(block.text)), again=True)
        if block.language in SHELLS:
            return self._run_all(block, list(_commands(block.text)))
        return (
            f"{block.where}: a {block.language or 'plain'} block that is neither run nor "
            "skipped: say what it is the output of (<!-- docs: output of: COMMAND -->) "
            "or why it is not run (<!-- docs: skip (REASON) -->)"
        )

    def _run_python(self, block: Block) -> Optional[str]:
        """Run a python block: as the file it is marked to be, or as a script made for it."""
        if (block.marker or "").startswith("file:"):
            return None  # run by the commands that name it
        script = self.cwd / f"block_{block.line}.py"
        script.write_text(block.text + "\n", encoding="utf-8")
        try:
            return self._run_all(block, [f"python {script.name}"])
        finally:
            script.unlink()

    def _compare(self, block: Block, shown: list[tuple[str, str]], *, again: bool) -> Optional[str]:
        """Run each command (``again``, or once per chain) and find what it shows.

        A command whose output does not match is run again, up to
        :data:`ATTEMPTS` times in all: some programs shown race by design
        (a pool starves only if its second task is queued before the first
        task's sub-task), and on two busy cores the race can go the other
        way.  A stale document fails every time.
        """
        for command, output in shown:
            missing: Optional[str] = None
            # A status is of the command before: running it again would not retry that.
            for attempt in range(1 if command == "echo $?" else ATTEMPTS):
                if again or attempt:
                    self.outputs.pop(command, None)
                missing = matches(output, *self.output_of(command))
                if command == "echo $?" and self.outputs[command][0].strip() != output.strip():
                    # A status is compared as it is: normalising makes every number alike.
                    missing = (
                        f"exit status {self.outputs[command][0].strip()}, not {output.strip()}"
                    )
                if missing is None:
                    break
            if missing is not None:
                return f"{block.where}: {command}: {missing}"
        return None

    def _run_all(self, block: Block, commands: list[str]) -> Optional[str]:
        """Run each command; the first that fails is the answer."""
        for command in commands:
            done = self.run(command)
            if done.returncode != 0:
                return (
                    f"{block.where}: {command}: exited {done.returncode}:\n"
                    f"{done.stdout}{done.stderr}"
                )
        return None


def _shims(bin_dir: Path) -> Path:
    """A directory of ``threadtrace``, ``python``, ``python3`` and ``pytest``: the interpreter under test.

    Made before chains run side by side, never while they do: a child that
    another thread forks while a shim is open for writing holds it open
    until it execs, and running the shim meanwhile fails with "Text file
    busy" (ETXTBSY; seen once in CI).
    """
    bin_dir.mkdir(exist_ok=True)
    for name, run in (
        ("threadtrace", "-m threadtrace"),
        ("python", ""),
        ("python3", ""),
        ("pytest", "-m pytest"),
    ):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {run} "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _run_chain(found: list[Block], tmp: Path, named: dict[str, str], bin_dir: Path) -> list[str]:
    """The failures of a chain of blocks, run in order in a work directory of their own."""
    chain = Chain(tmp, named, bin_dir)
    return [failure for block in found if (failure := chain.check(block)) is not None]


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, list[concurrent.futures.Future[list[str]]]]]:
    """Every document's chains, running :data:`WORKERS` at a time while the tests wait."""
    bin_dir = _shims(tmp_path_factory.mktemp("bin"))  # before any chain runs (see _shims)
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {
            name: [
                pool.submit(
                    _run_chain, chain, tmp_path_factory.mktemp("docs"), files(found), bin_dir
                )
                for found in [blocks(name)]
                for chain in chains(found)
            ]
            for name in DOCUMENTS
        }
        yield futures
        for future in (f for listed in futures.values() for f in listed):
            future.cancel()


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_block_runs_as_shown_or_is_skipped_for_a_reason(
    document: str, results: dict[str, list[concurrent.futures.Future[list[str]]]]
) -> None:
    """Each block of the document is run and its shown output found, or it says why not."""
    failures = [
        failure for chain in results[document] for failure in chain.result(timeout=10 * TIMEOUT)
    ]
    assert failures == [], "\n\n".join(failures)


def test_the_readme_shows_its_pictures_and_where_they_come_from() -> None:
    """README.md links the two screenshots and docs/pictures.md, which says how they were made."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]+\]\((docs/images/[\w.-]+\.png)\)", readme)
    assert pictures == ["docs/images/demo-timeline.png", "docs/images/phoenix-trace.png"]
    assert "(docs/pictures.md)" in readme
    missing = [picture for picture in pictures if not (ROOT / picture).is_file()]
    if missing:
        pytest.skip(f"not made yet: {', '.join(missing)}")


# -- the convention itself ----------------------------------------------------------------


def test_volatile_parts_are_normalised_and_line_numbers_kept() -> None:
    assert normalise(
        "  teller-3      4   59.4 ms   29.3 ms\n\n"
        "   contended  27 of 82 acquisitions (33%)\n"
        "threadtrace dump of process 16863 (bank.py) at 2026-12-05 23:42:35 +0000\n"
        '  File "/tmp/pytest-7/work/examples/deadlock.py", line 31, in transfer\n'
        "     demo.py:47 in teller      26    1.2 s   29.3 ms\n"
        "blocked for 959 ms to 1.02 s in Lock.acquire\n"
        "exported  1 span to json\n"
    ) == [
        "teller-<n> <n> <t> <t>",
        "contended <n> of <n> acquisition (<pct>)",
        "threadtrace dump of process <n> (bank.py) at <time>",
        'File "<dir>/deadlock.py", line <n>, in transfer',
        "demo.py:47 in teller <n> <t> <t>",
        "blocked for <t> in Lock.acquire",
        "exported <n> span to json",
    ]


def test_shown_output_may_be_an_excerpt_in_order() -> None:
    actual = "header 1.00 s\nrow a\nrow b\nfooter\n"
    assert matches("header 2 s\n...\nfooter", actual) is None
    assert matches("row b\nrow a", actual) is not None
    assert matches("row c", actual) is not None


def test_stdout_and_stderr_may_interleave_but_each_keeps_its_order() -> None:
    out, err = "first\nsecond\n", "report\nsummary\n"
    assert matches("first\nreport\nsecond\nsummary", out, err) is None
    assert matches("report\nsummary\nfirst\nsecond", out, err) is None
    assert matches("second\nfirst", out, err) is not None
    assert matches("summary\nreport", out, err) is not None


def test_a_block_neither_run_nor_skipped_fails(tmp_path: Path) -> None:
    chain = Chain(tmp_path)
    unmarked = Block("x.md", 3, "text", "some output", None)
    reasonless = Block("x.md", 9, "text", "some output", "skip")
    skipped = Block("x.md", 9, "text", "some output", "skip (a diagram)")
    assert "neither run nor skipped" in (chain.check(unmarked) or "")
    assert "needs its reason" in (chain.check(reasonless) or "")
    assert chain.check(skipped) is None


def test_sessions_and_command_lists_are_split_as_a_terminal_shows_them() -> None:
    assert list(_session("$ a --x\nout 1\nout 2\n$ b\n")) == [("a --x", "out 1\nout 2"), ("b", "")]
    assert list(_commands("# comment\nrun a \\\n  --b\nrun c   # why\n")) == [
        "run a    --b",
        "run c   # why",
    ]


def test_a_block_that_starts_a_program_starts_a_chain() -> None:
    """A report after a run stays with it; a new run, or the same run shown again, does not."""

    def block(line: int, text: str, marker: Optional[str] = None, language: str = "sh") -> Block:
        return Block("x.md", line, language, text, marker)

    run = block(1, "$ threadtrace run examples/demo.py\nout")
    report = block(2, "threadtrace report threadtrace-trace.jsonl")
    shown = block(3, "out", "output of: threadtrace run examples/demo.py", "text")
    skipped = block(4, "diagram", "skip (a diagram)", "text")
    other = block(5, "THREADTRACE_X=1 threadtrace run examples/crawler.py")
    script = block(6, "print(1)", language="python")
    assert chains([run, report, shown, skipped, other, script]) == [
        [run, report, shown, skipped],
        [other],
        [script],
    ]


def test_a_shown_exit_status_is_that_of_the_command_before(tmp_path: Path) -> None:
    """`$ echo $?` after a command shows its status, compared exactly (not as a number)."""
    chain = Chain(tmp_path)
    assert chain.check(Block("x.md", 1, "console", "$ exit 3\n$ echo $?\n3", None)) is None
    wrong = chain.check(Block("x.md", 5, "console", "$ exit 3\n$ echo $?\n0", None))
    assert wrong == "x.md:5: echo $?: exit status 3, not 0"
