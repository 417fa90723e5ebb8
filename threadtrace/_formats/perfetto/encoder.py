"""The JSON encoder of the timeline: ``json.dumps`` (compact), without its cost per call.

Every slice's args, and every line of the file that is not formatted by
hand, go through :func:`encode`: once per span, or more, for a big trace.
``JSONEncoder.encode`` makes a new C encoder, and a dict to catch cycles,
at each call, a good part of the work for the small values encoded here;
so one C encoder is made once and called directly, when json has one and
it gives the same text.
"""

from __future__ import annotations

import json
from typing import Any, Callable

#: What ``json.dumps(value, separators=(",", ":"), allow_nan=False)`` does.
ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _fast_encoder() -> Callable[[Any], str]:
    """``ENCODER.encode`` without its cost per call, when json's C encoder is there.

    The values encoded here never hold themselves, so nothing is lost by not
    checking for that.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        try:
            encode = make(
                None, ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",",
                False, False, False,
            )  # fmt: skip
            sample = {"a": [1, -0.0, 2.5e-9, '\u00e9\n"', None, True, {"b": [False]}], "": "x"}
            if "".join(encode(sample, 0)) == ENCODER.encode(sample):
                return lambda value: "".join(encode(value, 0))
        except Exception:  # noqa: BLE001 - anything odd: the plain encoder
            pass
    return ENCODER.encode


#: ``ENCODER.encode``, fast: for values that do not hold themselves.
encode = _fast_encoder()
