"""What the engine knows about one destination: its baselines, its recent history, its probes.

The engine owns these and updates them once per evaluated second; detectors read them (and
the latency detector learns the latency histogram, the probe detector keeps the probe states).
Each destination has its own instance of every detector (``detectors``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from observatory.detect.counts import SecondCounts
from observatory.detect.stats import BlockRate, GapStats, LatencyBaseline, LearnedRatio
from observatory.detect.trend import TrendRings

if TYPE_CHECKING:
    from observatory.detect.detectors.base import Detector

HISTORY_SECONDS = 1800
SPARKLINE_SECONDS = 300
RECENT_SECONDS = 10
STATUS_SECONDS = 60
RATE_TAU = 900.0  # baseline rate EWMA (s)
RATIO_TAU = 1800.0  # delivered, error and 429 ratios (s)
MIN_POOL_RATE = 5.0  # ev/s of pool baseline needed to estimate a destination's expected count


@dataclass(slots=True)
class Second:
    """One evaluated second of a destination, as kept in its history."""

    sec: int
    total: int
    delivered: int
    failed: int
    rejected: int
    rate_limited: int
    expected: float  # expected delivered events this second
    latency_n: int
    latency_sum: float
    slow: int = 0  # events above the latency threshold


@dataclass(slots=True)
class ProbeState:
    """What one probe of the destination said lately."""

    failures: int = 0  # consecutive bad results
    successes: int = 0  # consecutive good results
    bad_since: float | None = None
    status: str | None = None
    ok: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0


class Destination:
    """Everything the engine knows about one destination."""

    def __init__(self, name: str, first_sec: int) -> None:
        self.name = name
        self.first_sec = first_sec
        self.delay = 0  # judged this many seconds behind the clock (Engine.set_delay)
        # with a reporting input: every second before this is reported (Engine.reported)
        self.reported_until: int | None = None
        self.armed = False
        self.stale = False
        self.stale_after = 0  # stale until data for a later second than this arrives
        self.last_event_sec: int | None = None
        self.rate = BlockRate(RATE_TAU)
        self.fast = 0.0
        self.short = 0.0
        self.delivered = LearnedRatio(0.99, 5.0, RATIO_TAU)
        self.latency = LatencyBaseline()
        self.gaps = GapStats()
        self.gap_run = 0
        self.guard: deque[SecondCounts] = deque()
        self.probes: dict[str, ProbeState] = {}
        self.history: deque[Second] = deque(maxlen=HISTORY_SECONDS)
        self.trends = TrendRings()  # the panes' charts: the last minute, 15 minutes, hour
        # the pool context of the current second (set by the engine)
        self.pool_rate = 0.0
        self.pool_count = 0
        self.pool_mult = 1.0  # the pool's count against its baseline, smoothed (~30 events)
        self.pi0 = 0.0
        self.detectors: dict[str, Detector[Any]] = {}  # by name, in registry order (the engine's)

    def expected_delivered_rate(self) -> float:
        return self.rate.rate * self.delivered.p

    def expected_delivered(self) -> float:
        """Delivered events expected this second: the destination's baseline share of the pool's
        count when the pool is big enough (campaigns and waves cancel), else its baseline rate."""
        if self.pool_rate >= MIN_POOL_RATE and self.rate.rate > 0:
            total = self.rate.rate / self.pool_rate * self.pool_count
        else:
            total = self.rate.rate
        return total * self.delivered.p

    def mark_stale(self, after: int) -> None:
        """History, not an outage: no silence or volume alarms until data for a second after
        `after` arrives."""
        self.stale = True
        self.stale_after = after
        for detector in self.detectors.values():
            if detector.judges_flow:
                detector.reset()

    def record(self, sec: int, c: SecondCounts) -> None:
        """Keep an evaluated second in the history, with the delivered events it should have had."""
        expected = self.expected_delivered()
        self.history.append(
            Second(
                sec,
                c.total,
                c.delivered,
                c.failed,
                c.rejected,
                c.rate_limited,
                expected,
                c.latency_n,
                c.latency_sum,
                c.slow,
            )
        )
        self.trends.add(sec, c.delivered, c.rate_limited, c.failed + c.rejected, expected)

    def record_idle(self, sec: int, history: bool) -> None:
        """A second the clock skipped (nothing happened): in the trends, and with
        ``history`` in the history too."""
        if history:
            self.history.append(Second(sec, 0, 0, 0, 0, 0, 0.0, 0, 0.0))
        self.trends.add(sec, 0, 0, 0, 0.0)

    def forget_since(self, onset: int) -> None:
        """A fault began at ``onset``: its first seconds are not normal traffic to learn from."""
        while self.guard and self.guard[-1].sec >= onset:
            self.guard.pop()
        self.gap_run = 0

    def recent(self, seconds: int) -> list[Second]:
        n = len(self.history)
        if n <= seconds:
            return list(self.history)
        return [self.history[i] for i in range(n - seconds, n)]
