"""Durations as people read them: the one formatter behind reports, alerts, tables and the TUI."""

from __future__ import annotations

import math

# (seconds in the unit, short name, long name), largest first
_UNITS = (
    (86400, "d", "d"),
    (3600, "h", "h"),
    (60, "m", "min"),
    (1, "s", "s"),
)
# coarse: a unit is used from this many seconds on (or for a whole number of it), so the one
# number shown keeps about two digits of resolution: "88s", then "2m" ... "90m", "2h" ... "48h"
_COARSE_FROM = {86400: 2 * 86400, 3600: 1.5 * 3600, 60: 1.5 * 60}


def format_duration(seconds: float | None, *, long: bool = False, coarse: bool = False) -> str:
    """`seconds` as text, in its two largest units with the smaller one zero-padded.

    Short (the default): "350ms", "4.2s", "42s", "4m 05s", "2h 07m", "3d 04h".
    `long`, for prose (the incident report): "350 ms", "4.2 s", "4 min 05 s", "2 h 07 min".
    Under a second it shows milliseconds, under a minute tenths of a second ("14.2s", "14s"
    when whole); from a minute on the time is cut, like a clock's, to the smaller unit shown
    (585.8 s is "9m 45s", 2 h 07 min 59 s is "2h 07m").

    `coarse`: one unit, rounded, for what is redrawn every second (ages) and for labels:
    seconds up to 90 s, minutes up to 90 min, hours up to 48 h, then days; a whole number of
    a larger unit is said in it ("1m", "1h"). No fractions, so a live pane does not change on
    every frame.

    A negative duration keeps its sign; None, NaN and infinities are "n/a".
    """
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 0:
        return "-" + format_duration(-seconds, long=long, coarse=coarse)
    gap = " " if long else ""

    def unit(value: int | str, index: int) -> str:
        _, short, name = _UNITS[index]
        return f"{value}{gap}{name if long else short}"

    if coarse:
        for index, (size, _, _) in enumerate(_UNITS[:-1]):
            if seconds >= _COARSE_FROM[size] or (seconds >= size and seconds % size == 0):
                return unit(f"{seconds / size:.0f}", index)
        return unit(f"{seconds:.0f}", len(_UNITS) - 1)

    millis = round(seconds * 1000)
    if millis == 0:
        return unit(0, len(_UNITS) - 1)
    if millis < 1000:
        return f"{millis}{gap}ms"
    tenths = round(seconds * 10)
    if tenths < 600:
        return unit(f"{tenths / 10:.1f}".removesuffix(".0"), len(_UNITS) - 1)
    whole = tenths // 10  # a minute or more (after the rounding to tenths)
    index = next(i for i, (size, _, _) in enumerate(_UNITS) if whole >= size)
    size, smaller = _UNITS[index][0], _UNITS[index + 1][0]
    return f"{unit(whole // size, index)} {unit(f'{whole % size // smaller:02d}', index + 1)}"


def format_age(now: float, ts: float | None) -> str:
    """How long ago `ts` was, in one whole unit ("88s ago", "3m ago"): redrawn every second."""
    if ts is None:
        return "never"
    return format_duration(max(0.0, now - ts), coarse=True) + " ago"
