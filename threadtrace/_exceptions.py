"""threadtrace's own errors.

Drop-in primitives raise exactly what :mod:`threading` raises; the classes
here are only for threadtrace's own API::

    ValueError
     └── ConfigurationError   an invalid setting, named in the message
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A setting has a value threadtrace cannot use.

    The message names the setting and what it accepts.
    """
