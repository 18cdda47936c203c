"""Formatting shared by every export: times, numbers and values, labels for evidence keys,
the incident's detectors and title."""

from __future__ import annotations

import math
import re
from typing import Any

from observatory.incidents.model import Incident
from observatory.util.isotime import iso


def fmt_time(ts: float | None) -> str:
    return iso(ts) or "n/a"


def _fmt_number(value: float, key: str = "") -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    k = key.lower()
    if (
        any(w in k for w in ("ratio", "share", "fraction", "wilson", "of_expected"))
        and 0 <= value <= 1
    ):
        return f"{value * 100:.2f} %"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) < 1e-4:  # no "5.421e-20" for a reader: tiny is tiny
        return "< 0.0001" if value > 0 else "> -0.0001"
    return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.4g}"


# Epoch seconds between these are times (1990..2100), under a key that names a time.
_EPOCH_RANGE = (631_152_000.0, 4_102_444_800.0)


def _is_time_key(key: str) -> bool:
    k = key.lower()
    return k.endswith(("_at", "_ts", "time")) or k in ("ts", "at")


def fmt_value(value: Any, key: str = "") -> str:
    """A scalar (or a short list of scalars) as text: an epoch under a time key (``*_at``,
    ``ts``, ``*time``) as a UTC time, an empty list as "none"."""
    if value is None:
        return "n/a"
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and _is_time_key(key)
        and _EPOCH_RANGE[0] <= value <= _EPOCH_RANGE[1]
    ):
        return fmt_time(float(value))
    if isinstance(value, bool | int | float):
        return _fmt_number(value, key)
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v, key) for v in value) if value else "none"
    return str(value)


_LABELS = {
    "retry_after": "Retry-After",
    "retry_after_s": "Retry-After (s)",
    "p50": "p50",
    "p95": "p95",
    "p99": "p99",
    "top_errors": "Top errors",
    "wilson": "Wilson interval",
    "wilson95": "Wilson 95 % interval",
    "h": "CUSUM threshold h",
    "statistic": "CUSUM statistic",
    "p0": "p0 (baseline)",
    "p1": "p1 (tested)",
    "http_status": "HTTP status",
    # plain words for the engine's evidence keys
    "at": "Measured at (UTC)",
    "over_s": "Measured over (s)",
    "attempts_per_s": "Attempts (per s)",
    "delivered_per_s": "Delivered (per s)",
    "expected_delivered_per_s": "Delivered normally (per s)",
    "delivered_of_expected": "Delivered, share of normal",
    "rate_limited_share": "Rate-limited share (429)",
    "failed_share": "Failed or rejected share",
    "baseline_rate_per_s": "Attempts normally (per s)",
    "probe_headers": "Probe response headers",
    "checked_at": "Checked at (UTC)",
    "flagged_at": "Flagged at (UTC)",
    "quiet_s": "Quiet period before resolving (s)",
}


def label(key: str) -> str:
    """`error_ratio` -> `Error ratio`, `p95_ms` -> `p95 (ms)`."""
    if key in _LABELS:
        return _LABELS[key]
    if "-" in key and "_" not in key:
        return key  # a header name: x-ratelimit-remaining
    unit = ""
    for suffix, name in (("_per_s", "per s"), ("_ms", "ms"), ("_s", "s"), ("_pct", "%")):
        if key.endswith(suffix) and len(key) > len(suffix):
            key, unit = key[: -len(suffix)], f" ({name})"
            break
    text = _LABELS.get(key, key.replace("_", " ").replace("-", " ").strip())
    return (text[:1].upper() + text[1:] if not re.match(r"p\d", text) else text) + unit


def _detectors(incident: Incident) -> list[str]:
    return [d for d in dict.fromkeys([incident.detector, *incident.detectors]) if d]


def title(incident: Incident) -> str:
    return f"Incident {incident.id}: {incident.destination} ({', '.join(_detectors(incident))})"
