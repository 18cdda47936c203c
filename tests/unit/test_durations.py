"""format_duration: the one duration formatter (reports, alerts, tables, the TUI)."""

from __future__ import annotations

import pytest

from observatory.util.durations import format_duration

H, D = 3600, 86400


@pytest.mark.parametrize(
    ("seconds", "short", "long"),
    [
        (0, "0s", "0 s"),
        (0.0, "0s", "0 s"),
        (0.0004, "0s", "0 s"),  # under half a millisecond
        (0.001, "1ms", "1 ms"),
        (0.35, "350ms", "350 ms"),
        (0.9996, "1s", "1 s"),  # rounds up into the next unit, not "1000ms"
        (1, "1s", "1 s"),
        (4.2, "4.2s", "4.2 s"),
        (14.2, "14.2s", "14.2 s"),
        (42, "42s", "42 s"),  # whole: no ".0"
        (59.94, "59.9s", "59.9 s"),
        (59.96, "1m 00s", "1 min 00 s"),  # rounds up into minutes, not "60.0s"
        (60, "1m 00s", "1 min 00 s"),
        (245, "4m 05s", "4 min 05 s"),
        (250, "4m 10s", "4 min 10 s"),
        (585, "9m 45s", "9 min 45 s"),
        (585.8, "9m 45s", "9 min 45 s"),  # cut like a clock, not rounded
        (3599.6, "59m 59s", "59 min 59 s"),
        (3599.96, "1h 00m", "1 h 00 min"),  # 3600.0 to the tenth
        (5400, "1h 30m", "1 h 30 min"),
        (2 * H + 7 * 60 + 5, "2h 07m", "2 h 07 min"),
        (2 * H + 7 * 60 + 59, "2h 07m", "2 h 07 min"),  # the seconds are cut
        (D, "1d 00h", "1 d 00 h"),
        (D + H, "1d 01h", "1 d 01 h"),
        (9 * D + 23 * H + 59 * 60, "9d 23h", "9 d 23 h"),
        (400 * D, "400d 00h", "400 d 00 h"),
        (-14.2, "-14.2s", "-14.2 s"),  # a negative duration keeps its sign
        (-245, "-4m 05s", "-4 min 05 s"),
        (-0.35, "-350ms", "-350 ms"),
    ],
)
def test_two_units(seconds: float, short: str, long: str) -> None:
    assert format_duration(seconds) == short
    assert format_duration(seconds, long=True) == long


@pytest.mark.parametrize(
    ("seconds", "coarse"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (1, "1s"),
        (59.6, "60s"),
        (60, "1m"),  # a whole minute is said in minutes
        (61, "61s"),
        (88, "88s"),  # seconds up to 90 s
        (90, "2m"),
        (245, "4m"),
        (H - 1, "60m"),
        (H, "1h"),
        (5399, "90m"),  # minutes up to 90 min
        (5400, "2h"),
        (2 * D - 1, "48h"),  # hours up to 48 h
        (D, "1d"),
        (2 * D, "2d"),
        (30 * D, "30d"),
        (-88, "-88s"),
    ],
)
def test_coarse(seconds: float, coarse: str) -> None:
    assert format_duration(seconds, coarse=True) == coarse


def test_coarse_long_labels_chart_buckets() -> None:
    labels = [format_duration(s, long=True, coarse=True) for s in (1, 2, 30, 60, 300, H, D)]
    assert labels == ["1 s", "2 s", "30 s", "1 min", "5 min", "1 h", "1 d"]


@pytest.mark.parametrize("seconds", [None, float("nan"), float("inf"), float("-inf")])
def test_nothing_to_say(seconds: float | None) -> None:
    assert format_duration(seconds) == "n/a"
    assert format_duration(seconds, long=True, coarse=True) == "n/a"


def test_callers_read_the_same() -> None:
    """What the report, the alerts and the TUI print, through the one formatter."""
    from observatory.backup.reconcile import COUNT_KEYS, format_table
    from observatory.util.durations import format_age

    assert format_age(1000.0, 912.0) == "88s ago"
    assert format_age(1000.0, 1001.0) == "0s ago"  # a clock a little ahead is not "-1s ago"
    assert format_age(1000.0, None) == "never"
    row = {"destination": "d", **dict.fromkeys(COUNT_KEYS, 0), "failing": 1, "lost": 0}
    assert format_table([{**row, "lost_in_s": 0.0}]).endswith("lost")
    assert format_table([{**row, "lost_in_s": None}]).endswith("-")
    assert format_table([{**row, "lost_in_s": 125.0}]).endswith("2m 05s")
