"""The simulator: endpoint shapes, control, faults, QPS limits, the forwarder and `simulate`."""

from __future__ import annotations

import email.utils
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from observatory.sim.forwarder import EventStream, Simulation, watch_config
from observatory.sim.scenario import (
    ScenarioError,
    load_scenario,
    parse_scenario,
    scenario_names,
)
from observatory.sim.server import SimServer

TIKTOK = "/open_api/v1.3/event/track/"
META = "/v21.0/1234567890123456/events"
GOOGLE = "/v17/customers/1234567890:uploadClickConversions"


@pytest.fixture
def server() -> Iterator[SimServer]:
    srv = SimServer(seed=1).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5) as c:
        yield c


def tiktok_body(n: int = 2) -> dict[str, object]:
    data = [{"event": "CompletePayment", "event_time": 1, "event_id": str(i)} for i in range(n)]
    return {"event_source": "web", "event_source_id": "PIX", "data": data}


def test_url_and_health(server: SimServer, client: httpx.Client) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert client.get("/nope").status_code == 404


def test_errors_are_json_and_faults_come_before_routing(
    server: SimServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the HTTP wiring owes every endpoint, beyond the endpoints' own answers."""
    assert client.get("/nope").json() == {"error": "no such endpoint: /nope"}
    assert client.get("/_control").status_code == 404  # a GET of a POST-only endpoint
    for method, path in (("POST", "/health"), ("POST", "/nope"), ("GET", TIKTOK), ("PUT", META)):
        r = client.request(method, path)
        assert r.status_code == 405 and r.json() == {"error": "method not allowed"}, path
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(b'{"ok":true}'))
    # A chunked request body is read whole.
    chunks = (part for part in (b'{"data":[{},', b"{},{}]}"))
    assert client.post(TIKTOK, content=chunks).json()["code"] == 0
    assert server.stats()["tiktok"]["delivered"] == 3
    # A fault applies to every path under its prefix, known endpoint or not.
    server.set_fault("/", "http_error", status=502)
    assert client.get("/nope").status_code == 502
    assert client.post("/_control", json={"op": "set_fault"}).status_code == 502
    assert client.get(TIKTOK).status_code == 405  # a delivery API refuses the method first
    server.set_fault("/", None)
    # A failing handler answers 500 in JSON and the server carries on.
    monkeypatch.setattr(server, "stats", lambda: 1 / 0)
    r = client.get("/_stats")
    assert r.status_code == 500 and r.json() == {"error": "simulator error: division by zero"}
    assert client.get("/health").status_code == 200


def test_lifecycle_loopback_busy_port_and_prompt_stop() -> None:
    with SimServer() as srv:
        assert srv.host == "127.0.0.1" and srv.url == f"http://127.0.0.1:{srv.port}"
        with pytest.raises(OSError):
            SimServer(port=srv.port).start()
        srv.set_fault("/health", "timeout", delay=30)
        with httpx.Client(base_url=srv.url) as c:
            with pytest.raises(httpx.TimeoutException):
                c.get("/health", timeout=0.3)
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 2.0  # a request still delayed does not hold the stop
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/health", timeout=2)


def test_platform_success_shapes(server: SimServer, client: httpx.Client) -> None:
    r = client.post(TIKTOK, json=tiktok_body(3))
    body = r.json()
    assert r.status_code == 200
    assert body["code"] == 0 and body["message"] == "OK" and body["data"] == {}
    assert isinstance(body["request_id"], str)
    r = client.post("/v19.0/999/events", json={"data": [{"event_name": "Purchase"}] * 4})
    assert r.status_code == 200
    assert r.json()["events_received"] == 4 and r.json()["messages"] == []
    assert "fbtrace_id" in r.json()
    r = client.post(GOOGLE, json={"conversions": [{"gclid": "Cj0"}, {"gclid": "bad1"}]})
    doc = r.json()
    assert r.status_code == 200 and len(doc["results"]) == 2
    err = doc["partialFailureError"]["details"][0]["errors"][0]
    assert err["errorCode"] == {"conversionUploadError": "UNPARSEABLE_GCLID"}
    r = client.post("/webhook/crm", json={"batch": [{"type": "track"}] * 2})
    assert r.json() == {"ok": True, "received": 2}
    assert server.request_count("/") == 4
    assert server.request_count("/open_api/") == 1
    assert server.request_count("/v") == 2
    assert len(server.request_times("/open_api/")) == 1
    # a bad body is refused in the vendor's words
    assert client.post(TIKTOK, content=b"{").json()["code"] == 40002
    assert client.post(META, json={}).json()["error"]["code"] == 100


