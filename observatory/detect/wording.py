"""How the engine writes numbers and times in summaries and evidence (short, stable forms)."""

from __future__ import annotations

from datetime import UTC, datetime


def clock(ts: float) -> str:
    """Epoch seconds -> HH:MM:SS (UTC), as summaries show a time of day."""
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def per_s(x: float) -> str:
    """Events per second, short: 130, 8.2, 0.31."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.2g}"


def pct(x: float) -> str:
    """A share as a percentage: 75%, 0.5%."""
    if x >= 0.1:
        return f"{x * 100:.0f}%"
    return f"{x * 100:.2g}%"


def sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (evidence numbers)."""
    return float(f"{x:.{digits}g}")


def iso_s(ts: float) -> str:
    """Epoch seconds -> ISO-8601 UTC to the second (evidence times)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
