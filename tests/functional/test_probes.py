"""Probes against the loopback simulator (real HTTP): every kind healthy and failing, the
rate-limit header parser, the Prometheus text parser, the scheduler's governor (Retry-After is
honoured, a probe never overlaps itself) and the runtime hookup (probes table, engine, the
status page's facts in the incident)."""

from __future__ import annotations

import asyncio
import email.utils
import math
import socket
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from observatory.config import ConfigError, ProbeConfig, load_config
from observatory.feeds.exposition import parse_exposition
from observatory.incidents.store import list_incidents
from observatory.probes import (
    ProbeResult,
    ProbeScheduler,
    build_probes,
    make_probe,
    parse_rate_limit_headers,
    redact_url,
    reported_status,
)
from observatory.probes.promtext import parse_selectors
from observatory.runtime import Runtime
from observatory.sim.server import SimServer
from tests.helpers import make_config

SUMMARY = "/api/v2/summary.json"
METRICS = "/metrics"
SEGMENT = "/destinations/dst_tiktok/delivery-metrics"
HEALTH = "/health"
PATHS = {"statuspage": SUMMARY, "prometheus": METRICS, "segment_delivery": SEGMENT, "http": HEALTH}
KINDS = list(PATHS)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe_config(kind: str, base: str, **kw: Any) -> ProbeConfig:
    extra: dict[str, Any] = {"timeout": 2.0}
    if kind == "statuspage":
        extra["component"] = "TikTok Conversions"
    if kind == "segment_delivery":
        extra["headers"] = {"Authorization": "Bearer segtoken-abcdef"}
    extra.update(kw)
    return ProbeConfig(kind=kind, url=base + PATHS[kind], **extra)


def run_probe(kind: str, base: str, **kw: Any) -> ProbeResult:
    probe = make_probe("tiktok_conversions", probe_config(kind, base, **kw))
    return run_once(probe)


def run_once(probe: Any) -> ProbeResult:
    async def go() -> ProbeResult:
        async with httpx.AsyncClient() as client:
            result: ProbeResult = await probe.run(client)
            return result

    return asyncio.run(go())


def post_tiktok(sim: SimServer, n: int) -> None:
    body = {
        "event_source": "web",
        "event_source_id": "PIXEL",
        "data": [
            {"event": "CompletePayment", "event_time": int(time.time()), "event_id": f"e{i}"}
            for i in range(n)
        ],
    }
    r = httpx.post(
        sim.url + "/open_api/v1.3/event/track/", json=body, headers={"Access-Token": "tok"}
    )
    assert r.status_code == 200


# --------------------------------------------------------------------------------------------
# Rate-limit headers


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_800_000_000.0
    details, retry_at = parse_rate_limit_headers({"Retry-After": "2"}, now)
    assert retry_at == now + 2
    assert details["rate_limit"]["retry_after_s"] == 2
    assert details["rate_limit_headers"] == {"retry-after": "2"}
    date = email.utils.formatdate(now + 90, usegmt=True)
    details, retry_at = parse_rate_limit_headers({"retry-after": date}, now)
    assert retry_at == pytest.approx(now + 90)
    # a date in the past: come back now
    _, retry_at = parse_rate_limit_headers({"Retry-After": email.utils.formatdate(now - 5)}, now)
    assert retry_at == now


def test_x_ratelimit_reset_epoch_delta_and_rfc5322() -> None:
    now = 1_800_000_000.0
    h = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1800000030",
    }
    details, retry_at = parse_rate_limit_headers(h, now)
    assert details["rate_limit"]["x_ratelimit"] == {
        "limit": 100,
        "remaining": 0,
        "reset_at": now + 30,
        "reset_in_s": 30.0,
    }
    assert retry_at == now + 30
    _, retry_at = parse_rate_limit_headers({**h, "X-RateLimit-Reset": "45"}, now)  # delta
    assert retry_at == now + 45
    _, retry_at = parse_rate_limit_headers({**h, "X-RateLimit-Reset": "1800000030000"}, now)
    assert retry_at == now + 30  # epoch milliseconds
    rfc = email.utils.formatdate(now + 60)  # "Fri, 15 Jan 2027 ... -0000"
    details, retry_at = parse_rate_limit_headers({**h, "X-RateLimit-Reset": rfc}, now)
    assert retry_at == now + 60
    # quota left: the reset is reported but is no reason to wait
    details, retry_at = parse_rate_limit_headers({**h, "X-RateLimit-Remaining": "7"}, now)
    assert retry_at is None
    assert details["rate_limit"]["x_ratelimit"]["remaining"] == 7


