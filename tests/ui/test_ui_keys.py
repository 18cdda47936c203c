"""Keys do what help says: arrows between panes, every key help lists, the palette's Help,
a filter matching nothing, and the SQL console's errors and kept state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static, TextArea
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from observatory.ui.screens.dashboard import DashboardScreen, neighbour
from observatory.ui.screens.dependencies import DependenciesScreen
from observatory.ui.screens.destination import DestinationScreen
from observatory.ui.screens.help import HelpScreen, help_sections
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.screens.sql import SqlScreen
from observatory.ui.snippets import SNIPPETS
from observatory.ui.widgets.destination_pane import DestinationPane
from tests.pilot import dashboard, open_screen, settle, wait_for
from tests.ui.dataset import AppMaker

SIZE = (120, 36)


@pytest.mark.asyncio
async def test_arrows_move_between_panes_and_enter_opens_the_focused_one(
    make_ui: AppMaker,
) -> None:
    app = make_ui("odd")  # four destinations
    async with app.run_test(size=(100, 16)) as pilot:  # room for two panes: the rest scroll
        dash = await dashboard(pilot, 4)
        order = list(dash.panes)
        assert app.focused is dash.panes[order[0]]
        await pilot.press("down", "down")
        third = dash.panes[order[2]]
        assert app.focused is third
        await pilot.pause()
        # scrolled into view: the focused pane lies wholly inside the scrolled window
        panes = dash.query_one("#panes")
        assert panes.scroll_offset.y > 0
        assert panes.region.contains_region(third.region)
        await pilot.press("up")
        assert app.focused is dash.panes[order[1]]
        await pilot.press("down", "enter")
        screen = app.screen
        assert isinstance(screen, DestinationScreen) and screen.destination == order[2]
        await settle(pilot, screen)
        await pilot.press("escape")
        assert app.screen is dash and app.focused is third
        # ← → are previous / next too; past either end the focus stays
        await pilot.press("left")
        assert app.focused is dash.panes[order[1]]
        await pilot.press("right", "right", "right", "right")
        assert app.focused is dash.panes[order[3]]
        await pilot.press("up", "up", "up", "up")
        assert app.focused is dash.panes[order[0]]


@pytest.mark.asyncio
async def test_a_burst_of_arrows_moves_once_per_key(make_ui: AppMaker) -> None:
    """↓↓↓ arriving at once (typed fast, or sent together through tmux) moves three panes:
    each move starts from where the one before it went, not from where focus was drawn."""
    app = make_ui("odd")  # four destinations
    async with app.run_test(size=(100, 16)) as pilot:
        dash = await dashboard(pilot, 4)
        order = list(dash.panes)
        assert app.focused is dash.panes[order[0]]
        for _ in range(3):  # queued together, handled without a pause between them
            app.post_message(events.Key("down", None))
        await pilot.pause()
        assert app.focused is dash.panes[order[3]]


def test_neighbour_moves_by_position_in_a_grid() -> None:
    """Three columns of panes 30 wide and 5 high: ↓ keeps the column, → reads on."""
    boxes = [(30 * (n % 3), 5 * (n // 3), 30, 5) for n in range(7)]
    assert neighbour(boxes, 0, "down") == 3
    assert neighbour(boxes, 4, "up") == 1
    assert neighbour(boxes, 5, "down") == 6  # the row below is short: its nearest pane
    assert neighbour(boxes, 2, "right") == 3  # the next row's start
    assert neighbour(boxes, 3, "left") == 2
    assert neighbour(boxes, 6, "down") is None and neighbour(boxes, 0, "up") is None
    # one column: previous / next
    column = [(0, 5 * n, 80, 5) for n in range(3)]
    assert [neighbour(column, 1, d) for d in ("up", "down", "left", "right")] == [0, 2, 0, 2]


@pytest.mark.asyncio
async def test_every_key_in_help_does_what_help_says(
    make_ui: AppMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Walks the rows the help screen renders (help_sections) and presses each key on its
    screen: each must do something the user sees. A key added to a screen's BINDINGS shows
    in help by itself, and fails here until it gets a check."""
    monkeypatch.chdir(tmp_path)  # `e` on an incident writes its export here
    app = make_ui("incident")
    # Every notice the app shows, counted as it is made: the ones on screen time out, so
    # counting those would miss a new notice whenever an older one left at the same time.
    notices: list[str] = []
    show = app.notify

    def notify(message: str, *args: Any, **kwargs: Any) -> None:
        notices.append(message)
        show(message, *args, **kwargs)

    monkeypatch.setattr(app, "notify", notify)
    async with app.run_test(size=SIZE) as pilot:
        dash = await dashboard(pilot, 2)
        first, second = dash.shown_panes()  # in screen order (the one in trouble first)

        def notified() -> int:
            return len(notices)

        def on(screen_type: type) -> Any:
            screen = app.screen
            assert isinstance(screen, screen_type), (screen, screen_type)
            return screen

        async def press_opens(key: str, screen_type: type) -> None:
            await pilot.press(key)
            await wait_for(pilot, lambda: isinstance(app.screen, screen_type))
            app.action_dashboard()
            await pilot.pause()

        quit_keys: list[str] = []

        # -- Everywhere, pressed on the dashboard ----------------------------------------
        async def pause(key: str) -> None:
            await pilot.press(key)
            assert app.paused
            await pilot.press(key)
            assert not app.paused

        async def click(_key: str) -> None:
            await pilot.click(DestinationPane)
            await wait_for(pilot, lambda: isinstance(app.screen, DestinationScreen))
            await settle(pilot, app.screen)
            app.action_dashboard()
            await pilot.pause()

        async def quit_last(key: str) -> None:
            quit_keys.append(key)

        # -- Dashboard -------------------------------------------------------------------
        async def move(key: str) -> None:
            start, end = (first, second) if key in ("down", "right") else (second, first)
            start.focus()
            await pilot.press(key)
            assert app.focused is end, key

        async def open_pane(key: str) -> None:
            second.focus()
            await pilot.press(key)
            screen = on(DestinationScreen)
            assert screen.destination == second.destination
            await settle(pilot, screen)
            app.action_dashboard()
            await pilot.pause()

        async def start_filter(key: str) -> None:
            await pilot.press(key)
            assert dash.filtering
            await pilot.press("escape")
            assert not dash.filtering

        async def clear_filter(key: str) -> None:
            await pilot.press("slash", *second.destination[:4], "enter")
            assert dash.filter_text and not first.display
            await pilot.press(key)
            assert dash.filter_text == "" and first.display and second.display

        async def cycle_window(key: str) -> None:
            before = dash.window
            await pilot.press(key)
            assert dash.window == (before + 1) % 3
            await wait_for(
                pilot, lambda: "charts: " in str(dash.query_one("#status-line").render())
            )

        async def tab(key: str) -> None:
            first.focus()
            await pilot.press(key)
            assert app.focused is second

        # -- Destination -----------------------------------------------------------------
        async def back(key: str) -> None:
            screen = app.screen
            await pilot.press(key)
            assert app.screen is not screen and app.screen is dash

        async def reload_destination(key: str) -> None:
            screen = on(DestinationScreen)
            shown = screen.failure_groups
            await pilot.press(key)
            await settle(pilot, screen)
            assert screen.failure_groups is not shown  # loaded afresh

        async def focus_failures(key: str) -> None:
            await pilot.press(key)
            assert app.focused is on(DestinationScreen).query_one("#failures")

        async def write_missing(key: str) -> None:
            before = notified()
            await pilot.press(key)
            await settle(pilot, app.screen)
            assert notified() > before  # here: the config has no [backup] table, it says so

        # -- SQL console -----------------------------------------------------------------
        runs: list[str] = []

        async def run(key: str) -> None:
            screen = on(SqlScreen)
            sql = f"select {len(runs) + 41} as answer"
            screen.query_one(TextArea).text = sql
            await pilot.press(key)
            await settle(pilot, screen)
            runs.append(sql)
            assert str(screen.query_one(DataTable).get_row_at(0)[0]) == str(len(runs) + 40)

        async def examples(key: str) -> None:
            screen = on(SqlScreen)
            await pilot.press(key)
            assert app.focused is screen.query_one("#examples")
            await pilot.press("down", "enter")  # the second example
            editor = screen.query_one(TextArea)
            assert app.focused is editor and editor.text == SNIPPETS[1].sql

        async def cancel(key: str) -> None:
            before = notified()
            await pilot.press(key)
            assert notified() > before  # nothing running: "no query is running"

        async def export(key: str) -> None:
            screen = on(SqlScreen)
            await pilot.press(key)
            box = screen.query_one("#export-path", Input)
            assert box.display and app.focused is box
            await pilot.press("escape")
            assert not box.display

        async def history(key: str) -> None:
            editor = on(SqlScreen).query_one(TextArea)
            assert len(runs) >= 2
            if key == "ctrl+up":
                editor.text = "draft"
                await pilot.press(key)
                assert editor.text == runs[-1]
            else:
                await pilot.press("ctrl+up")  # from the newest (the ctrl+up before) to older
                assert editor.text == runs[-2]
                await pilot.press(key)
                assert editor.text == runs[-1]

        async def sidebar(key: str) -> None:
            box = on(SqlScreen).query_one("#sql-sidebar")
            await pilot.press(key)
            assert not box.display
            await pilot.press(key)
            assert box.display

        # -- Incidents -------------------------------------------------------------------
        async def acknowledge(key: str) -> None:
            screen = on(IncidentsScreen)
            assert screen.incidents[0].state == "open"
            await pilot.press(key)
            await settle(pilot, screen)
            assert screen.incidents[0].state == "acknowledged"

        async def note(key: str) -> None:
            box = on(IncidentsScreen).query_one("#note", Input)
            await pilot.press(key)
            assert box.display and app.focused is box
            await pilot.press("escape")
            assert not box.display

        async def export_incident(key: str) -> None:
            screen = on(IncidentsScreen)
            await pilot.press(key)
            await settle(pilot, screen)
            assert list(tmp_path.glob(f"incident-{screen.incidents[0].id}*.md"))

        async def reload_incidents(key: str) -> None:
            screen = on(IncidentsScreen)
            shown = screen.incidents
            await pilot.press(key)
            await settle(pilot, screen)
            assert screen.incidents is not shown and screen.incidents

        async def open_destination() -> None:
            first.focus()
            await pilot.press("enter")
            await settle(pilot, on(DestinationScreen))

        async def open_with(key: str, screen_type: type) -> None:
            await pilot.press(key)
            await settle(pilot, on(screen_type))

        async def stay() -> None:
            pass

        checks: dict[tuple[str, str], Any] = {
            ("Everywhere", "quit"): quit_last,
            ("Everywhere", "sql"): lambda k: press_opens(k, SqlScreen),
            ("Everywhere", "incidents"): lambda k: press_opens(k, IncidentsScreen),
            ("Everywhere", "dependencies"): lambda k: press_opens(k, DependenciesScreen),
            ("Everywhere", "pause"): pause,
            ("Everywhere", "help"): lambda k: press_opens(k, HelpScreen),
            # the replay lists what it found on the incidents screen once it is done
            ("Everywhere", "replay_history"): lambda k: press_opens(k, IncidentsScreen),
            ("Everywhere", "command_palette"): lambda k: press_opens(k, CommandPalette),
            ("Everywhere", ""): click,
            ("Dashboard", "move"): move,
            ("Dashboard", "open"): open_pane,
            ("Dashboard", "filter"): start_filter,
            ("Dashboard", "clear_filter"): clear_filter,
            ("Dashboard", "focus_next"): tab,
            ("Dashboard", "cycle_window"): cycle_window,
            ("Destination", "app.pop_screen"): back,
            ("Destination", "reload"): reload_destination,
            ("Destination", "focus_failures"): focus_failures,
            ("Destination", "write_missing"): write_missing,
            ("SQL console", "run"): run,
            ("SQL console", "examples"): examples,
            ("SQL console", "cancel"): cancel,
            ("SQL console", "export"): export,
            ("SQL console", "history"): history,
            ("SQL console", "toggle_sidebar"): sidebar,
            ("SQL console", "back"): back,
            ("Incidents", "back"): back,
            ("Incidents", "acknowledge"): acknowledge,
            ("Incidents", "note"): note,
            ("Incidents", "export"): export_incident,
            ("Incidents", "reload"): reload_incidents,
            ("Dependencies", "back"): back,
        }
        openers: dict[str, Any] = {
            "Everywhere": stay,
            "Dashboard": stay,
            "Destination": open_destination,
            "SQL console": lambda: open_with("s", SqlScreen),
            "Incidents": lambda: open_with("i", IncidentsScreen),
            "Dependencies": lambda: open_with("d", DependenciesScreen),
        }
        walked = 0
        for heading, rows in help_sections():
            assert heading in openers, f"help has a section {heading!r} this test cannot open"
            for row in rows:
                check = checks.get((heading, row.action))
                assert check is not None, f"no check for {row.shown} ({heading}: {row.what})"
                for key in row.keys or ("",):
                    if app.screen is dash and heading != "Everywhere":
                        await openers[heading]()
                    await check(key)
                    walked += 1
            app.action_dashboard()
            await pilot.pause()
        assert walked >= 30
        assert quit_keys == ["q"]
        await pilot.press(*quit_keys)
        await pilot.pause()
    assert app.return_code == 0


