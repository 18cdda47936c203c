"""`[ui] timezone` and the one formatter of on-screen times (observatory.util.zonetime):
the default follows the machine's zone (TZ), an IANA name or "UTC" overrides it, every time
carries its label, and a bad name is a config error naming `ui.timezone`."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory.config import ConfigError, load_config
from observatory.util.zonetime import DisplayZone

WINTER = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC = 14:13:20 PST
SUMMER = 1_690_000_000.0  # 2023-07-22 04:26:40 UTC = 21:26:40 PDT (the 21st)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_follows_tz_with_its_label(los_angeles: None, tmp_path: Path) -> None:
    zone = load_config(write(tmp_path, "")).ui.display_zone()
    assert zone.name == "local"
    assert zone.clock(WINTER) == "14:13:20 PST"
    assert zone.full(WINTER) == "2023-11-14 14:13:20 PST"
    assert zone.short(SUMMER) == "07-21 21:26:40 PDT"  # daylight saving, and the date shifts
    assert zone.clock(None) == "–"


def test_utc_and_iana_names_override_tz(los_angeles: None, tmp_path: Path) -> None:
    utc = load_config(write(tmp_path, '[ui]\ntimezone = "UTC"\n')).ui.display_zone()
    assert utc.clock(WINTER) == "22:13:20 UTC"
    assert utc.full(WINTER) == "2023-11-14 22:13:20 UTC"
    berlin = load_config(write(tmp_path, '[ui]\ntimezone = "Europe/Berlin"\n')).ui.display_zone()
    assert berlin.clock(WINTER) == "23:13:20 CET"
    assert berlin.clock(SUMMER) == "06:26:40 CEST"


def test_a_bad_zone_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    for bad in ('"Mars/Olympus_Mons"', '"PST8"', '""'):
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, f"[ui]\ntimezone = {bad}\n"))
        assert info.value.key == "ui.timezone"
        assert "time zone" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[ui]\ntimezone = 3\n"))
    assert info.value.key == "ui.timezone"


def test_engine_summaries_get_their_times_in_the_zone(los_angeles: None) -> None:
    summary = "tiktok_conversions: 81% of attempts rate-limited since 22:13:20 (5/18)"
    assert DisplayZone().localize_clocks(summary, WINTER + 30) == (
        "tiktok_conversions: 81% of attempts rate-limited since 14:13:20 PST (5/18)"
    )
    # "from ... to ..." across midnight UTC: each time is taken on the day near `near`.
    text = "nothing delivered from 23:59:50 to 00:00:10"
    midnight = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC
    assert DisplayZone("UTC").localize_clocks(text, midnight) == (
        "nothing delivered from 23:59:50 UTC to 00:00:10 UTC"
    )
    assert DisplayZone().localize_clocks(text, midnight) == (
        "nothing delivered from 15:59:50 PST to 16:00:10 PST"
    )
    # A time of day ending a phrase ("since 14:22:06: mean ...") is one too.
    assert DisplayZone("UTC").localize_clocks("latency up since 14:22:06: mean", WINTER) == (
        "latency up since 14:22:06 UTC: mean"
    )
    # Numbers that are not times of day stay as they are.
    assert DisplayZone("UTC").localize_clocks("1:2:3 and 123:45:67", WINTER) == (
        "1:2:3 and 123:45:67"
    )
    assert DisplayZone("UTC").localize_clocks("12:13:14:15", WINTER) == "12:13:14:15"
