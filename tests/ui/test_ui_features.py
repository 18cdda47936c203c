"""Pilot tests for the drill-down and console features: failure detail, probe history, SQL
schema / history / cancel / export / no file access, incident notes, palette and help."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static, TextArea, Tree

from observatory.config import load_config
from observatory.incidents.store import load_incident
from observatory.runtime import Runtime
from observatory.ui.app import ObservatoryApp, make_app
from observatory.ui.screens.dashboard import DashboardScreen
from observatory.ui.screens.destination import DestinationScreen
from observatory.ui.screens.failure import FailureScreen
from observatory.ui.screens.help import HelpScreen, help_sections
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.screens.sql import SqlScreen
from observatory.ui.widgets.destination_pane import DestinationPane
from tests.pilot import busy, open_incidents, settle, wait_for
from tests.ui.dataset import NOW, AppMaker

SIZE = (120, 36)
pytestmark = pytest.mark.asyncio


async def ready(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, ObservatoryApp)
    await wait_for(
        pilot, lambda: app.snapshot is not None and len(app.screen.query(DestinationPane)) == 2
    )


async def open_destination(pilot: Pilot[Any], name: str) -> DestinationScreen:
    await ready(pilot)
    dashboard = pilot.app.screen
    assert isinstance(dashboard, DashboardScreen)
    dashboard.panes[name].focus()
    await pilot.press("enter")
    screen = pilot.app.screen
    assert isinstance(screen, DestinationScreen)
    await settle(pilot, screen)
    return screen


async def test_destination_probe_history_and_failure_detail(make_ui: AppMaker) -> None:
    app = make_ui("incident")
    async with app.run_test(size=SIZE) as pilot:
        dest = await open_destination(pilot, "tiktok_conversions")
        probes = dest.query_one("#probes", DataTable)
        assert probes.row_count == 6
        newest = [str(c) for c in probes.get_row_at(0)]
        assert "429" in newest and "retry-after=30" in newest[-1]
        # the rate-limit ceiling: the replayed outage moved it, and the drift is flagged
        ceiling = str(dest.query_one("#ratelimit", Static).render())
        assert "ceiling now" in ceiling and "DRIFT" in ceiling, ceiling
        st = app.snapshot.drift["tiktok_conversions"]  # 12 ev/s, 80 % of them throttled
        assert st.flagged and st.flagged_ceiling is not None and st.flagged_ceiling <= 4
        assert f"ceiling moved to {st.flagged_ceiling:.3g}/s" in ceiling, ceiling
        assert "no [backup] table" in str(dest.query_one("#backup", Static).render())
        # r reloads
        await pilot.press("r")
        await settle(pilot, dest)
        # f focuses the failures, alike ones grouped: the outage's 429s are one row
        await pilot.press("f")
        table = dest.query_one("#failures", DataTable)
        assert app.focused is table
        assert table.row_count == 1
        row = [str(c) for c in table.get_row_at(0)]
        assert row[2:] == ["853", "rate_limited", "200", "40100", "Too many requests"]
        assert row[0] == "2023-11-14 22:28:19 UTC" and row[1].startswith("2023-11-14 22:26:")
        # Enter opens the group: its newest failure in full, its count, first / last, members
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen))
        detail = app.screen
        assert isinstance(detail, FailureScreen)
        fields = dict(detail.fields)
        assert fields["destination"] == "tiktok_conversions"
        assert fields["error_code"] == "40100" and fields["message_id"]
        assert fields["ts"].startswith("2023-11-14 22:28:19")
        assert detail.group is not None and detail.group.n == 853
        assert len(detail.members) == 50 and detail.members[0].message_id == fields["message_id"]
        title = str(detail.query_one("#failure-title", Static).render())
        assert "853 failures alike" in title and "last 2023-11-14 22:28:19 UTC" in title
        await pilot.pause()
        shown = "\n".join(
            "".join(seg.text for seg in strip) for strip in detail._compositor.render_strips()
        )
        assert "The newest 50 of 853" in shown and "message id" in shown
        await pilot.press("escape")
        assert app.screen is dest
        # the mouse: a click on the (highlighted) group opens it
        await pilot.click("#failures", offset=(5, 1))
        await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen))
        await pilot.press("escape")


async def test_failure_detail_is_literal(make_ui: AppMaker) -> None:
    fields = [("error_message", "[bold red]boom[/] \x1b[31mred\x1b[0m")]
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await app.push_screen(FailureScreen(fields))
        await pilot.pause()
        await pilot.pause()
        # what is on the screen, as the terminal would show it
        text = "\n".join(
            "".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()
        )
        assert "[bold red]boom[/]" in text and "\\x1b[31mred" in text and "\x1b" not in text


async def test_sql_schema_history_export_and_no_file_access(
    make_ui: AppMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("s")
        sql = app.screen
        assert isinstance(sql, SqlScreen)
        tree = sql.query_one("#schema", Tree)
        await wait_for(pilot, lambda: len(tree.root.children) > 0)
        tables = [str(n.label) for n in tree.root.children]
        assert "events" in tables and "probes" in tables
        events = next(n for n in tree.root.children if str(n.label) == "events")
        assert "destination" in [str(c.label).split()[0] for c in events.children]

        editor = sql.query_one(TextArea)
        # ctrl+s before any result: nothing to export
        await pilot.press("ctrl+s")
        assert not sql.query_one("#export-path", Input).display
        editor.text = "select destination, count(*) as n from events group by 1 order by 1"
        await pilot.press("ctrl+enter")
        await settle(pilot, sql)
        for name in ("out.csv", "out.parquet", "out.json"):
            await pilot.press("ctrl+s")
            box = sql.query_one("#export-path", Input)
            assert box.display and app.focused is box
            await pilot.press(*name, "enter")
            await settle(pilot, sql)
        assert (tmp_path / "out.csv").read_text().splitlines()[0] == '"destination","n"'
        assert pq.read_table(tmp_path / "out.parquet").num_rows == 2
        lines = (tmp_path / "out.json").read_text().splitlines()
        assert json.loads(lines[0])["destination"] == "meta_capi"
        # a bad extension is refused; Esc closes the export box, not the screen
        await pilot.press("ctrl+s", *"x.txt", "enter")
        assert not (tmp_path / "x.txt").exists()
        await pilot.press("ctrl+s")
        await pilot.press("escape")
        assert isinstance(app.screen, SqlScreen)

        # no file access from SQL
        (tmp_path / "secret.csv").write_text("a\n1\n")
        for query in (
            f"select * from read_csv('{tmp_path / 'secret.csv'}')",
            f"select * from '{tmp_path / 'secret.csv'}'",
            f"copy events to '{tmp_path / 'leak.csv'}'",
        ):
            editor.text = query
            await pilot.press("ctrl+enter")
            await settle(pilot, sql)
            status = str(sql.query_one("#sql-status", Static).render())
            assert "refused" in status, status
        assert not (tmp_path / "leak.csv").exists()

        # ctrl+b hides and shows the sidebar
        await pilot.press("ctrl+b")
        assert not sql.query_one("#sql-sidebar").display
        await pilot.press("ctrl+b")
        # history: ctrl+up steps back
        await pilot.press("ctrl+up")
        assert editor.text.startswith("copy events")
        await pilot.press("ctrl+up")
        assert "secret.csv'" in editor.text
        await pilot.press("ctrl+down")
        assert editor.text.startswith("copy events")
        assert sql.query_one("#history", OptionList).option_count == 4
    # kept across sessions
    history = Path(os.environ["OBSERVATORY_SQL_HISTORY"])
    assert len(history.read_text().splitlines()) == 4
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("s")
        sql = app.screen
        options = sql.query_one("#history", OptionList)
        assert options.option_count == 4
        options.focus()
        options.highlighted = 3  # the oldest
        await pilot.press("enter")
        assert sql.query_one(TextArea).text.startswith("select destination, count(*)")


async def test_sql_file_access_when_the_config_enables_it(
    datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[storage] sql_external_access = true`: the console may read a file."""
    monkeypatch.setenv("OBSERVATORY_SQL_HISTORY", str(tmp_path / "sql_history"))
    cfg = datasets["healthy"]
    db = tmp_path / "copy.duckdb"
    shutil.copy(cfg.parent / "obs.duckdb", db)
    config = load_config(cfg)
    config.storage.sql_external_access = True

    def factory() -> Runtime:
        runtime = Runtime(config, str(db))
        runtime.replay_history()
        return runtime

    app = make_app(config, poll=False, clock=lambda: NOW, runtime_factory=factory)
    (tmp_path / "allowed.csv").write_text("a\n41\n")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("s")
        sql = app.screen
        assert isinstance(sql, SqlScreen)
        sql.query_one(
            TextArea
        ).text = f"select a + 1 as b from read_csv('{tmp_path / 'allowed.csv'}')"
        await pilot.press("ctrl+enter")
        await settle(pilot, sql)
        table = sql.query_one(DataTable)
        assert table.row_count == 1 and str(table.get_row_at(0)[0]) == "42"


