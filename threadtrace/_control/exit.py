"""What threadtrace does when the process ends: report, then flush.

:func:`at_exit` is registered with :mod:`atexit` when threadtrace is
imported.  ``threadtrace run`` calls the same steps itself, to print its
summary after them, and puts its own steps in ``runtime.exit_steps``.

A service is stopped by ``SIGTERM``, whose default action ends the process
at once: no atexit handler runs, so no flush, no summary and no metrics
file.  :func:`handle_sigterm` installs a handler (only where the program
has none of its own) that runs the exit steps, for at most
``flush_timeout`` (plus a second), and then ends the process by
``SIGTERM`` after all, as the program would have ended: the same status
for whoever waits for it.  python runs that handler on the main thread
only; the optional C extension ``_support/_signals.c`` hands a ``SIGTERM``
another thread took on to the main thread, and sends it again until the
handler has begun, so that a main thread asleep in a C wait wakes for it as
the default action would have ended the process (after 3 s of that, it ends
the process by the default action, unflushed).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Optional

from .._detect.problems import publish_pending
from .._primitives.unfinished import record_unfinished
from .._report.model import report
from .._runtime import runtime
from .._support import originals as _originals
from . import live
from .configure import shutdown

logger = logging.getLogger("threadtrace")

_signals: Any
try:
    from .._support import _signals
except ImportError:  # not built (no compiler at install time): see _route_to_main_thread
    _signals = None


def log_report() -> None:
    """Log the contention report on the ``threadtrace`` logger at INFO, if ``report`` is on.

    At most once per process, whoever calls it first (:func:`at_exit`, or
    ``threadtrace run``'s own exit).  Call it before the exporters shut
    down, so the report is computed from the same data as their last
    metrics export.  Never raises.
    """
    if runtime.report_logged or not runtime.config.report:
        return
    runtime.report_logged = True
    try:
        text = report().text()
    except Exception as error:
        logger.warning("threadtrace: could not make the contention report", exc_info=error)
        return
    title = "threadtrace contention report"
    logger.info("%s", text.replace(title, title + process_label(), 1))


def at_exit() -> None:
    """At interpreter exit: log the contention report if asked, then flush.  Never raises.

    The report comes first so it is computed from the same data as the
    exporters' last metrics export (``threadtrace report`` reads that back).
    """
    # A report the watchdog is writing right now is written whole first (not
    # when the exit began in the watchdog itself: on_deadlock=exit, SIGTERM).
    looking = runtime.detect.looking
    if not runtime.exiting and looking.acquire(timeout=1.0):
        looking.release()
    before_report()
    log_report()
    flush()
    exit_steps_done()


def before_report() -> None:
    """The first exit steps: what is queued, and the waits still going on, are recorded."""
    runtime.exiting = True
    steps = (runtime.publish_notices, _forked_child_outputs, record_unfinished, publish_pending)
    for step in steps:
        try:
            step()
        except Exception as error:  # noqa: BLE001 - exit goes on regardless
            runtime.internal_error("exit", error)


def flush() -> None:
    """The last exit step: threadtrace's own exporters flushed and closed, for good."""
    try:
        shutdown(_final=True)
    except Exception as error:  # noqa: BLE001 - exit goes on regardless
        logger.warning("threadtrace: could not flush at exit: %s", error)
    live.close()  # no more dumps: the socket goes with the process


def exit_steps_done() -> None:
    """The exit steps' very last call: a SIGTERM that came while they ran takes effect now.

    Not on a thread of threadtrace's own (the exit steps of an earlier
    SIGTERM, whose handler ends the process when they are done): only the
    main thread can put SIGTERM's default action back.
    """
    runtime.exit_done = True
    if runtime.sigterm_pending and threading.current_thread() is threading.main_thread():
        _die_of_sigterm()


def _forked_child_outputs() -> None:
    """A forked child that recorded nothing yet still writes its files (its metrics count)."""
    recorder = runtime.recorder
    if runtime.forked_from is not None and recorder is not None:
        recorder.prepare_exporters()
        recorder.ensure_ready()


def _die_of_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    """Flush (bounded), then die by SIGTERM as without threadtrace."""
    if _signals is not None:
        _signals.handled()  # begun: the C handler need not send it again
    if runtime.exiting:
        if runtime.exit_done:  # all done: nothing left to wait for
            _die_of_sigterm()
            return
        # This very thread was running the exit steps (a multiprocessing
        # worker's finalizer, say): let them finish, then die of SIGTERM (see
        # exit_steps_done()).
        runtime.sigterm_pending = True
        return
    # On a thread of its own: this thread (the main one) may be inside
    # threadtrace's bookkeeping, holding a lock the flush needs; then the
    # wait runs out and the process ends anyway.
    _exit_steps_on_own_thread("threadtrace-sigterm", "on SIGTERM", runtime.config.flush_timeout)
    _die_of_sigterm()


def _exit_steps_on_own_thread(thread_name: str, when: str, timeout: float) -> None:
    """Run the exit steps on a thread of threadtrace's own; wait for them ``timeout`` + 1 s."""
    runtime.exiting = True
    steps = runtime.exit_steps or at_exit

    def finish() -> None:
        try:
            steps()
        except Exception as error:  # noqa: BLE001 - the process ends regardless
            logger.warning("threadtrace: could not flush %s: %s", when, error)

    _originals.run_bounded(finish, thread_name, timeout + 1.0)


def end_process(status: int) -> None:
    """End the process now with ``status`` (``on_deadlock=exit``), after the exit steps.

    The steps (the waits still going on recorded, the report, ``threadtrace
    run``'s summary, the flush) run on a thread of their own, for at most
    ``flush_timeout`` but no more than 2 s: the program is deadlocked, and
    whoever asked for ``exit`` wants it to end.  No atexit handler runs.
    """
    if not runtime.exiting:
        timeout = min(runtime.config.flush_timeout, 2.0)
        _exit_steps_on_own_thread("threadtrace-exit", "before exiting", timeout)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed: nothing to flush
            stream.flush()
    os._exit(status)


runtime.end_process = end_process


def handle_sigterm() -> bool:
    """Flush on SIGTERM from now on, unless the program handles SIGTERM itself.

    Only the main thread can install a signal handler; elsewhere, and where
    the program installed its own handler (or ignores SIGTERM), nothing
    changes.  Returns whether threadtrace's handler is in place.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    current: Any = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        if current is not signal.SIG_DFL:
            return False  # the program's own (or SIG_IGN): it decides what SIGTERM does
        signal.signal(signal.SIGTERM, _on_sigterm)
    _route_to_main_thread()
    return True


def _route_to_main_thread() -> None:
    """Make sure :func:`_on_sigterm` runs (with the C extension).

    python's handler only notes the signal for the main thread's next
    bytecode.  A main thread asleep in a C wait (a multiprocessing worker's
    queue lock) sleeps on when another thread took the signal, or when it
    came just before the wait went back to sleep; the default action would
    have ended the process.  The C handler passes it on to the main thread
    and sends it again until the handler has begun.  threadtrace's own
    threads block SIGTERM.
    """
    if _signals is not None:  # (THREADTRACE_PURE_PYTHON is about the lock core only)
        try:
            _signals.route_to_main_thread(signal.SIGTERM)
        except (OSError, ValueError) as error:
            runtime.internal_error("routing SIGTERM to the main thread", error)


def _main_thread_forked() -> None:
    """In a forked child, the forking thread is the main one: SIGTERM goes there."""
    if _signals is not None:
        _signals.now_main_thread()


def stop_handling_sigterm() -> None:
    """Put SIGTERM back to its default, if threadtrace's handler is still the one in place."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if _signals is not None:
            _signals.handled()


def process_label() -> str:
    """`` (process 4242, forked from 4241)`` in a forked child, else nothing.

    `` (process 4242, started by 4241)`` in a process ``threadtrace run``
    started, which is not the program's own.
    """
    if runtime.forked_from is not None:
        return f" (process {runtime.pid}, forked from {runtime.forked_from})"
    if runtime.child_of is not None:
        return f" (process {runtime.pid}, started by {runtime.child_of})"
    return ""


def _steps() -> None:
    (runtime.exit_steps or at_exit)()


def _flush_at_multiprocessing_exit(_: object) -> None:
    """In a child multiprocessing forked: run the exit steps when the child ends.

    Such a child ends with ``os._exit()``, which runs no atexit handler, but
    multiprocessing runs its finalizers first (exit priority 0: after the
    program's own).
    """
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, _steps, exitpriority=0)


def _before_fork() -> None:
    """In the parent, before a fork: make multiprocessing's children flush when they end."""
    util = sys.modules.get("multiprocessing.util")
    if util is not None and "multiprocessing" not in runtime.installed:
        # Kept by multiprocessing (weakly, by the runtime) and run in every
        # child it forks, after it has cleared the parent's finalizers.
        util.register_after_fork(runtime, _flush_at_multiprocessing_exit)
        runtime.installed.add("multiprocessing")


runtime.fork_hooks.append(_before_fork)
runtime.child_hooks.append(_main_thread_forked)
atexit.register(at_exit)
