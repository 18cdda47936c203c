"""``[ui]``: how the TUI shows things (for now, the time zone of the times it shows)."""

from __future__ import annotations

from pydantic import field_validator

from observatory.config.fields import _custom, _Model
from observatory.util.zonetime import LOCAL, DisplayZone, zone_info


class UiConfig(_Model):
    """``[ui]``: ``timezone`` is the zone every time on screen is shown in, with its label:
    an IANA name (``"America/Los_Angeles"``, ``"Europe/Berlin"``, ``"UTC"``) or ``"local"``
    (the default: the machine's zone, which follows ``TZ``). Exports stay in UTC."""

    timezone: str = LOCAL

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zone_info(value)
        except ValueError:
            raise _custom(
                "timezone",
                'is not a time zone (an IANA name such as "America/Los_Angeles", "UTC", '
                'or "local")',
                value,
            ) from None
        return value.strip()

    def display_zone(self) -> DisplayZone:
        """The zone the TUI shows times in."""
        return DisplayZone(self.timezone)
