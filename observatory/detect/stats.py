"""Statistical building blocks of the detectors: log-likelihood ratios, CUSUM, learned ratios and
rates, the latency baseline, the gap distribution and the Wilson interval.

Everything here is plain arithmetic on per-second counts: no clock, no I/O, deterministic.
"""

from __future__ import annotations

import math
from collections import deque

from observatory.detect.counts import LN_BIN_BASE, MAX_BIN, bin_floor_ms


def threshold_h(
    n_destinations: int, n_detectors: int, budget: tuple[int, float], tick: float
) -> float:
    """The CUSUM threshold ``h = ln(N·D·T/Δ)`` for a budget of ``count`` false alarms per ``T``.

    Lorden's bound gives each one-sided CUSUM an average run length of at least ``e^h`` ticks
    without a change, so N destinations times D detectors raise at most ``count`` alarms per
    period. ``count`` > 1 divides the ratio (a looser budget lowers h).
    """
    count, period = budget
    ratio = max(n_destinations, 1) * max(n_detectors, 1) * period / (tick * max(count, 1))
    return max(math.log(max(ratio, 1.0)), 3.0)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a proportion ``k/n``."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    den = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def decay(tau: float) -> float:
    """Per-second retention factor of an EWMA with time constant ``tau`` seconds."""
    return math.exp(-1.0 / tau)


def bernoulli_llr(p0: float, p1: float) -> tuple[float, float]:
    """Log-likelihood ratio coefficients (bad event, good event) of p1 against p0."""
    return math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))


def poisson_llr(count: int, expected: float, rho: float) -> tuple[float, float]:
    """Log-likelihood ratio of a rate cut to `rho` of normal against normal, for `count`
    events where `expected` were due; and what normal traffic typically gives (negative)."""
    a = math.log(rho)
    return count * a + expected * (1.0 - rho), expected * (a + 1.0 - rho)


def logaddexp(x: float, y: float) -> float:
    """ln(e^x + e^y) without overflow."""
    hi, lo = (x, y) if x >= y else (y, x)
    return hi + math.log1p(math.exp(lo - hi))


ONSET_SLACK = 2.0  # nats: the onset is the latest start within this much of the best one
_EXCURSION_MAX = 3600


class Cusum:
    """One-sided CUSUM ``S = max(0, S + LLR)``, capped at ``2h``.

    ``onset`` is the start of the second in which S last left 0: the change point that
    maximises the log-likelihood ratio of the data since. ``refined_onset()`` is the latest
    start whose ratio is within ``ONSET_SLACK`` nats of that maximum, which ignores an old
    ordinary error still draining at a slow destination. ``k`` and ``n`` count the abnormal
    events and trials since ``onset`` (for "at least 5 failures" and for the evidence).
    """

    __slots__ = ("h", "s", "onset", "k", "n", "_steps")

    def __init__(self, h: float) -> None:
        self.h = h
        self.s = 0.0
        self.onset: int | None = None
        self.k = 0
        self.n = 0
        self._steps: deque[tuple[int, float, int, int]] = deque(maxlen=_EXCURSION_MAX)

    def step(self, sec: int, llr: float, k: int, n: int) -> None:
        if self.s <= 0.0:
            if llr <= 0.0:
                return
            self.onset = sec
            self.k = 0
            self.n = 0
            self._steps.clear()
        self.s = min(2.0 * self.h, self.s + llr)
        if self.s <= 0.0:
            self.reset()
            return
        self.k += k
        self.n += n
        self._steps.append((sec, llr, k, n))

    def refined(self) -> tuple[int | None, int, int]:
        """(onset, k, n) from the latest start within ``ONSET_SLACK`` of the best start."""
        if not self._steps:
            return self.onset, self.k, self.n
        sums: list[float] = []
        total = 0.0
        for step in reversed(self._steps):
            total += step[1]
            sums.append(total)
        best = max(sums)
        for i, value in enumerate(sums):  # i = 0 is the latest start
            if value >= best - ONSET_SLACK:
                steps = list(self._steps)[len(sums) - 1 - i :]
                return steps[0][0], sum(s[2] for s in steps), sum(s[3] for s in steps)
        return self.onset, self.k, self.n

    def reset(self) -> None:
        self.s = 0.0
        self.onset = None
        self.k = 0
        self.n = 0
        self._steps.clear()


