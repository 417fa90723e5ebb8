"""Slice args: what a reader of the timeline needs from each span's attributes.

Part of the slices phase (:mod:`.slices`), once per span: for threadtrace's
spans a fixed set (``primitive``, ``kind``, ``site``, ``function``,
``holder``, ``holder_site``, ``waker``, ``timed_out``, ``timeout_s``,
``daemon``, ``thread_id``, ``error``), for others every attribute, as JSON
can hold it.  :func:`args_dict` makes them as a dict (for ``timeline``),
:func:`args_json` as the JSON text the encoder would make of that dict (for
the file), directly: a branch per arg, inline, and caches of the text of
values that repeat (names, sites), because this runs for every span.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional

from .encoder import ENCODER, encode

#: The types that :func:`_jsonable` returns as they are.
_PLAIN = frozenset({str, int, bool})


def args_dict(  # noqa: PLR0912 - a branch per arg, inline: once per span
    attributes: Any, run: bool, error: Optional[str], basenames: dict[str, str]
) -> dict[str, Any]:
    """The args of the slice of a span (a run or not) with these attributes and error;
    ``basenames`` caches file names by path."""
    if not run and "threadtrace.operation" not in attributes:
        args = {str(key): _jsonable(value) for key, value in sorted(attributes.items())}
    else:
        # Each value as _jsonable makes it, the common types inline.
        get = attributes.get
        args = {}
        value = get("threadtrace.primitive.name")
        if value is not None:
            args["primitive"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.primitive.kind")
        if value is not None:
            args["kind"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("code.file.path")
        if value:
            args["site"] = _site(attributes, value, "code.line.number", basenames)
        value = get("code.function.name")
        if value is not None:
            args["function"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.holder.thread.name")
        if value is not None:
            args["holder"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.holder.code.file.path")
        if value:
            args["holder_site"] = _site(
                attributes, value, "threadtrace.holder.code.line.number", basenames
            )
        value = get("threadtrace.waker.thread.name")
        if value is not None:
            args["waker"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.timed_out")
        if value is not None:
            args["timed_out"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.timeout")
        if value is not None:
            args["timeout_s"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("threadtrace.thread.daemon")
        if value is not None:
            args["daemon"] = value if value.__class__ in _PLAIN else _jsonable(value)
        value = get("thread.id")
        if value is not None:
            args["thread_id"] = value if value.__class__ in _PLAIN else _jsonable(value)
    if error is not None:
        args["error"] = error
    return args


def args_json(  # noqa: PLR0912, PLR0915 - a branch per arg, inline: once per span
    attributes: Any,
    run: bool,
    error: Optional[str],
    basenames: dict[str, str],
    strings: dict[str, str],
) -> str:
    """``encode(args_dict(attributes, run, error, basenames))``, made directly.

    ``strings`` caches the JSON of text values: they repeat (names, sites).
    """
    # The error is the only value not made by _jsonable: the plain encoder for odd
    # ones (which could even hold themselves).
    plain = error is None or error.__class__ is str
    if not run and "threadtrace.operation" not in attributes:
        return (encode if plain else ENCODER.encode)(args_dict(attributes, run, error, basenames))
    get = attributes.get
    parts = []
    value = get("threadtrace.primitive.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"primitive":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"primitive":{_json_value(value)}')
    value = get("threadtrace.primitive.kind")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"kind":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"kind":{_json_value(value)}')
    value = get("code.file.path")
    if value:
        value = _site(attributes, value, "code.line.number", basenames)
        parts.append(f'"site":{strings.get(value) or _string(value, strings)}')
    value = get("code.function.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"function":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"function":{_json_value(value)}')
    value = get("threadtrace.holder.thread.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"holder":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"holder":{_json_value(value)}')
    value = get("threadtrace.holder.code.file.path")
    if value:
        value = _site(attributes, value, "threadtrace.holder.code.line.number", basenames)
        parts.append(f'"holder_site":{strings.get(value) or _string(value, strings)}')
    value = get("threadtrace.waker.thread.name")
    if value is not None:
        if value.__class__ is str:
            parts.append(f'"waker":{strings.get(value) or _string(value, strings)}')
        else:
            parts.append(f'"waker":{_json_value(value)}')
    value = get("threadtrace.timed_out")
    if value is not None:
        parts.append(f'"timed_out":{_json_value(value)}')
    value = get("threadtrace.timeout")
    if value is not None:
        parts.append(f'"timeout_s":{_json_value(value)}')
    value = get("threadtrace.thread.daemon")
    if value is not None:
        parts.append(f'"daemon":{_json_value(value)}')
    value = get("thread.id")
    if value is not None:
        parts.append(f'"thread_id":{_json_value(value)}')
    if error is not None:
        parts.append(f'"error":{encode(error) if plain else ENCODER.encode(error)}')
    return "{" + ",".join(parts) + "}"


def _string(value: str, strings: dict[str, str]) -> str:
    """The JSON of text ``value``, kept in ``strings``."""
    text = strings[value] = encode(value)
    return text


def _json_value(value: Any) -> str:
    """The JSON of ``_jsonable(value)``, as the encoder writes it inside an object."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value.__class__ is int:
        return str(value)
    return encode(_jsonable(value))


def _site(attributes: Any, path: Any, line_key: str, basenames: dict[str, str]) -> str:
    """``file:line`` of the site at ``path`` (not empty), its line in ``attributes``."""
    text = str(path)
    name = basenames.get(text)
    if name is None:
        name = basenames[text] = os.path.basename(text)
    line = attributes.get(line_key)
    return f"{name}:{line}" if line is not None else name


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: sequences as lists, odd floats and objects as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)