def test_qps_limits_throttle_per_vendor(server: SimServer, client: httpx.Client) -> None:
    server.set_qps_limit("tiktok", 1)
    codes = [client.post(TIKTOK, json=tiktok_body()).json()["code"] for _ in range(5)]
    assert codes[0] == 0 and codes.count(40100) >= 3
    throttled = client.post(TIKTOK, json=tiktok_body()).json()
    assert throttled["message"] == "Too many requests"
    server.set_qps_limit("tiktok", None)
    assert client.post(TIKTOK, json=tiktok_body()).json()["code"] == 0

    server.set_qps_limit("meta", 0)
    r = client.post(META, json={"data": [{}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == 17
    assert r.json()["error"]["type"] == "OAuthException"

    server.set_qps_limit("google", 0)
    r = client.post(GOOGLE, json={"conversions": [{"gclid": "x"}]})
    assert r.status_code == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "retryDelay" in r.text


def test_token_validity(server: SimServer, client: httpx.Client) -> None:
    server.set_token_valid("meta", False)
    r = client.post(META, json={"data": [{}]})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 190 and r.json()["error"]["type"] == "OAuthException"
    server.set_token_valid("meta", True)
    assert client.post(META, json={"data": [{}]}).status_code == 200
    server.set_token_valid("tiktok", False)
    assert client.post(TIKTOK, json=tiktok_body()).json()["code"] == 40105


@pytest.mark.slow  # sits out a 1 s delay fault
def test_faults(server: SimServer, client: httpx.Client) -> None:
    server.set_fault("/open_api/", "http_error")
    assert client.post(TIKTOK, json=tiktok_body()).status_code == 503
    server.set_fault("/open_api/", "http_error", status=502)
    assert client.post(TIKTOK, json=tiktok_body()).status_code == 502
    server.set_fault("/open_api/", None)
    assert client.post(TIKTOK, json=tiktok_body()).json()["code"] == 0

    server.set_fault("/api/v2/", "malformed")
    r = client.get("/api/v2/summary.json")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)

    server.set_fault("/api/v2/", "rate_limit", retry_after="3")
    r = client.get("/api/v2/status.json")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.headers["X-RateLimit-Remaining"] == "0" and int(r.headers["X-RateLimit-Reset"]) > 0
    date = email.utils.format_datetime(email.utils.localtime(), usegmt=False)
    server.set_fault("/api/v2/", "rate_limit", retry_after=date)
    assert client.get("/api/v2/status.json").headers["Retry-After"] == date
    server.set_fault("/api/v2/", None)

    server.set_fault("/health", "timeout", delay=1.0)
    with pytest.raises(httpx.TimeoutException):
        client.get("/health", timeout=0.2)
    t0 = time.monotonic()
    assert client.get("/health", timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.9
    with pytest.raises(ValueError):
        server.set_fault("/", "explode")


def test_control_endpoint(server: SimServer, client: httpx.Client) -> None:
    ops: list[dict[str, object]] = [
        {"op": "set_component", "name": "Google Ads", "status": "major_outage"},
        {"op": "set_qps_limit", "platform": "tiktok", "qps": 0},
        {"op": "set_token_valid", "platform": "meta", "valid": False},
        {"op": "set_fault", "path_prefix": "/webhook/", "kind": "http_error", "status": 500},
    ]
    for op in ops:
        r = client.post("/_control", json=op)
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text
    assert client.get("/api/v2/status.json").json()["status"]["indicator"] == "major"
    assert client.post(TIKTOK, json=tiktok_body()).json()["code"] == 40100
    assert client.post(META, json={"data": [{}]}).json()["error"]["code"] == 190
    assert client.post("/webhook/crm", json={"batch": [{}]}).status_code == 500
    client.post("/_control", json={"op": "set_fault", "path_prefix": "/webhook/", "kind": None})
    assert client.post("/webhook/crm", json={"batch": [{}]}).status_code == 200
    for bad in ({"op": "explode"}, {"op": "set_component", "name": "Nope", "status": "x"}, {}):
        r = client.post("/_control", json=bad)
        assert r.status_code == 400 and r.json()["ok"] is False


def test_statuspage(server: SimServer, client: httpx.Client) -> None:
    doc = client.get("/api/v2/summary.json").json()
    assert doc["status"]["indicator"] == "none" and doc["incidents"] == []
    names = {c["name"] for c in doc["components"]}
    assert names == {"TikTok Conversions", "Meta Conversions API", "Google Ads", "Webhooks"}
    for c in doc["components"]:
        assert {"id", "name", "status", "group_id", "updated_at"} <= set(c)
        assert c["status"] == "operational"
    assert doc["scheduled_maintenances"] == []
    server.set_component("TikTok Conversions", "degraded_performance")
    doc = client.get("/api/v2/summary.json").json()
    assert doc["status"]["indicator"] == "minor"
    (inc,) = doc["incidents"]
    assert inc["status"] == "investigating" and "TikTok Conversions" in inc["name"]
    assert inc["incident_updates"][0]["status"] == "investigating"
    tiktok = next(c for c in doc["components"] if c["name"] == "TikTok Conversions")
    assert tiktok["status"] == "degraded_performance"
    status = client.get("/api/v2/status.json").json()
    assert set(status) == {"page", "status"} and status["status"]["indicator"] == "minor"
    server.set_component("TikTok Conversions", "operational")
    assert client.get("/api/v2/summary.json").json()["incidents"] == []
    with pytest.raises(ValueError):
        server.set_component("TikTok Conversions", "on_fire")


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_prometheus_metrics_reflect_outcomes(server: SimServer, client: httpx.Client) -> None:
    client.post(TIKTOK, json=tiktok_body(5))
    server.set_qps_limit("tiktok", 0)
    client.post(TIKTOK, json=tiktok_body(3))
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name, kind in (
        ("event_delivery", "counter"),
        ("router_aborted_events", "counter"),
        ("router_throttled", "counter"),
        ("router_delivery_latency", "histogram"),
    ):
        assert f"# TYPE {name} {kind}" in text
    assert _metric(text, "event_delivery", destType="TIKTOK_ADS", destID="dst_tiktok") == 5
    # a 429 is an answer (router_response_counts), not a terminal abort, nor rudder's throttler
    limited = _metric(text, "router_response_counts", destType="TIKTOK_ADS", respStatusCode="429")
    assert limited == 3
    assert "router_aborted_events{" not in text  # no terminal refusal yet
    assert _metric(text, "router_throttled", destType="TIKTOK_ADS") == 0
    assert _metric(text, "router_delivery_latency_count", destType="TIKTOK_ADS") == 2


def test_segment_delivery_metrics(server: SimServer, client: httpx.Client) -> None:
    client.post(TIKTOK, json=tiktok_body(7))
    r = client.get(
        "/destinations/dst_tiktok/delivery-metrics",
        params={
            "sourceId": "src1",
            "startTime": "2020-01-01T00:00:00Z",
            "endTime": "2099-01-01T00:00:00Z",
            "granularity": "MINUTE",
        },
    )
    assert r.status_code == 200
    summary = r.json()["data"]["deliveryMetricsSummary"]
    assert summary["sourceId"] == "src1" and "destinationMetadataId" in summary
    metrics = {m["metricName"]: m for m in summary["metrics"]}
    assert metrics["successes"]["total"] == 7
    assert all("breakdown" in m for m in summary["metrics"])
    assert int(r.headers["X-RateLimit-Remaining"]) >= 0
    assert email.utils.parsedate_to_datetime(r.headers["X-RateLimit-Reset"]).year >= 2024
    assert client.get("/destinations/nope/delivery-metrics").status_code == 404
    bad = client.get("/destinations/dst_tiktok/delivery-metrics?granularity=WEEK")
    assert bad.status_code == 400


def test_scenarios_load_and_are_deterministic() -> None:
    names = scenario_names()
    assert {
        "tiktok-rate-limit",
        "tiktok-limit-drift",
        "tiktok-limit-cascade",
        "meta-token-expired",
        "silent-forwarder",
        "steady",
    } <= set(names)
    for name in names:
        a, b = load_scenario(name), load_scenario(name)
        assert a == b and a.duration > 0
    tl = load_scenario("tiktok-rate-limit").timeline()
    ops = [(a.at, a.op) for a in tl]
    assert ops[0] == (25.0, "set_qps_limit") and ("set_component" in [o for _, o in ops])
    assert load_scenario("tiktok-rate-limit").scaled(5).timeline()[0].at == 5.0
    with pytest.raises(ScenarioError, match="steady"):
        load_scenario("nope")
    with pytest.raises(ScenarioError, match="op"):
        parse_scenario({"at": [{"t": 1, "op": "explode"}]})
    first = [EventStream(5).next(1.0) for _ in range(1)]
    s1, s2, s3 = EventStream(5), EventStream(5), EventStream(6)
    seq1 = [s1.next(1.0) for _ in range(200)]
    assert seq1 == [s2.next(1.0) for _ in range(200)]
    assert seq1 != [s3.next(1.0) for _ in range(200)]
    assert seq1[0] == first[0]


@pytest.mark.slow  # a 4 s real-time simulation
def test_forwarder_lines_ingest_cleanly_with_retries(tmp_path: Path) -> None:
    scenario = parse_scenario(
        {
            "name": "test",
            "seed": 4,
            "rate": 120,
            "limits": {"tiktok": 2},
            "error_rate": {"webhook": 0.2},
            "forwarder": {"flush_interval": 0.1, "backoff": 0.2},
            "at": [
                {
                    "t": 1.0,
                    "op": "set_component",
                    "name": "TikTok Conversions",
                    "status": "degraded_performance",
                }
            ],
        }
    )
    sim = Simulation(scenario, tmp_path).start()
    try:
        sim.run(4.0)
        url = sim.server.url
        assert sim.applied and sim.applied[0][1] == "set_component"
    finally:
        sim.stop()
    assert sim.server.request_count(TIKTOK) > 10
    lines = [orjson.loads(x) for x in (tmp_path / "forwarder.jsonl").read_bytes().splitlines()]
    assert len(lines) > 500
    assert {ln["dest"] for ln in lines} == {
        "tiktok_conversions",
        "meta_capi",
        "google_ads",
        "crm_webhook",
    }
    for ln in lines:
        assert isinstance(ln["time"], int) and ln["time"] > 1_600_000_000_000
        assert {"messageId", "attempt", "duration", "event", "level", "msg"} <= set(ln)
    throttled = [ln for ln in lines if ln.get("err", {}).get("code") == "40100"]
    assert throttled and all(ln["code"] == 200 for ln in throttled)
    attempts = {ln["attempt"] for ln in lines}
    assert {1, 2, 3} <= attempts
    assert any(ln["dest"] == "crm_webhook" and ln.get("code", 0) >= 500 for ln in lines)
    config = (tmp_path / "config.toml").read_text()
    assert f'url = "{url}/api/v2/summary.json"' in config
    assert 'component = "TikTok Conversions"' in config
    out = subprocess.run(
        [sys.executable, "-m", "observatory", "ingest", "--config", str(tmp_path / "config.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["rejected"] == 0 and summary["rows"] == len(lines)


def test_watch_config_is_valid(tmp_path: Path) -> None:
    from observatory.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(watch_config("http://127.0.0.1:9", tmp_path), encoding="utf-8")
    cfg = load_config(str(path))
    assert {d.name for d in cfg.destinations} == {
        "tiktok_conversions",
        "meta_capi",
        "google_ads",
        "crm_webhook",
    }
    tiktok = next(d for d in cfg.destinations if d.name == "tiktok_conversions")
    assert tiktok.vendor == "tiktok" and tiktok.probes[0].kind == "statuspage"
    assert cfg.detection.warmup <= 30


@pytest.mark.slow  # `simulate --duration 3`
def test_simulate_command(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "observatory",
            "simulate",
            "--scenario",
            "steady",
            "--logs",
            str(logs),
            "--duration",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    head = json.loads(out.stdout.splitlines()[0])
    assert head["type"] == "simulator" and head["scenario"] == "steady"
    assert head["url"].startswith("http://127.0.0.1:") and head["logs"] == str(logs.resolve())
    assert (logs / "config.toml").is_file()
    assert len((logs / "forwarder.jsonl").read_bytes().splitlines()) > 300
    assert "lines/s" in out.stderr

    bad = subprocess.run(
        [sys.executable, "-m", "observatory", "simulate", "--scenario", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "tiktok-rate-limit" in bad.stderr and "steady" in bad.stderr
