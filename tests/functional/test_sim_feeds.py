"""The simulator's side of the feeds: rudder-server's statsd over real UDP, Segment's Delivery
Overview and mParticle's rate-limit headers over real HTTP, and a Prometheus exporter restart."""

from __future__ import annotations

import base64
import email.utils
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from observatory.sim.delivery_overview import LAG, delivery_overview_reply
from observatory.sim.forwarder import Simulation
from observatory.sim.scenario import load_scenario, parse_scenario
from observatory.sim.server import SimServer
from observatory.sim.state import SimState
from observatory.sim.statsd_emitter import (
    MAX_DATAGRAM,
    StatsdEmitter,
    pack_datagrams,
    parse_address,
)

TIKTOK = "/open_api/v1.3/event/track/"
META = "/v21.0/1234567890123456/events"
GOOGLE = "/v17/customers/1234567890:uploadClickConversions"
BEARER = {"Authorization": "Bearer sim-token"}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"key:secret").decode()}


@pytest.fixture
def server() -> Iterator[SimServer]:
    srv = SimServer(seed=3).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5) as c:
        yield c


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    try:
        yield sock
    finally:
        sock.close()


def tiktok_body(n: int, event: str = "CompletePayment") -> dict[str, Any]:
    return {"data": [{"event": event, "event_id": str(i)} for i in range(n)]}


