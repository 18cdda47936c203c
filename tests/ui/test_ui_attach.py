"""The TUI attached to another process's runtime (the owner's API), driven by Pilot.

Every feature works attached: panes from the owner's Snapshot stream, the destination
drill-down, the SQL console (run, export to a local file), incidents (acknowledge, note,
export; the change lands in the owner's database), `m`, the filter and pause. When the owner
dies the viewers say "disconnected, retrying" within 2 s and come back when a new owner (on
another port) starts; a viewer that dies leaves the owner alone.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TextArea

from observatory.config import Config, load_config
from observatory.incidents.model import Incident, TimelineEntry
from observatory.incidents.store import load_incident, save_incident
from observatory.runtime import Runtime
from observatory.server.owner_files import read_endpoint, read_token
from observatory.sim.loadgen import LineWriter
from observatory.snapshot import Snapshot
from observatory.store.db import Store
from observatory.ui.app import ObservatoryApp, make_attached_app
from observatory.ui.attached import AttachedDriver, Link, OwnerTarget
from observatory.ui.screens.dashboard import DashboardScreen
from observatory.ui.screens.destination import DestinationScreen
from observatory.ui.screens.incidents import IncidentsScreen
from observatory.ui.screens.sql import SqlScreen
from tests.helpers import RATES, owned_config
from tests.pilot import settle, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]
SIZE = (140, 40)


def status_line(app: ObservatoryApp) -> str:
    screen = app.screen_stack[1] if len(app.screen_stack) > 1 else app.screen
    return str(screen.query_one("#status-line", Static).render())


def cells(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.fixture
def owned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A config over a log with history (a rate-limited TikTok incident), a [backup] table
    and the API on a free loopback port."""
    monkeypatch.setenv("OBSERVATORY_SQL_HISTORY", str(tmp_path / "sql_history"))
    monkeypatch.delenv("OBSERVATORY_TOKEN", raising=False)
    return owned_config(tmp_path)


OPEN_ID = "0pen0000"


def _open_incident(config: Config) -> None:
    """An open incident an earlier run left (the history's own one is resolved already)."""
    now = time.time()
    store = Store.for_config(config)
    try:
        save_incident(
            store.con,
            Incident(
                OPEN_ID,
                "tiktok_conversions",
                "rate_limit",
                "critical",
                onset=now - 120,
                detected_at=now - 100,
                summary="rate limited",
                timeline=[TimelineEntry(now - 100, "opened", "rate_limit fired")],
            ),
        )
    finally:
        store.close()


@pytest.fixture
def owner_runtime(owned: tuple[Path, Path]) -> Iterator[Runtime]:
    """The owner in this process: a live Runtime with its API, polled on its own thread."""
    cfg, _db = owned
    config = load_config(cfg)
    _open_incident(config)
    runtime = Runtime(config)
    runtime.start_live()
    stop = threading.Event()
    thread = threading.Thread(target=runtime.run_live, kwargs={"stop": stop.is_set})
    thread.start()
    try:
        yield runtime
    finally:
        stop.set()
        thread.join(10)
        runtime.close()


