"""The ``threadtrace`` command: ``run``, ``convert`` and ``report`` (see :mod:`.main`)."""

from .main import main

__all__ = ["main"]
