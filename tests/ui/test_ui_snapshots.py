"""Snapshots of each screen from deterministic data (frozen clock, no polling, no blink).
Regenerate with `pytest tests/ui/test_ui_snapshots.py --snapshot-update` and look at them."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import TextArea

from observatory.ui.screens.dependencies import DependenciesScreen
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.screens.sql import SqlScreen
from tests.pilot import dashboard, open_destination, open_incidents, settle, wait_for
from tests.ui.dataset import AppMaker

# Fixtures shared with the other UI test modules.
SIZE = (120, 36)


def test_dashboard_healthy(snap_compare: Any, make_ui: AppMaker) -> None:
    assert snap_compare(make_ui("healthy"), run_before=dashboard, terminal_size=SIZE)


def test_dashboard_with_incident(snap_compare: Any, make_ui: AppMaker) -> None:
    assert snap_compare(make_ui("incident"), run_before=dashboard, terminal_size=SIZE)


def test_destination_screen(snap_compare: Any, make_ui: AppMaker) -> None:
    async def run_before(pilot: Any) -> None:
        await open_destination(pilot, "tiktok_conversions")

    assert snap_compare(make_ui("incident"), run_before=run_before, terminal_size=SIZE)


def _sql(query: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await dashboard(pilot)
        await pilot.press("s")
        screen = pilot.app.screen
        assert isinstance(screen, SqlScreen)
        editor = screen.query_one(TextArea)
        editor.cursor_blink = False
        editor.text = query
        # ctrl+enter (still bound): pressed here, ctrl+r left the columns at their headers'
        # widths in the snapshot (not in tmux, nor in a pilot's render); not yet understood.
        await pilot.press("ctrl+enter")
        await settle(pilot, screen)

    return run_before


def test_sql_console_result(snap_compare: Any, make_ui: AppMaker) -> None:
    query = (
        "select destination, outcome::varchar as outcome, count(*) as n\n"
        "from events group by all order by 1, 2"
    )
    assert snap_compare(make_ui("incident"), run_before=_sql(query), terminal_size=SIZE)


def test_sql_console_error(snap_compare: Any, make_ui: AppMaker) -> None:
    assert snap_compare(
        make_ui("healthy"), run_before=_sql("drop table events"), terminal_size=SIZE
    )


def test_incidents_list(snap_compare: Any, make_ui: AppMaker) -> None:
    async def run_before(pilot: Any) -> None:
        await dashboard(pilot)
        await open_incidents(pilot)

    assert snap_compare(make_ui("incident"), run_before=run_before, terminal_size=SIZE)


def test_dependencies_mid_outage(snap_compare: Any, make_ui: AppMaker) -> None:
    """`d` while Segment's status page reports a major outage: the banner names both
    destinations that hang on it, the chains show each node's state and the fallbacks."""

    async def run_before(pilot: Any) -> None:
        await dashboard(pilot)
        await wait_for(pilot, lambda: "segment" in pilot.app.snapshot.dependencies)
        await pilot.press("d")
        screen = pilot.app.screen
        assert isinstance(screen, DependenciesScreen)
        await pilot.pause(0.2)

    assert snap_compare(make_ui("deps"), run_before=run_before, terminal_size=SIZE)


def test_help(snap_compare: Any, make_ui: AppMaker) -> None:
    async def run_before(pilot: Any) -> None:
        await dashboard(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)

    assert snap_compare(make_ui("healthy"), run_before=run_before, terminal_size=SIZE)


@pytest.mark.asyncio
async def test_incident_shows_its_response_plan(make_ui: AppMaker) -> None:
    """The incidents screen shows the selected incident's fallback, retry window, runbook
    and owner from the config (the deps dataset configures them for tiktok_conversions)."""
    app = make_ui("deps")
    async with app.run_test(size=SIZE) as pilot:
        await dashboard(pilot)
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, IncidentsScreen)
        await settle(pilot, screen)
        await wait_for(pilot, lambda: bool(screen.incidents))
        plan = str(screen.query_one("#incident-plan").render())
        assert "Fallback: Route TikTok through the backup webhook" in plan
        assert "Retry window: 4h" in plan and "Owner: growth-eng" in plan
        assert "Runbook: https://wiki.example.com/runbooks/tiktok" in plan


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_incidents_list_fits_the_width(
    snap_compare: Any, make_ui: AppMaker, size: tuple[int, int]
) -> None:
    """The summary column takes the width the others leave (cut only at 80 columns)."""

    async def run_before(pilot: Any) -> None:
        await dashboard(pilot)
        await open_incidents(pilot)

    assert snap_compare(make_ui("incident"), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize(
    "size", [(80, 24), (160, 48), (240, 70)], ids=["80x24", "160x48", "240x70"]
)
def test_dashboard_mid_outage_fits_the_terminal(
    snap_compare: Any, make_ui: AppMaker, size: tuple[int, int]
) -> None:
    """TikTok rate-limited: one column at 80x24, a grid on wider terminals; the incident bar
    whole, each pane's chart of the last 15 minutes with the onset marked."""
    assert snap_compare(make_ui("incident"), run_before=dashboard, terminal_size=size)


def test_dashboard_mid_outage_light_theme(snap_compare: Any, make_ui: AppMaker) -> None:
    async def run_before(pilot: Any) -> None:
        pilot.app.theme = "textual-light"
        await dashboard(pilot)

    assert snap_compare(make_ui("incident"), run_before=run_before, terminal_size=(160, 48))