@pytest.mark.asyncio
async def test_palette_lists_help_and_selecting_it_opens_help(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await dashboard(pilot)
        await pilot.press("ctrl+p")
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        await pilot.press(*"help")
        await pilot.pause(0.3)
        listed = palette.query_one("CommandList")
        assert "Help" in str(listed.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))


async def open_sql(pilot: Pilot[Any]) -> SqlScreen:
    return await open_screen(pilot, "s", SqlScreen)


async def run_sql(pilot: Pilot[Any], screen: SqlScreen, sql: str) -> None:
    screen.query_one(TextArea).text = sql
    await pilot.press("ctrl+r")
    await settle(pilot, screen)


def footer_run_key(screen: SqlScreen) -> str:
    """The key the footer shows for Run."""
    (key,) = [k.key for k in screen.query(FooterKey) if k.action == "run"]
    return key


@pytest.mark.asyncio
async def test_a_fresh_console_is_empty_and_the_shown_key_runs_a_typed_query(
    make_ui: AppMaker,
) -> None:
    """What a new user does: open the console, type a query, press the key the screen shows
    (ctrl+r: tmux and many terminals send nothing for ctrl+enter)."""
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await dashboard(pilot)
        screen = await open_sql(pilot)
        editor = screen.query_one(TextArea)
        assert editor.text == "" and app.focused is editor
        hint = str(screen.query_one("#sql-status", Static).render())
        assert hint.startswith("ctrl+r runs")
        assert footer_run_key(screen) == "ctrl+r"
        await pilot.press(*"select 42 as answer")
        assert editor.text == "select 42 as answer"  # typed into an empty editor, nothing else
        await pilot.press(footer_run_key(screen))
        await settle(pilot, screen)
        table = screen.query_one(DataTable)
        assert [str(c) for c in table.get_row_at(0)] == ["42"] and table.row_count == 1
        status = str(screen.query_one("#sql-status", Static).render())
        assert status.startswith("1 row") and "ctrl+r runs" in status  # the hint stays