def test_ietf_ratelimit_drafts() -> None:
    now = 1_800_000_000.0
    old = {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "30",
        "RateLimit-Policy": "100;w=60",
    }
    details, retry_at = parse_rate_limit_headers(old, now)
    assert retry_at == now + 30
    rl = details["rate_limit"]
    assert rl["ratelimit_fields"]["remaining"] == 0
    assert rl["ratelimit_policy"] == [{"quota": 100, "window_s": 60}]
    new = {"RateLimit-Policy": '"default";q=100;w=60', "RateLimit": '"default";r=50;t=30'}
    details, retry_at = parse_rate_limit_headers(new, now)
    assert retry_at is None  # 50 left
    assert details["rate_limit"]["ratelimit_policy"] == [
        {"name": "default", "quota": 100, "window_s": 60}
    ]
    assert details["rate_limit"]["ratelimit"][0]["remaining"] == 50
    _, retry_at = parse_rate_limit_headers({"RateLimit": '"default";r=0;t=12'}, now)
    assert retry_at == now + 12


def test_no_rate_limit_headers_and_garbage() -> None:
    assert parse_rate_limit_headers({"Content-Type": "text/plain"}, 0.0) == ({}, None)
    details, retry_at = parse_rate_limit_headers(
        {"Retry-After": "soon", "X-RateLimit-Reset": "whenever", "RateLimit": ";;=,"}, 0.0
    )
    assert retry_at is None
    assert details["rate_limit_headers"]["retry-after"] == "soon"


def test_redact_url() -> None:
    assert (
        redact_url("https://u:p@h.example:8443/a/b?token=x&y=1") == "https://h.example:8443/a/b?***"
    )
    assert redact_url("http://h/x") == "http://h/x"


# --------------------------------------------------------------------------------------------
# Prometheus text


def test_prometheus_text_parser() -> None:
    text = (
        "# HELP x y\n# TYPE router_aborted_events counter\n"
        'router_aborted_events{destType="TIKTOK_ADS",respStatusCode="429"} 12\n'
        'router_aborted_events{destType="TIKTOK_ADS",respStatusCode="500",} 3 1700000000000\n'
        'event_delivery{destination="a \\"quoted\\" name"} NaN\n'
        "up +Inf\ndown -Inf\n\nnot a sample line at all\n"
    )
    samples, bad = parse_exposition(text)
    assert bad == ["not a sample line at all"]
    assert [s.name for s in samples] == [
        "router_aborted_events",
        "router_aborted_events",
        "event_delivery",
        "up",
        "down",
    ]
    assert samples[1].ts_ms == 1700000000000
    assert samples[2].labels == {"destination": 'a "quoted" name'}
    assert math.isnan(samples[2].value)
    assert samples[3].value == math.inf and samples[4].value == -math.inf
    sel = parse_selectors('router_aborted_events{respStatusCode="429"}, {respStatusCode=~"5.."}')
    assert [sum(s.value for s in samples if x.matches(s.name, s.labels)) for x in sel] == [12, 3]
    with pytest.raises(ValueError):
        parse_selectors("router{bad")


# --------------------------------------------------------------------------------------------
# Each kind, healthy


def test_statuspage_healthy_and_degraded(sim: SimServer) -> None:
    r = run_probe("statuspage", sim.url)
    assert r.ok and r.http_status == 200 and r.status == "operational"
    assert r.details["component_status"] == "operational"
    assert r.details["page_indicator"] == "none"
    assert r.details["incidents"] == []
    assert r.latency_ms is not None and r.latency_ms > 0
    assert reported_status(r) == "operational"

    sim.set_component("TikTok Conversions", "degraded_performance")
    r = run_probe("statuspage", sim.url)
    assert not r.ok and r.http_status == 200 and r.status == "degraded_performance"
    assert r.details["page_indicator"] == "minor"
    assert any("TikTok Conversions" in n for n in r.details["incidents"])
    assert reported_status(r) == "degraded_performance"
    # another component is still fine
    r = run_probe("statuspage", sim.url, component="Meta Conversions API")
    assert r.ok and r.status == "operational"
    # no component: the page indicator decides
    r = run_probe("statuspage", sim.url, component=None)
    assert not r.ok and r.status == "minor"
    r = run_probe("statuspage", sim.url, component="No Such Thing")
    assert not r.ok and r.status == "component not found"


