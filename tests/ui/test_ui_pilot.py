"""The TUI driven by Pilot: every key binding, the palette, SQL, acknowledge/export, and
untrusted names shown literally."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TextArea

from observatory.incidents.store import load_incident
from observatory.ui.app import ObservatoryApp
from observatory.ui.screens.dashboard import DashboardScreen
from observatory.ui.screens.destination import DestinationScreen
from observatory.ui.screens.help import HelpScreen
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.screens.sql import SqlScreen
from observatory.ui.widgets.destination_pane import DestinationPane
from tests.pilot import open_incidents, settle, wait_for
from tests.ui.dataset import MARKUP_DEST, AppMaker

# Fixtures shared with the other UI test modules.
SIZE = (120, 36)
pytestmark = pytest.mark.asyncio


def static_text(widget: Static) -> str:
    return str(widget.render())


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def ready(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, ObservatoryApp)
    await wait_for(
        pilot, lambda: app.snapshot is not None and bool(app.screen.query(DestinationPane))
    )


async def driver_round(pilot: Pilot[Any]) -> None:
    """Two commands through the runtime's thread, then the app's queue: the driver publishes
    (unless paused) after each command, so by the time the second has run, the snapshot
    after the first is on its way and `pause()` hands it to the app."""
    app = pilot.app
    assert isinstance(app, ObservatoryApp)
    await asyncio.wrap_future(app.submit(lambda rt: None))
    await asyncio.wrap_future(app.submit(lambda rt: None))
    await pilot.pause()


async def test_dashboard_keys_filter_enter_escape_pause_quit(make_ui: AppMaker) -> None:
    app = make_ui("incident")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        assert set(dash.panes) == {"tiktok_conversions", "meta_capi"}
        bar = dash.query_one("#incident-bar", Static)
        assert bar.display and "tiktok_conversions" in static_text(bar)
        # / filters
        await pilot.press("slash")
        assert dash.filtering and "FILTER" in static_text(dash.query_one("#status-line", Static))
        # while filtering, letters are text: s, i, p and q do not open, pause or quit
        await pilot.press(*"spiq")
        assert app.screen is dash and not app.paused and app.is_running
        assert not any(p.display for p in dash.panes.values())  # nothing matches "spiq"
        await pilot.press(*["backspace"] * 4, *"meta")
        assert "/meta" in static_text(dash.query_one("#status-line", Static))
        assert dash.panes["meta_capi"].display and not dash.panes["tiktok_conversions"].display
        await pilot.press("enter")  # keep it: focus goes to the first visible pane
        assert not dash.filtering and app.focused is dash.panes["meta_capi"]
        assert "filter: meta" in static_text(dash.query_one("#status-line", Static))
        # Enter opens the destination screen
        await pilot.press("enter")
        assert isinstance(app.screen, DestinationScreen)
        dest = app.screen
        await settle(pilot, dest)
        assert dest.destination == "meta_capi"
        assert dest.query_one("#failures", DataTable).row_count > 0
        await pilot.press("escape")
        assert app.screen is dash
        await pilot.press("escape")  # clears the filter
        assert dash.panes["tiktok_conversions"].display
        # typed in one burst (as a terminal delivers fast typing), `/tik` is still a filter:
        # the `i` does not open the incidents
        for key, char in (("slash", "/"), ("t", "t"), ("i", "i"), ("k", "k")):
            app.post_message(events.Key(key, char))
        await wait_for(pilot, lambda: dash.filter_text == "tik" or app.screen is not dash)
        assert app.screen is dash and dash.filtering and dash.filter_text == "tik"
        await pilot.press("escape")
        assert not dash.filtering and dash.panes["meta_capi"].display
        # p pauses: new snapshots are not shown
        shown = app.snapshot
        await pilot.press("p")
        assert app.paused and "PAUSED" in static_text(dash.query_one("#status-line", Static))
        await driver_round(pilot)
        assert app.snapshot is shown
        await pilot.press("p")
        assert not app.paused
        await driver_round(pilot)
        assert app.snapshot is not shown
        await pilot.press("q")
    assert app.return_code == 0


async def test_help_and_sql_and_incidents_keys(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("s")
        assert isinstance(app.screen, SqlScreen)
        await pilot.press("escape")
        await pilot.press("i")
        assert isinstance(app.screen, IncidentsScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_sql_console_runs_with_ctrl_enter_and_refuses_writes(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("s")
        sql = app.screen
        assert isinstance(sql, SqlScreen)
        editor = sql.query_one(TextArea)
        editor.text = "select destination, count(*) as n from events group by 1 order by 1"
        await pilot.press("ctrl+enter")
        await settle(pilot, sql)
        table = sql.query_one("#results", DataTable)
        assert [row[0] for row in cells(table)] == ["meta_capi", "tiktok_conversions"]
        assert "2 rows" in static_text(sql.query_one("#sql-status", Static))

        editor.text = "delete from events"
        await pilot.press("ctrl+enter")
        await settle(pilot, sql)
        status = static_text(sql.query_one("#sql-status", Static))
        assert "refused" in status and "\n" not in status
        editor.text = "select * from range(5000)"
        await pilot.press("ctrl+enter")
        await settle(pilot, sql)
        assert table.row_count == 1000
        assert "first 1000 rows" in static_text(sql.query_one("#sql-status", Static))
        editor.text = "select nonsense from"
        await pilot.press("ctrl+enter")
        await settle(pilot, sql)
        assert "error" in static_text(sql.query_one("#sql-status", Static))
    # the data is untouched
    assert app.driver.runtime is not None


async def test_acknowledge_and_export(
    make_ui: AppMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "exports"
    out.mkdir()
    monkeypatch.chdir(out)
    app = make_ui("incident")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_incidents(pilot)
        assert len(screen.incidents) == 1
        inc = screen.incidents[0]
        assert inc.state == "open"
        assert screen.query_one("#timeline", DataTable).row_count >= 1
        await pilot.press("a")
        await settle(pilot, screen)
        assert screen.incidents[0].state == "acknowledged"
        # the engine knows too, so the live snapshot shows it
        await wait_for(pilot, lambda: app.snapshot.incidents[0].state == "acknowledged")
        cur = app.read_cursor()
        assert load_incident(cur, inc.id).acknowledged_at is not None
        cur.close()
        await pilot.press("e")
        await settle(pilot, screen)
        path = out / f"incident-{inc.id}.md"
        assert path.exists() and path.read_text().startswith("#")
    assert os.listdir(out) == [path.name]


async def test_command_palette_runs_actions(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        names = [c.title for c in app.get_system_commands(app.screen)]
        for name in (
            "SQL console",
            "Incidents",
            "Help",
            "Dashboard",
            "Dependencies",
            "Pause / resume",
            "Filter destinations",
        ):
            assert name in names
        for query, screen_type in (("SQL console", SqlScreen), ("Incidents", IncidentsScreen)):
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*query)
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_for(pilot, lambda t=screen_type: isinstance(app.screen, t))
            await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"Pause / resume")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.paused)


async def test_untrusted_destination_names_are_literal(make_ui: AppMaker) -> None:
    app = make_ui("odd")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: len(app.screen.query(DestinationPane)) == 4)
        await pilot.pause()
        titles = [p.title_text.plain for p in app.screen.query(DestinationPane)]
        assert any(MARKUP_DEST in t for t in titles), titles
        assert any("\\x1b[31mevil" in t for t in titles), titles
        assert not any("\x1b" in t for t in titles)
        # and in the destination screen's title, and in SQL results
        pane = app.screen.panes[MARKUP_DEST]
        pane.focus()
        await pilot.press("enter")
        dest = app.screen
        assert isinstance(dest, DestinationScreen)
        await settle(pilot, dest)
        assert MARKUP_DEST in static_text(dest.query_one("#dest-title", Static))
        await pilot.press("escape")
        await pilot.press("s")
        sql = app.screen
        sql.query_one(TextArea).text = "select distinct destination from events order by 1"
        await pilot.press("ctrl+enter")
        await settle(pilot, sql)
        values = [row[0] for row in cells(sql.query_one("#results", DataTable))]
        assert MARKUP_DEST in values and "\\x1b[31mevil" in values


@pytest.mark.slow  # waits for lines written in real time
async def test_live_polling_adds_panes_for_new_destinations(tmp_path: Path) -> None:
    from observatory.sim.loadgen import LineWriter, config_toml
    from observatory.ui.app import make_app

    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_toml(str(tmp_path / "o.duckdb"), str(logs / "*.jsonl")))
    first = LineWriter(logs / "a.jsonl", {"tiktok_conversions": 20.0}).start()
    second = None
    try:
        app = make_app(cfg)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "tiktok_conversions" in getattr(app.screen, "panes", {}))
            first_now = app.snapshot.now
            second = LineWriter(logs / "b.jsonl", {"newdest": 5.0}, seed=3).start()
            await wait_for(pilot, lambda: "newdest" in app.screen.panes, timeout=15)
            assert app.snapshot.now > first_now  # snapshots keep coming while live
            assert app.snapshot.live
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_status_line_shows_an_overdue_drill(make_ui: AppMaker) -> None:
    """The Snapshot's drill words (see test_drill: computed with an injected clock) on the
    status line, highlighted when overdue."""
    import dataclasses

    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        dash = app.screen
        assert isinstance(dash, DashboardScreen) and app.snapshot is not None
        line = dash.query_one("#status-line", Static)
        assert "drill" not in static_text(line)  # no [[alerts]]: nothing to prove
        late = dataclasses.replace(
            app.snapshot, drill="drill 91 d ago, OVERDUE (every 90 d)", drill_overdue=True
        )
        dash._status(late)
        assert "drill 91 d ago, OVERDUE (every 90 d)" in static_text(line)
        spans = [s for s in line.render().spans if "yellow" in str(s.style)]  # type: ignore[attr-defined]
        assert spans, "an overdue drill is highlighted"
