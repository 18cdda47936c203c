"""Seeded synthetic traffic as :class:`SecondCounts`, for the detection tests and benchmark.

Bursty like real conversion traffic: every destination is fed by the same upstream multiplier
(an hourly wave of ±30 % and campaign minutes at 3x that start and end abruptly), counts are
Poisson per second, outcomes carry ordinary background errors (~0.5 %) and 429s (~0.05 %),
latencies come as the aggregator's per-second histogram, drawn from a chosen shape
(``latency_shapes``: lognormal by default). Faults are injected on one destination over
``[start, end)``. Not used by the engine itself (numpy is only needed here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from observatory.detect.counts import SecondCounts, bin_floor_ms, latency_bin
from observatory.sim import latency_shapes

FaultKind = Literal["failures", "rate_limit", "silence", "volume", "latency", "timeouts"]
TIMEOUT_MS = 30_000.0  # a timed-out request's latency

# background outcome probabilities of an attempt
P_FAILED = 0.003
P_REJECTED = 0.002
P_RATE_LIMITED = 0.0005
PVALS = [1 - P_FAILED - P_REJECTED - P_RATE_LIMITED, P_FAILED, P_REJECTED, P_RATE_LIMITED]


@dataclass(frozen=True)
class Fault:
    """A fault on one destination over ``[start, end)`` (epoch seconds).

    ``level``: failures / rate_limit: the share of attempts that fail / get a 429 (1.0 = all);
    volume: the factor on the event rate (0.5 = half); latency: the factor on latencies;
    timeouts: the share of events that take ``TIMEOUT_MS`` instead (a tail fault, the bulk
    unchanged); silence: ignored (no events at all).
    """

    kind: FaultKind
    destination: str
    start: int
    end: int
    level: float = 1.0

    def active(self, sec: int) -> bool:
        return self.start <= sec < self.end


@dataclass
class Traffic:
    """Per-second traffic of several destinations sharing one upstream multiplier."""

    rates: Mapping[str, float]  # events/s at multiplier 1
    start: int
    duration: int
    seed: int = 0
    faults: Sequence[Fault] = ()
    wave: float = 0.3  # amplitude of the hourly wave
    campaign_every: float = 1200.0  # mean seconds between campaign starts
    campaign_factor: float = 3.0
    campaign_minutes: tuple[int, int] = (1, 5)
    # latency distribution (latency_shapes), for every destination or per destination name
    latency_shape: latency_shapes.Shape | Mapping[str, latency_shapes.Shape] = "lognormal"
    bursts: bool = False  # batchy noise: lone one-second bursts of failures, 429s or slow events
    burst_every: float = 60.0  # mean seconds between bursts at a destination (at least)
    burst_size: tuple[int, int] = (20, 200)
    burst_share: float = 0.02  # at most this share of a destination's events are burst events
    burst_gap: int = 30  # seconds at least between two bursts of a destination (each is alone)
    multiplier: np.ndarray = field(init=False, repr=False)
    _rng: np.random.Generator = field(init=False, repr=False)
    _counts: dict[str, np.ndarray] = field(init=False, repr=False)
    _uniform: np.ndarray = field(init=False, repr=False)
    _bursts: dict[tuple[str, int], tuple[str, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._rng = rng
        t = np.arange(self.duration, dtype=float)
        phase = rng.uniform(0, 2 * math.pi)
        mult = 1.0 + self.wave * np.sin(2 * math.pi * t / 3600.0 + phase)
        pos = rng.exponential(self.campaign_every)
        while pos < self.duration:
            length = 60 * int(rng.integers(self.campaign_minutes[0], self.campaign_minutes[1] + 1))
            mult[int(pos) : int(pos) + length] *= self.campaign_factor
            pos += length + rng.exponential(self.campaign_every)
        self.multiplier = mult
        # attempts and background outcomes per second: columns delivered, failed, rejected, 429
        self._counts = {}
        for name in sorted(self.rates):
            lam = self.rates[name] * mult
            for fault in self.faults:
                if fault.destination != name:
                    continue
                lo = max(0, fault.start - self.start)
                hi = max(0, min(self.duration, fault.end - self.start))
                if fault.kind == "silence":
                    lam[lo:hi] = 0.0
                elif fault.kind == "volume":
                    lam[lo:hi] *= fault.level
            n = rng.poisson(lam)
            self._counts[name] = rng.multinomial(n, PVALS)
        self._uniform = rng.uniform(size=(self.duration, len(self.rates)))
        self._bursts = self._plan_bursts() if self.bursts else {}

    def _plan_bursts(self) -> dict[tuple[str, int], tuple[str, int]]:
        """Batchy noise: one failed, throttled or slow request of a batching forwarder lands its
        whole batch in one second. A batch holds at most ~10 s of a destination's events (20 to
        200); bursts come about once per ``burst_every`` seconds, less often where burst events
        would be more than ``burst_share`` of the traffic (a slow destination sends few batches),
        and never within ``burst_gap`` s of each other: each is alone, nothing failing before or
        after (a run of failed requests is a short outage). Own generator: the rest of the
        traffic is the same with or without bursts."""
        rng = np.random.default_rng([self.seed, 7919])
        out: dict[tuple[str, int], tuple[str, int]] = {}
        lo, hi = self.burst_size
        for name in sorted(self.rates):
            rate = self.rates[name]
            top = int(min(hi, max(lo, 10.0 * rate)))
            mean_size = (lo + top) / 2.0
            every = max(self.burst_every, mean_size / (self.burst_share * rate))
            gap = min(self.burst_gap, every / 2.0)
            pos = rng.exponential(every)
            while pos < self.duration:
                kind = str(rng.choice(["failed", "rate_limited", "slow"]))
                out[(name, int(pos))] = (kind, int(rng.integers(lo, top + 1)))
                pos += gap + rng.exponential(every - gap)
        return out

    def burst_seconds(self) -> list[tuple[str, int, str, int]]:
        """The planned bursts: (destination, epoch second, kind, events)."""
        return sorted((n, self.start + i, k, size) for (n, i), (k, size) in self._bursts.items())

    def second(self, sec: int) -> list[SecondCounts]:
        """The counts of second ``sec``."""
        i = sec - self.start
        out: list[SecondCounts] = []
        for name in sorted(self.rates):
            delivered, failed, rejected, limited = (int(x) for x in self._counts[name][i])
            n = delivered + failed + rejected + limited
            factor = 1.0
            timeouts = 0.0
            for fault in self.faults:
                if fault.destination != name or not fault.active(sec):
                    continue
                if fault.kind in ("failures", "rate_limit") and n:
                    hit = int(self._rng.binomial(n, fault.level))
                    rest = self._rng.multinomial(n - hit, PVALS)
                    delivered, failed, rejected, limited = (int(x) for x in rest)
                    if fault.kind == "failures":
                        failed += hit
                    else:
                        limited += hit
                elif fault.kind == "latency":
                    factor *= fault.level
                elif fault.kind == "timeouts":
                    timeouts = fault.level
            burst = self._bursts.get((name, i))
            if n == 0 and burst is None:
                out.append(SecondCounts(name, sec))
                continue
            shape = self.shape_of(name)
            hist: dict[int, int] = {}
            top = total = 0.0
            if n:
                probs, mean = latency_shapes.bin_probabilities(shape, factor)
                slow = int(self._rng.binomial(n, timeouts)) if timeouts else 0
                drawn = self._rng.multinomial(n - slow, probs)
                hist = {int(b): int(drawn[b]) for b in np.flatnonzero(drawn)}
                total = mean * (n - slow) + TIMEOUT_MS * slow
                if slow:
                    hist[latency_bin(TIMEOUT_MS)] = slow
                top = bin_floor_ms(max(hist)) * 1.1
            counts = SecondCounts(
                name,
                sec,
                delivered=delivered,
                rate_limited=limited,
                rejected=rejected,
                failed=failed,
                latency_n=n,
                latency_sum=total,
                latency_max=top,
                hist=hist,
            )
            if burst is not None:
                self._add_burst(counts, burst, latency_shapes.median(shape))
            out.append(counts)
        return out

    def shape_of(self, name: str) -> latency_shapes.Shape:
        shape = self.latency_shape
        return shape if isinstance(shape, str) else shape.get(name, "lognormal")

    @staticmethod
    def _add_burst(c: SecondCounts, burst: tuple[str, int], median: float) -> None:
        """One batch's events, all in this second: failed, 429 or delivered but slow (10x)."""
        kind, size = burst
        latency = median * (10.0 if kind == "slow" else 1.0)
        if kind == "failed":
            c.failed += size
        elif kind == "rate_limited":
            c.rate_limited += size
        else:
            c.delivered += size
        b = latency_bin(latency)
        c.hist[b] = c.hist.get(b, 0) + size
        c.latency_n += size
        c.latency_sum += size * latency
        c.latency_max = max(c.latency_max, latency)
