# Types for the optional C extension built from _lockcore.c.
from typing import Any, Callable, Optional

def creation(depth: int, sites: dict[Any, Any] = ..., /) -> Any: ...
def starts(depth: int, /) -> Any: ...
def site_for(name: Optional[str], depth: int, /) -> Any: ...
def site_setup(runtime: Any, unknown: Any, walk: Callable[..., Any], /) -> None: ...
def wait_site(sites: dict[Any, Any], with_line: bool, /) -> Any: ...
def thread_name(ident: Any = ..., /) -> str: ...

class Blocked:
    """threadtrace._detect.state.Blocked, in C."""

    primitive: Any
    operation: str
    since: int
    timeout: Optional[float]
    previous: Optional[Any]
    context: Any
    notifies: int
    unheard: int
    taken: int
    doomed: Optional[str]
    recorded: bool
    woken: bool
    def __init__(
        self,
        primitive: Any,
        operation: str,
        since: int,
        timeout: Optional[float],
        previous: Optional[Any],
        context: Any = None,
    ) -> None: ...
    @property
    def timed(self) -> bool: ...

def begin_wait(
    primitive: Any,
    operation: str,
    timeout: Optional[float],
    blocked: dict[int, Any],
    get_current: Callable[[], Any],
    /,
) -> Blocked: ...
def sum_short(
    sums: dict[tuple[Any, ...], list[Any]],
    max_places: int,
    buckets: tuple[float, ...],
    kind: str,
    name: str,
    ok: bool,
    site: Any,
    holder: Optional[int],
    holder_name: Optional[str],
    holder_site: Any,
    wait_ns: int,
    /,
) -> bool: ...
def count_short(
    recorder: Any,
    kind: str,
    name: str,
    wait_ns: int,
    ok: bool,
    site: Any,
    context: Any,
    holder: Optional[int] = None,
    holder_name: Optional[str] = None,
    holder_site: Any = None,
    /,
) -> bool: ...
def short_waits(
    runtime: Any, suppress_keys: tuple[str, ...], max_places: int, buckets: tuple[float, ...], /
) -> None: ...
def waker_context(var: Any, /) -> None: ...

class LockCore:
    _raw: Any
    _try: Any
    _rel: Any
    _owner: Optional[int]
    _left: int
    _hot: bool
    _depth: int
    _reentrant: bool
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *args: object) -> None: ...
