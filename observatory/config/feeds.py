"""``[[feeds]]``: a platform's own metrics or API as live input (:class:`FeedConfig`).

A feed turns a platform's numbers into the per-destination, per-second counts log lines give:
- ``statsd``: a UDP listener (rudder-server's default metrics target);
- ``prometheus``: a scrape of a metrics endpoint, counter deltas per scrape;
- ``segment_delivery_overview``: Segment's Delivery Overview API, minute buckets.

``url``, ``token`` and ``headers`` are secrets: read them with the ``*_value`` methods only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from observatory.config.fields import (
    Duration,
    NonEmptyStr,
    _check_http_url,
    _custom,
    _Model,
    check_listen,
)
from observatory.config.parsing import parse_duration

FeedKind = Literal["statsd", "prometheus", "segment_delivery_overview"]
# What a metric counts (``metrics``): ``responses`` splits by the status tag (2xx delivered,
# 429 rate limited, other 4xx rejected, the rest failed); ``latency`` is a timer in ms.
MetricRole = Literal[
    "responses",
    "delivered",
    "rate_limited",
    "rejected",
    "failed",
    "dropped",
    "retrying",
    "latency",
    "ignore",
]
# rudder-server's per-destination metrics (statsd and Prometheus alike).
RUDDER_METRICS: dict[str, MetricRole] = {
    "router_response_counts": "responses",
    "event_delivery": "delivered",
    "event_delivery_time": "latency",
    "router_aborted_events": "dropped",
    "router_throttled": "retrying",
}
SEGMENT_API = "https://api.segmentapis.com"
DEFAULT_STATSD_LISTEN = "127.0.0.1:8125"


class FeedConfig(_Model):
    """``[[feeds]]``: one platform input. See the module docstring for the kinds.

    Naming: a metric's destination is the value of its ``destination_tag`` (``destType`` by
    default; ``destId`` tells two destinations of one type apart), renamed by ``rename``.
    ``event_delivery`` counts only for a destination that has no ``router_response_counts``
    (both count the same successes).
    """

    kind: FeedKind
    name: NonEmptyStr | None = None
    # statsd
    listen: NonEmptyStr = DEFAULT_STATSD_LISTEN
    # prometheus (the metrics URL) and segment_delivery_overview (the API base)
    url: SecretStr | None = None
    token: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    every: Duration | None = Field(default=None, gt=0)
    timeout: Duration = Field(default=parse_duration("5s"), gt=0)
    # statsd / prometheus: which metrics count what, and the destination's name
    metrics: dict[str, MetricRole] = Field(default_factory=dict)
    destination_tag: NonEmptyStr = "destType"
    status_tag: NonEmptyStr = "respStatusCode"
    rename: dict[str, NonEmptyStr] = Field(default_factory=dict)
    # segment_delivery_overview
    source_id: NonEmptyStr | None = None
    destinations: dict[str, NonEmptyStr] = Field(default_factory=dict)  # config id -> name
    lag: Duration = Field(default=parse_duration("45s"), ge=0)

    _url = field_validator("url")(_check_http_url)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_listen(value, DEFAULT_STATSD_LISTEN)

    @model_validator(mode="after")
    def _kind_needs(self) -> FeedConfig:
        if self.kind == "prometheus" and self.url is None:
            raise _custom("required", "required for kind = 'prometheus'", suffix=("url",))
        if self.kind == "segment_delivery_overview":
            if self.token is None:
                raise _custom(
                    "required",
                    'required for kind = "segment_delivery_overview" (token = "${SEGMENT_TOKEN}")',
                    suffix=("token",),
                )
            if self.source_id is None:
                raise _custom("required", "the Segment source id", suffix=("source_id",))
            if not self.destinations:
                raise _custom(
                    "required",
                    "map each destinationConfigId to a name, e.g. "
                    '{ "abc123" = "tiktok_conversions" }',
                    suffix=("destinations",),
                )
        return self

    @property
    def label(self) -> str:
        """The feed's name: as configured, else its kind."""
        return self.name or self.kind

    @property
    def interval(self) -> float:
        """Seconds between scrapes or polls (statsd: its usual 1 s flush)."""
        if self.every is not None:
            return float(self.every)
        return {"statsd": 1.0, "prometheus": 15.0, "segment_delivery_overview": 20.0}[self.kind]

    def metric_roles(self) -> dict[str, MetricRole]:
        """rudder-server's mapping, with ``metrics`` on top (``"ignore"`` drops one)."""
        return {**RUDDER_METRICS, **self.metrics}

    def url_value(self) -> str:
        if self.url is not None:
            return self.url.get_secret_value()
        return SEGMENT_API

    def header_values(self) -> dict[str, str]:
        out = {k: v.get_secret_value() for k, v in self.headers.items()}
        if self.token is not None:
            out["Authorization"] = "Bearer " + self.token.get_secret_value()
        return out