def test_segment_delivery_healthy(sim: SimServer) -> None:
    post_tiktok(sim, 3)
    r = run_probe("segment_delivery", sim.url)
    assert r.ok and r.http_status == 200 and r.status == "ok"
    assert set(r.details["metrics"]) == {"successes", "failures"}
    assert r.details["rate_limit"]["x_ratelimit"]["limit"] == 1000
    assert reported_status(r) is None


def test_prometheus_sums_and_deltas(sim: SimServer) -> None:
    post_tiktok(sim, 2)
    cfg = probe_config(
        "prometheus", sim.url, selector='event_delivery{destType="TIKTOK_ADS"} router_throttled'
    )
    probe = make_probe("tiktok_conversions", cfg)
    first = run_once(probe)
    assert first.ok and first.status == "ok"
    sums = first.details["sums"]
    assert sums['event_delivery{destType="TIKTOK_ADS"}'] >= 2
    assert first.details["deltas"]['event_delivery{destType="TIKTOK_ADS"}'] is None
    post_tiktok(sim, 5)
    second = run_once(probe)
    assert second.details["deltas"]['event_delivery{destType="TIKTOK_ADS"}'] == 5
    assert second.details["deltas"]["router_throttled"] == 0


def test_http_probe_get_head_and_expect_status(sim: SimServer) -> None:
    r = run_probe("http", sim.url)
    assert r.ok and r.http_status == 200 and r.status == "ok" and r.latency_ms is not None
    r = run_probe("http", sim.url, method="HEAD")
    assert r.ok and r.http_status == 200
    r = run_probe("http", sim.url, expect_status=204)
    assert not r.ok and r.status == "http 200"
    r = make_probe("d", ProbeConfig(kind="http", url=sim.url + "/nowhere", expect_status=404))
    assert run_once(r).ok


# --------------------------------------------------------------------------------------------
# Each kind, failing


@pytest.mark.parametrize("kind", KINDS)
def test_http_5xx(sim: SimServer, kind: str) -> None:
    sim.set_fault(PATHS[kind], "http_error", status=503)
    r = run_probe(kind, sim.url)
    assert not r.ok and r.http_status == 503 and r.status == "http 503"


@pytest.mark.parametrize("kind", KINDS)
def test_timeout(sim: SimServer, kind: str) -> None:
    sim.set_fault(PATHS[kind], "timeout", delay=3.0)
    started = time.monotonic()
    r = run_probe(kind, sim.url, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert not r.ok and r.status == "timeout" and r.http_status is None


@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused(kind: str) -> None:
    r = run_probe(kind, f"http://127.0.0.1:{closed_port()}")
    assert not r.ok and r.status == "connection refused" and r.http_status is None
    assert reported_status(r) is None  # counts towards 3 failures, not an instant alarm


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_body(sim: SimServer, kind: str) -> None:
    sim.set_fault(PATHS[kind], "malformed")
    r = run_probe(kind, sim.url)
    assert r.http_status == 200
    if kind == "http":  # a health check does not read the body
        assert r.ok
    else:
        assert not r.ok and r.status == "malformed" and r.details["error"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_rate_limited(sim: SimServer, kind: str, form: str) -> None:
    now = time.time()
    value = "2" if form == "seconds" else email.utils.formatdate(now + 3, usegmt=True)
    sim.set_fault(PATHS[kind], "rate_limit", retry_after=value)
    r = run_probe(kind, sim.url)
    assert not r.ok and r.http_status == 429 and r.status == "http 429"
    assert r.details["rate_limit_headers"]["retry-after"] == value
    assert r.details["rate_limit"]["x_ratelimit"]["remaining"] == 0
    assert r.retry_at is not None
    expected = now + 2 if form == "seconds" else float(int(now + 3))
    assert expected - 0.5 <= r.retry_at <= expected + 2.0


# --------------------------------------------------------------------------------------------
# The scheduler


class Collector:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.lock = threading.Lock()

    def __call__(self, result: ProbeResult) -> None:
        with self.lock:
            self.results.append(result)

    def wait(self, n: int, timeout: float = 10.0) -> list[ProbeResult]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) >= n:
                    return list(self.results)
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.results)} results, wanted {n}")


