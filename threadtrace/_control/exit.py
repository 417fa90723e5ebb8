"""What threadtrace does when the interpreter exits: report, then flush.

:func:`at_exit` is registered with :mod:`atexit` when threadtrace is
imported.  ``threadtrace run`` calls the same steps itself, to print its
summary after them.
"""

from __future__ import annotations

import atexit
import logging

from .._detect.problems import publish_pending
from .._report.model import report
from .._runtime import runtime
from .configure import shutdown

logger = logging.getLogger("threadtrace")


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
    logger.info("%s", text)


def at_exit() -> None:
    """At interpreter exit: log the contention report if asked, then flush.

    The report comes first so it is computed from the same data as the
    exporters' last metrics export (``threadtrace report`` reads that back).
    """
    runtime.publish_notices()
    publish_pending()  # lock-order reports still queued
    log_report()
    shutdown(_final=True)


atexit.register(at_exit)
