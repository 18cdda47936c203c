"""What the engine is fed: per-destination, per-second counts in event time.

The runtime aggregates newly stored events into these in DuckDB (one GROUP BY per commit)
and hands them to the engine; a second can arrive in several pieces (late lines, several
sources), and the engine adds them up.

Latencies come as a histogram on fixed log-spaced bins: bin ``b`` holds latencies in
``[BIN_BASE^b, BIN_BASE^(b+1))`` ms (below 1 ms in bin 0). Fixed bins add up exactly, whatever
order and pieces a second arrives in, so the engine judges "slow" the same way live and in a
replay, and its baseline p99 is read from a decayed histogram of them: no assumption about the
latencies' distribution (real ones are quantised, bounded or multimodal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BIN_BASE = 1.25  # a bin is 25 % wide: a p99 read from bins is within 25 % above the true one
LN_BIN_BASE = math.log(BIN_BASE)
MAX_BIN = 120  # 1.25^120 ms is about 13 years: anything above lands in the last bin


def latency_bin(ms: float) -> int:
    """The bin of a latency in ms (the same formula as the aggregator's SQL)."""
    if not ms > 1.0:  # also NaN
        return 0
    return min(int(math.floor(math.log(ms) / LN_BIN_BASE)), MAX_BIN)


def bin_floor_ms(b: int) -> float:
    """The lower edge of bin ``b`` in ms."""
    return BIN_BASE**b


@dataclass(slots=True)
class SecondCounts:
    """Events of one destination in one event-time second."""

    destination: str
    sec: int  # epoch second (event time)
    delivered: int = 0
    rate_limited: int = 0
    rejected: int = 0
    failed: int = 0
    retrying: int = 0
    dropped: int = 0
    latency_n: int = 0  # events that carried a latency
    latency_sum: float = 0.0  # sum of their latencies (ms)
    latency_max: float = 0.0  # the slowest one (ms)
    hist: dict[int, int] = field(default_factory=dict)  # latency bin -> events
    # events slower than the destination's threshold: set by the engine from ``hist``
    slow: int = 0
    # the highest share of its rate limit (percent) the destination reported in this second
    # (the logged ``rate_limit_used``, e.g. mParticle's X-mp-rate-limit-percentage-used);
    # None when no line carried one. Pieces combine by max: the peak is the warning.
    rate_limit_used: float | None = None

    @property
    def total(self) -> int:
        return (
            self.delivered
            + self.rate_limited
            + self.rejected
            + self.failed
            + self.retrying
            + self.dropped
        )

    def add(self, other: SecondCounts) -> None:
        self.delivered += other.delivered
        self.rate_limited += other.rate_limited
        self.rejected += other.rejected
        self.failed += other.failed
        self.retrying += other.retrying
        self.dropped += other.dropped
        self.latency_n += other.latency_n
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
        hist = self.hist
        for b, n in other.hist.items():
            hist[b] = hist.get(b, 0) + n
        if other.rate_limit_used is not None and (
            self.rate_limit_used is None or other.rate_limit_used > self.rate_limit_used
        ):
            self.rate_limit_used = other.rate_limit_used
