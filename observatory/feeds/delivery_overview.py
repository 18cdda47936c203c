"""The Segment Delivery Overview feed: per-minute successes and failures from Segment's Public
API, for teams whose forwarder is Segment itself (no delivery log to tail).

Each poll asks, per configured ``destinationConfigId``, ``GET /delivery-overview/
successful-delivery`` and ``/failed-delivery`` (``groupBy=discardReason``) at MINUTE
granularity, for the minutes not yet taken that are complete: the API is about 30 s behind, so
a minute counts once it ended ``lag`` ago (45 s by default). Partial minutes are never taken;
a minute's counts are spread evenly over its 60 seconds. The destination is judged
``60 + lag + every + 5`` seconds behind the clock, so a minute is in before its first second
is judged; a poll the API refused (429: ``Retry-After``, ``msBeforeNext``) or that failed
leaves its minutes unreported, which the engine treats as unknown, not silent.

The first poll (before going live) takes the last ``BACKFILL`` of minutes, so the
destination starts with a baseline. Failure reasons are free text: those naming 429 or too
many requests count as rate limited, server and timeout errors as failed, the rest rejected.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson

from observatory.feeds.base import FeedReport, SecondTally, sample, spread
from observatory.feeds.polled import PolledFeed, PollError
from observatory.util.isotime import iso, parse_iso
from observatory.util.retry_after import ms_before_next

BACKFILL = 30 * 60  # s of complete minutes the first poll takes
MARGIN = 5  # s on top of lag and poll interval before a minute's first second is judged
_RATE_WORDS = ("429", "too many", "rate limit", "ratelimit", "throttl")
_FAILED_WORDS = ("500", "502", "503", "504", "timeout", "timed out", "internal", "unavailable")


def reason_column(reason: object) -> str:
    """A discard reason as a counts field."""
    text = str(reason or "").lower()
    if any(w in text for w in _RATE_WORDS):
        return "rate_limited"
    if not text or any(w in text for w in _FAILED_WORDS):
        return "failed"
    return "rejected"


def _minute(text: object) -> int | None:
    try:
        return math.floor(parse_iso(str(text)) / 60) * 60
    except ValueError:
        return None


class DeliveryOverviewFeed(PolledFeed):
    def setup(self) -> None:
        super().setup()
        self.next_minute: dict[str, int] = {}  # per destinationConfigId, the first minute not taken

    @property
    def delay(self) -> int:
        return 60 + math.ceil(self.config.lag) + math.ceil(self.config.interval) + MARGIN

    def backfill(self) -> FeedReport | None:
        return self.poll(self.clock())  # a failed call is in the report, never raised

    def body_retry_at(self, response: httpx.Response, now: float) -> float | None:
        ms = ms_before_next(response.content)
        return None if ms is None else now + ms / 1000.0

    def poll(self, now: float) -> FeedReport:
        end = math.floor((now - self.config.lag) / 60) * 60  # minutes before it are complete
        report = FeedReport(self.name)
        tally = SecondTally()
        base = self.config.url_value().rstrip("/")
        for config_id, dest in self.config.destinations.items():
            start = self.next_minute.get(config_id, end - BACKFILL)
            if start >= end:
                continue
            try:
                self._take(base, config_id, dest, start, end, report, tally)
            except PollError as exc:  # its minutes stay unreported (unknown); try again later
                report.error = str(exc)
                break
        report.counts = tally.take(end)
        return report

    def _take(
        self,
        base: str,
        config_id: str,
        dest: str,
        start: int,
        end: int,
        report: FeedReport,
        tally: SecondTally,
    ) -> None:
        """One destination's complete minutes in [start, end), into ``tally``."""
        params = {
            "sourceId": str(self.config.source_id),
            "destinationConfigId": config_id,
            "startTime": iso(start),
            "endTime": iso(end),
            "granularity": "MINUTE",
        }
        ok = self._dataset(base + "/delivery-overview/successful-delivery", params, report)
        failed = self._dataset(
            base + "/delivery-overview/failed-delivery",
            {**params, "groupBy": "discardReason"},
            report,
        )
        for entries, fixed in ((ok, "delivered"), (failed, None)):  # both answered
            for entry in entries:
                column = fixed or reason_column(entry.get("discardReason"))
                for minute, count in _series(entry, start, end, report):
                    add_minute(tally, dest, minute, column, count)
        self.next_minute[config_id] = end
        report.reported[dest] = end

    def _dataset(
        self, url: str, params: dict[str, str], report: FeedReport
    ) -> list[dict[str, Any]]:
        response = self.get(url, params)
        try:
            body = orjson.loads(response.content)
            dataset = body["data"]["dataset"]
            if not isinstance(dataset, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            report.rejected += 1
            report.samples.append(sample(response.text))
            raise PollError("the Delivery Overview answer has no data.dataset list") from None
        return [e for e in dataset if isinstance(e, dict)]


def add_minute(tally: SecondTally, destination: str, minute: int, column: str, count: int) -> None:
    """One minute bucket's count, spread evenly over its 60 seconds."""
    for sec, n in spread(count, range(minute, minute + 60)):
        tally.add(destination, sec, column, n)


def _series(
    entry: dict[str, Any], start: int, end: int, report: FeedReport
) -> list[tuple[int, int]]:
    """(minute, count) of one dataset entry inside [start, end); bad points are rejects."""
    out: list[tuple[int, int]] = []
    series = entry.get("series")
    if not isinstance(series, list):
        return out
    for point in series:
        minute = _minute(point.get("time")) if isinstance(point, dict) else None
        count = point.get("count") if isinstance(point, dict) else None
        if minute is None or not isinstance(count, int | float) or isinstance(count, bool):
            report.rejected += 1
            report.samples.append(sample(str(point)))
            continue
        if start <= minute < end and count > 0:
            out.append((minute, int(count)))
    return out