@pytest.mark.asyncio
async def test_an_example_picked_goes_into_the_editor_and_runs(make_ui: AppMaker) -> None:
    app = make_ui("incident")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await dashboard(pilot)
        screen = await open_sql(pilot)
        examples = screen.query_one("#examples", OptionList)
        titles = [str(examples.get_option_at_index(i).prompt) for i in range(len(SNIPPETS))]
        assert titles == [s.title for s in SNIPPETS]
        editor = screen.query_one(TextArea)
        # ctrl+o shows the sidebar if hidden and goes to the list; Enter fills the empty editor
        await pilot.press("ctrl+b", "ctrl+o")
        assert screen.query_one("#sql-sidebar").display and app.focused is examples
        share = next(i for i, s in enumerate(SNIPPETS) if s.title == "429 share (15 min)")
        await pilot.press(*["down"] * share, "enter")
        assert editor.text == SNIPPETS[share].sql and app.focused is editor
        await pilot.press("ctrl+r")
        await settle(pilot, screen)
        rows = [
            [str(c) for c in screen.query_one(DataTable).get_row_at(i)]
            for i in range(screen.query_one(DataTable).row_count)
        ]
        # the incident dataset: TikTok throttled over its last 90 s, Meta not at all
        assert [r[0] for r in rows] == ["tiktok_conversions", "meta_capi"]
        assert float(rows[0][3]) > 5 and rows[1][1] == "0"
        # a query being written is kept in the history: ctrl+up brings it back
        editor.text = "select 'draft'"
        await pilot.press("ctrl+o", "home", "enter")
        assert editor.text == SNIPPETS[0].sql
        assert any("ctrl+↑" in str(n.message) for n in app._notifications)
        await pilot.press("ctrl+up")
        assert editor.text == "select 'draft'"
        # every example runs on the dataset without an error
        for n, snippet in enumerate(SNIPPETS):
            await pilot.press("ctrl+o", "home", *["down"] * n, "enter", "ctrl+r")
            await settle(pilot, screen)
            assert editor.text == snippet.sql
            status = str(screen.query_one("#sql-status", Static).render())
            assert "error" not in status and " row" in status, (snippet.title, status)


