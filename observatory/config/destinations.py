"""``[[destinations]]``: :class:`DestinationConfig`, its probes (:class:`ProbeConfig`) and
the response fields it shares with ``[[dependencies]]`` (:class:`ResponseFields`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from observatory.config.fields import (
    Duration,
    NonEmptyStr,
    _check_http_url,
    _Model,
    check_link,
)
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


class ResponseFields(_Model):
    """Who answers for a node and what to do when it breaks: the team's wiki page, kept in the
    config so ``observatory deps``, the ``d`` screen and the incident exports can repeat it
    next to what was observed. All optional: an unset field is shown as not documented."""

    owner: NonEmptyStr | None = None
    runbook: str | None = None  # an http(s) URL
    fallback: NonEmptyStr | None = None

    _runbook = field_validator("runbook")(check_link)


class DestinationConfig(ResponseFields):
    """``[[destinations]]``: a known destination, its vendor, its probes, and what it hangs on.

    Destinations seen in logs are discovered automatically; configuring one adds a vendor,
    probes, and the response fields: ``via`` names the ``[[dependencies]]`` events pass
    through on their way here (upstream first), ``retry_window`` how long the platform still
    accepts a re-sent event (the fallback's deadline).
    """

    name: NonEmptyStr
    vendor: Literal["tiktok", "meta", "google_ads", "webhook", "generic"] = "generic"
    probes: list[ProbeConfig] = Field(default_factory=list)
    via: list[NonEmptyStr] = Field(default_factory=list)
    retry_window: Duration | None = Field(default=None, gt=0)
