"""Statistical building blocks of the detectors: CUSUM, learned ratios and rates, the latency
threshold tracker, the gap distribution and the Wilson interval.

Everything here is plain arithmetic on per-second counts: no clock, no I/O, deterministic.
"""

from __future__ import annotations

import math
from collections import deque


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
_TRACKER_BATCH = 100  # latency events per update: about one expected slow event
_TRACKER_INIT_EVENTS = 100
EXACT_SHARE = 0.75  # use the empirical p99 while this share of latencies is known exactly
LATENCY_FLOOR_MS = 50.0  # an event is never "slow" below this: a few ms of host jitter on a
# loopback or LAN endpoint (p99 of 5-15 ms) doubles its latency but is no incident


class LatencyThreshold:
    """Tracks a destination's p99 latency from the per-second counts it is fed.

    The engine only sees per-second aggregates. A slow destination's seconds mostly hold one or
    two events, whose latencies the aggregates give exactly (the sum, or the max and the rest):
    while three in four latencies are known that way, the threshold is the empirical p99 of the
    last 1000 of them. Otherwise the p99 is found by stochastic approximation on the feedback
    loop: the runtime counts ``slow`` events with the current threshold, and every ~100 latency
    events the threshold moves (in log space) by ``gain·(observed slow share / 1 % − 1)``. It
    starts at the largest latency of the first ~100 events (about their p99), uses a decreasing
    gain at first, and never goes below the mean latency, so a runtime that does not count
    ``slow`` cannot drive it to zero. ``updates`` says how settled it is.
    """

    __slots__ = (
        "log_t",
        "updates",
        "samples",
        "_new",
        "_exact",
        "_seen",
        "_init_n",
        "_init_max",
        "_n",
        "_k",
        "_mean_n",
        "_mean_sum",
    )

    def __init__(self) -> None:
        self.log_t: float | None = None
        self.updates = 0
        self.samples: deque[float] = deque(maxlen=1000)
        self._new = 0
        self._exact = 0.0
        self._seen = 0.0
        self._init_n = 0
        self._init_max = 0.0
        self._n = 0
        self._k = 0
        self._mean_n = 0.0
        self._mean_sum = 0.0

    @property
    def threshold(self) -> float | None:
        """What counts as slow: the p99, but at least ``LATENCY_FLOOR_MS``."""
        return None if self.log_t is None else max(math.exp(self.log_t), LATENCY_FLOOR_MS)

    def observe(self, latency_n: int, latency_sum: float, latency_max: float, slow: int) -> None:
        if latency_n <= 0:
            return
        keep = 0.999
        self._mean_n = self._mean_n * keep + latency_n
        self._mean_sum = self._mean_sum * keep + latency_sum
        self._seen = self._seen * keep + latency_n
        self._exact *= keep
        if latency_n == 1:
            self.samples.append(latency_sum)
            self._exact += 1
            self._new += 1
        elif latency_n == 2:
            self.samples.append(latency_max)
            self.samples.append(max(latency_sum - latency_max, 0.0))
            self._exact += 2
            self._new += 2
        if self._exact >= EXACT_SHARE * self._seen and len(self.samples) >= _TRACKER_INIT_EVENTS:
            if self._new >= 10 or self.log_t is None:
                ordered = sorted(self.samples)
                index = max(0, math.ceil(LATENCY_QUANTILE * len(ordered)) - 1)
                if ordered[index] > 0.0:
                    self.log_t = math.log(ordered[index])
                    self.updates = max(self.updates + 1, len(self.samples) // 10)
                self._new = 0
            return
        self._track(latency_n, latency_max, slow)

    def _track(self, latency_n: int, latency_max: float, slow: int) -> None:
        if self.log_t is None:
            self._init_n += latency_n
            self._init_max = max(self._init_max, latency_max)
            if self._init_n >= _TRACKER_INIT_EVENTS and self._init_max > 0.0:
                self.log_t = math.log(self._init_max)
            return
        self._n += latency_n
        self._k += slow
        if self._n < _TRACKER_BATCH:
            return
        err = self._k / (self._n * (1.0 - LATENCY_QUANTILE)) - 1.0
        err = min(max(err, -1.0), 3.0)
        gain = max(0.03, 0.5 / (self.updates + 2))
        floor = math.log(LATENCY_FLOOR_MS)
        if self.log_t < floor:
            # ``slow`` was counted at the floor: more than 1 % above it puts the p99 above it;
            # fewer says only that the p99 is below (keep the estimate)
            if err > 0.0:
                self.log_t = floor + gain * err
        else:
            self.log_t += gain * err
        mean = self._mean_sum / self._mean_n if self._mean_n > 0 else 0.0
        if mean > 0.0:
            self.log_t = max(self.log_t, math.log(mean))
        self.updates += 1
        self._n = 0
        self._k = 0


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
