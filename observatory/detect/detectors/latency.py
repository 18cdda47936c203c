"""latency: a CUSUM on a mixture of two tests of a second's latency histogram.

The alternative is an even mixture of two faults, each against the baseline: a tail fault (a
share p1 of events above the usual p99, a Bernoulli test) and a bulk slowdown (every latency
about 3x, the histogram shifted: ``LatencyBaseline.shift``). A mixture of two likelihood ratios
is a likelihood ratio, so the CUSUM's false-alarm bound (h) holds as for one test, while either
fault is caught at close to the speed of its own test.

The destination's latency histogram (``dest.latency``: its p99 threshold marks each second's
``slow`` events, and the dashboard shows it) is learned here, while this detector is not
gathering evidence of a slowdown.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from observatory.detect.counts import SecondCounts
from observatory.detect.detectors.base import HEADLINE_LATENCY, Firing
from observatory.detect.detectors.cusum import MIN_EVENTS, CusumDetector, share_details
from observatory.detect.stats import LearnedRatio, bernoulli_llr, logaddexp
from observatory.detect.wording import pct, sig

if TYPE_CHECKING:
    from observatory.config import DetectionConfig
    from observatory.detect.destination import Destination

_LN2 = math.log(2.0)
SLOW_TAU = 600.0  # share of slow events (s)


class LatencyDetector(CusumDetector[Firing]):
    """Slower than the destination's usual latencies: its tail or its bulk."""

    name = "latency"
    base_severity = "warning"
    headline_rank = HEADLINE_LATENCY
    firing_class = Firing

    def __init__(self, dest: Destination, h: float, config: DetectionConfig) -> None:
        super().__init__(dest, h, config)
        self.slow = LearnedRatio(0.01, 200.0, SLOW_TAU)  # share of events above the threshold

    def learn(self, c: SecondCounts) -> None:
        if c.hist and not self.gathering():
            latency = self.dest.latency
            if latency.first_slow_bin is not None:
                self.slow.update(min(c.slow, c.latency_n), c.latency_n)
            latency.learn(c.hist, c.latency_sum)
            latency.refresh()

    def step(self, sec: int, c: SecondCounts) -> bool:
        if not (c.hist and self.dest.latency.armed):
            return False
        p0 = min(max(self.slow.p, 0.01), 0.5)
        p1 = min(max(10.0 * p0, 0.1), 0.99)
        self.p0, self.p1 = p0, p1
        llr, k, n, _ = self.llr(c, p0, p1)
        full = self.dest.rate.rate * bernoulli_llr(p0, p1)[0]
        return self.advance(sec, llr, k, n, MIN_EVENTS, full)

    def llr(self, c: SecondCounts, p0: float, p1: float) -> tuple[float, int, int, float]:
        """The test of one second: (LLR, events speaking for a slowdown, events, what normal
        traffic typically gives)."""
        latency = self.dest.latency
        n = sum(c.hist.values())
        slow = min(c.slow, n)
        a, b = bernoulli_llr(p0, p1)
        tail = slow * a + (n - slow) * b
        bulk, k_bulk = latency.shift(c.hist)
        llr = logaddexp(tail, bulk) - _LN2
        typical = logaddexp(n * (p0 * a + (1.0 - p0) * b), n * latency.shift_typical) - _LN2
        return llr, (k_bulk if bulk > tail else slow), n, typical

    def follow(self, firing: Firing, sec: int, c: SecondCounts) -> None:
        # The reverse test: normal traffic against the fault as observed.
        llr, k, n, typical = self.llr(c, firing.p0, max(firing.fault, firing.p1))
        firing.k += k
        firing.n += n
        firing.reverse.push(llr, typical, float(n))

    def summary(self, firing: Firing, until: float | None = None) -> str:
        latency = self.dest.latency
        rows = self.window(firing, until)
        threshold = latency.threshold or 0.0
        timed = sum(r.latency_n for r in rows)
        slow = sum(r.slow for r in rows) / timed if timed else 0.0
        mean = sum(r.latency_sum for r in rows) / timed if timed else 0.0
        usual = latency.mean or 0.0
        return (
            f"latency up {self.when(firing, until)}: mean {mean:.0f} ms vs {usual:.0f} ms "
            f"usually; {pct(slow)} of events slower than {threshold:.0f} ms (above its usual "
            f"p99, normally {pct(firing.p0)} or fewer)"
        )

    def details(self, firing: Firing) -> dict[str, Any]:
        return {
            **super().details(firing),
            **share_details(firing),
            "threshold_ms": sig(self.dest.latency.threshold or 0.0),
            "usual_mean_ms": sig(self.dest.latency.mean or 0.0),
        }
