"""The wire forms an attached viewer reads: a Snapshot through JSON, and SQL rows by type."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import duckdb
import orjson

from observatory.detect.status import DestinationStatus
from observatory.incidents.model import Impact, Incident, TimelineEntry
from observatory.server.sqlwire import decode_rows, encode_result
from observatory.snapshot import Snapshot, snapshot_from_json, snapshot_json


def test_snapshot_round_trips_through_json() -> None:
    """What the owner streams is what the viewer rebuilds (fast; no owner needed)."""
    snap = Snapshot(
        now=1_700_000_000.5,
        statuses={
            "t": DestinationStatus(
                "t", "down", 12.5, 40.0, 55.0, 90.0, 1_700_000_000.0, "i1", [1, 2]
            )
        },
        incidents=[
            Incident(
                "i1",
                "t",
                "rate_limit",
                "critical",
                1.0,
                2.0,
                detectors=["rate_limit"],
                evidence={"rate_limited_share": 0.8},
                impact=Impact(not_delivered_est=7, failed=1),
                timeline=[TimelineEntry(2.0, "opened", "rate_limit: [b]429[/b]")],
            )
        ],
        live=True,
        note="n",
        backup={"t": {"destination": "t", "missing": 3}},
        dependencies={"segment": {"state": "failing", "checked_at": 1.5, "detail": "x: y"}},
    )
    assert snapshot_from_json(snapshot_json(snap)) == snap


def test_sql_values_round_trip_by_type() -> None:
    con = duckdb.connect()
    con.execute(
        "select now()::timestamptz t, '2024-01-02'::date d, 'nan'::double x, 'inf'::double y, "
        "1.25::decimal(9,2) m, 170141183460469231731687303715884105727::hugeint h, "
        "interval 3 day + interval 5 second i, '\\x00\\xff'::blob b, gen_random_uuid() u, "
        "[1, 2] l, {'a': 'b'} s, 'x' v, null n, 12::smallint k"
    )
    types = [str(d[1]) for d in con.description or []]
    rows = con.fetchall()
    body = orjson.loads(encode_result([], types, rows, False))
    (got,) = decode_rows(body["types"], body["rows"])
    (want,) = rows
    for g, w in zip(got, want, strict=True):
        if isinstance(w, float) and w != w:
            assert g != g
        else:
            assert g == w, (g, w)
    assert isinstance(got[0], dt.datetime) and isinstance(got[4], Decimal)
    assert isinstance(got[8], uuid.UUID)
