"""Rows of a DuckDB result as JSON, and back, so a remote cursor returns what a local one would.

The owner sends each column's DuckDB type name (``str(description[i][1])``) with the rows.
JSON alone would lose some values, so by type: timestamps, dates and times travel as ISO-8601
(orjson) and come back as ``datetime``/``date``/``time``; non-finite floats, decimals and
integers wider than 64 bits as text; intervals as ``[days, seconds, microseconds]``; blobs
as base64; UUIDs as text. Nested values (lists, structs, maps) come back as JSON gives them.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

Convert = Callable[[Any], Any]

_WIDE_INTS = frozenset({"HUGEINT", "UHUGEINT", "VARINT", "BIGNUM", "INT128", "UINT128"})
_FLOATS = frozenset({"DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8"})


def _base(type_name: str) -> str:
    """``DECIMAL(18,3)``: ``DECIMAL``; ``INTEGER[]``: ``LIST``; ``STRUCT(...)``: ``STRUCT``."""
    name = type_name.strip().upper()
    if name.endswith("]"):
        return "LIST"
    return name.split("(", 1)[0].strip()


def _float_out(v: Any) -> Any:
    return v if math.isfinite(v) else repr(float(v))  # 'nan', 'inf', '-inf'


def _interval_out(v: Any) -> Any:
    if isinstance(v, dt.timedelta):
        return [v.days, v.seconds, v.microseconds]
    return str(v)


def _blob_out(v: Any) -> Any:
    return base64.b64encode(bytes(v)).decode("ascii")


def _encoder(type_name: str) -> Convert | None:
    base = _base(type_name)
    if base in _FLOATS:
        return _float_out
    if base in _WIDE_INTS or base == "DECIMAL":
        return str
    if base == "INTERVAL":
        return _interval_out
    if base in ("BLOB", "BYTEA", "VARBINARY"):
        return _blob_out
    if base in ("BIT", "BITSTRING"):
        return str
    return None


def _default(value: Any) -> Any:
    """Values nested in lists or structs that JSON has no form for."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else str(value)


def encode_result(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]], more: bool
) -> bytes:
    """``{"columns", "types", "rows", "more"}`` as JSON."""
    encoders = [_encoder(t) for t in types]
    if any(e is not None for e in encoders):
        rows = [
            [v if e is None or v is None else e(v) for v, e in zip(row, encoders, strict=True)]
            for row in rows
        ]
    body = {"columns": list(columns), "types": list(types), "rows": rows, "more": more}
    return orjson.dumps(body, default=_default)


def _timestamp_in(v: Any) -> Any:
    return dt.datetime.fromisoformat(v) if isinstance(v, str) else v


def _float_in(v: Any) -> Any:
    return float(v)


def _interval_in(v: Any) -> Any:
    if isinstance(v, list) and len(v) == 3:
        return dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2])
    return v


def _decoder(type_name: str) -> Convert | None:
    base = _base(type_name)
    if base.startswith("TIMESTAMP") or base == "DATETIME":
        return _timestamp_in
    if base == "DATE":
        return lambda v: dt.date.fromisoformat(v) if isinstance(v, str) else v
    if base.startswith("TIME"):
        return lambda v: dt.time.fromisoformat(v) if isinstance(v, str) else v
    if base in _FLOATS:
        return _float_in
    if base in _WIDE_INTS:
        return int
    if base == "DECIMAL":
        return Decimal
    if base == "INTERVAL":
        return _interval_in
    if base in ("BLOB", "BYTEA", "VARBINARY"):
        return lambda v: base64.b64decode(v)
    if base == "UUID":
        return uuid.UUID
    return None


def decode_rows(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The rows of :func:`encode_result` as tuples of the values DuckDB would have given."""
    decoders = [_decoder(t) for t in types]
    if not any(d is not None for d in decoders):
        return [tuple(row) for row in rows]
    return [
        tuple(v if d is None or v is None else d(v) for v, d in zip(row, decoders, strict=True))
        for row in rows
    ]
