"""Feeds over the wire: statsd over real UDP, Prometheus and Delivery Overview over real HTTP
on loopback, into a runtime on a real DuckDB file (counts, rejects, resets, rate limits)."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from observatory.config import Config, ConfigError, FeedConfig, load_config
from observatory.feeds.base import FeedReport, spread, status_column
from observatory.feeds.delivery_overview import DeliveryOverviewFeed
from observatory.feeds.polled import PollError
from observatory.feeds.prometheus import PrometheusFeed
from observatory.feeds.statsd import parse_line
from observatory.owner import build_runtime
from observatory.runtime import Runtime
from observatory.sim.server import SimServer
from observatory.sim.statsd_emitter import StatsdEmitter


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def feed_config(tmp_path: Path, feeds: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[storage]\ndb = "obs.duckdb"\n[server]\nenabled = false\n{feeds}', encoding="utf-8"
    )
    return load_config(str(path))


@contextmanager
def live_statsd(tmp_path: Path) -> Iterator[tuple[Runtime, int]]:
    """A live runtime with a statsd feed on a free port (TIKTOK_ADS named "tiktok")."""
    port = free_udp_port()
    config = feed_config(
        tmp_path,
        f'[[feeds]]\nkind = "statsd"\nlisten = "127.0.0.1:{port}"\n'
        '[feeds.rename]\nTIKTOK_ADS = "tiktok"\n',
    )
    rt = build_runtime(config)
    try:
        rt.start_live()
        yield rt, port
    finally:
        rt.close()


def poll_until(rt: Runtime, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rt.poll()
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


# --------------------------------------------------------------------------------------------
# statsd lines


@pytest.mark.parametrize(
    ("line", "name", "values", "kind", "rate", "tags"),
    [
        ("hits:1|c", "hits", [1.0], "c", 1.0, {}),
        (
            "router_response_counts,destType=TIKTOK_ADS,respStatusCode=429:3|c|@0.5",
            "router_response_counts",
            [3.0],
            "c",
            0.5,
            {"destType": "TIKTOK_ADS", "respStatusCode": "429"},
        ),
        ("t:12.5:40|ms|@0.1|#destType:META", "t", [12.5, 40.0], "ms", 0.1, {"destType": "META"}),
        ("g:-3|g", "g", [-3.0], "g", 1.0, {}),
        ("x:1|c|#a:b,c:d|c:container123|T1700000000", "x", [1.0], "c", 1.0, {"a": "b", "c": "d"}),
    ],
)
def test_statsd_lines_parse(
    line: str, name: str, values: list[float], kind: str, rate: float, tags: dict[str, str]
) -> None:
    metric = parse_line(line)
    assert metric is not None
    assert (metric.name, metric.values, metric.kind, metric.rate, metric.tags) == (
        name,
        values,
        kind,
        rate,
        tags,
    )


@pytest.mark.parametrize(
    "line",
    [
        "no value",
        "name:1",
        "name:1|zz",
        "name:abc|c",
        "name:nan|c",
        "name:1|c|@0",
        "name:1|c|@x",
        "name,badtag:1|c",
        ":1|c",
        ",a=b:1|c",
    ],
)
def test_malformed_statsd_lines_are_none(line: str) -> None:
    assert parse_line(line) is None


def test_status_classes_and_spreading() -> None:
    assert [status_column(c) for c in ("200", "204", "429", "400", "503", "", None, "x")] == [
        "delivered",
        "delivered",
        "rate_limited",
        "rejected",
        "failed",
        "failed",
        "failed",
        "failed",
    ]
    assert spread(7, range(10, 13)) == [(10, 2), (11, 2), (12, 3)]
    assert spread(2, range(10, 16)) == [(12, 1), (15, 1)]  # evenly spaced, not bunched
    assert sum(n for _, n in spread(6001, range(60))) == 6001


# --------------------------------------------------------------------------------------------
# statsd over UDP, into the runtime


def test_statsd_feed_counts_rudder_metrics_over_udp(tmp_path: Path) -> None:
    with live_statsd(tmp_path) as (rt, port):
        tags = "destType=TIKTOK_ADS,destId=d1,workspaceId=w"
        lines = [
            f"router_response_counts,{tags},respStatusCode=200:40|c",
            f"router_response_counts,{tags},respStatusCode=429:5|c|@0.5",  # 10 events
            f"router_response_counts,{tags},respStatusCode=400:2|c",
            f"event_delivery,{tags}:40|c",  # the same successes: not counted twice
            f"event_delivery_time,{tags}:120:180|ms|@0.5",  # 4 latencies
            f"router_aborted_events,{tags},respStatusCode=400:1|c",
            "router_response_counts,respStatusCode=200:9|c",  # no destination tag: skipped
            "garbage line without a value",
            "also:bad|q",
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.sendto("\n".join(lines).encode(), ("127.0.0.1", port))
            out.sendto(b"\xff\xfe\x00\x01", ("127.0.0.1", port))  # not text: one more reject

        def stored() -> bool:
            row = rt.store.con.execute("SELECT count(*) FROM feed_seconds").fetchone()
            return bool(row and row[0])

        poll_until(rt, stored)
        row = rt.store.con.execute(
            "SELECT destination, feed, sum(delivered), sum(rate_limited), sum(rejected), "
            "sum(dropped), sum(latency_n), sum(latency_sum) FROM feed_seconds GROUP BY ALL"
        ).fetchall()
        assert row == [("tiktok", "statsd", 40, 10, 2, 1, 4, 600.0)]
        assert rt.feed_rejected == 3
        rejects = rt.store.con.execute(
            "SELECT source, line FROM rejects WHERE source = 'statsd' ORDER BY line"
        ).fetchall()
        assert [r[1] for r in rejects] == [
            "also:bad|q",
            "garbage line without a value",
            "\ufffd\ufffd\x00\x01",
        ]
        # the destination shows, with where its numbers come from
        poll_until(rt, lambda: "tiktok" in rt.status())
        status = rt.status()["tiktok"]
        assert status.feed is not None and "statsd" in status.feed and status.delay_s == 0
        counted = rt.store.con.execute(
            "SELECT outcome, sum(n) FROM outcomes GROUP BY ALL ORDER BY 1"
        ).fetchall()
        assert counted == [("delivered", 40), ("dropped", 1), ("rate_limited", 10), ("rejected", 2)]


def test_a_statsd_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = feed_config(tmp_path, f'[[feeds]]\nkind = "statsd"\nlisten = "127.0.0.1:{port}"\n')
        rt = build_runtime(config)
        try:
            with pytest.raises(ConfigError, match=r"feeds\[0\]\.listen.*cannot listen on udp"):
                rt.start_live()
        finally:
            rt.close()


# --------------------------------------------------------------------------------------------
# Prometheus: deltas, resets, bad lines


def _prom(config_extra: str = "") -> PrometheusFeed:
    cfg = FeedConfig.model_validate(
        {"kind": "prometheus", "url": "http://127.0.0.1:9/metrics", "every": "5s"}
    )
    reports: list[FeedReport] = []
    return PrometheusFeed(cfg, reports.append)


def _body(ok: int, limited: int, extra: str = "") -> str:
    return (
        "# TYPE router_response_counts counter\n"
        f'router_response_counts{{destType="TIKTOK_ADS",respStatusCode="200"}} {ok}\n'
        f'router_response_counts{{destType="TIKTOK_ADS",respStatusCode="429"}} {limited}\n' + extra
    )


def test_prometheus_increases_are_spread_over_the_scrape_and_survive_resets() -> None:
    feed = _prom()
    first = feed.digest(_body(1000, 10), 100)
    assert first.counts == [] and first.reported == {}  # where each series stands
    second = feed.digest(_body(1500, 20), 105)
    assert {c.sec for c in second.counts} == set(range(100, 105))
    assert sum(c.delivered for c in second.counts) == 500
    assert sum(c.rate_limited for c in second.counts) == 10
    assert second.reported == {"TIKTOK_ADS": 105}
    # rudder restarted: its counters begin again at 0
    third = feed.digest(_body(30, 0), 110)
    assert sum(c.delivered for c in third.counts) == 30 and feed.resets == 2
    assert sum(c.rate_limited for c in third.counts) == 0
    # a series that appears later counts from 0; a bad line is a reject, the rest counts
    extra = 'router_response_counts{destType="TIKTOK_ADS",respStatusCode="503"} 4\nnot a line\n'
    fourth = feed.digest(_body(60, 0, extra), 115)
    assert sum(c.delivered for c in fourth.counts) == 30
    assert sum(c.failed for c in fourth.counts) == 4
    assert fourth.rejected == 1 and fourth.samples == ["not a line"]


def test_prometheus_delay_is_one_interval() -> None:
    assert _prom().delay == 4 and math.isclose(_prom().cadence, 5.0)


# --------------------------------------------------------------------------------------------
# Against the simulator: Prometheus resets, Delivery Overview minutes and 429s


def test_prometheus_feed_scrapes_the_simulator_across_a_restart(sim: SimServer) -> None:
    cfg = FeedConfig.model_validate(
        {"kind": "prometheus", "url": sim.url + "/metrics", "rename": {"TIKTOK_ADS": "tiktok"}}
    )
    feed = PrometheusFeed(cfg, lambda r: None)
    stats = sim.platform_stats["tiktok"]
    now = math.floor(time.time())
    assert feed.poll(now - 10).counts == []  # the first scrape: where each series stands
    with sim.lock:
        stats.record(now - 5, 300, 0, 200)
        stats.record(now - 4, 0, 40, 429)
    second = feed.poll(now - 5)
    assert sum(c.delivered for c in second.counts if c.destination == "tiktok") == 300
    assert sum(c.rate_limited for c in second.counts if c.destination == "tiktok") == 40
    sim.control("reset_metrics")  # rudder-server restarted
    with sim.lock:
        stats.record(now - 2, 25, 0, 200)
    third = feed.poll(now)
    assert sum(c.delivered for c in third.counts if c.destination == "tiktok") == 25
    assert sum(c.rate_limited for c in third.counts) == 0 and feed.resets >= 1


def _overview(sim: SimServer, **extra: object) -> DeliveryOverviewFeed:
    cfg = FeedConfig.model_validate(
        {
            "kind": "segment_delivery_overview",
            "url": sim.url,
            "token": "sim-token-0123456789",
            "source_id": "src_sim",
            "destinations": {"dst_tiktok": "tiktok"},
            **extra,
        }
    )
    return DeliveryOverviewFeed(cfg, lambda r: None)


def test_delivery_overview_takes_complete_minutes_only(sim: SimServer) -> None:
    now = time.time()
    minute = math.floor(now / 60) * 60
    stats = sim.platform_stats["tiktok"]
    with sim.lock:
        for m in range(minute - 600, minute, 60):  # ten minutes: 60 s of traffic each
            for s in range(m, m + 60):
                stats.record(s, 100, 0, 200)
            stats.record(m + 30, 0, 12, 429)
            stats.record(m + 31, 0, 3, 400)
    feed = _overview(sim)
    report = feed.poll(now)
    end = math.floor((now - 45) / 60) * 60
    assert report.error is None and report.reported == {"tiktok": end}
    secs = {c.sec for c in report.counts}
    assert max(secs) == end - 1  # nothing of a minute not yet complete
    taken = range(max(minute - 600, end - 1800), end)
    minutes = len(range(taken.start, taken.stop, 60))
    assert sum(c.delivered for c in report.counts) == 6000 * minutes
    assert sum(c.rate_limited for c in report.counts) == 12 * minutes
    assert sum(c.rejected for c in report.counts) == 3 * minutes
    # each minute is spread over its own 60 seconds
    first = [c for c in report.counts if taken.start <= c.sec < taken.start + 60]
    assert len(first) == 60 and {c.delivered for c in first} == {100}
    assert feed.poll(now).counts == []  # the same minutes are never taken twice


def test_delivery_overview_honours_a_429(sim: SimServer) -> None:
    sim.set_fault("/delivery-overview", "rate_limit", retry_after="7")
    feed = _overview(sim)
    now = time.time()
    report = feed.poll(now)
    assert report.reported == {} and report.counts == []
    assert report.error is not None and "429" in report.error
    assert 6.0 <= feed.not_before - now <= 9.0  # Retry-After: 7
    assert "sim-token" not in report.error


def test_delivery_overview_malformed_answers_are_rejects(sim: SimServer) -> None:
    sim.set_fault("/delivery-overview", "malformed")
    feed = _overview(sim)
    report = feed.poll(time.time())
    assert report.rejected >= 1 and report.reported == {}
    assert report.error is not None and "dataset" in report.error


# --------------------------------------------------------------------------------------------
# End to end: the simulator's emitter and API into a runtime


@pytest.mark.slow
@pytest.mark.parametrize("dogstatsd", [False, True])
def test_the_simulators_statsd_reaches_the_runtime(
    sim: SimServer, tmp_path: Path, dogstatsd: bool
) -> None:
    with live_statsd(tmp_path) as (rt, port):
        with StatsdEmitter(sim, "127.0.0.1", port, dogstatsd=dogstatsd):
            for _ in range(3):
                with sim.lock:
                    sim.platform_stats["tiktok"].record(time.time(), 90, 0, 200)
                    sim.platform_stats["tiktok"].record(time.time(), 0, 10, 429)
                time.sleep(1.0)
        expected = (270, 30)

        def all_in() -> bool:
            row = rt.store.con.execute(
                "SELECT sum(delivered), sum(rate_limited) FROM feed_seconds "
                "WHERE destination = 'tiktok'"
            ).fetchone()
            return row == expected

        poll_until(rt, all_in)


def test_delivery_overview_backfill_warms_the_runtime(sim: SimServer, tmp_path: Path) -> None:
    now = time.time()
    minute = math.floor(now / 60) * 60
    with sim.lock:
        for s in range(minute - 900, minute):
            sim.platform_stats["tiktok"].record(s, 50, 0, 200)
    config = feed_config(
        tmp_path,
        "[[feeds]]\n"
        'kind = "segment_delivery_overview"\n'
        f'url = "{sim.url}"\n'
        'token = "sim-token-0123456789"\n'
        'source_id = "src_sim"\n'
        "[feeds.destinations]\n"
        'dst_tiktok = "tiktok"\n',
    )
    rt = build_runtime(config)
    try:
        rt.start_live()
        rows = rt.store.con.execute(
            "SELECT count(*), sum(delivered) FROM feed_seconds WHERE destination = 'tiktok'"
        ).fetchone()
        assert rows is not None and rows[1] == 50 * rows[0] and rows[0] >= 13 * 60
        status = rt.status()["tiktok"]
        assert status.delay_s == 60 + 45 + 20 + 5
        assert status.feed == "segment_delivery_overview 20s, 130s behind"
        assert "sim-token" not in repr(rt.config)
    finally:
        rt.close()


def test_a_prometheus_body_that_is_not_an_exposition_is_a_failed_scrape(sim: SimServer) -> None:
    sim.set_fault("/metrics", "malformed")
    cfg = FeedConfig.model_validate(
        {"kind": "prometheus", "url": sim.url + "/metrics", "every": "1s"}
    )
    reports: list[FeedReport] = []
    feed = PrometheusFeed(cfg, reports.append)
    with pytest.raises(PollError, match="no sample parsed"):
        feed.poll(time.time())
    # on the feed's thread that is a report with an error and nothing reported (unknown)
    feed.start()
    try:
        deadline = time.monotonic() + 20
        while not reports and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        feed.stop()
    assert reports and reports[0].error is not None and reports[0].reported == {}
    assert feed.last_error is not None