def shown_text(screen: SqlScreen) -> str:
    """What the console shows below the editor: the status, the error, the result rows."""
    parts = [str(screen.query_one("#sql-status", Static).render())]
    box = screen.query_one("#sql-error-box")
    if box.display:
        parts.append(screen.query_one("#sql-error", Static).render().plain)  # type: ignore[union-attr]
    table = screen.query_one(DataTable)
    if table.display:
        parts += [str(c) for i in range(table.row_count) for c in table.get_row_at(i)]
    return "\n".join(parts)


@pytest.mark.asyncio
async def test_sql_error_shows_whole_and_clears_the_old_result(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=(80, 24)) as pilot:
        await dashboard(pilot)
        screen = await open_sql(pilot)
        await run_sql(pilot, screen, "select 'old-row-marker' as m")
        assert "old-row-marker" in shown_text(screen)
        await run_sql(pilot, screen, "select * from evnts")
        shown = shown_text(screen)
        # DuckDB's whole message: what is wrong, its suggestion and where
        assert "Table with name evnts does not exist" in shown
        assert 'Did you mean "events"' in shown and "LINE 1" in shown
        assert "old-row-marker" not in shown
        # at 80 columns the message wraps onto several lines rather than being cut
        error = screen.query_one("#sql-error", Static)
        assert error.region.height >= 2 and error.region.width <= 80
        # the old result is not exportable either
        await pilot.press("ctrl+s")
        assert not screen.query_one("#export-path", Input).display
        # a refusal (a write in the read-only console) clears an old result the same way
        await run_sql(pilot, screen, "select 'old-row-marker' as m")
        await run_sql(pilot, screen, "delete from events")
        shown = shown_text(screen)
        assert "refused" in shown and "old-row-marker" not in shown
        # and a result again hides the error
        await run_sql(pilot, screen, "select 'new-row' as m")
        assert "new-row" in shown_text(screen) and "evnts" not in shown_text(screen)


