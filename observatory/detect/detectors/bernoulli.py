"""error_rate and rate_limit: Bernoulli CUSUMs on the share of attempts that fail or get a 429.

Each attempt is a trial, bad with probability p0 = max(learned ratio, floor) normally and
p1 = max(10·p0, 5 %) under the fault (DESIGN "Detection"). The ratio starts from a prior worth
25 events, so a 0.3 ev/s destination does not alarm on its ordinary errors before its own ratio
is learned; at least 5 bad events are needed. Either escalates to critical when it also cuts
throughput (the motivating case: 429s cascading into a blackout).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from observatory.detect.counts import SecondCounts
from observatory.detect.destination import RATIO_TAU, STATUS_SECONDS
from observatory.detect.detectors.base import HEADLINE_CAUSE, Firing
from observatory.detect.detectors.cusum import MIN_EVENTS, CusumDetector, share_details
from observatory.detect.stats import LearnedRatio, bernoulli_llr
from observatory.detect.wording import pct, per_s

if TYPE_CHECKING:
    from observatory.config import DetectionConfig
    from observatory.detect.destination import Destination

THROUGHPUT_CUT = 0.5  # delivered below this share of expected = throughput cut (critical)
PRIOR_WEIGHT = 25.0  # events' worth of the prior ratio
P1_FLOOR = 0.05  # the fault's share of bad attempts is at least this


class BernoulliDetector(CusumDetector[Firing]):
    """A Bernoulli CUSUM on one kind of bad attempt (the subclass says which)."""

    firing_class = Firing
    headline_rank = HEADLINE_CAUSE
    prior: ClassVar[float]  # the ratio before any is learned
    p0_floor: ClassVar[float]  # the normal share is taken as at least this

    def __init__(self, dest: Destination, h: float, config: DetectionConfig) -> None:
        super().__init__(dest, h, config)
        self.ratio = LearnedRatio(self.prior, PRIOR_WEIGHT, RATIO_TAU)

    @staticmethod
    @abstractmethod
    def bad(c: SecondCounts) -> int:
        """The second's bad attempts."""

    @abstractmethod
    def describe(self, firing: Firing, when: str, delivered: float, base: float) -> str:
        """The finding in words."""

    def learn(self, c: SecondCounts) -> None:
        if not self.gathering():
            self.ratio.update(self.bad(c), c.total)

    def step(self, sec: int, c: SecondCounts) -> bool:
        n = c.total
        if n <= 0:
            return False
        p0 = min(max(self.ratio.p, self.p0_floor), 0.5)
        p1 = min(max(10.0 * p0, P1_FLOOR), 0.99)
        a, b = bernoulli_llr(p0, p1)
        self.p0, self.p1 = p0, p1
        bad = self.bad(c)
        llr = bad * a + (n - bad) * b
        return self.advance(sec, llr, bad, n, MIN_EVENTS, self.dest.rate.rate * a)

    def follow(self, firing: Firing, sec: int, c: SecondCounts) -> None:
        # The reverse test: normal traffic against the fault as observed.
        n, k = c.total, self.bad(c)
        p0 = firing.p0
        a, b = bernoulli_llr(p0, max(firing.fault, firing.p1))
        llr = k * a + (n - k) * b
        typical = n * (p0 * a + (1.0 - p0) * b)
        firing.k += k
        firing.n += n
        firing.reverse.push(llr, typical, float(n))
        if self.throughput_cut(firing, sec):
            firing.severity = "critical"

    def throughput_cut(self, firing: Firing, sec: int) -> bool:
        """Delivered significantly below half of expected since the fault began (<= 60 s)."""
        rows = self.dest.recent(min(STATUS_SECONDS, sec - firing.onset + 1))
        half = THROUGHPUT_CUT * sum(r.expected for r in rows)
        delivered = sum(r.delivered for r in rows)
        return half > 0 and (half - delivered) / math.sqrt(half) >= 2.0

    def summary(self, firing: Firing, until: float | None = None) -> str:
        rows = self.window(firing, until)
        delivered = sum(r.delivered for r in rows) / max(len(rows), 1)
        base = self.dest.expected_delivered_rate()
        return self.describe(firing, self.when(firing, until), delivered, base)

    def details(self, firing: Firing) -> dict[str, Any]:
        return {**super().details(firing), **share_details(firing)}

    def headline(self, firing: Firing) -> tuple[int, float]:
        return self.headline_rank, firing.k / firing.n if firing.n else 0.0


class ErrorRateDetector(BernoulliDetector):
    """Attempts that failed or were rejected: p0 = max(learned ratio, 0.2 %), prior 2 %."""

    name = "error_rate"
    base_severity = "error"
    prior = 0.02
    p0_floor = 0.002

    @staticmethod
    def bad(c: SecondCounts) -> int:
        return c.failed + c.rejected

    def describe(self, firing: Firing, when: str, delivered: float, base: float) -> str:
        share = firing.k / firing.n if firing.n else 0.0
        return (
            f"{pct(share)} of attempts failed or rejected {when} "
            f"({firing.k}/{firing.n}, normally {pct(firing.p0)}); delivered "
            f"{per_s(delivered)}/s vs {per_s(base)}/s baseline"
        )


class RateLimitDetector(BernoulliDetector):
    """Attempts answered with a 429: p0 = max(learned ratio, 0.1 %), prior 0.1 %."""

    name = "rate_limit"
    base_severity = "warning"
    prior = 0.001
    p0_floor = 0.001

    @staticmethod
    def bad(c: SecondCounts) -> int:
        return c.rate_limited

    def describe(self, firing: Firing, when: str, delivered: float, base: float) -> str:
        share = firing.k / firing.n if firing.n else 0.0
        return (
            f"{pct(share)} of attempts rate-limited {when} ({firing.k}/{firing.n}); "
            f"delivered {per_s(delivered)}/s vs {per_s(base)}/s baseline"
        )
