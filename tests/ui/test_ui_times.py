"""Times on screen carry their zone ([ui] timezone, default the machine's), and the
destination chart is on a true time axis that follows the snapshots."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from observatory.ui.chart_axis import ZERO
from observatory.ui.widgets.incident_bar import IncidentBar
from observatory.ui.widgets.time_chart import TimeChart
from tests.pilot import dashboard, open_destination, settle, wait_for
from tests.ui.dataset import NOW, AppMaker, app_on

pytestmark = pytest.mark.asyncio


async def test_incident_bar_and_tables_in_the_local_zone(
    los_angeles: None, datasets: dict[str, Path], tmp_path: Path
) -> None:
    """Default `[ui] timezone` ("local") with TZ=America/Los_Angeles: the incident's onset,
    22:26:50 UTC in the engine's summary, reads 14:26:50 PST; so do the tables."""
    app = app_on(datasets["incident"], tmp_path, timezone="local")
    async with app.run_test(size=(160, 40)) as pilot:
        await dashboard(pilot)
        bar = str(app.screen.query_one(IncidentBar).render())
        assert "since 14:26:50 PST" in bar
        assert "22:26:50" not in bar
        status = str(app.screen.query_one("#status-line", Static).render())
        assert "14:28:20 PST" in status  # the data clock, NOW
        screen = await open_destination(pilot, "tiktok_conversions")
        failures = screen.query_one("#failures", DataTable)
        assert str(failures.get_row_at(0)[0]) == "2023-11-14 14:28:19 PST"
        chart = str(screen.query_one(TimeChart).render())
        assert "onset 14:26:50 PST" in chart and "PST" in chart.splitlines()[-2]


async def test_utc_config_overrides_the_machine_zone(los_angeles: None, make_ui: AppMaker) -> None:
    app = make_ui("incident")  # the UI tests' config: timezone = "UTC"
    async with app.run_test(size=(160, 40)) as pilot:
        await dashboard(pilot)
        assert "since 22:26:50 UTC" in str(app.screen.query_one(IncidentBar).render())


async def test_chart_is_on_true_time_and_refreshes_with_the_snapshots(make_ui: AppMaker) -> None:
    app = make_ui("incident")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_destination(pilot, "tiktok_conversions")
        chart = screen.query_one(TimeChart)
        assert chart.data is not None and chart.data.now == NOW
        lines = str(chart.render()).splitlines()
        # The onset (NOW - 90 s) is marked at its column: 90 s from the right of 300 s.
        plot = lines[1][23:-11]  # delivered's upper row, between the y axis and the totals
        onset = lines[0][23:].index("▼")
        assert abs(onset - round(len(plot) * 210 / 300)) <= 1
        assert lines[6][23:-11][-1] == "█"  # rate-limited, lower row: NOW's column is full
        # A snapshot 5 s later: the chart and the tables are read again as of then (before,
        # only the ceiling line followed; the chart waited for `r`).
        assert app.snapshot is not None
        app.snapshot = dataclasses.replace(app.snapshot, now=NOW + 5)
        await wait_for(pilot, lambda: screen.loaded_at == NOW + 5)
        await settle(pilot, screen)
        assert chart.data is not None and chart.data.now == NOW + 5
        # Nothing happened after NOW: the last column (its seconds all after NOW) shows none.
        lines = str(chart.render()).splitlines()
        assert lines[6][23:-11][-1] == ZERO and lines[5][23:-11][-1] == " "
        # `r` reads again as of the latest snapshot too.
        await pilot.press("r")
        await settle(pilot, screen)
        assert screen.loaded_at == NOW + 5
