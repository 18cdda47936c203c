"""The SQL console's example queries (observatory.ui.snippets), each run through the
console's own guard on a real DuckDB file with data: log lines and a feed's per-second
counts, an old tail outside the windows, and an incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from observatory.incidents.model import Impact, Incident
from observatory.incidents.store import save_incident
from observatory.store.db import connect
from observatory.store.schema import DDL
from observatory.ui.queries import run_console_sql
from observatory.ui.snippets import SNIPPETS

T0 = 1_699_999_980.0  # 2023-11-14T22:13:00Z (on a minute); the newest data at T0 + 599.2


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = connect(str(tmp_path / "obs.duckdb"))
    for statement in DDL:
        con.execute(statement)
    rows: list[list[Any]] = []
    # tiktok over the last 10 minutes: 3 lines a second, the last 2 minutes 2 of them throttled
    for s in range(600):
        for k in range(3):
            throttled = s >= 480 and k < 2
            rows.append(
                [
                    T0 + s + k / 10,
                    "tiktok",
                    "rate_limited" if throttled else "delivered",
                    200,
                    "40100" if throttled else None,
                    "Too many requests" if throttled else None,
                    50.0 + 10 * k,
                ]
            )
    # meta: a 503 every 10 s over the same span
    rows += [
        [T0 + s, "meta", "failed", 503, "ERR", "Service Unavailable", 300.0]
        for s in range(0, 600, 10)
    ]
    # two hours earlier: outside every window
    rows += [[T0 - 7200, "tiktok", "rate_limited", 429, "old", "old", 1.0]] * 50
    names = ["ts", "destination", "outcome", "http_status", "code", "message", "latency_ms"]
    lines = pa.table({name: [r[i] for r in rows] for i, name in enumerate(names)})  # noqa: F841
    con.execute(
        "INSERT INTO events (ts, ingested_at, source, destination, outcome, http_status, "
        "error_code, error_message, latency_ms) "
        "SELECT to_timestamp(ts), to_timestamp(0), 'logs', destination, outcome, http_status, "
        "code, message, latency_ms FROM lines"
    )
    # a feed destination (no log lines): 5 delivered and 5 throttled a second, last 60 s
    con.executemany(
        "INSERT INTO feed_seconds VALUES (to_timestamp(?), 'ga4', 'ga4', 5, 5, 0, 0, 0, 0, 0, 0)",
        [[T0 + 540 + s] for s in range(60)],
    )
    inc = Incident(
        id="3f2a9c1e",
        destination="tiktok",
        detector="rate_limit",
        severity="critical",
        onset=T0 + 480,
        detected_at=T0 + 490,
        summary="429s from TikTok",
        impact=Impact(rate_limited=240),
    )
    save_incident(con, inc)
    return con


def run(con: duckdb.DuckDBPyConnection, title: str) -> list[dict[str, Any]]:
    snippet = next(s for s in SNIPPETS if s.title == title)
    result = run_console_sql(con.cursor(), snippet.sql)
    assert not result.more
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_the_required_snippets_are_listed() -> None:
    titles = [s.title for s in SNIPPETS]
    assert {"Throughput per minute", "Top errors", "429 share (15 min)"} <= set(titles)
    assert len(set(titles)) == len(titles)
    assert all(len(t) <= 22 for t in titles)  # the sidebar list, unwrapped


def test_throughput_per_destination_per_minute(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(con, "Throughput per minute")
    # ten minutes of tiktok and meta, the feed's last minute; nothing from two hours before
    assert {r["destination"] for r in rows} == {"tiktok", "meta", "ga4"}
    tiktok = [r for r in rows if r["destination"] == "tiktok"]
    assert len(tiktok) == 10
    newest, oldest = tiktok[0], tiktok[-1]
    assert newest["minute"] > oldest["minute"]
    assert (oldest["delivered"], oldest["attempts"], oldest["delivered_per_s"]) == (180, 180, 3.0)
    assert (newest["delivered"], newest["attempts"], newest["delivered_per_s"]) == (60, 180, 1.0)
    ga4 = [r for r in rows if r["destination"] == "ga4"]
    assert [(r["delivered"], r["attempts"]) for r in ga4] == [(300, 600)]
    meta = [r for r in rows if r["destination"] == "meta"]
    assert all(r["delivered"] == 0 and r["attempts"] == 6 for r in meta)


def test_top_errors(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(con, "Top errors")
    top = rows[0]
    assert (top["destination"], top["outcome"], top["error_code"], top["n"]) == (
        "tiktok",
        "rate_limited",
        "40100",
        240,
    )
    assert top["first_seen"].timestamp() == pytest.approx(T0 + 480)
    assert top["last_seen"].timestamp() == pytest.approx(T0 + 599.1)
    assert [(r["destination"], r["n"]) for r in rows[1:]] == [("meta", 60), ("tiktok", 50)]


def test_429_share_per_destination(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(con, "429 share (15 min)")
    # last 15 min of data: tiktok 240 throttled of 1800; ga4 300 of 600; meta none
    assert [(r["destination"], r["rate_limited"], r["attempts"], r["pct_429"]) for r in rows] == [
        ("ga4", 300, 600, 50.0),
        ("tiktok", 240, 1800, 13.3),
        ("meta", 0, 60, 0.0),
    ]


def test_429_share_per_minute(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(con, "429 share per minute")
    tiktok = [r["pct_429"] for r in rows if r["destination"] == "tiktok"]
    assert tiktok == [66.7, 66.7] + [0.0] * 8


def test_latency_percentiles(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(con, "Latency percentiles")
    assert [r["destination"] for r in rows] == ["meta", "tiktok"]
    assert rows[0]["p50_ms"] == 300.0
    assert rows[1]["p50_ms"] == 60.0 and rows[1]["n"] == 1800


def test_incidents(con: duckdb.DuckDBPyConnection) -> None:
    rows = run(con, "Incidents")
    assert [(r["id"], r["destination"], r["state"]) for r in rows] == [
        ("3f2a9c1e", "tiktok", "open")
    ]
