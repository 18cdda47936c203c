"""Opening the TUI on logs that are only history (issue 17): every destination has a STALE
pane, the status line says what span the history covers, R (or --replay) replays it through
the detectors, its incidents are listed as found in history, and replaying again adds none.

The app runs live on a copy of the shipped config.toml and sample_logs/ (their newest line
is weeks old, so it is history whatever the wall clock says)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from observatory.config import load_config
from observatory.incidents.export import export_incident
from observatory.incidents.store import list_incidents, load_incident
from observatory.ui.app import ObservatoryApp, make_app
from observatory.ui.screens.dashboard import DashboardScreen
from observatory.ui.screens.destination import DestinationScreen
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.widgets.time_chart import TimeChart
from observatory.util.isotime import parse_iso
from tests.pilot import settle, wait_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DESTINATIONS = ["crm_webhook", "google_ads", "meta_capi", "tiktok_conversions"]
# The TikTok rate-limit outage in sample_logs/ (the id `observatory replay` gives it too:
# tests/golden/sample_logs/export-77ad2637.*)
OUTAGE_ID = "77ad2637"
SIZE = (120, 36)
pytestmark = pytest.mark.asyncio


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the shipped config and sample logs (the database lands beside them)."""
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "sample_logs", tmp_path / "sample_logs")
    return tmp_path / "config.toml"


def text_of(widget: Static) -> str:
    return str(widget.render())


def stored_incidents(app: ObservatoryApp) -> list[Any]:
    with app.read_cursor() as cur:
        return list_incidents(cur)


def replaying(app: ObservatoryApp) -> bool:
    return any(w.group == "replay" and not w.is_finished for w in app.workers)


async def history_shown(pilot: Pilot[Any]) -> DashboardScreen:
    app = pilot.app
    assert isinstance(app, ObservatoryApp)
    await wait_for(
        pilot, lambda: app.snapshot is not None and len(app.snapshot.statuses) == 4, timeout=30
    )
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


async def test_history_is_shown_replayed_by_r_and_never_twice(shipped: Path) -> None:
    app = make_app(load_config(shipped))
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await history_shown(pilot)
        snap = app.snapshot
        assert snap is not None and snap.live
        # every sample destination has a pane, marked STALE, with its last-seen time, its
        # last rates and its last stretch of traffic
        assert list(dashboard.panes) == SAMPLE_DESTINATIONS
        for name, status in snap.statuses.items():
            assert status.state == "stale", name
            assert status.last_event_ts is not None
            assert sum(status.sparkline) > 0 and status.success_pct is not None
        await pilot.pause()
        tiktok = dashboard.panes["tiktok_conversions"]
        title = tiktok.title_text.plain
        stats = tiktok.stats_text.plain
        assert "STALE" in title
        assert "newest line 11-20 14:40 UTC" in title
        assert stats.startswith("last 60 s seen:") and "delivered/s 2.0" in stats
        assert tiktok.chart_text.plain.strip()
        line = text_of(dashboard.query_one("#status-line", Static))
        assert "history: 2026-11-20 14:00–14:40 UTC, nothing live" in line
        assert "4 destinations" in line
        assert stored_incidents(app) == []  # going live found nothing: it is all history

        # R: the replay runs in a worker, then the incidents screen lists what it found
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentsScreen), timeout=30)
        incidents = app.screen
        await settle(pilot, incidents)
        table = incidents.query_one("#incident-list", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert len(rows) == 1
        assert rows[0][0] == OUTAGE_ID and rows[0][3:5] == ["tiktok_conversions", "rate_limit"]
        assert rows[0][7].startswith("found in history")
        assert "found in history" in text_of(incidents.query_one("#timeline-title", Static))
        assert app.history_note == "replayed: 1 incident found in history (1 new)"
        first = load_incident(app.read_cursor(), OUTAGE_ID)
        assert first.historical and first.state == "resolved" and first.severity == "critical"

        # again: the same incident, not a second one
        await pilot.press("R")
        await wait_for(pilot, lambda: not replaying(app) and "(0 new)" in app.history_note)
        await settle(pilot, incidents)
        assert table.row_count == 1
        assert app.history_note == "replayed: 1 incident found in history (0 new)"
        again = stored_incidents(app)
        assert [i.id for i in again] == [OUTAGE_ID]
        assert again[0].timeline == first.timeline

        # exports work as for a live incident
        full_id, markdown = app.export_incident(OUTAGE_ID, "md")
        assert full_id == OUTAGE_ID and "## Timeline" in markdown

        # the destination screen's chart covers the stored history, up to its last event
        await pilot.press("escape")
        dashboard.panes["tiktok_conversions"].focus()
        await pilot.press("enter")
        dest = app.screen
        assert isinstance(dest, DestinationScreen)
        await settle(pilot, dest)
        chart = dest.query_one(TimeChart)
        assert chart.data is not None  # the stored span, not the 5 minutes before now
        assert (chart.data.now - chart.data.seconds, chart.data.now) == (
            parse_iso("2026-11-20T14:00:00Z"),
            parse_iso("2026-11-20T14:40:01Z"),
        )
        assert "2026-11-20 14:00:00 – 14:40:01 UTC" in str(chart.render())
        assert OUTAGE_ID in str(dest.query_one("#dest-incidents", DataTable).get_row_at(0)[0])


async def test_the_replay_flag_opens_straight_into_the_replayed_incidents(shipped: Path) -> None:
    app = make_app(load_config(shipped), replay_history=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentsScreen), timeout=30)
        await settle(pilot, app.screen)
        assert [i.id for i in stored_incidents(app)] == [OUTAGE_ID]
        with app.read_cursor() as cur:
            incident = load_incident(cur, OUTAGE_ID)
            html = export_incident(cur, incident, "html")
        assert incident.historical and "<svg" in html
