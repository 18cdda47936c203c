"""What the engine is fed: per-destination, per-second counts in event time.

The runtime aggregates newly stored events into these in DuckDB (one GROUP BY per commit)
and hands them to the engine; a second can arrive in several pieces (late lines, several
sources), and the engine adds them up.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    slow: int = 0  # events slower than the engine's latency threshold for this destination
    latency_n: int = 0  # events that carried a latency
    latency_sum: float = 0.0  # sum of their latencies (ms)
    latency_max: float = 0.0  # the slowest one (ms)

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
        self.slow += other.slow
        self.latency_n += other.latency_n
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
