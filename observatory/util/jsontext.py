"""JSON for values that may hold anything the engine or a vendor produced."""

from __future__ import annotations

from typing import Any

import orjson

_LENIENT = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_bytes(value: Any, indent: bool = False) -> bytes:
    """``value`` as JSON: non-string keys and numpy scalars allowed, anything else orjson
    cannot encode written as its text (never fail over an odd value in evidence)."""
    option = _LENIENT | orjson.OPT_INDENT_2 if indent else _LENIENT
    return orjson.dumps(value, option=option, default=str)
