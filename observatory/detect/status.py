"""The dashboard's view of a destination (:class:`DestinationStatus`), read from the engine.

Rates are over evaluated seconds in event time; nothing here changes the engine's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from observatory.detect.destination import (
    RECENT_SECONDS,
    SPARKLINE_SECONDS,
    STATUS_SECONDS,
    Destination,
)
from observatory.incidents.model import Incident, Severity

DestinationState = Literal["ok", "degraded", "down", "stale", "warmup"]


@dataclass
class DestinationStatus:
    """What the UI shows for a destination (rates over evaluated seconds, event time)."""

    destination: str
    state: DestinationState
    rate_now: float  # attempts/s over the last ~10 evaluated seconds (retries included)
    success_pct: float | None  # delivered / attempts over the last minute
    rate_limited_pct: float | None  # rate-limited / attempts over the last minute
    avg_latency_ms: float | None  # over the last minute
    last_event_ts: float | None  # start of the last second that had an event (fed, not evaluated)
    incident_id: str | None
    # Delivered events per second, oldest first, up to 300: throughput, so a 429 storm
    # shows as the collapse it is, not as the surge of retried attempts it also is.
    sparkline: list[int]
    severity: Severity | None = None
    delivered_now: float = 0.0  # delivered events/s over the last ~10 evaluated seconds
    baseline_rate: float | None = None  # events/s
    latency_threshold_ms: float | None = None
    probe_ok: bool | None = None  # None: no probe results
    delay_s: int = 0  # judged this far behind the clock (a lagging feed)
    feed: str | None = None  # the feed its numbers come from, and how often (None: log lines)
    feed_error: str | None = None  # why the feed's last scrape or poll failed


def destination_status(dest: Destination, incident: Incident | None) -> DestinationStatus:
    """``dest`` as the dashboard shows it; ``incident`` is its open incident, if any."""
    recent = dest.recent(RECENT_SECONDS)
    minute = dest.recent(STATUS_SECONDS)
    attempts = sum(r.total for r in minute)
    latency_n = sum(r.latency_n for r in minute)
    state: DestinationState
    if dest.stale:
        state = "stale"  # history, even if an incident from the backlog is still open
    elif incident is not None:
        state = "down" if incident.severity == "critical" else "degraded"
    elif not dest.armed:
        state = "warmup"
    else:
        state = "ok"
    probe_ok = None
    if dest.probes:
        probe_ok = all(s.bad_since is None for s in dest.probes.values())
    last = dest.last_event_sec
    return DestinationStatus(
        destination=dest.name,
        state=state,
        rate_now=sum(r.total for r in recent) / len(recent) if recent else 0.0,
        success_pct=100.0 * sum(r.delivered for r in minute) / attempts if attempts else None,
        rate_limited_pct=100.0 * sum(r.rate_limited for r in minute) / attempts
        if attempts
        else None,
        avg_latency_ms=(sum(r.latency_sum for r in minute) / latency_n if latency_n else None),
        last_event_ts=float(last) if last is not None else None,
        incident_id=incident.id if incident is not None else None,
        sparkline=[r.delivered for r in dest.recent(SPARKLINE_SECONDS)],
        delivered_now=sum(r.delivered for r in recent) / len(recent) if recent else 0.0,
        severity=incident.severity if incident is not None else None,
        baseline_rate=dest.rate.rate if dest.rate.events else None,
        latency_threshold_ms=dest.latency.threshold,
        probe_ok=probe_ok,
        delay_s=dest.delay,
    )
