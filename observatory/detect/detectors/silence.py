"""silence: nothing delivered for longer than the destination's traffic explains.

The run of seconds without a delivered event is the CUSUM against "rate 0" (any delivery resets
it); it alarms at ``max(ln(λ̂·e^h)/λ̂, 3×p99.9 observed gap, silence_floor)`` seconds, λ̂ the lower
of the baseline and the recent delivered rate (and, with a pool, the upstream's current level:
a campaign's end is not a silence). "No attempts" and "attempts but nothing delivered" are told
apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from observatory.detect.counts import SecondCounts
from observatory.detect.destination import MIN_POOL_RATE
from observatory.detect.detectors.base import (
    HEADLINE_NO_ATTEMPTS,
    HEADLINE_SILENCE,
    STOPPED,
    Detector,
    Firing,
)
from observatory.detect.stats import poisson_llr
from observatory.detect.wording import clock, iso_s, per_s, sig

if TYPE_CHECKING:
    from observatory.config import DetectionConfig
    from observatory.detect.destination import Destination


@dataclass
class SilenceFiring(Firing):
    """A silence: the run that fired, followed until deliveries come back."""

    rate: float = 0.0  # expected delivered rate when the run started
    start: int = 0
    run: int = 0  # seconds without a delivered event
    attempts: int = 0  # ... and what was attempted meanwhile
    failed: int = 0
    rate_limited: int = 0
    rejected: int = 0
    ended: int | None = None  # the first second with a delivery again


class SilenceDetector(Detector[SilenceFiring]):
    """Seconds without a delivered event (with or without attempts)."""

    name = "silence"
    base_severity = "critical"
    judges_flow = True
    headline_rank = HEADLINE_SILENCE

    def __init__(self, dest: Destination, h: float, config: DetectionConfig) -> None:
        super().__init__(dest, h, config)
        self.run = 0
        self.start = 0
        self.limit = math.inf
        self.rate = 0.0  # expected delivered rate when the run started
        self.attempts = self.failed = self.rate_limited = self.rejected = 0

    def reset(self) -> None:
        self.run = 0
        self.limit = math.inf
        self.attempts = self.failed = self.rate_limited = self.rejected = 0

    def resolved(self, fired: bool) -> None:
        self.reset()  # a run that began inside the incident is no new silence

    def limits(self) -> tuple[float, float]:
        """Seconds without a delivered event that alarm, and the rate they were judged at."""
        dest = self.dest
        rate = min(dest.rate.rate, dest.fast) * dest.delivered.p
        if dest.pool_rate >= MIN_POOL_RATE:
            # judged at the upstream's current level: a campaign's end is not a silence
            rate = min(rate, dest.rate.rate * dest.pool_mult * dest.delivered.p)
        if rate <= 0.0:
            return math.inf, 0.0
        limit = max(
            (self.h + math.log(rate)) / rate,
            3.0 * dest.gaps.p999(),
            float(self.config.silence_floor),
        )
        return limit, rate

    def step(self, sec: int, c: SecondCounts) -> bool:
        if c.delivered > 0:
            self.reset()
            return False
        if self.run == 0:
            self.start = sec
            self.limit, self.rate = self.limits()
        self.run += 1
        self.attempts += c.total
        self.failed += c.failed
        self.rate_limited += c.rate_limited
        self.rejected += c.rejected
        return self.run >= self.limit

    def fire(self, sec: int) -> SilenceFiring:
        return SilenceFiring(
            detector=self.name,
            onset=self.start,
            fired_at=float(sec + 1),
            statistic=float(self.run),
            limit=self.limit,
            severity=self.base_severity,
            last_abnormal=sec,
            rate=self.rate,
            start=self.start,
            run=self.run,
            attempts=self.attempts,
            failed=self.failed,
            rate_limited=self.rate_limited,
            rejected=self.rejected,
        )

    def follow(self, firing: SilenceFiring, sec: int, c: SecondCounts) -> None:
        # The reverse test on delivered events (Poisson): normal traffic against a trickle of
        # it. A flow back at half its rate is volume_drop's to judge.
        expected = self.dest.expected_delivered()
        firing.reverse.push(*poisson_llr(c.delivered, expected, STOPPED), expected)
        if self.run > 0 and self.start == firing.start:
            firing.run = self.run
            firing.attempts = self.attempts
            firing.failed = self.failed
            firing.rate_limited = self.rate_limited
            firing.rejected = self.rejected
        elif firing.ended is None:
            firing.ended = firing.start + firing.run
        if self.run > 0 and self.run >= self.limit:
            firing.last_abnormal = sec

    def when(self, firing: SilenceFiring, until: float | None) -> str:
        if firing.ended is not None:
            return f"from {clock(firing.onset)} to {clock(firing.ended)}"
        return super().when(firing, until)

    def summary(self, firing: SilenceFiring, until: float | None = None) -> str:
        when = self.when(firing, until)
        base = self.dest.expected_delivered_rate()
        if firing.attempts == 0:
            return f"no events {when} (expected {per_s(base)}/s)"
        return (
            f"nothing delivered {when} although {firing.attempts} attempts were made "
            f"({firing.failed} failed, {firing.rate_limited} rate-limited, "
            f"{firing.rejected} rejected); {per_s(base)}/s delivered normally"
        )

    def details(self, firing: SilenceFiring) -> dict[str, Any]:
        return {
            "silent_for_s": firing.run,
            "ended": iso_s(firing.ended) if firing.ended is not None else None,
            "limit_s": sig(firing.limit),
            "expected_delivered_per_s": sig(firing.rate),
            "attempts_during_silence": firing.attempts,
            "failed": firing.failed,
            "rate_limited": firing.rate_limited,
            "rejected": firing.rejected,
            "kind": "no_attempts" if firing.attempts == 0 else "attempts_not_delivered",
        }

    def headline(self, firing: SilenceFiring) -> tuple[int, float]:
        # Attempts that were made and failed have a cause to tell; none at all is the story.
        return (HEADLINE_NO_ATTEMPTS if firing.attempts == 0 else self.headline_rank), 0.0