class LearnedRatio:
    """A proportion learned as exponentially decayed counts plus a fixed prior.

    ``p = (k + prior·weight) / (n + weight)``: the prior keeps a young, slow destination from
    alarming on its ordinary errors before its own ratio is known.
    """

    __slots__ = ("k", "n", "prior", "weight", "keep")

    def __init__(self, prior: float, weight: float, tau: float) -> None:
        self.k = 0.0
        self.n = 0.0
        self.prior = prior
        self.weight = weight
        self.keep = decay(tau)

    def update(self, k: int, n: int) -> None:
        self.k = self.k * self.keep + k
        self.n = self.n * self.keep + n

    @property
    def p(self) -> float:
        return (self.k + self.prior * self.weight) / (self.n + self.weight)


MIN_BLOCK_EVENTS = 20.0
MAX_BLOCK_SECONDS = 300
SETTLED_EVENTS = 200  # a rate from this many events is within about 7 % (1 sd)


class BlockRate:
    """A destination's baseline rate (events/s): an EWMA updated in blocks.

    For its first ``tau`` seconds it is the plain mean (an EWMA started from a few minutes'
    mean would carry a slow destination's lucky or unlucky start for its whole memory: 50
    events at 0.3 ev/s are only within ±14 %). Every destination's rate is weighted the same
    way over time, so their shares stay comparable. Afterwards each update covers a block of
    seconds holding about 20 expected events (one second at 20 ev/s and more, about a minute at
    0.3 ev/s) and the block's rate is clipped to ``[rate/2, 2·rate]``, so a campaign minute or a
    dark minute moves the baseline by a bounded step; clipping per second would bias a slow
    destination (its seconds are mostly 0 or 1) towards zero.
    """

    __slots__ = ("rate", "tau", "events", "_seconds", "_events", "_block_s", "_block_n")

    def __init__(self, tau: float) -> None:
        self.rate = 0.0
        self.tau = tau
        self.events = 0  # all events learned from
        self._seconds = 0
        self._events = 0
        self._block_s = 0
        self._block_n = 0

    def learn(self, x: int) -> None:
        """Warm-up: the running mean."""
        self.events += x
        self._seconds += 1
        self._events += x
        self.rate = self._events / self._seconds

    @property
    def settled(self) -> bool:
        """Learned from enough events for its share to be judged (volume_drop arms)."""
        return self.events >= SETTLED_EVENTS

    def update(self, x: int) -> None:
        if self._seconds < self.tau:
            self.learn(x)
            return
        self.events += x
        self._block_s += 1
        self._block_n += x
        if self._block_s * self.rate < MIN_BLOCK_EVENTS and self._block_s < MAX_BLOCK_SECONDS:
            return
        observed = self._block_n / self._block_s
        if self.rate > 0.0:
            observed = min(max(observed, self.rate / 2.0), self.rate * 2.0)
        alpha = 1.0 - math.exp(-self._block_s / self.tau)
        self.rate += alpha * (observed - self.rate)
        self._block_s = 0
        self._block_n = 0

    def scale(self, factor: float) -> None:
        """Follow the upstream traffic while frozen (keeps the destination's share)."""
        self.rate *= factor
        self._events = round(self._events * factor)


class GapStats:
    """Distribution of silent runs (seconds without a delivered event) between events.

    ``p999()`` approximates the 99.9th percentile of the gap between consecutive lines: a run of
    L empty seconds is a gap of about L+1 s; with fewer than 1000 events it is the longest gap.
    """

    __slots__ = ("runs", "events")

    def __init__(self) -> None:
        self.runs: dict[int, int] = {}
        self.events = 0

    def add_events(self, n: int) -> None:
        self.events += n

    def add_run(self, length: int) -> None:
        self.runs[length] = self.runs.get(length, 0) + 1

    def p999(self) -> float:
        limit = 0.001 * self.events
        seen = 0
        for length in sorted(self.runs, reverse=True):
            seen += self.runs[length]
            if seen > limit:
                return float(length + 1)
        return 1.0