@pytest.mark.slow  # the scheduler's intervals, in real time
def test_scheduler_runs_every_interval_with_jitter(sim: SimServer) -> None:
    probe = make_probe("d", ProbeConfig(kind="http", url=sim.url + HEALTH, every=0.2))
    got = Collector()
    sched = ProbeScheduler([probe], got)
    sched.start()
    try:
        got.wait(6)
    finally:
        sched.stop()
    after = sim.request_count(HEALTH)
    time.sleep(0.5)
    assert sim.request_count(HEALTH) == after  # stopped means stopped
    times = sim.request_times(HEALTH)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.17 <= g <= 0.4 for g in gaps), gaps
    assert all(r.ok for r in got.results)


@pytest.mark.slow  # sits out a 2 s Retry-After
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_scheduler_honours_retry_after(sim: SimServer, form: str) -> None:
    """Retry-After: 2 with every=0.2 s: no request for ~2 s, then the probe resumes."""
    # An HTTP-date has whole seconds: aim 3 s ahead so the wait is at least 2 s.
    value = "2" if form == "seconds" else email.utils.formatdate(time.time() + 3, usegmt=True)
    sim.set_fault(HEALTH, "rate_limit", retry_after=value)
    probe = make_probe("d", ProbeConfig(kind="http", url=sim.url + HEALTH, every=0.2))
    got = Collector()
    sched = ProbeScheduler([probe], got)
    sched.start()
    try:
        first = got.wait(1)[0]
        assert first.http_status == 429 and first.retry_at is not None
        sim.set_fault(HEALTH, None)
        time.sleep(1.8)
        assert sim.request_count(HEALTH) == 1  # waited as told
        got.wait(3, timeout=5.0)
    finally:
        sched.stop()
    times = sim.request_times(HEALTH)
    assert times[1] - times[0] >= 1.95
    assert first.retry_at - first.ts >= 1.9
    assert 0.17 <= times[2] - times[1] <= 0.4  # back to the normal interval


@pytest.mark.slow  # 1 s timeouts against a 3 s delay
def test_scheduler_never_overlaps_a_probe(sim: SimServer) -> None:
    """timeout 1 s against a 3 s delay with every=0.1 s: requests spaced >= the timeout."""
    sim.set_fault(HEALTH, "timeout", delay=3.0)
    probe = make_probe("d", ProbeConfig(kind="http", url=sim.url + HEALTH, every=0.1, timeout=1.0))
    got = Collector()
    sched = ProbeScheduler([probe], got)
    sched.start()
    try:
        results = got.wait(3, timeout=10.0)
    finally:
        sched.stop()
    assert all(r.status == "timeout" and not r.ok for r in results)
    times = sim.request_times(HEALTH)
    assert len(times) >= 3
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(g >= 1.0 for g in gaps), gaps


@pytest.mark.slow  # probes for 1.2 s
def test_scheduler_survives_a_failing_handler_and_probes_independently(sim: SimServer) -> None:
    fast = make_probe("a", ProbeConfig(kind="http", url=sim.url + HEALTH, every=0.1))
    slow = make_probe(
        "b",
        ProbeConfig(kind="statuspage", url=sim.url + SUMMARY, every=0.1, timeout=0.5),
    )
    sim.set_fault(SUMMARY, "timeout", delay=3.0)
    seen: list[ProbeResult] = []

    def handler(r: ProbeResult) -> None:
        seen.append(r)
        raise RuntimeError("handler bug")

    sched = ProbeScheduler([fast, slow], handler)
    sched.start()
    time.sleep(1.2)
    sched.stop()
    assert sum(r.destination == "a" for r in seen) >= 5  # not held up by the slow one
    assert 1 <= sum(r.destination == "b" for r in seen) <= 3


# --------------------------------------------------------------------------------------------
# Config and runtime


def _probes_toml(base: str, every: str = "0.2s") -> str:
    return f"""
[[destinations]]
name = "tiktok_conversions"
vendor = "tiktok"
[[destinations.probes]]
kind = "statuspage"
url = "{base}{SUMMARY}"
component = "TikTok Conversions"
every = "{every}"
timeout = "1s"
[[destinations.probes]]
kind = "http"
url = "{base}{HEALTH}"
every = "{every}"
[[destinations.probes]]
kind = "http"
url = "{base}{HEALTH}"
method = "HEAD"
every = "{every}"
[[destinations.probes]]
kind = "http"
url = "{base}{HEALTH}"
every = "{every}"
"""


