"""A destination's recent traffic in buckets, for the dashboard panes' charts.

Three windows of :data:`BUCKETS` buckets each (:data:`WINDOWS`): the last minute by the
second, the last 15 minutes by 15 s, the last hour by the minute. The engine keeps one
:class:`BucketRing` per window for each destination and adds every evaluated second to all
three (a few additions per second, nothing rescanned), so a Snapshot copies 60 numbers per
series and window, and the wire carries them as they are.

Buckets are aligned to whole multiples of their step in epoch seconds (a minute bucket is a
clock minute), so a viewer can put them on a time axis; a bucket holds sums plus how many
evaluated seconds it has, so a bucket under way (or one the clock skipped part of) is read as
a mean over the seconds it has, and a bucket with none is "no data", not zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The windows (seconds) a pane's chart can show, and the buckets each is split into.
WINDOWS = (60, 900, 3600)
BUCKETS = 60


@dataclass
class Trend:
    """One window of buckets, oldest first: bucket ``i`` covers the ``step`` seconds from
    ``end - (BUCKETS - i) * step``. Per bucket: ``seconds`` (evaluated seconds in it; 0: no
    data), and the sums of delivered, rate-limited (429) and failed (failed or rejected)
    events and of the delivered events the baseline expected (one decimal)."""

    step: int
    end: int  # epoch s, exclusive: the end of the newest bucket
    seconds: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    rate_limited: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    expected: list[float] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.end - len(self.seconds) * self.step

    @property
    def window(self) -> int:
        return len(self.seconds) * self.step

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trend:
        """From its wire form (orjson of one: an object of lists)."""
        return cls(
            step=int(data["step"]),
            end=int(data["end"]),
            seconds=[int(v) for v in data.get("seconds") or []],
            delivered=[int(v) for v in data.get("delivered") or []],
            rate_limited=[int(v) for v in data.get("rate_limited") or []],
            failed=[int(v) for v in data.get("failed") or []],
            expected=[float(v) for v in data.get("expected") or []],
        )


class BucketRing:
    """The last ``size`` buckets of ``step`` seconds, updated one evaluated second at a time.

    Slot ``b % size`` holds bucket ``b`` (``sec // step``) and remembers which bucket it
    holds, so a gap in the seconds (the clock skipping idle time) leaves old buckets behind
    as no data rather than mixing them into new ones."""

    __slots__ = (
        "step",
        "size",
        "_bucket",
        "_seconds",
        "_delivered",
        "_limited",
        "_failed",
        "_expected",
        "_last",
    )

    def __init__(self, step: int, size: int = BUCKETS) -> None:
        self.step = step
        self.size = size
        self._bucket = [-1] * size
        self._seconds = [0] * size
        self._delivered = [0] * size
        self._limited = [0] * size
        self._failed = [0] * size
        self._expected = [0.0] * size
        self._last: int | None = None  # the newest second added

    def add(
        self, sec: int, delivered: int, rate_limited: int, failed: int, expected: float
    ) -> None:
        bucket = sec // self.step
        slot = bucket % self.size
        if self._bucket[slot] != bucket:
            self._bucket[slot] = bucket
            self._seconds[slot] = 0
            self._delivered[slot] = 0
            self._limited[slot] = 0
            self._failed[slot] = 0
            self._expected[slot] = 0.0
        self._seconds[slot] += 1
        self._delivered[slot] += delivered
        self._limited[slot] += rate_limited
        self._failed[slot] += failed
        self._expected[slot] += expected
        if self._last is None or sec > self._last:
            self._last = sec

    @property
    def last(self) -> int | None:
        """The newest second added (None: none yet)."""
        return self._last

    def trend(self, last: int | None = None) -> Trend:
        """The ``size`` buckets up to the one holding second ``last`` (default: the newest
        second added); buckets not held are empty (no data)."""
        last = self._last if last is None else last
        newest = (last if last is not None else 0) // self.step
        out = Trend(step=self.step, end=(newest + 1) * self.step)
        for bucket in range(newest - self.size + 1, newest + 1):
            slot = bucket % self.size
            if last is not None and self._bucket[slot] == bucket:
                out.seconds.append(self._seconds[slot])
                out.delivered.append(self._delivered[slot])
                out.rate_limited.append(self._limited[slot])
                out.failed.append(self._failed[slot])
                out.expected.append(round(self._expected[slot], 1))
            else:
                out.seconds.append(0)
                out.delivered.append(0)
                out.rate_limited.append(0)
                out.failed.append(0)
                out.expected.append(0.0)
        return out


class TrendRings:
    """A destination's rings, one per window in :data:`WINDOWS`."""

    __slots__ = ("rings",)

    def __init__(self) -> None:
        self.rings = [BucketRing(window // BUCKETS) for window in WINDOWS]

    def add(
        self, sec: int, delivered: int, rate_limited: int, failed: int, expected: float
    ) -> None:
        for ring in self.rings:
            ring.add(sec, delivered, rate_limited, failed, expected)

    def trends(self) -> list[Trend]:
        """One :class:`Trend` per window, in :data:`WINDOWS` order, all ending at the
        newest second added."""
        last = self.rings[0].last
        return [ring.trend(last) for ring in self.rings]


def trends_of(seconds: Iterable[tuple[int, int, int, int, float]]) -> list[Trend]:
    """The windows' trends of ``(sec, delivered, rate_limited, failed, expected)`` rows in
    time order (history read back from the database: a STALE pane's last stretch)."""
    rings = TrendRings()
    for sec, delivered, limited, failed, expected in seconds:
        rings.add(sec, delivered, limited, failed, expected)
    return rings.trends()
