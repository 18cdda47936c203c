"""The dashboard's view of a destination (:class:`DestinationStatus`), read from the engine.

Rates are over evaluated seconds in event time; nothing here changes the engine's state.

Every figure on a pane's stats line (delivered/s, the success and 429 shares, the mean
latency) is over the same window, the last ``STATE_SECONDS`` evaluated seconds, and the pane
names it. The state follows one rule (``STATE_RULES``, shown in the help screen too), over that
same window, so the badge and the figures beside it agree (when delivery comes back, DOWN turns
to DEGRADED within a second, not when the incident resolves):

* STALE: the destination's log lines are older than the staleness window (history, not live);
* DOWN: an incident is open and nothing was delivered in the last ``STATE_SECONDS`` s;
* DEGRADED: an incident is open and something was delivered in that window (too little, too
  many errors or 429s, too slow: the detectors, with their false-alarm budget, are the
  thresholds; an incident stays open through its quiet period before resolving);
* WARMUP: no incident, and not yet enough history for the detectors to judge it;
* OK: none of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from observatory.detect.destination import (
    RECENT_SECONDS,
    SPARKLINE_SECONDS,
    Destination,
)
from observatory.detect.trend import Trend
from observatory.incidents.model import Incident, Severity

DestinationState = Literal["ok", "degraded", "down", "stale", "warmup"]

# The window (evaluated seconds) of the state and of every figure on the pane's stats line.
STATE_SECONDS = RECENT_SECONDS

# The state rule in plain words, for the help screen (the module docstring says the same).
STATE_RULES: list[tuple[str, str]] = [
    ("STALE", "its newest log line is older than the staleness window: history, not live"),
    ("DOWN", f"an incident is open and nothing was delivered in the last {STATE_SECONDS} s"),
    (
        "DEGRADED",
        f"an incident is open and something was delivered in the last {STATE_SECONDS} s "
        "(too little, too many errors or 429s, or too slow)",
    ),
    ("WARMUP", "no incident; not enough history yet to judge it"),
    ("OK", "none of these"),
]


@dataclass
class DestinationStatus:
    """What the UI shows for a destination (rates over evaluated seconds, event time)."""

    destination: str
    state: DestinationState
    rate_now: float  # attempts/s over the last window_s evaluated seconds (retries included)
    success_pct: float | None  # delivered / attempts over the last window_s seconds
    rate_limited_pct: float | None  # rate-limited / attempts over the last window_s seconds
    avg_latency_ms: float | None  # over the last window_s seconds
    last_event_ts: float | None  # start of the last second that had an event (fed, not evaluated)
    incident_id: str | None
    # Delivered events per second, oldest first, up to 300: throughput, so a 429 storm
    # shows as the collapse it is, not as the surge of retried attempts it also is.
    sparkline: list[int]
    severity: Severity | None = None
    delivered_now: float = 0.0  # delivered events/s over the last window_s evaluated seconds
    baseline_rate: float | None = None  # events/s
    latency_threshold_ms: float | None = None
    probe_ok: bool | None = None  # None: no probe results
    delay_s: int = 0  # judged this far behind the clock (a lagging feed)
    feed: str | None = None  # the feed its numbers come from, and how often (None: log lines)
    feed_error: str | None = None  # why the feed's last scrape or poll failed
    window_s: int = STATE_SECONDS  # the window of the state and the figures above
    # the pane's chart: one Trend per window of detect.trend.WINDOWS (1, 15, 60 minutes)
    trends: list[Trend] = field(default_factory=list)


def pane_state(stale: bool, incident_open: bool, armed: bool, delivered: int) -> DestinationState:
    """The state rule (``STATE_RULES``); ``delivered``: events delivered in the last
    ``STATE_SECONDS`` evaluated seconds."""
    if stale:
        return "stale"  # history, even if an incident from the backlog is still open
    if incident_open:
        return "degraded" if delivered > 0 else "down"
    if not armed:
        return "warmup"
    return "ok"


class _Counted(Protocol):
    """A second's counts as the engine keeps them (``Second``) or as read back from storage
    (``SecondCounts``)."""

    # read-only: a field of one, a property of the other
    @property
    def total(self) -> int: ...
    @property
    def delivered(self) -> int: ...
    @property
    def rate_limited(self) -> int: ...
    @property
    def latency_n(self) -> int: ...
    @property
    def latency_sum(self) -> float: ...


@dataclass(frozen=True)
class WindowFigures:
    """A pane's figures over a window of seconds (its stats line)."""

    rate_now: float  # attempts/s
    delivered_now: float  # delivered/s
    success_pct: float | None  # delivered / attempts
    rate_limited_pct: float | None  # rate-limited / attempts
    avg_latency_ms: float | None


def window_figures(rows: Sequence[_Counted], seconds: int) -> WindowFigures:
    """The figures of ``rows`` (the window's seconds that had counts), rates per second over
    ``seconds``; shares None without attempts, latency None without latencies."""
    attempts = sum(r.total for r in rows)
    latency_n = sum(r.latency_n for r in rows)
    return WindowFigures(
        rate_now=attempts / seconds if seconds else 0.0,
        delivered_now=sum(r.delivered for r in rows) / seconds if seconds else 0.0,
        success_pct=100.0 * sum(r.delivered for r in rows) / attempts if attempts else None,
        rate_limited_pct=100.0 * sum(r.rate_limited for r in rows) / attempts if attempts else None,
        avg_latency_ms=sum(r.latency_sum for r in rows) / latency_n if latency_n else None,
    )


def destination_status(dest: Destination, incident: Incident | None) -> DestinationStatus:
    """``dest`` as the dashboard shows it; ``incident`` is its open incident, if any."""
    recent = dest.recent(STATE_SECONDS)
    figures = window_figures(recent, len(recent))
    delivered = sum(r.delivered for r in recent)
    state = pane_state(dest.stale, incident is not None, dest.armed, delivered)
    probe_ok = None
    if dest.probes:
        probe_ok = all(s.bad_since is None for s in dest.probes.values())
    last = dest.last_event_sec
    return DestinationStatus(
        destination=dest.name,
        state=state,
        rate_now=figures.rate_now,
        success_pct=figures.success_pct,
        rate_limited_pct=figures.rate_limited_pct,
        avg_latency_ms=figures.avg_latency_ms,
        last_event_ts=float(last) if last is not None else None,
        incident_id=incident.id if incident is not None else None,
        sparkline=[r.delivered for r in dest.recent(SPARKLINE_SECONDS)],
        delivered_now=figures.delivered_now,
        severity=incident.severity if incident is not None else None,
        baseline_rate=dest.rate.rate if dest.rate.events else None,
        latency_threshold_ms=dest.latency.threshold,
        probe_ok=probe_ok,
        delay_s=dest.delay,
        trends=dest.trends.trends(),
    )
