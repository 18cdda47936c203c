"""When a server says to come back: ``Retry-After`` (RFC 9110 section 10.2.3) and the
rate-limit reset headers vendors send (``X-RateLimit-Reset``, the IETF draft's
``RateLimit-Reset``). The one parser behind the probes, the alert sinks and the simulator."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import orjson

# delta-seconds is 1*DIGIT; a fraction ("1.5") is not in the RFC but servers send it
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
# A reset of at least this is epoch seconds (after 2001-09-09), smaller ones a delay;
# from _EPOCH_MS_FLOOR on, epoch milliseconds.
_EPOCH_FLOOR = 1e9
_EPOCH_MS_FLOOR = 1e12


def parse_http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime
    forms, or any RFC 5322 date; no zone or ``-0000`` means UTC), or None."""
    try:
        parsed: datetime = parsedate_to_datetime(value.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _seconds(value: str) -> float | None:
    text = value.strip()
    if not _SECONDS.fullmatch(text):
        return None
    seconds = float(text)
    return seconds if math.isfinite(seconds) else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds (``120``) or an HTTP-date
    (one already past means "now": 0), the wait rounded to the millisecond.

    None when there is none or it cannot be read (``soon``, ``-5``, ``nan``, ``1e3``): a
    caller then falls back to its own backoff rather than retrying at once."""
    if value is None:
        return None
    delay = _seconds(value)
    if delay is not None:
        return delay
    at = parse_http_date(value)
    if at is None:
        return None
    return round(max(0.0, at - now), 3)


def parse_reset(value: str, now: float, delta_only: bool = False) -> float | None:
    """The epoch second a rate-limit window resets, from a reset header: delta seconds, epoch
    seconds or epoch milliseconds (told apart by size), or an HTTP-date. `delta_only` (the
    IETF draft's ``RateLimit-Reset``) reads every number as delta seconds. None when it
    cannot be read."""
    n = _seconds(value)
    if n is None:
        return parse_http_date(value)
    if delta_only or n < _EPOCH_FLOOR:
        return now + n
    if n >= _EPOCH_MS_FLOOR:
        return n / 1000.0
    return n


def ms_before_next(body: bytes) -> float | None:
    """Segment's 429 body, ``{"errors":[{"data":{"msBeforeNext":57647}}]}``: the wait in ms."""
    try:
        doc = orjson.loads(body)
        for err in doc.get("errors", []):
            ms = err.get("data", {}).get("msBeforeNext")
            if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0:
                return float(ms)
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        pass
    return None
