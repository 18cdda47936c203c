"""observatory.detect.trend: the panes' chart windows kept by the engine, one second at a time,
and read back from storage for a STALE pane."""

from __future__ import annotations

import orjson
import pytest

from observatory.config import DetectionConfig
from observatory.detect import Engine, SecondCounts
from observatory.detect.status import DestinationStatus
from observatory.detect.trend import BUCKETS, WINDOWS, BucketRing, Trend, trends_of
from observatory.snapshot import Snapshot, snapshot_from_json, snapshot_json

START = 1_699_999_200  # a whole hour, minute and 15 s in epoch seconds


def test_a_ring_sums_seconds_into_aligned_buckets() -> None:
    ring = BucketRing(15)
    for sec in range(START, START + 40):  # two whole buckets and 10 s of the third
        ring.add(sec, delivered=2, rate_limited=1, failed=0, expected=2.5)
    trend = ring.trend()
    assert trend.step == 15 and trend.end == START + 45 and trend.start == START + 45 - 900
    assert len(trend.seconds) == BUCKETS and trend.window == 900
    assert trend.seconds[-3:] == [15, 15, 10] and trend.seconds[:-3] == [0] * (BUCKETS - 3)
    assert trend.delivered[-3:] == [30, 30, 20] and trend.rate_limited[-1] == 10
    assert trend.expected[-3:] == [37.5, 37.5, 25.0]


def test_a_gap_leaves_old_buckets_behind_as_no_data() -> None:
    """A slot reused after the clock skipped ahead holds only the new bucket."""
    ring = BucketRing(1)
    ring.add(START, 5, 0, 0, 0.0)
    ring.add(START + BUCKETS, 7, 0, 0, 0.0)  # the same slot, one ring later
    trend = ring.trend()
    assert trend.delivered[-1] == 7 and sum(trend.delivered) == 7
    assert sum(trend.seconds) == 1


def test_the_engine_keeps_the_three_windows_of_every_destination() -> None:
    engine = Engine(DetectionConfig())
    seconds = 1200
    for sec in range(START, START + seconds):
        limited = 6 if sec >= START + seconds - 120 else 0  # a 429 storm in the last 2 min
        engine.feed(
            [SecondCounts("t", sec, delivered=10 - limited, rate_limited=limited, failed=1)]
        )
        engine.advance(sec + 1)
    status = engine.status()["t"]
    assert [t.window for t in status.trends] == list(WINDOWS)
    minute, quarter, hour = status.trends
    last = START + seconds - 2  # the newest evaluated second (the clock's lateness)
    assert all(t.start <= last < t.end for t in status.trends)
    assert minute.seconds == [1] * BUCKETS
    assert minute.delivered == [4] * BUCKETS and minute.rate_limited == [6] * BUCKETS
    assert minute.failed == [1] * BUCKETS
    # the hour: the minutes before the first data are no data; 1200 s fill 20 minutes
    assert sum(hour.seconds) == seconds - 1 and hour.seconds[:40] == [0] * 40
    assert sum(quarter.seconds) == 900 - 15 + (last + 1 - START) % 15
    assert sum(hour.delivered) == sum(
        10 - (6 if s >= START + seconds - 120 else 0) for s in range(START, last + 1)
    )
    # the baseline learnt during warm-up is what a second is expected to deliver
    assert minute.expected[0] > 0


def test_stored_seconds_make_the_same_windows() -> None:
    rows = [(START + n, 3, 1, 0, 0.0) for n in range(100)]
    minute, quarter, hour = trends_of(rows)
    assert minute.end == START + 100 and sum(minute.delivered) == 180
    assert sum(quarter.delivered) == 300 and sum(hour.seconds) == 100


def test_trends_round_trip_through_the_wire() -> None:
    trends = trends_of((START + n, n % 4, n % 3, n % 2, 1.25) for n in range(200))
    status = DestinationStatus("t", "ok", 1.0, 100.0, 0.0, 5.0, float(START), None, [1])
    status.trends = trends
    snap = Snapshot(now=START + 200.5, statuses={"t": status}, incidents=[], live=True)
    body = snapshot_json(snap)
    back = snapshot_from_json(body)
    assert back == snap and isinstance(back.statuses["t"].trends[0], Trend)
    # compact: the three windows of a destination are a few kB of plain numbers
    assert len(orjson.dumps(trends)) < 4000


@pytest.mark.parametrize("window", WINDOWS)
def test_each_window_has_the_same_bucket_count(window: int) -> None:
    assert window % BUCKETS == 0
