"""threadtrace's own errors.

Drop-in primitives raise exactly what :mod:`threading` raises; the classes
here are only for threadtrace's own API, and for ``on_deadlock="raise"``::

    ValueError
     └── ConfigurationError   an invalid setting, named in the message
    RuntimeError
     └── DeadlockError        raised in a deadlocked thread, by request
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A setting has a value threadtrace cannot use.

    The message names the setting and what it accepts.
    """


class DeadlockError(RuntimeError):
    """This thread was waiting in a deadlock, and ``on_deadlock="raise"`` ends its wait.

    Raised only with ``on_deadlock="raise"``, from the ``acquire`` or
    ``join`` of the thread whose wait closed the cycle; the message is the
    deadlock report.  Unwinding it releases what the thread held (``with``
    blocks), so the other threads of the cycle go on.
    """
