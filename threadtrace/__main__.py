"""``python -m threadtrace``: the same as the ``threadtrace`` command."""

from ._cli import main

raise SystemExit(main())
