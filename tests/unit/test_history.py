"""observatory.history: the stored history as STALE statuses, and the on-demand replay (the
TUI's R key) finding what `observatory replay` finds, saved once however often it runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from observatory.config import load_config
from observatory.history import read_history, replay_stored, save_replayed
from observatory.incidents.store import list_incidents
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.owner import build_runtime
from observatory.store.db import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sample_store(tmp_path: Path) -> tuple[Store, Path]:
    """The shipped sample logs ingested into a fresh database (a copy beside them)."""
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "sample_logs", tmp_path / "sample_logs")
    config = load_config(tmp_path / "config.toml")
    store = Store.for_config(config)
    ingest_files(store, plan_files(config, ()))
    return store, tmp_path / "config.toml"


def test_stored_history_is_a_stale_status_per_destination(
    sample_store: tuple[Store, Path],
) -> None:
    store, _ = sample_store
    try:
        history = read_history(store.con, ["tiktok_conversions", "not_in_the_logs"])
    finally:
        store.close()
    assert (history.first, history.last) == pytest.approx((1795183200.203, 1795185600.104))
    names = ["crm_webhook", "google_ads", "meta_capi", "not_in_the_logs", "tiktok_conversions"]
    assert list(history.statuses) == names
    tiktok = history.statuses["tiktok_conversions"]
    assert tiktok.state == "stale" and tiktok.last_event_ts == 1795185600.0
    assert len(tiktok.sparkline) == 300 and sum(tiktok.sparkline) > 0
    assert tiktok.success_pct == 100.0 and tiktok.delivered_now > 0
    # its chart's windows end with its last second of traffic, and hold that traffic
    assert [t.window for t in tiktok.trends] == [60, 900, 3600]
    assert all(t.start <= 1795185600 < t.end for t in tiktok.trends)
    assert sum(tiktok.trends[1].delivered) >= sum(tiktok.sparkline) > 0
    empty = history.statuses["not_in_the_logs"]
    assert empty.state == "stale" and empty.last_event_ts is None and empty.sparkline == []
    assert empty.trends == []


def test_replay_finds_what_observatory_replay_finds_and_saves_it_once(
    sample_store: tuple[Store, Path],
) -> None:
    store, config_path = sample_store
    config = load_config(config_path)
    try:
        first = replay_stored(store.con.cursor(), config)
        second = replay_stored(store.con.cursor(), config)
        assert save_replayed(store.con, first.incidents) == 1
        assert save_replayed(store.con, second.incidents) == 0
        stored = list_incidents(store.con)
    finally:
        store.close()
    assert [i.id for i in first.incidents] == [i.id for i in second.incidents] == ["77ad2637"]
    assert [i.id for i in stored] == ["77ad2637"] and stored[0].historical
    assert stored[0].timeline == first.incidents[0].timeline

    # the runtime's replay (`observatory replay`) on the same events: the same incidents
    runtime = build_runtime(config, alerts=False)
    try:
        runtime.replay_history()
        by_runtime = runtime.ledger.all_incidents()
    finally:
        runtime.close()
    assert [(i.id, i.severity, i.onset, i.resolved_at) for i in by_runtime] == [
        (i.id, i.severity, i.onset, i.resolved_at) for i in first.incidents
    ]
