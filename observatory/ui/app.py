"""The Observatory App: wiring and bindings only; screens render, the driver thread works.

`make_app()` is the one factory, used by the CLI and the tests; `make_attached_app()` the
same app attached to another process that owns the database (its API), which the screens
reach through the same calls (`read_cursor()`, `acknowledge()`, ...).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen

from observatory.runtime import Runtime
from observatory.store.query import first_line
from observatory.ui.attached import AttachedDriver, Link, OwnerTarget
from observatory.ui.driver import IncidentState, RuntimeDriver, Snapshot
from observatory.ui.screens.dashboard import DashboardScreen
from observatory.util.zonetime import DisplayZone

if TYPE_CHECKING:
    import duckdb

    from observatory.config import Config
    from observatory.history import HistoryReplay

# Quitting, queued alerts get this long to be delivered (then they are dropped) ...
ALERT_FLUSH_SECONDS = 3.0
# ... and the app waits at most this long for the runtime's thread to close the runtime.
CLOSE_WAIT_SECONDS = ALERT_FLUSH_SECONDS + 2.0


class ObservatoryApp(App[None]):
    """The TUI over one Runtime, which a thread worker drives (see RuntimeDriver)."""

    CSS_PATH = "app.tcss"
    TITLE = "Observatory"

    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="quit"),
        Binding("s", "sql", "SQL", tooltip="SQL console"),
        Binding("i", "incidents", "Incidents", tooltip="incidents"),
        Binding(
            "d",
            "dependencies",
            "Dependencies",
            show=False,  # help and palette list it
            tooltip="dependencies: chains, their state, fallbacks",
        ),
        Binding("p", "pause", "Pause", tooltip="pause / resume live updates"),
        Binding(
            "R",
            "replay_history",
            "Replay history",
            show=False,  # the status line says R when there is history to replay
            tooltip="replay the stored history through the detectors",
        ),
        Binding("question_mark", "help", "Help", tooltip="this help"),
        Binding("f1", "help", "Help", show=False),
    ]

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)
    paused: reactive[bool] = reactive(False)
    # Attached to an owner: whether the link is up (None: not attached, or not yet known).
    link: reactive[Link | None] = reactive(None)
    # The replay of the stored history (R): its progress, then what it found ("": none yet).
    history_note: reactive[str] = reactive("")

    class SnapshotReady(Message):
        """A new Snapshot from the driver thread; a newer one replaces an unhandled one."""

        def __init__(self, snapshot: Snapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ObservatoryApp.SnapshotReady)

    class LinkChanged(Message):
        """The attachment to the owner went up or down (from the driver's thread)."""

        def __init__(self, link: Link) -> None:
            super().__init__()
            self.link = link

    class RingBell(Message):
        """A bell alert rang (from an alert worker thread): the app rings the terminal's."""

    class ReplayProgress(Message):
        """How far the history replay is (from its worker); a newer one replaces it."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ObservatoryApp.ReplayProgress)

    class ReplayFinished(Message):
        """The history replay is done: what it found, or why it failed."""

        def __init__(self, replay: HistoryReplay | None, error: str = "") -> None:
            super().__init__()
            self.replay = replay
            self.error = error

    def __init__(
        self,
        runtime_factory: Callable[[], Runtime] | None = None,
        *,
        poll: bool = True,
        clock: Callable[[], float] | None = None,
        note: str = "",
        attach: OwnerTarget | None = None,
        replay_history: bool = False,
        zone: DisplayZone | None = None,
    ) -> None:
        super().__init__()
        self.clock = clock
        # --replay: replay the stored history once the runtime is up
        self._replay_pending = replay_history
        # The zone of every time on screen ([ui] timezone; default the machine's).
        self.zone = zone if zone is not None else DisplayZone()
        self._driving = False
        self.driver: RuntimeDriver | AttachedDriver
        if attach is not None:
            self.driver = AttachedDriver(attach, self._publish, self._link_changed)
            self.sub_title = f"attached to {attach.shown()}"
        elif runtime_factory is not None:
            self.driver = RuntimeDriver(
                runtime_factory, self._publish, poll=poll, clock=clock, note=note
            )
        else:
            raise ValueError("a runtime factory or an owner to attach to is needed")

    # -- wiring --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen())
        self._driving = True
        self.drive()

    @work(thread=True, exit_on_error=False, group="runtime")
    def drive(self) -> None:
        try:
            self.driver.run()
        except Exception as exc:
            self.call_from_thread(self._driver_failed, first_line(exc))

    def _driver_failed(self, message: str) -> None:
        from rich.markup import escape

        self.notify(escape(f"runtime stopped: {message}"), severity="error", timeout=30)

    def _publish(self, snapshot: Snapshot) -> None:
        self.post_message(self.SnapshotReady(snapshot))

    def on_observatory_app_snapshot_ready(self, message: SnapshotReady) -> None:
        if not self.paused:
            self.snapshot = message.snapshot
        if self._replay_pending:
            self._replay_pending = False
            self.action_replay_history()

    def _link_changed(self, link: Link) -> None:
        self.post_message(self.LinkChanged(link))

    def on_observatory_app_link_changed(self, message: LinkChanged) -> None:
        was, self.link = self.link, message.link
        link = message.link
        self.sub_title = ("attached to " if link.connected else "disconnected from ") + link.url
        if link.connected and was is not None and not was.connected:
            self.notify(f"reconnected to {link.url}", markup=False)
        elif not link.connected and (was is None or was.connected):
            self.notify(f"disconnected from {link.url}, retrying", severity="warning", markup=False)

    @property
    def attached_to(self) -> str | None:
        """The owner's URL when attached (never the token); None when this app owns."""
        driver = self.driver
        return driver.attached_to if isinstance(driver, AttachedDriver) else None

    def on_observatory_app_ring_bell(self, message: RingBell) -> None:
        self.bell()

    async def on_unmount(self) -> None:
        """Stop the runtime's thread and wait (bounded) while it closes the runtime: queued
        alerts are delivered (ALERT_FLUSH_SECONDS at most) before the app's exit returns."""
        self.driver.stop()
        if self._driving and isinstance(self.driver, RuntimeDriver):
            await asyncio.to_thread(self.driver.wait_closed, CLOSE_WAIT_SECONDS)

    # -- what the screens ask (from worker threads; each call blocks) --------------------------

    @property
    def config(self) -> Config | None:
        """The config behind the panes (the runtime's, or attached, the viewer's --config):
        the dependency map and the response plans. None while the runtime starts."""
        return self.driver.config

    def read_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for reads from a worker thread: DuckDB's, or attached, a RemoteCursor
        (the owner's, through its API), which answers the calls the read functions make."""
        return cast("duckdb.DuckDBPyConnection", self.driver.read_cursor())

    def acknowledge(self, incident_id: str, ts: float) -> IncidentState:
        return self.driver.acknowledge(incident_id, ts)

    def add_note(self, incident_id: str, ts: float, text: str) -> IncidentState:
        return self.driver.add_note(incident_id, ts, text)

    def export_incident(self, incident_id: str, fmt: Any) -> tuple[str, str]:
        """(the incident's full id, its export in ``fmt``)."""
        return self.driver.export_incident(incident_id, fmt)

    def backup_destinations(self) -> list[str] | None:
        """The [backup] table's destinations (None: no [backup] table)."""
        return self.driver.backup_destinations(self.snapshot)

    def write_missing(self, destination: str, path: str, now: float) -> int:
        return self.driver.write_missing(destination, path, now)

    def submit(self, command: Callable[[Runtime], Any]) -> Future[Any]:
        """Run `command(runtime)` on the runtime's thread (this app's own runtime only)."""
        if not isinstance(self.driver, RuntimeDriver):
            raise RuntimeError("attached to another process's runtime")
        return self.driver.submit(command)

    # -- actions -------------------------------------------------------------------------

    def action_sql(self) -> None:
        from observatory.ui.screens.sql import SqlScreen

        # One console per app session, installed so that closing it keeps it: reopened, it
        # shows the query being written and the last result (or error) as they were.
        if not self.is_screen_installed("sql"):
            self.install_screen(SqlScreen(), "sql")
        console = self.get_screen("sql")
        if console in self.screen_stack:
            while self.screen is not console:
                self.pop_screen()
            return
        self.push_screen(console)

    def action_incidents(self) -> None:
        from observatory.ui.screens.incidents import IncidentsScreen

        if not isinstance(self.screen, IncidentsScreen):
            self.push_screen(IncidentsScreen())

    def action_dependencies(self) -> None:
        from observatory.ui.screens.dependencies import DependenciesScreen

        if not isinstance(self.screen, DependenciesScreen):
            self.push_screen(DependenciesScreen())

    def action_help(self) -> None:
        from observatory.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.driver.paused = self.paused
        self.notify("live updates paused" if self.paused else "live updates resumed")
        if self.snapshot is not None:
            self.snapshot = self.snapshot  # re-render the status line

    def action_replay_history(self) -> None:
        """Replay the stored events through the detectors in event time, as `observatory
        replay` does; what it finds is listed on the incidents screen, found in history."""
        if not isinstance(self.driver, RuntimeDriver):
            self.notify(
                "attached: replay in the owner's TUI, or stop it and run `observatory replay`",
                severity="warning",
                markup=False,
            )
            return
        if any(w.group == "replay" and not w.is_finished for w in self.workers):
            self.notify("the history is being replayed already", markup=False)
            return
        self.history_note = "replaying history…"
        self.replay_history()

    @work(thread=True, exit_on_error=False, group="replay")
    def replay_history(self) -> None:
        """The replay's DuckDB reads and detectors, off the event loop (see the driver)."""
        driver = self.driver
        assert isinstance(driver, RuntimeDriver)

        def progress(done: int, total: int) -> None:
            self.post_message(self.ReplayProgress(f"replaying history… {done * 100 // total}%"))

        try:
            replay = driver.replay_history(progress)
        except Exception as exc:
            self.post_message(self.ReplayFinished(None, first_line(exc)))
            return
        self.post_message(self.ReplayFinished(replay))

    def on_observatory_app_replay_progress(self, message: ReplayProgress) -> None:
        self.history_note = message.text

    def on_observatory_app_replay_finished(self, message: ReplayFinished) -> None:
        from observatory.ui.screens.incidents import IncidentsScreen

        replay = message.replay
        if replay is None:
            self.history_note = ""
            self.notify(f"history replay failed: {message.error}", severity="error", markup=False)
            return
        n = len(replay.incidents)
        found = f"{n} incident{'' if n == 1 else 's'} found in history ({replay.new} new)"
        self.history_note = f"replayed: {found}"
        self.notify(f"history replayed in {replay.seconds:.1f} s: {found}", markup=False)
        if isinstance(self.screen, IncidentsScreen):
            self.screen.action_reload()
        elif n and isinstance(self.screen, DashboardScreen):
            self.push_screen(IncidentsScreen())

    def action_dashboard(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_filter(self) -> None:
        self.action_dashboard()
        if isinstance(self.screen, DashboardScreen):
            self.screen.action_filter()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Dashboard", "Back to the destination panes", self.action_dashboard)
        yield SystemCommand("Filter destinations", "Show only matching panes", self.action_filter)
        yield SystemCommand("SQL console", "Read-only SQL on the captured events", self.action_sql)
        yield SystemCommand(
            "Incidents", "List, acknowledge and export incidents", self.action_incidents
        )
        yield SystemCommand(
            "Dependencies",
            "Each destination's chain, its nodes' state and its fallback",
            self.action_dependencies,
        )
        yield SystemCommand("Pause / resume", "Freeze or resume live updates", self.action_pause)
        yield SystemCommand(
            "Replay history",
            "Run the detectors over the stored events in event time (R)",
            self.action_replay_history,
        )
        yield SystemCommand("Help", "Every key and what it does (? or F1)", self.action_help)
        # The current screen's own actions (acknowledge, note, run, export…), by their
        # binding descriptions, so the palette offers everything the keys do.
        from observatory.ui.screens.help import screen_commands

        for title, help_text, callback in screen_commands(screen):
            yield SystemCommand(title, help_text, callback)


def make_app(
    config: Config | str | Path,
    db: str | None = None,
    *,
    poll: bool = True,
    replay: bool = False,
    clock: Callable[[], float] | None = None,
    note: str = "",
    runtime_factory: Callable[[], Runtime] | None = None,
    replay_history: bool = False,
) -> ObservatoryApp:
    """The app on a config (object or path).

    poll: go live (read the backlog, warm up, follow the files) and poll every 0.25 s.
    replay: instead, read every source file once and replay it in event time (the demo
    without a simulator); implies no polling.
    replay_history: once up, replay the stored history (`observatory --replay`, the R key).
    """
    from observatory.config import load_config
    from observatory.owner import build_runtime

    cfg = config if not isinstance(config, str | Path) else load_config(config)

    def factory() -> Runtime:
        # Live, the config's alerts fire (replayed history alerts nothing); a bell alert
        # rings through the app, which owns the terminal.
        runtime = build_runtime(
            cfg,
            db,
            alerts=not replay,
            alert_flush_timeout=ALERT_FLUSH_SECONDS,
            bell_stream=cast("TextIO", _AppBell(app)),  # a bell only writes and flushes
        )
        if replay:
            from observatory.ingest.backfill import ingest_files, plan_files

            ingest_files(runtime.store, plan_files(cfg, ()))
            runtime.replay_history()
        return runtime

    app = ObservatoryApp(
        runtime_factory or factory,
        poll=poll and not replay,
        clock=clock,
        note=note,
        replay_history=replay_history,
        zone=cfg.ui.display_zone(),
    )
    return app


def make_attached_app(target: OwnerTarget, config: Config | None = None) -> ObservatoryApp:
    """The app attached to the owner ``target`` names (it owns nothing itself); ``config``
    (the viewer's) gives the dependency screen its chains and incidents their plans."""
    app = ObservatoryApp(
        attach=target, zone=config.ui.display_zone() if config is not None else None
    )
    if isinstance(app.driver, AttachedDriver):
        app.driver.config = config
    return app


class _AppBell(io.TextIOBase):
    """A bell sink's stream in the TUI: a bell written from any thread rings the app's."""

    def __init__(self, app: ObservatoryApp) -> None:
        super().__init__()
        self.app = app

    def write(self, text: str) -> int:
        if "\a" in text:
            self.app.post_message(ObservatoryApp.RingBell())  # thread-safe, never blocks
        return len(text)