LATENCY_QUANTILE = 0.99
LATENCY_TAU = 600.0  # the baseline histogram forgets with this time constant (s) ...
LATENCY_MEMORY_EVENTS = 2000.0  # ... but keeps at least about this many events' worth
LATENCY_ARM_EVENTS = 100.0  # events learned before the threshold is trusted (latency arms)
LATENCY_FLOOR_MS = 50.0  # an event is never "slow" below this: a few ms of host jitter on a
# loopback or LAN endpoint (p99 of 5-15 ms) doubles its latency but is no incident
LATENCY_SHIFT_BINS = 5  # the slowdown the shift test is tuned to: every latency x1.25^5 = x3
LATENCY_LLR_CAP = 4.0  # nats: no single event says more than this
_SMOOTH = 0.01  # share of a flat distribution in both hypotheses: no bin is impossible
_TABLE_EVERY = 10  # learned seconds between two rebuilds of the shift test's table
_FLOOR_BIN = math.ceil(math.log(LATENCY_FLOOR_MS) / LN_BIN_BASE)  # first bin wholly above it
_RESCALE_BELOW = 1e-100
_NBINS = MAX_BIN + 1


class LatencyBaseline:
    """A destination's usual latencies, as a decayed histogram on the fixed log-spaced bins.

    Two things are read from it, and neither assumes a shape (uniform, quantised to a few
    values, bimodal, heavy-tailed latencies are all learned as they are):

    * the *slow threshold*: the upper edge of the bin that holds the p99, so at most 1 % of the
      baseline's events lie above it and it is at most one bin (25 %) above the true p99. It
      never goes below ``LATENCY_FLOOR_MS``. Tail faults (some requests time out) show here.
    * the *shift table*: per bin, the log-likelihood ratio of "every latency about 3x slower"
      (the histogram moved up ``LATENCY_SHIFT_BINS`` bins) against the baseline. Bulk slowdowns
      show here even where few events pass the old p99 (a heavy tail, a quantised or bimodal
      distribution).

    Nothing here depends on what was counted slow, so there is no feedback loop to undershoot.
    Memory is ``LATENCY_TAU`` seconds, stretched to about ``LATENCY_MEMORY_EVENTS`` events for
    a slow destination (no decay in a second without events); weights are kept scaled by a
    running factor so a second costs one multiplication, not one per bin.
    """

    __slots__ = (
        "_weights",
        "_scale",
        "mass",
        "_sum",
        "first_slow_bin",
        "shift_llr",
        "shift_typical",
        "_dirty",
        "_since_table",
    )

    def __init__(self) -> None:
        self._weights: dict[int, float] = {}  # bin -> weight / _scale
        self._scale = 1.0
        self.mass = 0.0  # decayed events in the histogram
        self._sum = 0.0  # decayed sum of their latencies (ms), for the usual mean
        self.first_slow_bin: int | None = None  # events in this bin and above are slow
        self.shift_llr: list[float] = [0.0] * _NBINS
        self.shift_typical = 0.0  # what a normal event gives the shift test on average (< 0)
        self._dirty = False
        self._since_table = _TABLE_EVERY

    @property
    def armed(self) -> bool:
        return self.first_slow_bin is not None and self.mass >= LATENCY_ARM_EVENTS

    @property
    def threshold(self) -> float | None:
        """What counts as slow (ms): the lower edge of the first slow bin."""
        return None if self.first_slow_bin is None else bin_floor_ms(self.first_slow_bin)

    @property
    def mean(self) -> float | None:
        """The usual mean latency (ms)."""
        return self._sum / self.mass if self.mass > 0.0 else None

    def slow(self, hist: dict[int, int]) -> int:
        """Events of a second's histogram at or above the threshold."""
        first = self.first_slow_bin
        if first is None:
            return 0
        return sum(n for b, n in hist.items() if b >= first)

    def shift(self, hist: dict[int, int]) -> tuple[float, int]:
        """The shift test's log-likelihood ratio for a second's histogram, and how many of its
        events speak for the slowdown."""
        table = self.shift_llr
        llr = 0.0
        k = 0
        for b, n in hist.items():
            x = table[b]
            llr += n * x
            if x > 0.0:
                k += n
        return llr, k

    def learn(self, hist: dict[int, int], latency_sum: float) -> None:
        """Add a second's histogram after decaying what was there."""
        n = sum(hist.values())
        if n <= 0:
            return
        keep = max(math.exp(-1.0 / LATENCY_TAU), math.exp(-n / LATENCY_MEMORY_EVENTS))
        self._scale *= keep
        self.mass = self.mass * keep + n
        self._sum = self._sum * keep + latency_sum
        if self._scale < _RESCALE_BELOW:
            self._rescale()
        weights = self._weights
        inv = 1.0 / self._scale
        for b, k in hist.items():
            weights[b] = weights.get(b, 0.0) + k * inv
        self._dirty = True

    def refresh(self) -> None:
        """Read the p99's bin again after learning; rebuild the shift table now and then."""
        if not self._dirty or not self._weights:
            return
        self._dirty = False
        total = sum(self._weights.values())
        target = LATENCY_QUANTILE * total
        seen = 0.0
        for b in sorted(self._weights):
            seen += self._weights[b]
            if seen >= target:
                self.first_slow_bin = max(b + 1, _FLOOR_BIN)
                break
        self._since_table += 1
        if self._since_table >= _TABLE_EVERY or not self.armed:
            self._since_table = 0
            self._build_table(total)

    def _build_table(self, total: float) -> None:
        q = [0.0] * _NBINS
        for b, w in self._weights.items():
            q[b] = w / total
        shifted = [0.0] * _NBINS
        for b in range(_NBINS - LATENCY_SHIFT_BINS):
            shifted[b + LATENCY_SHIFT_BINS] = q[b]
        shifted[MAX_BIN] += sum(q[_NBINS - LATENCY_SHIFT_BINS :])
        flat = _SMOOTH / _NBINS
        keep = 1.0 - _SMOOTH
        table = self.shift_llr
        typical = 0.0
        for b in range(_NBINS):
            x = math.log((keep * shifted[b] + flat) / (keep * q[b] + flat))
            x = min(max(x, -LATENCY_LLR_CAP), LATENCY_LLR_CAP)
            table[b] = x
            typical += q[b] * x
        self.shift_typical = typical

    def _rescale(self) -> None:
        """Fold the running factor into the weights; drop bins that have faded away."""
        scale = self._scale
        total = self.mass
        self._weights = {b: w * scale for b, w in self._weights.items() if w * scale > 1e-9 * total}
        self._scale = 1.0


