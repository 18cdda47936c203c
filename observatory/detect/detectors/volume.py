"""volume_drop: a binomial CUSUM on the destination's share of (itself + a pool of healthy
destinations), testing a fall to half its baseline share.

The same upstream traffic feeds every destination, so campaign minutes and waves cancel. The
engine builds the pool each second (``dest.pi0``, ``dest.pool_count``): destinations in an
incident, and those whose own count/baseline ratio is far from the median, are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from observatory.detect.counts import SecondCounts
from observatory.detect.detectors.base import HEADLINE_VOLUME, STOPPED, Firing
from observatory.detect.detectors.cusum import CusumDetector
from observatory.detect.stats import bernoulli_llr, poisson_llr
from observatory.detect.wording import pct, sig

VOLUME_REVERSE_SHARE = 0.5  # (a halved flow is close to normal: volume_drop asks for more)


@dataclass
class VolumeFiring(Firing):
    """A volume drop; ``k``: own events, ``n``: own + pool events since onset."""

    expected: float = 0.0  # own events expected since onset


def volume_expected(pi0: float, others: float) -> float:
    """A destination's own count expected beside `others` pool events, at its share pi0."""
    return pi0 / (1.0 - pi0) * others if 0.0 < pi0 < 1.0 else 0.0


class VolumeDropDetector(CusumDetector[VolumeFiring]):
    """Fewer events than the destination's share of the upstream traffic."""

    name = "volume_drop"
    base_severity = "error"
    judges_flow = True
    headline_rank = HEADLINE_VOLUME
    reverse_share = VOLUME_REVERSE_SHARE
    firing_class = VolumeFiring

    def step(self, sec: int, c: SecondCounts) -> bool:
        dest = self.dest
        if not (dest.pi0 > 0.0 and dest.rate.settled):
            return False
        # binomial on its share of (itself + pool), against half its baseline share
        pi0 = dest.pi0
        y = dest.pool_count
        total = c.total
        llr = y * math.log(2.0) - (total + y) * math.log(2.0 - pi0)
        self.p0, self.p1 = pi0, pi0 / (2.0 - pi0)
        full = dest.pool_rate * math.log(2.0 / (2.0 - pi0))
        return self.advance(sec, llr, total, total + y, 0, full)

    def fire(self, sec: int) -> VolumeFiring:
        firing = super().fire(sec)
        firing.expected = volume_expected(firing.p0, firing.n - firing.k)
        return firing

    def observe_fault(self, firing: VolumeFiring, k: int, n: int) -> None:
        """Twice the lowest ratio to its expected count seen, within [0.1, 0.5]: a flow that
        stopped is told from normal by a few events, a halved one needs more."""
        expected = volume_expected(firing.p0, n - k)
        ratio = min(0.5, max(STOPPED, 2.0 * k / expected)) if expected > 0.0 else 0.5
        firing.fault = min(firing.fault or 1.0, ratio)

    def follow(self, firing: VolumeFiring, sec: int, c: SecondCounts) -> None:
        # The reverse test: normal traffic against the fault as observed.
        dest = self.dest
        pi0 = dest.pi0
        total = c.total
        if not 0.0 < pi0 < 1.0:
            # no pool: its own count against its baseline rate (Poisson)
            trials = dest.rate.rate
            llr, typical = poisson_llr(total, trials, firing.fault)
        else:
            y = dest.pool_count
            expected = volume_expected(pi0, y)
            pi1 = firing.fault * pi0 / (firing.fault * pi0 + 1.0 - pi0)
            a, b = bernoulli_llr(pi0, pi1)
            llr = total * a + y * b
            typical = expected * a + y * b
            trials = expected
            firing.k += total
            firing.n += total + y
            firing.expected += expected
        firing.reverse.push(llr, typical, trials)

    def summary(self, firing: VolumeFiring, until: float | None = None) -> str:
        ratio = firing.k / firing.expected if firing.expected > 0 else 0.0
        return (
            f"volume at {pct(ratio)} of its usual share {self.when(firing, until)} "
            f"({firing.k} events vs {firing.expected:.0f} expected)"
        )

    def details(self, firing: VolumeFiring) -> dict[str, Any]:
        pi0 = firing.p0
        return {
            **super().details(firing),
            "events": firing.k,
            "expected_events": sig(firing.expected),
            "ratio": sig(firing.k / firing.expected) if firing.expected else 0.0,
            "share": sig(firing.k / firing.n) if firing.n else 0.0,
            "baseline_share": sig(pi0),
            "tested_share": sig(pi0 / (2.0 - pi0)),
        }