def receive_all(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on `sock` (loopback UDP: delivered once sent)."""
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except TimeoutError:
            return out


_INFLUX = re.compile(
    r"^(?P<name>[^,:]+)(?P<tags>(?:,[^,=:]+=[^,:]*)*):(?P<value>[^|]+)\|(?P<kind>[a-z]+)(?:\|@(?P<rate>[0-9.]+))?$"
)
_DOG = re.compile(
    r"^(?P<name>[^:|]+):(?P<value>[^|]+)\|(?P<kind>[a-z]+)(?:\|@(?P<rate>[0-9.]+))?(?:\|#(?P<tags>.*))?$"
)


def parse_lines(datagrams: list[bytes], dogstatsd: bool = False) -> list[dict[str, Any]]:
    out = []
    for datagram in datagrams:
        for line in datagram.decode().split("\n"):
            m = (_DOG if dogstatsd else _INFLUX).match(line)
            assert m, line
            sep = ":" if dogstatsd else "="
            raw = (m["tags"] or "").strip(",")
            tags = dict(t.split(sep, 1) for t in raw.split(",") if t)
            out.append(
                {
                    "name": m["name"],
                    "tags": tags,
                    "value": float(m["value"]),
                    "kind": m["kind"],
                    "rate": float(m["rate"] or 1),
                    "line": line,
                }
            )
    return out


def recorded(state: SimState) -> dict[tuple[str, int], int]:
    """(platform, status) -> events the state recorded (200: delivered)."""
    out: Counter[tuple[str, int]] = Counter()
    with state.lock:
        for p, stats in state.platform_stats.items():
            for per in stats.events.values():
                for (_name, code), n in per.items():
                    out[(p, code)] += n
    return dict(out)


_TYPES = {"TIKTOK_ADS": "tiktok", "FACEBOOK_CONVERSIONS": "meta"}
_TYPES.update({"GOOGLE_ADWORDS_OFFLINE_CONVERSIONS": "google", "WEBHOOK": "webhook"})


def sent_counts(lines: list[dict[str, Any]], name: str) -> dict[tuple[str, int], int]:
    out: Counter[tuple[str, int]] = Counter()
    for line in lines:
        if line["name"] == name:
            code = int(line["tags"].get("respStatusCode", 200))
            out[(_TYPES[line["tags"]["destType"]], code)] += int(line["value"])
    return dict(out)


# ------------------------------------------------------------------ statsd


def test_statsd_emitter_sends_each_outcome_once(
    server: SimServer, client: httpx.Client, listener: socket.socket
) -> None:
    host, port = listener.getsockname()
    emitter = StatsdEmitter(server, host, port)
    assert emitter.flush() == 0  # nothing happened yet
    client.post(TIKTOK, json=tiktok_body(30))
    emitter.flush()  # part of this second now, the rest below: split, never doubled
    client.post(TIKTOK, json=tiktok_body(2000, "AddToCart"))
    server.set_qps_limit("tiktok", 0)
    client.post(TIKTOK, json=tiktok_body(7))
    server.set_token_valid("meta", False)
    client.post(META, json={"data": [{"event_name": "Purchase"}] * 5})
    conversions = [{"gclid": "bad1"}, {"gclid": "Cj0K1"}, {"gclid": "Cj0K2"}]
    client.post(GOOGLE, json={"conversions": conversions})
    emitter.flush()
    emitter.stop()
    assert emitter.flush() == 0  # everything went out once
    datagrams = receive_all(listener)
    assert len(datagrams) == emitter.datagrams_sent > 1
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    lines = parse_lines(datagrams)
    assert len(lines) == emitter.lines_sent
    truth = recorded(server)
    assert truth == {
        ("tiktok", 200): 2030,
        ("tiktok", 429): 7,
        ("meta", 400): 5,
        ("google", 200): 2,
        ("google", 400): 1,
    }
    assert sent_counts(lines, "router_response_counts") == truth
    delivered = {k: v for k, v in truth.items() if k[1] == 200}
    assert sent_counts(lines, "event_delivery") == delivered
    # Terminal refusals only: rudder-server retries 429s.
    assert sent_counts(lines, "router_aborted_events") == {("meta", 400): 5, ("google", 400): 1}
    first = next(x for x in lines if x["name"] == "router_response_counts")
    assert first["kind"] == "c" and set(first["tags"]) == {
        "destType",
        "destId",
        "workspaceId",
        "respStatusCode",
        "errorAt",
        "retry",
    }
    delivery = next(x for x in lines if x["name"] == "event_delivery")
    assert delivery["tags"]["destination"] == "tiktok_conversions"
    assert delivery["tags"]["module"] == "router" and delivery["tags"]["destId"] == "dst_tiktok"
    timers = [x for x in lines if x["name"] == "event_delivery_time"]
    assert timers and all(t["kind"] == "ms" and t["rate"] == 0.1 for t in timers)
    assert all(0 <= t["value"] < 10_000 for t in timers)
    # About one timer per ten delivered events (capped per send), so rate 0.1 scales back.
    assert 100 <= len(timers) <= 210


def test_statsd_emitter_dogstatsd_tags(
    server: SimServer, client: httpx.Client, listener: socket.socket
) -> None:
    host, port = listener.getsockname()
    with StatsdEmitter(server, host, port, dogstatsd=True, interval=60):
        client.post(TIKTOK, json=tiktok_body(20))
        server.set_qps_limit("tiktok", 0)
        client.post(TIKTOK, json=tiktok_body(4))
    lines = parse_lines(receive_all(listener), dogstatsd=True)
    assert sent_counts(lines, "router_response_counts") == {("tiktok", 200): 20, ("tiktok", 429): 4}
    timer = next(x["line"] for x in lines if x["name"] == "event_delivery_time")
    assert re.fullmatch(
        r"event_delivery_time:[0-9.]+\|ms\|@0\.1\|#destType:TIKTOK_ADS,destId:dst_tiktok", timer
    )


def test_statsd_helpers() -> None:
    assert parse_address("127.0.0.1:8125") == ("127.0.0.1", 8125)
    assert parse_address("[::1]:8125") == ("::1", 8125)
    for bad in ("localhost", ":8125", "host:99999", "host:x"):
        with pytest.raises(ValueError):
            parse_address(bad)
    lines = [f"m{i},destType=X:{i}|c" for i in range(500)]
    packed = pack_datagrams(lines)
    assert all(len(d) <= MAX_DATAGRAM for d in packed)
    assert b"\n".join(packed).decode().split("\n") == lines
    assert pack_datagrams(["x" * 2000]) == [b"x" * 2000]  # too long for any datagram: alone


@pytest.mark.slow
def test_simulation_runs_the_statsd_emitter(tmp_path: Any, listener: socket.socket) -> None:
    sim = Simulation(load_scenario("steady"), tmp_path, statsd=listener.getsockname())
    sim.start()
    try:
        sim.run(1.5)
    finally:
        sim.stop()
    assert sim.statsd is not None and sim.statsd.datagrams_sent > 0
    lines = parse_lines(receive_all(listener))
    truth = recorded(sim.server)
    assert truth and sent_counts(lines, "router_response_counts") == truth


def test_simulate_checks_its_statsd_options() -> None:
    for args, words in (
        (["--statsd", "nowhere"], "--statsd: expected HOST:PORT"),
        (["--dogstatsd"], "--dogstatsd needs --statsd"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "observatory", "simulate", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and words in out.stderr, out.stderr


# ------------------------------------------------------------------ delivery overview


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _query(start: float, end: float, **extra: str) -> dict[str, str]:
    params = {
        "sourceId": "src_sim",
        "destinationConfigId": "dst_tiktok",
        "startTime": _iso(start),
        "endTime": _iso(end),
        "granularity": "MINUTE",
    }
    params.update(extra)
    return params


def test_delivery_overview_counts_seconds_once_30s_old(
    server: SimServer, client: httpx.Client
) -> None:
    now = time.time()
    with server.lock:
        stats = server.platform_stats["tiktok"]
        stats.record(now - 100, 6, 0, 200, {"Purchase": 6})
        stats.record(now - 10, 4, 0, 200, {"Purchase": 4})  # not 30 s old yet
    start = (int(now) // 60 - 4) * 60
    r = client.get(
        "/delivery-overview/successful-delivery", params=_query(start, now), headers=BEARER
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["total"] == 6 and data["pagination"] == {"current": "MA==", "next": None}
    (entry,) = data["dataset"]
    assert entry["total"] == 6 and entry["totalRetryCount"] == 0
    times = [s["time"] for s in entry["series"]]
    assert times[0] == datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")
    assert len(times) == len(range(start, int(now) + 1, 60))
    bucket = datetime.fromtimestamp(int(now - 100) // 60 * 60, UTC)
    assert {s["time"]: s["count"] for s in entry["series"]}[
        bucket.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    ] == 6
    assert int(r.headers["X-RateLimit-Consumed"]) == 1
    assert int(r.headers["X-RateLimit-Remaining"]) >= 0
    assert email.utils.parsedate_to_datetime(r.headers["X-RateLimit-Reset"]).timestamp() > now
    # Time injected: the newer second counts from exactly 30 s after it began.
    newer = int(now - 10)
    later = delivery_overview_reply(
        server, "successful-delivery", _qs(_query(start, now)), "Bearer t", now=newer + LAG
    )
    assert orjson.loads(later.body)["data"]["total"] == 10
    just_before = delivery_overview_reply(
        server, "successful-delivery", _qs(_query(start, now)), "Bearer t", now=newer + LAG - 0.01
    )
    assert orjson.loads(just_before.body)["data"]["total"] == 6


def _qs(params: dict[str, str]) -> str:
    return str(httpx.QueryParams(params))


def test_delivery_overview_groups_failures_by_reason_and_event(
    server: SimServer, client: httpx.Client
) -> None:
    client.post(TIKTOK, json=tiktok_body(3, "ViewContent"))
    server.set_qps_limit("tiktok", 0)
    client.post(TIKTOK, json=tiktok_body(5, "Purchase"))
    server.set_qps_limit("tiktok", None)
    with server.lock:
        server.platform_stats["tiktok"].record(time.time(), 0, 2, 400, {"Purchase": 2})
        server.platform_stats["tiktok"].record(time.time(), 0, 1, 500)
    now = time.time() + LAG + 1
    q = _qs(_query(now - 600, now, groupBy="discardReason"))
    reply = delivery_overview_reply(server, "failed-delivery", q, "Bearer t", now=now)
    assert reply.status == 200
    by_reason = {
        e["discardReason"]: e["total"] for e in orjson.loads(reply.body)["data"]["dataset"]
    }
    assert by_reason == {"Too Many Requests": 5, "Bad Request": 2, "Internal Server Error": 1}
    q = _qs(_query(now - 600, now, groupBy="eventName,discardReason"))
    data = orjson.loads(
        delivery_overview_reply(server, "failed-delivery", q, "Bearer t", now=now).body
    )
    pairs = {(e["eventName"], e["discardReason"]): e["total"] for e in data["data"]["dataset"]}
    assert pairs == {
        ("Purchase", "Too Many Requests"): 5,
        ("Purchase", "Bad Request"): 2,
        (None, "Internal Server Error"): 1,
    }
    q = _qs(_query(now - 600, now, groupBy="eventName"))
    ok = orjson.loads(
        delivery_overview_reply(server, "successful-delivery", q, "Bearer t", now=now).body
    )
    assert [(e["eventName"], e["total"]) for e in ok["data"]["dataset"]] == [("ViewContent", 3)]
    # The other documented steps answer, empty.
    for step in ("filtered-at-destination", "filtered-at-source", "successfully-received"):
        r = client.get(
            f"/delivery-overview/{step}",
            params=_query(now - 600, time.time(), groupBy="eventName"),
            headers=BEARER,
        )
        assert r.status_code == 200 and r.json()["data"]["dataset"] == [], step


def test_delivery_overview_validation_auth_and_not_found(client: httpx.Client) -> None:
    now = time.time()
    path = "/delivery-overview/successful-delivery"
    r = client.get(path, params=_query(now - 5 * 3600, now), headers=BEARER)
    assert r.status_code == 400 and r.json()["errors"][0]["type"] == "ValidationError"
    assert "4 hours" in r.json()["errors"][0]["message"]
    old = now - 49 * 3600
    r = client.get(path, params=_query(old, old + 600), headers=BEARER)
    assert r.status_code == 400 and "48 hours" in r.json()["errors"][0]["message"]
    r = client.get(path, params=_query(old, old + 5 * 3600, granularity="HOUR"), headers=BEARER)
    assert r.status_code == 200 and len(r.json()["data"]["dataset"][0]["series"]) in (5, 6)
    for bad in ({"granularity": "WEEK"}, {"groupBy": "colour"}, {"startTime": "yesterday"}):
        r = client.get(path, params=_query(now - 600, now, **bad), headers=BEARER)
        assert r.status_code == 400 and r.json()["errors"][0]["type"] == "ValidationError", bad
    r = client.get(path, params=_query(now, now - 60), headers=BEARER)
    assert r.status_code == 400
    r = client.get(
        path, params=_query(now - 600, now, destinationConfigId="dst_nope"), headers=BEARER
    )
    assert r.status_code == 404
    assert r.json() == {
        "errors": [{"type": "resource-not-found", "message": "No destination dst_nope"}]
    }
    r = client.get(
        path, params=_query(now - 600, now, destinationConfigId="meta_capi"), headers=BEARER
    )
    assert r.status_code == 200  # any alias of a platform
    assert (
        client.get(
            "/delivery-overview/nope", params=_query(now - 600, now), headers=BEARER
        ).status_code
        == 404
    )
    r = client.get(path, params=_query(now - 600, now))
    assert r.status_code == 401 and r.json()["errors"][0]["type"] == "unauthorized"


def test_delivery_overview_rate_limits(server: SimServer, client: httpx.Client) -> None:
    now = time.time()
    path = "/delivery-overview/failed-delivery"
    server.segment_limit = 2
    statuses = [client.get(path, params=_query(now - 600, now), headers=BEARER) for _ in range(3)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    if statuses[2].status_code == 200:  # the minute turned between requests: go once more
        statuses.append(client.get(path, params=_query(now - 600, now), headers=BEARER))
        statuses.append(client.get(path, params=_query(now - 600, now), headers=BEARER))
    limited = statuses[-1]
    assert limited.status_code == 429
    assert statuses[1].headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Consumed"] == "2"
    wait_ms = limited.json()["errors"][0]["data"]["msBeforeNext"]
    assert limited.json()["errors"][0] == {
        "type": "RequestError",
        "message": "Too many requests",
        "data": {"msBeforeNext": wait_ms},
    }
    assert 0 <= wait_ms <= 60_000 and int(limited.headers["Retry-After"]) == wait_ms // 1000 + 1
    # A test can force 429s with a fault too, Retry-After and msBeforeNext included.
    server.segment_limit = 1000
    server.set_fault("/delivery-overview", "rate_limit", retry_after="7")
    forced = client.get(path, params=_query(now - 600, now), headers=BEARER)
    assert forced.status_code == 429 and forced.headers["Retry-After"] == "7"
    assert forced.json()["errors"][0]["data"]["msBeforeNext"] == 7000


# ------------------------------------------------------------------ prometheus restart


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_reset_metrics_restarts_prometheus_counters(
    server: SimServer, client: httpx.Client
) -> None:
    client.post(TIKTOK, json=tiktok_body(5))
    server.set_qps_limit("tiktok", 0)
    client.post(TIKTOK, json=tiktok_body(3))
    text = client.get("/metrics").text
    assert "# TYPE router_response_counts counter" in text
    codes = {"destType": "TIKTOK_ADS", "destId": "dst_tiktok"}
    assert _metric(text, "router_response_counts", respStatusCode="200", **codes) == 5
    assert _metric(text, "router_response_counts", respStatusCode="429", **codes) == 3
    started = _metric(
        text.replace("process_start_time_seconds ", "process_start_time_seconds{} "),
        "process_start_time_seconds",
    )
    r = client.post("/_control", json={"op": "reset_metrics"})
    assert r.status_code == 200, r.text
    text = client.get("/metrics").text
    assert _metric(text, "router_response_counts", respStatusCode="200", **codes) == 0
    assert _metric(text, "router_response_counts", respStatusCode="429", **codes) == 0
    assert _metric(text, "event_delivery", destType="TIKTOK_ADS") == 0
    assert _metric(text, "router_aborted_events", respStatusCode="429") == 0
    assert _metric(text, "router_throttled", destType="TIKTOK_ADS") == 0
    assert _metric(text, "router_delivery_latency_count", destType="TIKTOK_ADS") == 0
    again = _metric(
        text.replace("process_start_time_seconds ", "process_start_time_seconds{} "),
        "process_start_time_seconds",
    )
    assert again >= started
    client.post(TIKTOK, json=tiktok_body(2))
    text = client.get("/metrics").text
    assert _metric(text, "router_response_counts", respStatusCode="429", **codes) == 2
    # Everything else keeps counting: the restart is the exporter's alone.
    assert server.stats()["tiktok"]["throttled"] == 5
    scen = parse_scenario({"at": [{"t": 1, "op": "reset_metrics"}]})
    assert scen.actions[0].op == "reset_metrics"


# ------------------------------------------------------------------ mparticle


def test_mparticle_rate_limit_headers(server: SimServer, client: httpx.Client) -> None:
    batch = {"events": [{"event_type": "custom_event", "data": {"event_name": "x"}}]}
    assert client.post("/v2/events", json=batch).status_code == 401
    bad = {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}
    assert client.post("/v2/events", json=batch, headers=bad).status_code == 401
    r = client.post("/v2/events", json=batch, headers=BASIC)
    assert r.status_code == 202 and 0 <= int(r.headers["X-mp-rate-limit-percentage-used"]) <= 100
    assert client.post("/v2/bulkevents", json=[batch], headers=BASIC).status_code == 202
    assert client.post("/v2/bulkevents", json=batch, headers=BASIC).status_code == 400
    assert client.get("/v2/events").status_code == 405
    assert client.post("/_control", json={"op": "set_mparticle_limit", "qps": 2}).status_code == 200
    answers = [client.post("/v2/events", json=batch, headers=BASIC) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [202, 202]
    used = [int(a.headers["X-mp-rate-limit-percentage-used"]) for a in answers[:2]]
    assert used[0] < used[1] and used[1] >= 90
    limited = answers[2]
    assert limited.status_code == 429
    assert limited.headers["X-mp-rate-limit-exceeded"] == "workspace"
    assert int(limited.headers["Retry-After"]) >= 1
    assert server.mparticle_counts == {"accepted": 4, "rate_limited": 1}
    # Meta's /vN/events route is untouched, and the platforms' lists know nothing of mParticle.
    assert (
        client.post(META, json={"data": [{"event_name": "Purchase"}]}).json()["events_received"]
        == 1
    )
    assert set(server.stats()) == {"tiktok", "meta", "google", "webhook"}
    with pytest.raises(ValueError):
        server.set_qps_limit("mparticle", 1)