async def test_every_feature_works_attached(
    owned: tuple[Path, Path],
    owner_runtime: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, db = owned
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    live = LineWriter(tmp_path / "logs" / "live.jsonl", {"google_ads": 20.0}).start()
    token = read_token(str(db))
    assert owner_runtime.api is not None and token
    url = owner_runtime.api.url
    app = make_attached_app(OwnerTarget(db_path=str(db)))
    try:
        async with app.run_test(size=SIZE) as pilot:
            # panes: the owner's destinations, live; the status line names the owner
            await wait_for(
                pilot,
                lambda: (
                    {"tiktok_conversions", "meta_capi", "google_ads"}
                    <= set(getattr(app.screen, "panes", {}))
                ),
            )
            dash = app.screen
            assert isinstance(dash, DashboardScreen)
            line = status_line(app)
            assert "ATTACHED" in line and url in line and token not in line
            assert app.driver.runtime is None  # nothing is owned here
            first = app.snapshot
            assert first is not None and first.live
            await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.now > first.now)

            # the filter and pause
            await pilot.press("slash", *"meta", "enter")
            assert dash.panes["meta_capi"].display and not dash.panes["google_ads"].display
            await pilot.press("escape")
            assert dash.panes["google_ads"].display
            await pilot.press("p")
            assert app.paused and "PAUSED" in status_line(app)
            shown = app.snapshot
            await pilot.pause(0.8)
            assert app.snapshot is shown
            await pilot.press("p")
            await wait_for(pilot, lambda: app.snapshot is not shown)

            # the destination drill-down, and `m` (written here, read by the owner)
            dash.panes["tiktok_conversions"].focus()
            await pilot.press("enter")
            dest = app.screen
            assert isinstance(dest, DestinationScreen)
            await settle(pilot, dest)
            failures = cells(dest.query_one("#failures", DataTable))
            # grouped: last, first, count, outcome, ... (one group of the 429s)
            assert failures and failures[0][3] == "rate_limited" and int(failures[0][2]) > 1
            assert dest.query_one("#dest-incidents", DataTable).row_count == 2
            await pilot.press("m")
            await settle(pilot, dest)
            assert [p.name for p in out.glob("missing-tiktok_conversions-*.jsonl")]
            await pilot.press("escape")

            # the SQL console: run, then export the result to a local file
            await pilot.press("s")
            sql = app.screen
            assert isinstance(sql, SqlScreen)
            await settle(pilot, sql)
            assert "events" in [str(n.data) for n in sql.query_one("#schema").root.children]
            sql.query_one(
                TextArea
            ).text = "select destination, count(*) as n from events group by 1 order by 1"
            await pilot.press("ctrl+enter")
            await settle(pilot, sql)
            rows = cells(sql.query_one("#results", DataTable))
            assert [r[0] for r in rows] == ["google_ads", "meta_capi", "tiktok_conversions"]
            assert "3 rows" in str(sql.query_one("#sql-status", Static).render())
            sql.query_one(TextArea).text = "delete from events"
            await pilot.press("ctrl+enter")
            await settle(pilot, sql)
            assert "refused" in str(sql.query_one("#sql-status", Static).render())
            sql.query_one(TextArea).text = "select * from events where outcome = 'rate_limited'"
            await pilot.press("ctrl+enter")
            await settle(pilot, sql)
            await pilot.press("ctrl+s")
            sql.query_one("#export-path", Input).value = "throttled.csv"
            await pilot.press("enter")
            await settle(pilot, sql)
            exported = (out / "throttled.csv").read_text().splitlines()
            assert len(exported) == 1 + 120 * 40 and exported[0].startswith('"ts"')
            await pilot.press("escape")

            # incidents: acknowledge and note land in the owner's database; export here
            await pilot.press("i")
            screen = app.screen
            assert isinstance(screen, IncidentsScreen)
            await settle(pilot, screen)
            assert [(i.id, i.state) for i in screen.incidents][0] == (OPEN_ID, "open")
            assert len(screen.incidents) == 2  # and the history's own, resolved
            inc_id = OPEN_ID
            await pilot.press("a")
            await settle(pilot, screen)
            assert screen.incidents[0].state == "acknowledged"
            await pilot.press("n", *"paged the owner", "enter")
            await settle(pilot, screen)
            await pilot.press("e")
            await settle(pilot, screen)
            assert (out / f"incident-{inc_id}.md").read_text().startswith("#")
    finally:
        live.stop()
    with owner_runtime.store.cursor() as cur:
        stored = load_incident(cur, inc_id)
    assert stored.state == "acknowledged" and stored.acknowledged_at is not None
    assert [e.detail for e in stored.timeline if e.kind == "note"] == ["paged the owner"]


# -- the owner goes away ---------------------------------------------------------------------


