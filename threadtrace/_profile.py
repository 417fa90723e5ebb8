"""The contention profile: every blocked operation, aggregated for the report.

(Stub: filled in by the contention-report work.)
"""

from __future__ import annotations

from typing import Optional

from ._sites import Site


def record_wait(
    kind: str,
    name: str,
    operation: str,
    wait_ns: int,
    *,
    ok: bool,
    waiter_thread: str,
    waiter_site: Optional[Site],
    holder_thread: Optional[str],
    holder_site: Optional[Site],
) -> None:
    """One operation on primitive ``(kind, name)`` blocked for ``wait_ns``."""
