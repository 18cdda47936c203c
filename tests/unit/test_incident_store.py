"""Incident persistence (observatory.incidents.store) on real DuckDB files: save/load round
trips, id prefixes, listing, acknowledgement and notes, transactions, and operator actions
surviving the engine's next save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from observatory.incidents.model import Impact, Incident, TimelineEntry
from observatory.incidents.store import (
    IncidentLookupError,
    acknowledge,
    add_note,
    in_transaction,
    list_incidents,
    load_incident,
    save_incident,
)
from observatory.store.db import Store, connect

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def make_incident(inc_id: str = "3f2a9c1e", **overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": inc_id,
        "destination": "tiktok_conversions",
        "detector": "rate_limit",
        "severity": "critical",
        "onset": T0 + 600.25,
        "detected_at": T0 + 614.5,
        "detectors": ["rate_limit", "volume_drop"],
        "summary": "429s from TikTok (code 40100); throughput down 90 %",
        "evidence": {
            "top_errors": [{"code": "40100", "message": "Too many requests", "count": 812}],
            "rate_limited_share": 0.83,
            "retry_after": "30",
            "latency_ms": {"p50": 41.2, "p95": 180.5, "p99": 412.0},
        },
        "impact": Impact(not_delivered_est=9876, failed=41, rate_limited=812, rejected=3),
        "flaps": 1,
        "historical": True,
    }
    fields.update(overrides)
    inc = Incident(**fields)
    if "timeline" not in overrides:
        inc.note(inc.detected_at, "opened", "rate_limit: 429 share 83 %")
        inc.note(inc.detected_at + 20, "detector", "volume_drop joined")
        inc.note(inc.detected_at + 20, "escalated", "error -> critical")  # same ts: order kept
    return inc


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(str(tmp_path / "obs.duckdb"))
    yield s
    s.close()


def test_save_and_load_round_trip_every_field(store: Store) -> None:
    inc = make_incident(
        state="resolved", acknowledged_at=T0 + 650.125, resolved_at=T0 + 1500.000001
    )
    save_incident(store.con, inc)
    assert load_incident(store.con, inc.id) == inc


def test_impact_is_typed_and_older_names_of_the_estimate_still_load(store: Store) -> None:
    save_incident(store.con, make_incident("aaaa1111", impact=None))
    assert load_incident(store.con, "aaaa1111").impact is None  # nothing counted: stays so
    for inc_id, old in (("bbbb2222", "not_delivered"), ("cccc3333", "not_delivered_estimate")):
        save_incident(store.con, make_incident(inc_id))
        store.con.execute(
            "UPDATE incidents SET impact = ? WHERE id = ?",
            [f'{{"{old}": 12.6, "failed": 3, "surprise": "x"}}', inc_id],
        )
        assert load_incident(store.con, inc_id).impact == Impact(not_delivered_est=13, failed=3)


def test_times_come_back_exact_to_the_microsecond(store: Store) -> None:
    inc = make_incident(onset=T0 + 0.123456, detected_at=T0 + 12.654321)
    save_incident(store.con, inc)
    back = load_incident(store.con, inc.id)
    assert (back.onset, back.detected_at) == (inc.onset, inc.detected_at)
    assert back.resolved_at is None and back.acknowledged_at is None


def test_save_upserts_and_replaces_the_timeline(store: Store) -> None:
    inc = make_incident()
    save_incident(store.con, inc)
    inc.severity = "error"
    inc.state = "resolved"
    inc.resolved_at = T0 + 900
    inc.timeline = [
        TimelineEntry(T0 + 614.5, "opened", "again"),
        TimelineEntry(T0 + 900, "resolved", "ok"),
    ]
    save_incident(store.con, inc)
    assert store.con.execute("SELECT count(*) FROM incidents").fetchall() == [(1,)]
    back = load_incident(store.con, inc.id)
    assert back.severity == "error" and back.state == "resolved"
    assert [(e.kind, e.detail) for e in back.timeline] == [("opened", "again"), ("resolved", "ok")]


def test_save_joins_an_open_transaction(store: Store) -> None:
    store.begin()
    assert in_transaction(store.con)
    save_incident(store.con, make_incident("a1"))
    assert in_transaction(store.con)  # still the caller's transaction
    store.rollback()
    assert list_incidents(store.con) == []
    store.begin()
    save_incident(store.con, make_incident("a1"))
    store.commit()
    assert [i.id for i in list_incidents(store.con)] == ["a1"]


def test_a_failed_save_outside_a_transaction_leaves_nothing_half_written(store: Store) -> None:
    inc = make_incident("a1")
    save_incident(store.con, inc)
    broken = make_incident("a1", severity="warning")
    broken.timeline.append(TimelineEntry(T0 + 700, None, "no kind"))  # type: ignore[arg-type]  # on purpose
    with pytest.raises(duckdb.Error):
        save_incident(store.con, broken)
    assert not in_transaction(store.con)
    assert load_incident(store.con, "a1") == inc  # neither the row nor the timeline changed


def test_unique_prefix_and_exact_id(store: Store) -> None:
    for inc_id in ("3f2a9c1e", "3f2b0000", "77aa", "77aa01"):
        save_incident(store.con, make_incident(inc_id))
    assert load_incident(store.con, "3f2a").id == "3f2a9c1e"
    assert load_incident(store.con, "3f2b").id == "3f2b0000"
    # An exact id wins over the longer ids it is a prefix of.
    assert load_incident(store.con, "77aa").id == "77aa"
    assert load_incident(store.con, "77aa0").id == "77aa01"


def test_ambiguous_and_unknown_ids_raise_key_errors_that_say_so(store: Store) -> None:
    for inc_id in ("3f2a9c1e", "3f2b0000"):
        save_incident(store.con, make_incident(inc_id))
    with pytest.raises(KeyError) as ambiguous:
        load_incident(store.con, "3f2")
    assert "ambiguous" in str(ambiguous.value)
    assert "3f2a9c1e" in str(ambiguous.value) and "3f2b0000" in str(ambiguous.value)
    with pytest.raises(IncidentLookupError, match="no incident with id 'zz'"):
        load_incident(store.con, "zz")
    with pytest.raises(KeyError, match="no incident id"):
        load_incident(store.con, "  ")
    # Prefixes are literal text, not LIKE patterns.
    with pytest.raises(KeyError):
        load_incident(store.con, "%")


def test_list_is_newest_first_with_timelines_and_filters_by_destination(store: Store) -> None:
    save_incident(store.con, make_incident("old", detected_at=T0 + 100, onset=T0 + 90))
    save_incident(store.con, make_incident("new", detected_at=T0 + 900, onset=T0 + 880))
    save_incident(store.con, make_incident("meta", destination="meta_capi", detected_at=T0 + 500))
    listed = list_incidents(store.con)
    assert [i.id for i in listed] == ["new", "meta", "old"]
    assert all(len(i.timeline) == 3 for i in listed)
    assert [i.timeline[-1].kind for i in listed] == ["escalated"] * 3
    assert [i.id for i in list_incidents(store.con, "meta_capi")] == ["meta"]
    assert list_incidents(store.con, "nobody") == []


def test_acknowledge_is_recorded_once(store: Store) -> None:
    save_incident(store.con, make_incident("a1"))
    acked = acknowledge(store.con, "a1", T0 + 700)
    assert acked.state == "acknowledged" and acked.acknowledged_at == T0 + 700
    assert load_incident(store.con, "a1") == acked
    again = acknowledge(store.con, "a", T0 + 800)
    assert again.acknowledged_at == T0 + 700
    assert [e.kind for e in again.timeline].count("acknowledged") == 1
    assert load_incident(store.con, "a1") == acked


def test_acknowledging_a_resolved_incident_changes_nothing(store: Store) -> None:
    inc = make_incident("r1", state="resolved", resolved_at=T0 + 900)
    save_incident(store.con, inc)
    assert acknowledge(store.con, "r1", T0 + 1000) == inc
    assert load_incident(store.con, "r1") == inc


def test_notes_are_timeline_entries(store: Store) -> None:
    save_incident(store.con, make_incident("a1"))
    add_note(store.con, "a1", T0 + 620, "  paged the on-call  ")
    noted = add_note(store.con, "a1", T0 + 630, "TikTok support ticket 12345 | opened")
    assert [(e.kind, e.detail) for e in noted.timeline if e.kind == "note"] == [
        ("note", "paged the on-call"),
        ("note", "TikTok support ticket 12345 | opened"),
    ]
    assert load_incident(store.con, "a1").timeline == noted.timeline
    with pytest.raises(ValueError):
        add_note(store.con, "a1", T0 + 640, "   ")
    with pytest.raises(KeyError):
        add_note(store.con, "nope", T0 + 640, "text")


def test_operator_actions_survive_the_engines_next_save(store: Store) -> None:
    """The engine saves its in-memory copy, which never saw the acknowledgement or notes."""
    engine_copy = make_incident("a1")
    save_incident(store.con, engine_copy)
    acknowledge(store.con, "a1", T0 + 700)
    add_note(store.con, "a1", T0 + 710, "raised the QPS limit")
    engine_copy.severity = "critical"
    engine_copy.note(T0 + 720, "evidence", "429 share 91 %")
    save_incident(store.con, engine_copy)
    back = load_incident(store.con, "a1")
    assert back.state == "acknowledged" and back.acknowledged_at == T0 + 700
    assert [e.kind for e in back.timeline] == [
        "opened",
        "detector",
        "escalated",
        "acknowledged",
        "note",
        "evidence",
    ]
    # Resolution by the engine still wins over the acknowledgement.
    engine_copy.state = "resolved"
    engine_copy.resolved_at = T0 + 900
    save_incident(store.con, engine_copy)
    back = load_incident(store.con, "a1")
    assert back.state == "resolved" and back.acknowledged_at == T0 + 700


def test_a_read_only_connection_loads_and_lists(tmp_path: Path) -> None:
    path = str(tmp_path / "obs.duckdb")
    s = Store(path)
    save_incident(s.con, make_incident("a1"))
    s.close()
    con = connect(path, read_only=True)
    try:
        assert load_incident(con, "a").id == "a1"
        assert [i.id for i in list_incidents(con)] == ["a1"]
    finally:
        con.close()
