"""What the CUSUM detectors (volume_drop, error_rate, rate_limit, latency) share: a one-sided
CUSUM of one second's log-likelihood ratio, capped for persistence, and how a firing reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from observatory.detect.detectors.base import Detector, F, Firing
from observatory.detect.stats import Cusum, wilson
from observatory.detect.wording import sig

if TYPE_CHECKING:
    from observatory.config import DetectionConfig
    from observatory.detect.destination import Destination

MIN_EVENTS = 5  # at least this many bad events before a Bernoulli detector alarms
SECOND_CAP = (0.4, 0.6)  # shares of h one second's LLR may add to a CUSUM (persistence)


class CusumDetector(Detector[F]):
    """A detector whose statistic is a one-sided CUSUM ``S = max(0, S + LLR)`` (DESIGN
    "Detection"): alarm at ``S >= h``; the onset is where S last left 0 (refined)."""

    firing_class: type[F]

    def __init__(self, dest: Destination, h: float, config: DetectionConfig) -> None:
        super().__init__(dest, h, config)
        self.cusum = Cusum(h)
        self.p0 = 0.0  # the hypotheses of the last step: normal ...
        self.p1 = 0.0  # ... against the fault

    def advance(self, sec: int, llr: float, k: int, n: int, min_k: int, full: float) -> bool:
        """Step the CUSUM with one second's LLR, capped for persistence; True in alarm.

        Forwarders send batches (50-200 events a request), so one failed, throttled or slow
        request lands all its events in one second: they are one observation, not 200
        independent trials. No second may add more than ``SECOND_CAP`` of h, so an alarm needs
        evidence from at least two seconds with bad events (a positive LLR needs a bad event):
        a real fault persists, a lone batch drains. Within that band the cap is ``full``, what
        one second of the destination's normal traffic gives when it is all bad: a fast
        destination's fault passes h in two seconds, and a slow destination (whose real faults
        give a few nats a second) cannot be lifted high by a burst and stay there for minutes.
        """
        cusum = self.cusum
        lo, hi = SECOND_CAP
        llr = min(llr, min(max(full, lo * self.h), hi * self.h))
        cusum.step(sec, llr, k, n)
        return cusum.s >= self.h and cusum.k >= min_k

    def gathering(self) -> bool:
        return self.cusum.s >= self.h / 2.0

    def reset(self) -> None:
        self.cusum.reset()

    def fire(self, sec: int) -> F:
        cusum = self.cusum
        refined, k, n = cusum.refined()
        firing = self.firing_class(
            detector=self.name,
            onset=refined if refined is not None else sec,
            fired_at=float(sec + 1),
            statistic=cusum.s,
            limit=self.h,
            severity=self.base_severity,
            last_abnormal=sec,
            p0=self.p0,
            p1=self.p1,
            k=k,
            n=n,
        )
        cusum.reset()
        self.observe_fault(firing, k, n)
        return firing

    def again(self, firing: F, sec: int) -> None:
        _, k, n = self.cusum.refined()
        self.observe_fault(firing, k, n)
        self.cusum.reset()

    def observe_fault(self, firing: F, k: int, n: int) -> None:
        """Track how bad the fault looked, for the reverse test's alternative: half the worst
        share of bad events seen (an alarm picks a bad-looking stretch), at least p1."""
        if n > 0:
            firing.fault = min(max(firing.fault, firing.p1, 0.5 * k / n), 0.99)

    def details(self, firing: F) -> dict[str, Any]:
        return {"statistic": sig(firing.statistic), "h": sig(self.h)}


def share_details(firing: Firing) -> dict[str, Any]:
    """Evidence of a test on a share of events (bad of trials, with its Wilson interval)."""
    lo, hi = wilson(firing.k, firing.n)
    return {
        "events": firing.k,
        "trials": firing.n,
        "ratio": sig(firing.k / firing.n) if firing.n else 0.0,
        "wilson95": [sig(lo), sig(hi)],
        "p0": sig(firing.p0),
        "p1": sig(firing.p1),
    }
