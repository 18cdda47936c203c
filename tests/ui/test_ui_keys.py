"""Keys do what help says: arrows between panes, every key help lists, the palette's Help,
a filter matching nothing, and the SQL console's errors and kept state."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from observatory.ui.app import ObservatoryApp
from observatory.ui.screens.dashboard import DashboardScreen, neighbour
from observatory.ui.screens.destination import DestinationScreen
from observatory.ui.widgets.destination_pane import DestinationPane
from tests.pilot import settle, wait_for
from tests.ui.dataset import AppMaker

SIZE = (120, 36)


async def dashboard(pilot: Pilot[Any], panes: int = 1) -> DashboardScreen:
    """The dashboard once at least `panes` panes are shown and laid out."""
    app = pilot.app
    assert isinstance(app, ObservatoryApp)
    await wait_for(
        pilot,
        lambda: (
            app.snapshot is not None
            and len(app.screen.query(DestinationPane)) >= panes
            and all(p.virtual_region.height for p in app.screen.query(DestinationPane))
        ),
    )
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


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
