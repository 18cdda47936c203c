"""Times of day as people read them on screen: in one display zone, always with its label.

:class:`DisplayZone` is the ``[ui] timezone`` setting made usable: an IANA zone
(``"America/Los_Angeles"``, ``"UTC"``) or the machine's local zone (the default, which
follows ``TZ``). Every time the TUI shows goes through one of its methods, so each carries
its zone ("08:58:10 PST"). Exports do not use it: they stay in UTC and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCAL = "local"
# Summaries written by the engine name times of day as HH:MM:SS in UTC (detect.wording.clock).
_CLOCK_RE = re.compile(r"(?<![\d:])([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?!\d|:\d)")


def zone_info(name: str) -> tzinfo | None:
    """The zone called ``name`` (None for ``"local"``); ValueError when there is no such zone."""
    if name.strip().lower() == LOCAL:
        return None
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class DisplayZone:
    """The zone the TUI shows times in: ``name`` as configured ("local" or an IANA name)."""

    name: str = LOCAL
    _tz: tzinfo | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", zone_info(self.name))

    def at(self, ts: float) -> datetime:
        """The aware date-time of epoch ``ts`` in this zone. Local: as the C library says
        at that instant (``TZ``, daylight saving included)."""
        if self._tz is None:
            return datetime.fromtimestamp(ts).astimezone()
        return datetime.fromtimestamp(ts, self._tz)

    def label(self, ts: float) -> str:
        """The zone's abbreviation at ``ts`` ("PST", "PDT", "UTC"; else its offset)."""
        return self.at(ts).strftime("%Z") or self.at(ts).strftime("%z")

    def stamp(self, ts: float | None, fmt: str) -> str:
        """``ts`` formatted by ``fmt`` (strftime) in this zone, then its zone: "–" for None."""
        if ts is None:
            return "–"
        return self.at(ts).strftime(fmt) + " " + self.label(ts)

    def clock(self, ts: float | None) -> str:
        """``08:58:10 PST``; "–" for None."""
        return self.stamp(ts, "%H:%M:%S")

    def short(self, ts: float | None) -> str:
        """``11-14 08:58:10 PST`` (month-day, for lists of recent things); "–" for None."""
        return self.stamp(ts, "%m-%d %H:%M:%S")

    def full(self, ts: float | None) -> str:
        """``2023-11-14 08:58:10 PST``; "–" for None."""
        return self.stamp(ts, "%Y-%m-%d %H:%M:%S")

    def localize_clocks(self, text: str, near: float) -> str:
        """``text`` (an engine summary, whose times of day are HH:MM:SS in UTC) with each time
        of day in this zone and labelled: "since 16:58:10" -> "since 08:58:10 PST". The date
        of each is the one that puts it within 12 hours of ``near`` (e.g. the detection)."""

        def swap(match: re.Match[str]) -> str:
            h, m, s = (int(g) for g in match.groups())
            ref = datetime.fromtimestamp(near, UTC)
            when = ref.replace(hour=h, minute=m, second=s, microsecond=0)
            if (when - ref) > timedelta(hours=12):
                when -= timedelta(days=1)
            elif (ref - when) > timedelta(hours=12):
                when += timedelta(days=1)
            return self.clock(when.timestamp())

        return _CLOCK_RE.sub(swap, text)
