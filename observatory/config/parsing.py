"""Parsing config values: the error type, durations, rate budgets and ``${NAME}`` interpolation.

:class:`ConfigError` names the offending key; :func:`parse_duration` and
:func:`parse_rate_budget` read ``"30s"`` and ``"1/week"``; :func:`_interpolate` replaces
``${NAME}`` with the environment value in every string of the raw TOML data and records which
locations used the environment (so their values are never echoed).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration problem, tied to the key it concerns.

    ``key`` is a dotted path such as ``sources[0].format`` (or ``config`` for file-level
    problems) and ``message`` a one-line, human explanation that never contains a secret.
    ``str(err)`` is ``f"{key}: {message}"``.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = " ".join(message.split())  # always one line
        super().__init__(f"{self.key}: {self.message}")

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


# --------------------------------------------------------------------------------------------
# Durations and rate budgets
# --------------------------------------------------------------------------------------------

_UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DURATION_HINT = "use e.g. 30s, 5m, 7d"


def parse_duration(value: str | int | float) -> float:
    """Return ``value`` as seconds.

    Accepts numbers (seconds) and strings such as ``"500ms"``, ``"1s"``, ``"5m"``, ``"2h"``,
    ``"7d"``, ``"1w"``, ``"1h30m"`` or ``"90"``. Raises :class:`ValueError` for anything else,
    including negative and non-finite values.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({_DURATION_HINT})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            if text.startswith("-"):
                raise ValueError(f"{value!r}: a duration must not be negative")
            seconds = 0.0
            pos = 0
            while pos < len(text):
                match = _DURATION_PART.match(text, pos)
                if match is None:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if not text or pos != len(text):
                raise ValueError(f"{value!r} is not a duration ({_DURATION_HINT})")
    else:
        raise ValueError(f"{value!r} is not a duration ({_DURATION_HINT})")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration must not be negative")
    return seconds


_NAMED_PERIODS: dict[str, float] = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 604800.0,
    "month": 30 * 86400.0,
    "year": 365 * 86400.0,
}
_RATE_HINT = "use e.g. 1/week, 2/day, 3/7d"


def parse_rate_budget(value: str) -> tuple[int, float]:
    """Parse a budget ``"COUNT/PERIOD"`` into ``(count, period_seconds)``.

    ``PERIOD`` is a name (``second``, ``minute``, ``hour``, ``day``, ``week``, ``month`` = 30 days,
    ``year`` = 365 days) or any duration (``7d``, ``12h``). ``"1/week"`` -> ``(1, 604800.0)``.
    Raises :class:`ValueError` otherwise.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a rate budget ({_RATE_HINT})")
    count_text, sep, period_text = value.partition("/")
    count_text, period_text = count_text.strip(), period_text.strip()
    if not sep or not count_text.isdigit() or not period_text:
        raise ValueError(f"{value!r} is not a rate budget ({_RATE_HINT})")
    count = int(count_text)
    if count < 1:
        raise ValueError(f"{value!r}: the count must be at least 1")
    name = period_text.lower()
    if name in _NAMED_PERIODS:
        period = _NAMED_PERIODS[name]
    elif name.endswith("s") and name[:-1] in _NAMED_PERIODS:
        period = _NAMED_PERIODS[name[:-1]]
    else:
        try:
            period = parse_duration(period_text)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate budget ({_RATE_HINT})") from None
    if period <= 0:
        raise ValueError(f"{value!r}: the period must be longer than zero")
    return count, period


# --------------------------------------------------------------------------------------------
# Environment interpolation
# --------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]

_INTERPOLATION = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _format_key(loc: Loc) -> str:
    """``("sources", 0, "format")`` -> ``sources[0].format``; empty -> ``config``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY.match(part) else json.dumps(part)
            out += f".{text}" if out else text
    return out or "config"


def _interpolate_str(text: str, loc: Loc) -> tuple[str, bool]:
    """Replace ``${NAME}`` with the environment value; ``$${`` -> ``${``."""
    used_env = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used_env
        token = match.group(0)
        if token == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            raise ConfigError(
                _format_key(loc), "unterminated ${ (write ${NAME}, or $${ for a literal ${)"
            )
        if not _ENV_NAME.match(name):
            raise ConfigError(
                _format_key(loc),
                f"invalid environment variable reference ${{{name}}} "
                "(write ${NAME}, or $${ for a literal ${)",
            )
        if name not in os.environ:
            raise ConfigError(_format_key(loc), f"environment variable {name} is not set")
        used_env = True
        return os.environ[name]

    return _INTERPOLATION.sub(replace, text), used_env


def _interpolate(value: Any, loc: Loc, tainted: set[Loc]) -> Any:
    """Interpolate every string in ``value``; record the locations that used the environment."""
    if isinstance(value, str):
        result, used_env = _interpolate_str(value, loc)
        if used_env:
            tainted.add(loc)
        return result
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), tainted) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), tainted) for i, v in enumerate(value)]
    return value
