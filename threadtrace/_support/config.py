"""The configuration model: every setting, its default, and its validation.

One model, reachable three ways with the same names: keyword arguments to
``configure()``/``patch()`` (``wait_threshold=0.005``), environment variables
(``THREADTRACE_WAIT_THRESHOLD=0.005``) and ``threadtrace run`` options
(``--wait-threshold 0.005``).  Each field's metadata says how to read it from
text and what it means; the CLI's ``--help`` and the environment reader are
built from it, and a test holds docs/configuration.md to it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Mapping, Optional

from .errors import ConfigurationError
from .plugins import find_exporter, unknown_exporter

ENV_PREFIX = "THREADTRACE_"

#: Modules whose primitives and threads are never traced: telemetry plumbing
#: whose locks would otherwise feed back into the telemetry they produce.
DEFAULT_EXCLUDED_MODULES = (
    "threadtrace",
    "opentelemetry",
    "logging",
    "grpc",
    "google.protobuf",
    "urllib3",
    "requests",
    "http.client",
    "importlib",
)


def _seconds(text: str) -> float:
    return float(text)


def _whole(text: str) -> int:
    return int(text)


def _text(text: str) -> str:
    return text


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag_or_auto(text: str) -> Optional[bool]:
    """``auto`` (None: threadtrace decides), or a flag."""
    return None if text.lower() == "auto" else _flag(text)


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


#: The report's sort orders: total wait, longest single wait, number of waits.
REPORT_SORTS = ("wait", "max", "count")
#: What to do when the watchdog finds a deadlock.
ON_DEADLOCK = ("log", "raise", "exit")


def _setting(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any],
    metavar: str,
    accepts: str,
    example: str,
) -> Any:
    return dataclasses.field(
        default=default,
        metadata={
            "help": help,
            "parse": parse,
            "metavar": metavar,
            "accepts": accepts,
            "example": example,
        },
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """What threadtrace records, and where it sends it.

    Every field is also the environment variable ``THREADTRACE_<FIELD>`` and
    the ``threadtrace run`` option ``--<field-with-dashes>``; see
    docs/configuration.md.

    Attributes:
        wait_threshold: A blocking operation (contended acquire, ``wait``,
            ``join``) that waited at least this many seconds becomes a span.
        hold_threshold: A measured hold of a lock at least this long, in
            seconds, becomes a span.
        span_limit: At most this many wait and hold spans a second for
            each primitive (0: no limit); the rest are counted, not spans.
        sample_every: Measure the hold time of one in this many
            uncontended acquisitions.
        exporters: Where threadtrace's own providers send data when the
            application has not set OpenTelemetry providers itself.
        exclude_modules: More module prefixes whose primitives are never
            traced, added to the built-in list.
        json_path: The trace file of the ``json`` exporter.
        json_metrics_path: The metrics file of the ``json`` exporter;
            empty means next to ``json_path``.
        perfetto_path: The timeline file of the ``perfetto`` exporter.
        flush_timeout: Seconds the exit flush waits for exporters at most.
        report: Log the contention report at exit.
        report_top: How many primitives the report lists.
        report_sort: The report's order: ``wait``, ``max`` or ``count``.
        watchdog: Run the watchdog thread that finds deadlocks, stuck
            threads and primitives held by finished threads.
        deadlock_after: Seconds a wait cycle must last to be reported.
        stuck_after: Seconds a thread may block before it is reported
            stuck; ``0`` turns stuck-thread reports off.
        on_deadlock: ``log``, ``raise`` (DeadlockError in a waiting
            thread) or ``exit`` (the process, status 3).
        lock_order: Track the order locks are taken in and report possible
            deadlocks (lock-order inversions) before they happen; ``None``
            (auto, the default): on with the C lock core, off with the
            pure-Python one.
    """

    wait_threshold: float = _setting(
        0.001,
        "A blocking operation (contended acquire, wait, join) that waited at least "
        "this long becomes a span; 0 records every operation that blocked.",
        parse=_seconds,
        metavar="SECONDS",
        accepts="a number of seconds >= 0",
        example="0.005",
    )
    hold_threshold: float = _setting(
        0.010,
        "A measured hold of a Lock or RLock at least this long becomes a span.",
        parse=_seconds,
        metavar="SECONDS",
        accepts="a number of seconds >= 0",
        example="0.1",
    )
    span_limit: int = _setting(
        100,
        "At most this many wait and hold spans a second for each primitive; past it, "
        "waits are still counted and timed in the metrics and the report, not made "
        "spans; 0: no limit.",
        parse=_whole,
        metavar="N",
        accepts="a whole number >= 0",
        example="1000",
    )
    sample_every: int = _setting(
        100,
        "Measure the hold time of one in this many uncontended acquisitions (every "
        "acquisition's site is noted anyway); contended ones are always measured; "
        "0 samples none.",
        parse=_whole,
        metavar="N",
        accepts="a whole number >= 0",
        example="10",
    )
    exporters: tuple[str, ...] = _setting(
        ("json",),
        "Comma-separated exporters for threadtrace's own providers (used when the "
        "program set no OpenTelemetry providers); empty exports nothing.",
        parse=_text,
        metavar="NAMES",
        accepts="installed exporter names",
        example="console,json",
    )
    exclude_modules: tuple[str, ...] = _setting(
        (),
        "Comma-separated module prefixes whose primitives and threads are never traced.",
        parse=_text,
        metavar="MODULES",
        accepts="module names",
        example="kafka,myapp.vendor",
    )
    json_path: str = _setting(
        "threadtrace-trace.jsonl",
        "Trace file of the json exporter (OTLP JSON Lines).",
        parse=_text,
        metavar="PATH",
        accepts="a file path",
        example="out/trace.jsonl",
    )
    json_metrics_path: str = _setting(
        "",
        "Metrics file of the json exporter; empty means json_path with "
        "'.metrics.jsonl' for its suffix.",
        parse=_text,
        metavar="PATH",
        accepts="a file path",
        example="out/metrics.jsonl",
    )
    perfetto_path: str = _setting(
        "threadtrace-timeline.json",
        "Timeline file of the perfetto exporter (Chrome trace-event JSON).",
        parse=_text,
        metavar="PATH",
        accepts="a file path",
        example="out/timeline.json",
    )
    flush_timeout: float = _setting(
        5.0,
        "At exit, wait at most this long for exporters to flush; what is left is "
        "dropped and counted.",
        parse=_seconds,
        metavar="SECONDS",
        accepts="a number of seconds >= 0",
        example="2",
    )

    report: bool = _setting(
        False,
        "Log the contention report (hottest primitives, who waited where, who held) at exit.",
        parse=_flag,
        metavar="BOOL",
        accepts="true or false",
        example="true",
    )
    report_top: int = _setting(
        10,
        "How many primitives the contention report lists.",
        parse=_whole,
        metavar="N",
        accepts="a whole number >= 1",
        example="20",
    )
    report_sort: str = _setting(
        "wait",
        "Order of the contention report: wait (total wait), max (longest wait) or "
        "count (number of waits), within each of its two parts (locks and semaphores "
        "first, then waits for work or a signal).",
        parse=_text,
        metavar="ORDER",
        accepts=f"one of {', '.join(REPORT_SORTS)}",
        example="max",
    )
    watchdog: bool = _setting(
        True,
        "Run the watchdog thread that reports deadlocks, stuck threads and locks "
        "held by finished threads.",
        parse=_flag,
        metavar="BOOL",
        accepts="true or false",
        example="false",
    )
    deadlock_after: float = _setting(
        1.0,
        "A cycle of threads waiting for each other is reported once it has lasted this long.",
        parse=_seconds,
        metavar="SECONDS",
        accepts="a number of seconds > 0",
        example="0.5",
    )
    stuck_after: float = _setting(
        5.0,
        "A thread blocked this long without a timeout is reported stuck, with every "
        "thread's stack; 0 turns these reports off.",
        parse=_seconds,
        metavar="SECONDS",
        accepts="a number of seconds >= 0",
        example="30",
    )
    on_deadlock: str = _setting(
        "log",
        "On a deadlock: log it, raise DeadlockError in the waiting thread that "
        "closed the cycle, or exit the process with status 3 (after logging).",
        parse=_text,
        metavar="ACTION",
        accepts=f"one of {', '.join(ON_DEADLOCK)}",
        example="raise",
    )
    lock_order: Optional[bool] = _setting(
        None,
        "Record the order locks are taken in and report a possible deadlock the "
        "first time two orders conflict, even if the run never hangs; auto: on with "
        "threadtrace's C lock core (a set lookup per nested acquisition), off with "
        "the pure-Python one (a Python call per acquisition).",
        parse=_flag_or_auto,
        metavar="BOOL",
        accepts="true, false or auto",
        example="false",
    )

    def __post_init__(self) -> None:
        for field in ("wait_threshold", "hold_threshold", "flush_timeout", "stuck_after"):
            value = getattr(self, field)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(f"{field} must be a number of seconds >= 0, got {value!r}")
            object.__setattr__(self, field, float(value))
        for field in ("sample_every", "span_limit"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{field} must be a whole number >= 0, got {value!r}")
        exporters = _names(self.exporters)
        for name in exporters:
            if find_exporter(name) is None:
                raise ConfigurationError(unknown_exporter(name))
        object.__setattr__(self, "exporters", exporters)
        object.__setattr__(self, "exclude_modules", _names(self.exclude_modules))
        self._check_report_and_detectors()
        for field in ("json_path", "json_metrics_path", "perfetto_path"):
            value = getattr(self, field)
            if not isinstance(value, str) or "\0" in value:
                raise ConfigurationError(f"{field} must be a file path, got {value!r}")
        for field in ("json_path", "perfetto_path"):
            if not getattr(self, field):
                raise ConfigurationError(f"{field} must be a file path, got ''")

    def _check_report_and_detectors(self) -> None:
        deadlock_after = self.deadlock_after
        if (
            isinstance(deadlock_after, bool)
            or not isinstance(deadlock_after, (int, float))
            or not math.isfinite(deadlock_after)
            or deadlock_after <= 0
        ):
            raise ConfigurationError(
                f"deadlock_after must be a number of seconds > 0, got {deadlock_after!r}"
            )
        object.__setattr__(self, "deadlock_after", float(deadlock_after))
        if self.lock_order is not None and not isinstance(self.lock_order, bool):
            raise ConfigurationError(
                f"lock_order must be true, false or auto, got {self.lock_order!r}"
            )
        for field in ("report", "watchdog"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigurationError(
                    f"{field} must be true or false, got {getattr(self, field)!r}"
                )
        top = self.report_top
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ConfigurationError(f"report_top must be a whole number >= 1, got {top!r}")
        for field, allowed in (("report_sort", REPORT_SORTS), ("on_deadlock", ON_DEADLOCK)):
            if getattr(self, field) not in allowed:
                raise ConfigurationError(
                    f"{field} must be one of {', '.join(allowed)}, got {getattr(self, field)!r}"
                )

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied and validated.

        Raises:
            ConfigurationError: a value is invalid, or a name is not a setting.
        """
        names = setting_names()
        for key in changes:
            if key not in names:
                raise ConfigurationError(
                    f"unknown setting {key!r}; settings: {', '.join(sorted(names))}"
                )
        return dataclasses.replace(self, **changes)

    def replace_from_text(self, texts: Mapping[str, str], source: Callable[[str], str]) -> Config:
        """Return a copy with settings given as text, as the environment and CLI give them.

        ``source(name)`` says where a setting came from for error messages,
        such as ``THREADTRACE_WAIT_THRESHOLD`` or ``--wait-threshold``.

        Raises:
            ConfigurationError: naming the setting's source and what it accepts.
        """
        changes: dict[str, Any] = {}
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name, text in texts.items():
            meta = fields[name].metadata
            problem = f"{source(name)} must be {meta['accepts']}, got {text!r}"
            try:
                value = meta["parse"](text.strip())
                self.replace(**{name: value})
            except ValueError as error:  # ConfigurationError is a ValueError
                if name == "exporters":  # the message lists the installed names
                    raise ConfigurationError(f"{source(name)}: {error}") from None
                raise ConfigurationError(problem) from None
            changes[name] = value
        return self.replace(**changes)

    @property
    def excluded_modules(self) -> tuple[str, ...]:
        """Every module prefix whose primitives are left untraced."""
        return DEFAULT_EXCLUDED_MODULES + self.exclude_modules

    @property
    def json_metrics_file(self) -> str:
        """Where the ``json`` exporter writes metrics."""
        if self.json_metrics_path:
            return self.json_metrics_path
        base = self.json_path
        for suffix in (".jsonl", ".json"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        return f"{base}.metrics.jsonl"

    def for_child(self, pid: int) -> Config:
        """The settings of a forked child ``pid``: the same, writing files of its own.

        ``threadtrace-trace.jsonl`` becomes ``threadtrace-trace.<pid>.jsonl``
        (its metrics ``threadtrace-trace.<pid>.metrics.jsonl``), and so on for
        every output path, so parent and child never write the same file.
        """
        return dataclasses.replace(
            self,
            json_path=_with_pid(self.json_path, pid),
            json_metrics_path=(
                _with_pid(self.json_metrics_path, pid) if self.json_metrics_path else ""
            ),
            perfetto_path=_with_pid(self.perfetto_path, pid),
        )


def as_text(config: Config) -> dict[str, str]:
    """Every setting of ``config`` as the environment spells it, for a process to inherit.

    ``replace_from_text`` (and so ``from_environment``) of the result gives
    ``config`` back.  (A function, not a method: ``Config``'s methods are
    public API, this is ``threadtrace run``'s business.)
    """
    texts = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, tuple):
            text = ",".join(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = "auto"
        else:
            text = repr(value) if isinstance(value, float) else str(value)
        texts[field.name] = text
    return texts


def _with_pid(path: str, pid: int) -> str:
    """``out/trace.jsonl`` -> ``out/trace.<pid>.jsonl`` (the pid before the suffix)."""
    directory, name = os.path.split(path)
    stem, dot, suffix = name.partition(".")
    named = f"{stem}.{pid}{dot}{suffix}" if dot and stem else f"{name}.{pid}"
    return os.path.join(directory, named)


def setting_names() -> tuple[str, ...]:
    """Every setting, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(Config))


def settings_help() -> list[tuple[str, str, str, str, str]]:
    """(name, metavar, help, example, default) of every setting, for ``--help``."""
    rows = []
    defaults = Config.__dataclass_fields__
    for field in dataclasses.fields(Config):
        default = defaults[field.name].default
        if default is None:
            shown = "auto"
        elif isinstance(default, tuple):
            shown = ",".join(default)
        else:
            shown = str(default)
        rows.append(
            (
                field.name,
                field.metadata["metavar"],
                field.metadata["help"],
                field.metadata["example"],
                shown,
            )
        )
    return rows


def env_var(name: str) -> str:
    """The environment variable of setting ``name``."""
    return f"{ENV_PREFIX}{name.upper()}"


def from_environment(
    environ: Optional[Mapping[str, str]] = None, base: Optional[Config] = None
) -> Config:
    """The configuration the ``THREADTRACE_*`` variables describe, over ``base``.

    Without ``THREADTRACE_EXPORTERS``, the exporters are those
    ``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER`` name, if either is set.

    Raises:
        ConfigurationError: a variable holds an invalid value; the message
            names the variable.  A ``THREADTRACE_*`` variable that is not a
            setting is an error too, so a typo does not go unnoticed.
    """
    environ = os.environ if environ is None else environ
    names = setting_names()
    texts: dict[str, str] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in names:
            raise ConfigurationError(
                f"unknown environment variable {key}; settings: "
                f"{', '.join(env_var(n) for n in names)}"
            )
        texts[name] = value
    config = (base or Config()).replace_from_text(texts, env_var)
    if "exporters" not in texts:
        # OpenTelemetry's variables name the exporters when threadtrace's do not.
        try:
            named = exporters_from_otel(environ)
        except ConfigurationError:
            # Said where it matters: when threadtrace makes providers of its own
            # (under opentelemetry-instrument the program's serve, and these
            # variables are the SDK's business).
            named = None
        if named is not None:
            config = config.replace(exporters=named)
    return config


# -- OpenTelemetry's own switches ---------------------------------------------------------
#
# The SDK's environment variables that say whether there is telemetry at all
# and where each signal goes.  threadtrace builds SDK providers of its own when
# the program has none, and then honours them as the SDK would.  How they
# combine with THREADTRACE_* (docs/configuration.md, "OpenTelemetry's
# variables"): OTEL_SDK_DISABLED=true wins over everything; THREADTRACE_EXPORTERS
# (or --exporters, or exporters=) wins over OTEL_*_EXPORTER for which
# exporters run; OTEL_*_EXPORTER, when set, still says which of
# OpenTelemetry's exporters (otlp, console) get each signal, and ``none``
# sends that signal to none of threadtrace's.

SDK_DISABLED = "OTEL_SDK_DISABLED"
TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
#: What OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER may say to threadtrace.
OTEL_EXPORTER_VALUES = ("none", "otlp", "console")
#: The exporters of threadtrace's that are OpenTelemetry's by name: the
#: OTEL_*_EXPORTER variables choose among these; the others (json, perfetto,
#: memory, a third party's) are threadtrace's own, and only ``none`` stops them.
OTEL_EXPORTER_NAMES = ("otlp", "console")


def sdk_disabled(environ: Optional[Mapping[str, str]] = None) -> tuple[bool, Optional[str]]:
    """Whether ``OTEL_SDK_DISABLED`` turns telemetry off, and a problem to warn of.

    As the specification says: ``true`` (any case) is true; anything else is
    false, and a value that is neither ``true``, ``false`` nor empty is
    warned about.
    """
    text = (os.environ if environ is None else environ).get(SDK_DISABLED, "").strip()
    if text.lower() == "true":
        return True, None
    if text.lower() in ("", "false"):
        return False, None
    return False, f"{SDK_DISABLED} must be true or false, got {text!r}; taken as false"


def otel_exporters(
    variable: str, environ: Optional[Mapping[str, str]] = None
) -> Optional[tuple[str, ...]]:
    """The exporters ``OTEL_TRACES_EXPORTER`` (or ``..._METRICS_...``) names; None if unset.

    ``none`` names no exporter: ``()``.

    Raises:
        ConfigurationError: a value threadtrace cannot export to, naming the
            variable and the values it understands.
    """
    text = (os.environ if environ is None else environ).get(variable, "").strip()
    if not text:
        return None
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in OTEL_EXPORTER_VALUES]
    if unknown or not names:
        raise ConfigurationError(
            f"{variable} must be {', '.join(OTEL_EXPORTER_VALUES[:-1])} or "
            f"{OTEL_EXPORTER_VALUES[-1]} (comma-separated), got {text!r}"
        )
    return tuple(dict.fromkeys(name for name in names if name != "none"))


def exporters_from_otel(environ: Optional[Mapping[str, str]] = None) -> Optional[tuple[str, ...]]:
    """The exporters OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER name together; None if unset.

    Raises:
        ConfigurationError: see :func:`otel_exporters`.
    """
    traces = otel_exporters(TRACES_EXPORTER, environ)
    metrics = otel_exporters(METRICS_EXPORTER, environ)
    if traces is None and metrics is None:
        return None
    return tuple(dict.fromkeys((*(traces or ()), *(metrics or ()))))


def sends(signal: str, exporter: str, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether threadtrace's exporter ``exporter`` gets ``signal`` (``traces`` or ``metrics``).

    A value the variable holds that threadtrace has no exporter for names
    none of threadtrace's (the exporters were chosen by ``exporters``; the
    value is the SDK's business): only ``otlp``, ``console`` and ``none`` count.
    """
    variable = TRACES_EXPORTER if signal == "traces" else METRICS_EXPORTER
    text = (os.environ if environ is None else environ).get(variable, "").strip().lower()
    if not text:
        return True
    named = {name.strip() for name in text.split(",") if name.strip()}
    if named == {"none"}:
        return False
    return exporter in named or exporter not in OTEL_EXPORTER_NAMES


#: Asks for the pure-Python lock core even where the C one is built (not a
#: setting: the core is chosen once, when threadtrace is imported).
PURE_PYTHON = "THREADTRACE_PURE_PYTHON"

#: What ``threadtrace run`` tells the Python processes it starts (not a
#: setting: the run's own state, as JSON; see ``_cli/processes.py``).
RUN_STATE = "THREADTRACE_RUN"

#: ``THREADTRACE_*`` variables that are not settings.
_NOT_SETTINGS = frozenset({PURE_PYTHON, RUN_STATE})


def pure_python_requested(
    environ: Optional[Mapping[str, str]] = None,
) -> tuple[bool, Optional[ConfigurationError]]:
    """Whether ``THREADTRACE_PURE_PYTHON`` asks for the pure-Python lock core.

    Returns the answer, and the error to report for a value that is neither
    true nor false (the C core stays, as with no variable at all).
    """
    text = (os.environ if environ is None else environ).get(PURE_PYTHON, "").strip()
    if not text:
        return False, None
    try:
        return _flag(text), None
    except ValueError:
        return False, ConfigurationError(f"{PURE_PYTHON} must be true or false, got {text!r}")


def _names(given: Any) -> tuple[str, ...]:
    """A tuple of names from a tuple, a list, or one comma-separated string.

    ``"console,json"`` is how an environment variable spells a list.
    """
    if isinstance(given, str):
        return tuple(name.strip() for name in given.split(",") if name.strip())
    return tuple(given)