@pytest.mark.asyncio
async def test_sql_console_reopened_keeps_the_query_and_result(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await dashboard(pilot)
        screen = await open_sql(pilot)
        await run_sql(pilot, screen, "select 'kept-row' as m")
        screen.query_one(TextArea).text = "select 2 -- still being written"
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("i", "escape")  # another screen between
        again = await open_sql(pilot)
        assert again.query_one(TextArea).text == "select 2 -- still being written"
        assert "kept-row" in shown_text(again)
        # from the help on top of the console, `s` goes back to the same console
        await pilot.press("question_mark", "s")
        assert app.screen is again


@pytest.mark.asyncio
async def test_a_filter_matching_nothing_says_so(make_ui: AppMaker) -> None:
    app = make_ui("healthy")
    async with app.run_test(size=SIZE) as pilot:
        dash = await dashboard(pilot, 2)
        message = dash.query_one("#no-match", Static)
        assert not message.display
        await pilot.press("slash", *"xyz")
        assert not any(p.display for p in dash.panes.values())
        assert message.display
        assert str(message.render()) == "no destinations match 'xyz' — Esc clears the filter"
        await pilot.press("enter")  # kept: still says so
        assert message.display
        await pilot.press("escape")
        assert not message.display and all(p.display for p in dash.panes.values())
        # a filter that matches something shows no message
        await pilot.press("slash", *"meta", "enter")
        assert not message.display and dash.panes["meta_capi"].display


@pytest.mark.asyncio
async def test_incident_note_box_is_not_under_a_notification(make_ui: AppMaker) -> None:
    app = make_ui("incident")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await dashboard(pilot)
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, IncidentsScreen)
        await settle(pilot, screen)
        await pilot.press("a")  # "… is acknowledged": a notification
        await settle(pilot, screen)
        await pilot.press("n")
        await pilot.pause(0.2)
        toasts = list(app.screen.query(Toast))
        assert toasts, "the acknowledgement shows a notification"
        box = screen.query_one("#note", Input)
        assert box.display and box.region.height
        for toast in toasts:
            assert not toast.region.overlaps(box.region)
