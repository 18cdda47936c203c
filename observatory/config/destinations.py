"""``[[destinations]]``: :class:`DestinationConfig` and its probes (:class:`ProbeConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from observatory.config.fields import Duration, NonEmptyStr, _check_http_url, _Model
from observatory.config.parsing import parse_duration


class ProbeConfig(_Model):
    """``[[destinations.probes]]``: an active check of a destination or status API.

    ``url`` and ``headers`` are secrets (they may carry tokens): read them with
    :meth:`url_value` and :meth:`header_values`, never log them.
    """

    kind: Literal["statuspage", "segment_delivery", "prometheus", "http"]
    url: SecretStr
    component: str | None = None
    every: Duration = Field(default=parse_duration("30s"), gt=0)
    timeout: Duration = Field(default=parse_duration("5s"), gt=0)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    expect_status: int = Field(default=200, ge=100, le=599)
    selector: str | None = None
    method: Literal["GET", "HEAD"] = "GET"

    _url = field_validator("url")(_check_http_url)

    def url_value(self) -> str:
        """The probe URL in clear (for making the request only)."""
        return self.url.get_secret_value()

    def header_values(self) -> dict[str, str]:
        """The request headers in clear (for making the request only)."""
        return {k: v.get_secret_value() for k, v in self.headers.items()}


class DestinationConfig(_Model):
    """``[[destinations]]``: a known destination, its vendor and its probes.

    Destinations seen in logs are discovered automatically; configuring one only adds a vendor
    and probes.
    """

    name: NonEmptyStr
    vendor: Literal["tiktok", "meta", "google_ads", "webhook", "generic"] = "generic"
    probes: list[ProbeConfig] = Field(default_factory=list)