def test_build_probes_names_and_bad_selector(tmp_path: Path) -> None:
    path = make_config(tmp_path)
    path.write_text(path.read_text() + _probes_toml("http://127.0.0.1:9"))
    probes = build_probes(load_config(path))
    assert [(p.destination, p.name) for p in probes] == [
        ("tiktok_conversions", "statuspage:TikTok Conversions"),
        ("tiktok_conversions", "http"),
        ("tiktok_conversions", "http:HEAD"),
        ("tiktok_conversions", "http#2"),
    ]
    path.write_text(
        path.read_text()
        + '[[destinations.probes]]\nkind = "prometheus"\nurl = "http://h/metrics"\n'
        + 'selector = "x{bad"\n'
    )
    with pytest.raises(ConfigError) as err:
        build_probes(load_config(path))
    assert err.value.key == "destinations[0].probes[4].selector"


@pytest.mark.slow  # a live runtime's probes
def test_runtime_stores_probes_and_status_page_joins_the_incident(
    tmp_path: Path, sim: SimServer
) -> None:
    path = make_config(tmp_path)
    path.write_text(path.read_text() + _probes_toml(sim.url))
    runtime = Runtime(load_config(path))
    try:
        runtime.start_live()
        assert runtime.probe_scheduler is not None
        deadline = time.monotonic() + 5
        while runtime.probes_stored < 8 and time.monotonic() < deadline:
            runtime.poll()
            time.sleep(0.05)
        assert not runtime.engine.incidents()  # all healthy
        sim.set_component("TikTok Conversions", "partial_outage")
        deadline = time.monotonic() + 10
        while not runtime.engine.incidents() and time.monotonic() < deadline:
            runtime.poll()
            time.sleep(0.05)
        incidents = runtime.engine.incidents()
        assert [i.detector for i in incidents] == ["probe"]
        # a couple more polls: the evidence is saved
        for _ in range(5):
            runtime.poll()
            time.sleep(0.1)
        con = runtime.store.con
        rows = con.execute(
            "SELECT probe, ok, http_status, status, details FROM probes ORDER BY ts"
        ).fetchall()
        assert {r[0] for r in rows} == {
            "statuspage:TikTok Conversions",
            "http",
            "http:HEAD",
            "http#2",
        }
        bad = [r for r in rows if r[3] == "partial_outage"]
        assert bad and not bad[0][1] and bad[0][2] == 200
        assert "Partial outage for TikTok Conversions" in orjson.loads(bad[0][4])["incidents"]
        stored = list_incidents(con)
        assert len(stored) == 1
        inc = stored[0]
        sp = inc.evidence["status_page"]
        assert sp["component_status"] == "partial_outage"
        assert sp["incidents"] == ["Partial outage for TikTok Conversions"]
        notes = [e for e in inc.timeline if e.kind == "status_page"]
        assert len(notes) == 1  # noted once, not on every poll
        assert "partial_outage" in notes[0].detail
        assert "Partial outage for TikTok Conversions" in notes[0].detail
        # recovery: a new status is noted again
        sim.set_component("TikTok Conversions", "operational")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            runtime.poll()
            inc = list_incidents(con)[0]
            if len([e for e in inc.timeline if e.kind == "status_page"]) == 2:
                break
            time.sleep(0.05)
        assert [e for e in inc.timeline if e.kind == "status_page"][-1].detail.startswith(
            "status page: component TikTok Conversions: operational"
        )
    finally:
        runtime.close()
    assert runtime.probe_scheduler is None
    n = sim.request_count(SUMMARY)
    time.sleep(0.5)
    assert sim.request_count(SUMMARY) == n  # close() stopped the probes
    with duckdb.connect(str(tmp_path / "obs.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM probes").fetchone()[0] >= 8


def test_runtime_without_probes_starts_no_scheduler(tmp_path: Path) -> None:
    runtime = Runtime(load_config(make_config(tmp_path)))
    try:
        runtime.start_live()
        runtime.poll()
        assert runtime.probe_scheduler is None
    finally:
        runtime.close()
