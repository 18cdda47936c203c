"""mParticle's rate-limit headers through an `http` probe over real HTTP on loopback: a tiny
aiohttp server answers like mParticle's Events API (202 with X-mp-rate-limit-percentage-used,
then 429 with X-mp-rate-limit-exceeded and Retry-After); the probe parses them, the runtime
stores them and feeds the drift tracker, whose status says them in words. And the logged
`rate_limit_used` column: mapped from a log field, migrated into an existing database,
aggregated per second (max) and read by the drift tracker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest
from aiohttp import web

from observatory.config import ProbeConfig, load_config
from observatory.detect.aggregate import fetch_seconds
from observatory.detect.drift import DriftTracker
from observatory.ingest.backfill import ingest_files
from observatory.probes import ProbeResult, make_probe
from observatory.runtime import Runtime
from observatory.server.background import BackgroundServer
from observatory.store.db import Store
from observatory.store.schema import OUTCOMES
from tests.helpers import make_config

DEST = "mparticle"


class FakeEventsApi:
    """Answers POST/GET /v2/events like mParticle: 202 with the usage header, or 429."""

    def __init__(self) -> None:
        self.limited = False
        app = web.Application()
        app.router.add_route("*", "/v2/events", self.handle)
        self.http = BackgroundServer(app, "127.0.0.1", 0, name="fake-mparticle")

    async def handle(self, request: web.Request) -> web.Response:
        if self.limited:
            return web.Response(
                status=429,
                headers={"Retry-After": "3", "X-mp-rate-limit-exceeded": "Workspace"},
            )
        return web.Response(status=202, headers={"X-mp-rate-limit-percentage-used": "97.5"})


@pytest.fixture
def api() -> Iterator[FakeEventsApi]:
    server = FakeEventsApi()
    server.http.start()
    yield server
    server.http.stop()


def probe_once(url: str) -> ProbeResult:
    probe = make_probe(
        DEST,
        ProbeConfig(
            kind="http",
            url=url + "/v2/events",
            timeout=2.0,
            expect_status=202,
            headers={"Authorization": "Basic a2V5OnNlY3JldC12YWx1ZQ=="},
        ),
    )

    async def go() -> ProbeResult:
        async with httpx.AsyncClient() as client:
            result: ProbeResult = await probe.run(client)
            return result

    return asyncio.run(go())


def test_probe_reads_the_headers_and_feeds_the_drift_status(
    api: FakeEventsApi, tmp_path: Path
) -> None:
    ok = probe_once(api.http.url)
    assert ok.ok and ok.http_status == 202
    assert ok.details["rate_limit"]["mparticle"] == {"percentage_used": 97.5}
    assert ok.details["rate_limit_headers"]["x-mp-rate-limit-percentage-used"] == "97.5"
    api.limited = True
    limited = probe_once(api.http.url)
    assert not limited.ok and limited.http_status == 429
    assert limited.details["rate_limit"]["mparticle"] == {"exceeded": "workspace"}
    assert limited.details["rate_limit"]["retry_after_s"] == 3
    assert limited.retry_at is not None

    runtime = Runtime(load_config(make_config(tmp_path)))
    try:
        runtime.record_probe_results([ok])
        status = runtime.drift.status()[DEST]
        assert status.rate_limit_used_pct == 97.5
        assert status.rate_limit_usage == "mParticle reports 97.5 % of its rate limit used"
        runtime.record_probe_results([limited])
        status = runtime.drift.status()[DEST]
        assert status.retry_after_s == 3.0  # read from the parsed headers
        assert status.rate_limit_exceeded == "workspace"
        assert status.rate_limit_usage == "rate limit exceeded (workspace scope)"
        # stored as the probe saw it, without the request's credentials
        texts = [
            str(d)
            for (d,) in runtime.store.con.execute(
                "SELECT details FROM probes ORDER BY ts"
            ).fetchall()
        ]
        assert not any("a2V5OnNlY3JldC12YWx1ZQ" in t for t in texts)
        assert orjson.loads(texts[1])["rate_limit"]["mparticle"] == {"exceeded": "workspace"}
    finally:
        runtime.close()


# -- the logged column ----------------------------------------------------------------------


def log_line(ms: int, status: int, used: float | None, mid: str) -> str:
    rec: dict[str, object] = {
        "time": ms,
        "dest": DEST,
        "status": status,
        "messageId": mid,
        "mp": {"usage": str(used) if used is not None else None},
    }
    return json.dumps(rec)


def test_logged_usage_is_mapped_aggregated_by_max_and_read_by_drift(tmp_path: Path) -> None:
    fields = {"ts": "time", "destination": "dest", "http_status": "status"}
    fields |= {"message_id": "messageId", "rate_limit_used": "mp.usage"}
    config = load_config(make_config(tmp_path, sources=[{"fields": fields}]))
    t0 = 1_700_000_000_000
    lines = [
        log_line(t0 + 10, 202, 41.0, "a"),
        log_line(t0 + 500, 202, 96.5, "b"),  # the second's peak
        log_line(t0 + 900, 202, None, "c"),
        log_line(t0 + 1200, 429, None, "d"),  # a second without a reading
        log_line(t0 + 2100, 202, float("nan"), "e"),  # not a reading either
    ]
    log = tmp_path / "logs" / "d.jsonl"
    log.write_text("\n".join(lines) + "\n")
    store = Store.for_config(config)
    try:
        for whole in (0, 1 << 30):  # DuckDB's whole-file reader, and blocks
            store.con.execute("DELETE FROM events; DELETE FROM ingest_offsets")
            ingest_files(store, [(str(log), config.sources[0])], whole_file_min=whole)
            rows = store.con.execute(
                "SELECT message_id, rate_limit_used FROM events ORDER BY message_id"
            ).fetchall()
            assert rows == [("a", 41.0), ("b", 96.5), ("c", None), ("d", None), ("e", None)]
        seconds = fetch_seconds(store.con)
    finally:
        store.close()
    assert [(c.sec, c.rate_limit_used) for c in seconds] == [
        (1_700_000_000, 96.5),
        (1_700_000_001, None),
        (1_700_000_002, None),
    ]
    drift = DriftTracker()
    drift.feed(seconds)
    drift.advance(1_700_000_010)
    status = drift.status()[DEST]
    assert status.rate_limit_used_pct == 96.5
    assert status.rate_limit_usage_at == 1_700_000_001.0  # the end of the second it was logged
    assert status.rate_limit_usage == "the delivery logs report 96.5 % of the rate limit used"


def test_column_is_added_to_an_existing_database(tmp_path: Path) -> None:
    db = str(tmp_path / "old.duckdb")
    con = duckdb.connect(db)
    con.execute(f"CREATE TYPE outcome_t AS ENUM {OUTCOMES!r}")
    con.execute(
        "CREATE TABLE events (ts TIMESTAMPTZ NOT NULL, ingested_at TIMESTAMPTZ NOT NULL, "
        "source VARCHAR NOT NULL, destination VARCHAR NOT NULL, event_name VARCHAR, "
        "message_id VARCHAR, outcome outcome_t NOT NULL, http_status SMALLINT, "
        "error_code VARCHAR, error_message VARCHAR, latency_ms DOUBLE, attempt SMALLINT)"
    )
    con.execute(
        "INSERT INTO events VALUES (to_timestamp(1700000000), now(), 'fwd', 'm', NULL, 'x', "
        "'delivered', 202, NULL, NULL, 5.0, 1)"
    )
    con.close()
    store = Store(db)
    try:
        cols = [r[0] for r in store.con.execute("DESCRIBE events").fetchall()]
        assert cols[-1] == "rate_limit_used"
        (second,) = fetch_seconds(store.con)
        assert second.delivered == 1 and second.rate_limit_used is None
    finally:
        store.close()
    Store(db).close()  # opening it again changes nothing
