"""Text helpers shared by the alert payloads: clipping, numbers, the headline, JSON bytes."""

from __future__ import annotations

from typing import Any

import orjson

from observatory.incidents.model import Change, Impact
from observatory.util.jsontext import json_bytes


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return _compact(value, 200)


def _compact(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return _clip(value, limit)
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = str(value)
    return _clip(text, limit)


def _impact_text(impact: Impact | None) -> str:
    if impact is None:
        return "—"
    parts = [f"{str(k).replace('_', ' ')}: {_number(v)}" for k, v in impact.as_dict().items()]
    return _clip(", ".join(parts), 500)


def _headline(change: Change, label: str = "") -> str:
    """``[CRITICAL] dest — detector: summary`` (raw, unescaped)."""
    inc = change.incident
    text = f"[{inc.severity.upper()}] {inc.destination} — {inc.detector}"
    if label:
        text = f"{label} {text}"
    if inc.summary:
        text += f": {inc.summary}"
    return text


def _json_bytes(value: Any) -> bytes:
    return json_bytes(value)
