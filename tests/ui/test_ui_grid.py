"""The dashboard uses the screen: panes in a grid for the width, a chart per pane over a
window `w` cycles, and an incident bar that keeps its numbers and opens its incident."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from observatory.ui.screens.dashboard import GRID_THREE, GRID_TWO, grid_columns
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.widgets.incident_bar import IncidentBar
from tests.pilot import dashboard, settle, wait_for
from tests.ui.dataset import AppMaker


def test_grid_columns_by_width() -> None:
    assert [grid_columns(w, 4) for w in (80, GRID_TWO - 1, GRID_TWO, GRID_THREE, 400)] == [
        1,
        1,
        2,
        3,
        3,
    ]
    assert grid_columns(GRID_THREE, 2) == 2 and grid_columns(GRID_THREE, 0) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("size", "across"), [((80, 24), 1), ((160, 48), 2), ((240, 70), 3)])
async def test_the_grid_has_its_columns_at_each_width(
    make_ui: AppMaker, size: tuple[int, int], across: int
) -> None:
    """Four panes: one column at 80, two at 160, three at 240 (by where they are on screen);
    ↓ keeps the column."""
    app = make_ui("odd")  # four destinations
    async with app.run_test(size=size) as pilot:
        dash = await dashboard(pilot, 4, charts=True)
        panes = list(dash.panes.values())
        xs = sorted({p.region.x for p in panes})
        assert len(xs) == across, [p.region for p in panes]
        assert all(p.region.width >= 74 for p in panes)  # room for a bucket a column
        panes[0].focus()
        await pilot.press("down")
        below = panes[across] if across < 4 else panes[0]
        assert app.focused is below and below.region.x == panes[0].region.x


@pytest.mark.asyncio
async def test_w_cycles_the_window_and_the_chart_covers_it(make_ui: AppMaker) -> None:
    app = make_ui("incident")
    async with app.run_test(size=(120, 36)) as pilot:
        dash = await dashboard(pilot, 2, charts=True)
        pane = dash.panes["tiktok_conversions"]
        status_line = dash.query_one("#status-line", Static)
        for name, window in (("60 min", 3600), ("1 min", 60), ("15 min", 900)):
            await pilot.press("w")
            await pilot.pause()
            assert f"charts: {name}" in str(status_line.render())
            chart = pane.chart_text.plain
            assert chart.splitlines()[-1].lstrip().startswith(name), chart
            status = app.snapshot.statuses["tiktok_conversions"]
            trend = status.trends[dash.window]
            assert trend.window == window and trend.start <= app.snapshot.now - 2 < trend.end + 1
            # the outage is in every window: its onset is marked (or said to be earlier)
            assert "onset" in chart.splitlines()[-1]


@pytest.mark.asyncio
async def test_incident_bar_is_whole_at_80_columns_and_enter_opens_the_incident(
    make_ui: AppMaker,
) -> None:
    app = make_ui("incident")
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await dashboard(pilot, 2, charts=True)
        bar = dash.query_one(IncidentBar)
        incident = app.snapshot.incidents[0]
        shown = " ".join(str(bar.render()).split())
        summary = " ".join(app.zone.localize_clocks(incident.summary, incident.detected_at).split())
        assert summary in shown and "…" not in shown
        assert "baseline" in summary or "expected" in summary  # the summary's end, its numbers
        assert bar.region.height >= 2  # wrapped, not cut
        # ↑ from the top pane reaches the bar; ↓ goes back; Enter on it opens the incident
        first = dash.shown_panes()[0]
        first.focus()
        await pilot.press("up")
        assert app.focused is bar
        await pilot.press("down")
        assert app.focused is first
        await pilot.press("up", "enter")
        screen = app.screen
        assert isinstance(screen, IncidentsScreen)
        await settle(pilot, screen)
        await wait_for(pilot, lambda: bool(screen.incidents))
        selected = screen.selected()
        assert selected is not None and selected.id == incident.id
        table = screen.query_one("#incident-list", DataTable)
        assert table.cursor_row == [i.id for i in screen.incidents].index(incident.id)


@pytest.mark.asyncio
async def test_the_destination_in_trouble_comes_first_on_a_small_terminal(
    make_ui: AppMaker,
) -> None:
    """At 80x24 the rate-limited TikTok pane is above meta_capi (names would put it last),
    wholly on screen with its chart; ↓ from it reaches meta_capi."""
    app = make_ui("incident")
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await dashboard(pilot, 2, charts=True)
        tiktok, meta = dash.panes["tiktok_conversions"], dash.panes["meta_capi"]
        await wait_for(pilot, lambda: tiktok.region.y < meta.region.y)
        assert dash.shown_panes() == [tiktok, meta]
        assert dash.query_one("#panes").region.contains_region(tiktok.region)
        assert "onset" in tiktok.chart_text.plain
        tiktok.focus()
        await pilot.press("down")
        assert app.focused is meta