def start_watch(cfg: Path, db: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "observatory", "watch", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while (found := read_endpoint(str(db))) is None or found.pid != proc.pid:
        assert proc.poll() is None, "watch stopped"
        assert time.monotonic() < deadline, "the owner never announced its API"
        time.sleep(0.1)
    return proc


class Viewer:
    """A second attached client without a screen: an AttachedDriver on a thread."""

    def __init__(self, db: Path) -> None:
        self.links: list[tuple[float, Link]] = []
        self.snapshots: list[tuple[float, Snapshot]] = []
        self.driver = AttachedDriver(
            OwnerTarget(db_path=str(db)),
            lambda s: self.snapshots.append((time.monotonic(), s)),
            lambda link: self.links.append((time.monotonic(), link)),
        )
        self.thread = threading.Thread(target=self.driver.run, daemon=True)
        self.thread.start()

    def connected(self) -> bool:
        return bool(self.links) and self.links[-1][1].connected

    def stop(self) -> None:
        self.driver.stop()
        self.thread.join(5)


CLIENT = textwrap.dedent(
    """
    import sys
    from observatory.server.client import find_owner
    owner = find_owner(sys.argv[1])
    for snap in owner.snapshots():
        print(len(snap.statuses), flush=True)
    """
)


async def until(pilot: Pilot[Any], predicate: Any, timeout: float) -> float:
    """Seconds until ``predicate()`` held (fails after ``timeout``)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        await pilot.pause(0.02)
    return time.monotonic() - started


async def test_viewers_say_disconnected_and_come_back(
    owned: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg, db = owned
    live = LineWriter(tmp_path / "logs" / "live.jsonl", RATES).start()
    owner = start_watch(cfg, db)
    viewer = Viewer(db)
    app = make_attached_app(OwnerTarget(db_path=str(db)))
    client = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.link is not None and app.link.connected, 20)
            await until(pilot, viewer.connected, 20)
            await until(pilot, lambda: "tiktok_conversions" in app.screen.panes, 20)

            # a viewer dies: the owner goes on, and so does the other viewer
            client = subprocess.Popen(
                [sys.executable, "-c", CLIENT, str(db)], stdout=subprocess.PIPE
            )
            assert client.stdout is not None and client.stdout.readline().strip()
            client.send_signal(signal.SIGKILL)
            client.wait(10)
            shown = app.snapshot
            await until(pilot, lambda: app.snapshot is not shown, 3)
            assert owner.poll() is None and app.link.connected  # type: ignore[union-attr]  # set once attached

            # the owner dies: both viewers say so within 2 s, neither crashes
            owner.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            owner.wait(10)
            took = await until(
                pilot,
                lambda: (
                    app.link is not None
                    and not app.link.connected
                    and "disconnected, retrying" in status_line(app)
                ),
                2.0,
            )
            await until(pilot, lambda: not viewer.connected(), 2.0 - took)
            assert time.monotonic() - killed < 2.0
            assert "DISCONNECTED" in status_line(app)
            await pilot.pause(1.5)  # retrying meanwhile
            assert app.is_running and viewer.thread.is_alive()

            # a new owner (another process, likely another port): both come back
            owner = start_watch(cfg, db)
            second_url = read_endpoint(str(db)).url  # type: ignore[union-attr]  # waited for above
            await until(pilot, lambda: app.link is not None and app.link.connected, 10)
            await until(pilot, viewer.connected, 10)
            assert app.link.url == second_url and viewer.links[-1][1].url == second_url  # type: ignore[union-attr]  # attached
            resumed = app.snapshot
            await until(pilot, lambda: app.snapshot is not resumed, 3)
            assert "ATTACHED" in status_line(app) and second_url in status_line(app)
        assert app.return_code in (0, None)
    finally:
        viewer.stop()
        live.stop()
        if client is not None and client.poll() is None:
            client.kill()
        owner.send_signal(signal.SIGTERM)
        owner.wait(30)
    assert not viewer.thread.is_alive()


async def test_pause_and_quit_while_no_owner_runs(tmp_path: Path) -> None:
    """Attached to a database nobody owns: the status line says so, the app runs on."""
    app = make_attached_app(OwnerTarget(db_path=str(tmp_path / "none.duckdb")))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.link is not None and not app.link.connected, 5)
        assert "disconnected, retrying" in status_line(app)
        await pilot.press("s")
        await asyncio.sleep(0.2)
        await pilot.press("escape", "q")
    assert app.return_code == 0


async def test_a_wrong_token_is_said_and_not_shown(owner_runtime: Runtime) -> None:
    assert owner_runtime.api is not None
    url = owner_runtime.api.url
    wrong = "not-the-token-0123456789abcdef"
    app = make_attached_app(OwnerTarget(url=url, token=wrong))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.link is not None and not app.link.connected, 5)
        line = status_line(app)
        assert "unauthorized" in line and url in line and wrong not in line
        assert app.snapshot is None
