"""The destination screen's grouped failures (observatory.ui.queries) on a real DuckDB
file: alike failures counted together with their first and last time, the most recently
seen group first, and a group opened: its newest failure in full and its newest members."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from observatory.store.db import connect
from observatory.store.schema import DDL
from observatory.ui.queries import FailureGroup, failure_group_detail, failure_groups

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = connect(str(tmp_path / "obs.duckdb"))
    for statement in DDL:
        con.execute(statement)
    rows = []

    def add(dest: str, ts: float, outcome: str, status: int | None, code: str | None,
            message: str | None, mid: str) -> None:  # fmt: skip
        rows.append([ts, dest, outcome, status, code, message, mid])

    # tiktok: eleven throttled lines 10 s apart, and two 503s earlier on
    for n in range(11):
        add("tiktok", T0 + 100 + 10 * n, "rate_limited", 200, "40100", "Too many requests",
            f"rl-{n:02}")  # fmt: skip
    add("tiktok", T0 + 20, "failed", 503, "ERR_BAD_RESPONSE", "Service Unavailable", "f-1")
    add("tiktok", T0 + 50, "failed", 503, "ERR_BAD_RESPONSE", "Service Unavailable", "f-2")
    # a failure with no code or message (NULLs group together) and the last of all
    add("tiktok", T0 + 300, "dropped", None, None, None, "d-1")
    add("tiktok", T0 + 5, "dropped", None, None, None, "d-0")
    # the same message at another status: a group of its own
    add("tiktok", T0 + 60, "rate_limited", 429, "40100", "Too many requests", "rl-429")
    # deliveries and another destination's failures: not counted
    add("tiktok", T0 + 400, "delivered", 200, None, None, "ok-1")
    add("meta", T0 + 500, "failed", 503, "ERR_BAD_RESPONSE", "Service Unavailable", "m-1")
    con.executemany(
        "INSERT INTO events (ts, ingested_at, source, destination, outcome, http_status, "
        "error_code, error_message, latency_ms, message_id) "
        "VALUES (to_timestamp(?), to_timestamp(0), 'logs', ?, ?, ?, ?, ?, 42.0, ?)",
        [[r[0], r[1], r[2], r[3], r[4], r[5], r[6]] for r in rows],
    )
    return con


def test_alike_failures_are_one_group_with_count_first_and_last(
    con: duckdb.DuckDBPyConnection,
) -> None:
    groups = failure_groups(con, "tiktok")
    assert groups == [
        FailureGroup("dropped", None, None, None, 2, T0 + 5, T0 + 300),
        FailureGroup("rate_limited", 200, "40100", "Too many requests", 11, T0 + 100, T0 + 200),
        FailureGroup("rate_limited", 429, "40100", "Too many requests", 1, T0 + 60, T0 + 60),
        FailureGroup("failed", 503, "ERR_BAD_RESPONSE", "Service Unavailable", 2, T0 + 20, T0 + 50),
    ]
    # newest-seen first, and bounded
    assert failure_groups(con, "tiktok", limit=2) == groups[:2]
    assert failure_groups(con, "nobody") == []


def test_a_group_opened_shows_its_newest_failure_and_members(
    con: duckdb.DuckDBPyConnection,
) -> None:
    throttled = failure_groups(con, "tiktok")[1]
    detail = failure_group_detail(con, "tiktok", throttled, limit=3)
    fields = dict(detail.newest)
    assert fields["message_id"] == "rl-10" and fields["error_code"] == "40100"
    assert fields["http_status"] == "200" and fields["destination"] == "tiktok"
    assert [m.message_id for m in detail.members] == ["rl-10", "rl-09", "rl-08"]
    assert [m.ts for m in detail.members] == [T0 + 200, T0 + 190, T0 + 180]
    # NULL code and message match NULLs (not nothing)
    dropped = failure_group_detail(con, "tiktok", failure_groups(con, "tiktok")[0])
    assert [m.message_id for m in dropped.members] == ["d-1", "d-0"]
    # a group no longer stored: nothing, not an error
    gone = FailureGroup("failed", 500, "X", "gone", 1, T0, T0)
    assert failure_group_detail(con, "tiktok", gone) == type(dropped)([], [])
