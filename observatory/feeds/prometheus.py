"""The Prometheus feed: scrape a metrics endpoint (rudder-server's, or any exporter with the
same names) and turn counter increases into per-second counts.

Scrapes run half a second before a whole second; each scrape's increase of a series is spread
over the whole seconds since the previous scrape and reported up to that whole second (what
happened in its last half second counts in the next scrape). The destination is judged one
second less than the interval behind the clock: a scrape's oldest second is judged 0.75 s
after the scrape began, so a TikTok 429 storm shows within a scrape interval and 2 s; a scrape
slower than that leaves its oldest seconds unknown, never zero.

Counters are reset-safe: a value below the last one is a restart, and the whole value is the
increase (as Prometheus' ``increase()`` takes it). A series that first appears after the first
scrape counts from 0; the first scrape only sets where each series stands. Lines that do not
parse are counted as rejects; the rest of the scrape counts.
"""

from __future__ import annotations

import math

from observatory.feeds.base import (
    MAX_REJECT_SAMPLES,
    FeedReport,
    MetricMap,
    SecondTally,
    sample,
    spread,
)
from observatory.feeds.exposition import parse_exposition
from observatory.feeds.polled import PolledFeed, PollError

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class PrometheusFeed(PolledFeed):
    poll_offset = -0.5

    def setup(self) -> None:
        super().setup()
        self.map = MetricMap(self.config)
        self.previous: dict[SeriesKey, float] | None = None
        self.previous_sec: int | None = None
        self.destinations: set[str] = set()
        self.resets = 0

    @property
    def delay(self) -> int:
        return max(0, math.ceil(self.config.interval) - 1)

    def poll(self, now: float) -> FeedReport:
        response = self.get(self.config.url_value())
        try:
            text = response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise PollError("the metrics body is not UTF-8") from None
        return self.digest(text, math.floor(now + 0.5))  # the whole second it runs before

    def digest(self, text: str, sec: int) -> FeedReport:
        """One scrape's body, taken at second ``sec``: the increases since the last one."""
        samples, bad = parse_exposition(text)
        if not samples and bad:
            raise PollError(f"no sample parsed ({len(bad)} bad lines)")
        values: dict[SeriesKey, float] = {}
        for s in samples:
            if self.map.role(s.name) is None or math.isnan(s.value):
                continue
            key = (s.name, tuple(sorted(s.labels.items())))
            values[key] = values.get(key, 0.0) + s.value
        report = FeedReport(
            self.name,
            rejected=len(bad),
            samples=[sample(line) for line in bad[:MAX_REJECT_SAMPLES]],
        )
        previous, since = self.previous, self.previous_sec
        self.previous, self.previous_sec = values, sec
        if previous is None or since is None or sec <= since:
            return report  # the first scrape: where each series stands
        tally = SecondTally()
        seconds = range(since, sec)
        # response counts first: they decide whether event_delivery counts (MetricMap)
        for (name, labels), value in sorted(
            values.items(), key=lambda kv: self.map.role(kv[0][0]) != "responses"
        ):
            tags = dict(labels)
            dest = self.map.destination(tags)
            if dest is None:
                continue
            self.destinations.add(dest)
            role = self.map.role(name)
            if role is None or role == "latency":
                continue
            before = previous.get((name, labels), 0.0)
            if value < before:
                self.resets += 1
                before = 0.0  # restarted: everything since counts
            increase = round(value - before)
            column = self.map.column(role, tags, dest)
            if column is None:
                continue
            for at, n in spread(increase, seconds):
                tally.add(dest, at, column, n)
        report.counts = tally.take(sec)
        report.reported = dict.fromkeys(self.destinations, sec)
        return report
