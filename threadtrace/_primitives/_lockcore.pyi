# Types for the optional C extension built from _lockcore.c.
from typing import Any, Optional

def creation(depth: int, /) -> Any: ...

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