async def test_sql_cancel_a_long_query(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("s")
        sql = app.screen
        await pilot.press("ctrl+g")  # nothing running: a notice, no error
        sql.query_one(
            TextArea
        ).text = (
            "select count(*) from range(100000000) a, range(100000000) b where a.range <> b.range"
        )
        await pilot.press("ctrl+enter")
        await wait_for(pilot, lambda: sql._cursor is not None)
        # ctrl+g until the interrupt lands (one sent before DuckDB starts is lost)
        for _ in range(100):
            if not busy(sql):
                break
            await pilot.press("ctrl+g")
            await pilot.pause(0.05)
        await settle(pilot, sql, timeout=10)
        assert "cancelled" in str(sql.query_one("#sql-status", Static).render())


async def test_incident_note(make_ui: AppMaker) -> None:
    app = make_ui("incident")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_incidents(pilot)
        inc = screen.incidents[0]
        await pilot.press("n")
        box = screen.query_one("#note", Input)
        assert box.display and app.focused is box
        await pilot.press(*"raised [b]quota[/b] with TikTok", "enter")
        await settle(pilot, screen)
        timeline = screen.query_one("#timeline", DataTable)
        rows = [[str(c) for c in timeline.get_row_at(i)] for i in range(timeline.row_count)]
        assert ["note", "raised [b]quota[/b] with TikTok"] in [r[1:] for r in rows]
        cur = app.read_cursor()
        stored = load_incident(cur, inc.id)
        cur.close()
        assert [e.detail for e in stored.timeline if e.kind == "note"] == [
            "raised [b]quota[/b] with TikTok"
        ]
        # Esc while the note box is open cancels the note, a second Esc goes back
        await pilot.press("n", "x", "escape")
        assert not box.display and isinstance(app.screen, IncidentsScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_palette_offers_every_screen_action_and_help_lists_every_key(
    make_ui: AppMaker,
) -> None:
    app = make_ui("incident")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_incidents(pilot)
        titles = {c.title for c in app.get_system_commands(screen)}
        assert {"Acknowledge", "Note", "Export .md", "Reload", "Theme"} <= titles
        # run one from the palette: Note opens the note box
        await pilot.press("ctrl+p")
        await pilot.press(*"Note")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.query_one("#note", Input).display)
        await pilot.press("escape", "escape")
        await pilot.press("s")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Run", "Cancel", "Export", "Sidebar"} <= titles
    listed = {key for _heading, rows in help_sections() for row in rows for key in row.keys}
    for cls in (DashboardScreen, DestinationScreen, SqlScreen, IncidentsScreen):
        for b in cls.BINDINGS:
            assert isinstance(b, Binding)
            for key in b.key.split(","):
                assert key.strip() in listed, (cls.__name__, key)


async def test_pane_figures_name_their_window_and_help_states_the_rule(make_ui: AppMaker) -> None:
    """The throttled pane (still delivering) is DEGRADED, not DOWN; its stats line names its
    window once and gives delivered/s and the success share different labels; help lists the
    state rule."""
    app = make_ui("incident")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: app.snapshot is not None and len(app.screen.query(DestinationPane)) == 2
        )
        status = app.snapshot.statuses["tiktok_conversions"]
        assert status.incident_id is not None and status.delivered_now > 0
        assert status.state == "degraded"
        pane = next(
            p for p in app.screen.query(DestinationPane) if p.destination == status.destination
        )
        await wait_for(pilot, lambda: pane.stats_text.plain != "")
        title = pane.title_text.plain
        stats = pane.stats_text.plain
        assert title.startswith(" DEGRADED ") and "newest line" in title, title
        assert stats.startswith(f"last {status.window_s} s:"), stats
        labels = ["delivered/s", "success", "429", "latency"]
        assert all(f"  {label} " in stats for label in labels), stats
        assert " ok " not in stats and "ok/s" not in stats
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        app.screen.query_one("#help-box").scroll_end(animate=False)
        await pilot.pause()
        shown = app.export_screenshot().replace("&#160;", " ")
        assert "Pane states" in shown
        assert "figures and state over the last 10 s" in shown
        assert "an incident is open and nothing was delivered in the" in shown