class ReverseTest:
    """The reverse test of a fired detector: is the destination's traffic normal again?

    Per second it keeps the log-likelihood ratio of the fault (as observed) against normal
    traffic, the ratio normal traffic would typically give (negative) and the trials, for the
    last ``longest`` seconds. It passes when the most recent window holds enough evidence for
    normal traffic: the window is the shortest suffix of at least ``shortest`` seconds in which
    normal traffic would typically give ``enough`` nats (a slow destination's window grows up to
    ``longest``), and there the ratio must favour normal traffic by ``margin`` nats and by
    ``share`` of what normal traffic typically gives.
    """

    __slots__ = ("shortest", "longest", "_llr", "_typical", "_trials")

    def __init__(self, shortest: int, longest: int) -> None:
        self.shortest = shortest
        self.longest = longest
        self._llr: deque[float] = deque(maxlen=longest)
        self._typical: deque[float] = deque(maxlen=longest)
        self._trials: deque[float] = deque(maxlen=longest)

    def push(self, llr: float, typical: float, trials: float) -> None:
        self._llr.append(llr)
        self._typical.append(typical)
        self._trials.append(trials)

    def window(self, enough: float) -> tuple[int, float, float, float]:
        """(seconds, llr, typical, trials) of the window judged now."""
        llr = typical = trials = 0.0
        seconds = 0
        newest_first = zip(
            reversed(self._llr), reversed(self._typical), reversed(self._trials), strict=True
        )
        for x, t, n in newest_first:
            llr += x
            typical += t
            trials += n
            seconds += 1
            if seconds >= self.shortest and -typical >= enough:
                break
        return seconds, llr, typical, trials

    def passes(self, enough: float, margin: float, share: float, min_trials: float) -> bool:
        if len(self._llr) < self.shortest:
            return False
        _, llr, typical, trials = self.window(enough)
        return trials >= min_trials and llr <= min(-margin, share * typical)
