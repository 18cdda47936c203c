"""One destination: per-second chart, error breakdown, recent failures grouped (alike ones
counted together; Enter or a click opens a group: its newest in full and its members),
probe history with rate-limit headers, its incidents.

All of it follows the app's snapshots: read again (in a thread) once a second of data time
has passed, as the ceiling line is; `r` reads again at once."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from observatory.detect.drift import CEILING_SECONDS, DestinationDrift
from observatory.detect.status import DestinationStatus
from observatory.store.query import first_line
from observatory.ui.driver import Snapshot
from observatory.ui.queries import (
    CHART_SECONDS,
    HISTORY_CHART_SECONDS,
    DestinationDetail,
    FailureGroup,
    destination_detail,
    failure_group_detail,
)
from observatory.ui.screens.base import ObservatoryScreen
from observatory.ui.screens.failure import FailureScreen
from observatory.ui.text import fmt_ms, fmt_pct, literal
from observatory.ui.widgets.footer import KeyFooter
from observatory.ui.widgets.time_chart import ChartData, TimeChart
from observatory.util.durations import format_duration
from observatory.util.zonetime import DisplayZone

# Live, the screen reads again when the snapshots' time has moved on this far.
REFRESH_SECONDS = 1.0


class DestinationScreen(ObservatoryScreen):
    """Drill-down for one destination; data read by a thread worker from a read cursor."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="back"),
        Binding("r", "reload", "Refresh now", tooltip="read the chart and the tables again now"),
        Binding(
            "f",
            "focus_failures",
            "Failures",
            tooltip="go to recent failures (alike ones grouped); Enter or a click opens a "
            "group: its newest failure in full, its count, first and last time, its members",
        ),
        Binding(
            "m",
            "write_missing",
            "Missing → file",
            tooltip="write its missing backup events to a file",
        ),
    ]

    class Loaded(Message):
        def __init__(
            self, detail: DestinationDetail, now: float, window: tuple[float, float]
        ) -> None:
            super().__init__()
            self.detail = detail
            self.now = now  # the time it was read as of
            self.window = window  # what the chart covers (epoch s)

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class Wrote(Message):
        def __init__(self, text: str, error: bool = False) -> None:
            super().__init__()
            self.text = text
            self.error = error

    def __init__(self, destination: str) -> None:
        super().__init__()
        self.destination = destination
        self.failure_groups: list[FailureGroup] = []
        self.loading = False
        self.loaded_at: float | None = None  # the data time of the last read
        self._shown: dict[str, list[tuple[Any, ...]]] = {}  # per table, the rows it shows
        self._row_keys: dict[str, list[Any]] = {}  # per table, its rows' identities

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(("Destination ", "bold"), literal(self.destination, "bold")),
            id="dest-title",
        )
        with VerticalScroll():
            yield TimeChart(self.observatory.zone, id="chart")
            yield Static(Text("Rate limit and backup", style="bold"), classes="section")
            yield Static(id="ratelimit")
            yield Static(id="backup")
            yield Static(
                Text.assemble(("Errors", "bold"), (" over all stored events, most first", "dim")),
                classes="section",
            )
            yield DataTable(id="errors", cursor_type="row")
            yield Static(
                Text.assemble(
                    ("Recent failures", "bold"),
                    (" alike ones grouped, last seen first (Enter opens a group)", "dim"),
                ),
                classes="section",
            )
            yield DataTable(id="failures", cursor_type="row")
            yield Static(Text("Probe history", style="bold"), classes="section")
            yield DataTable(id="probes", cursor_type="row")
            yield Static(Text("Incidents", style="bold"), classes="section")
            yield DataTable(id="dest-incidents", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#errors", DataTable).add_columns("status", "code", "message", "count")
        self.query_one("#failures", DataTable).add_columns(
            "last", "first", "count", "outcome", "status", "code", "message"
        )
        self.query_one("#probes", DataTable).add_columns(
            "time", "probe", "ok", "http", "latency", "status", "rate-limit headers"
        )
        self.query_one("#dest-incidents", DataTable).add_columns(
            "id", "state", "severity", "detector", "detected", "summary"
        )
        self.action_reload()
        self.watch(self.app, "snapshot", self._show_live)

    def _show_live(self, snap: Snapshot | None) -> None:
        """The rate-limit ceiling and the backup counts, from the app's latest snapshot;
        the chart and the tables are read again once a second of data time has passed."""
        if snap is None:
            return
        if not self.loading and (
            self.loaded_at is None or snap.now - self.loaded_at >= REFRESH_SECONDS
        ):
            self.action_reload()
        self.query_one("#ratelimit", Static).update(
            drift_text(
                snap.drift.get(self.destination),
                self.observatory.zone,
                snap.statuses.get(self.destination),
            ),
            layout=False,
        )
        self.query_one("#backup", Static).update(
            backup_text(snap.backup.get(self.destination), bool(snap.backup)), layout=False
        )

    def action_reload(self) -> None:
        """Read the chart and the tables again, as of the latest snapshot's time."""
        snap = self.observatory.snapshot
        self.loading = True
        self.load(*chart_window(snap, self.destination), snap.now if snap is not None else 0.0)

    @work(thread=True, exit_on_error=False, group="destination", exclusive=True)
    def load(self, since: float, end: float, now: float) -> None:
        """Read the chart over [since, end) and the tables, as of the snapshot time ``now``."""
        try:
            with self.observatory.read_cursor() as cur:
                detail = destination_detail(cur, self.destination, end, since)
        except Exception as exc:  # shown to the user, one line
            self.post_message(self.Failed(first_line(exc)))
            return
        self.post_message(self.Loaded(detail, now, (since, end)))

    def on_destination_screen_failed(self, event: Failed) -> None:
        self.loading = False
        self.query_one(TimeChart).fail(literal(event.error, "red"))

    def on_destination_screen_loaded(self, event: Loaded) -> None:
        self.loading = False
        self.loaded_at = event.now
        d, zone = event.detail, self.observatory.zone
        start, end = event.window
        self.query_one(TimeChart).show(
            ChartData(end, round(end - start), list(d.seconds), self._onset())
        )
        self._fill(
            "errors",
            [
                (
                    literal(status),
                    literal(code),
                    literal(message, limit=80),
                    Text(str(n), justify="right"),
                )
                for status, code, message, n in d.errors
            ],
            key=d.errors,
        )
        self.failure_groups = list(d.failure_groups)
        self._fill(
            "failures",
            [
                (
                    Text(zone.full(g.last_ts)),
                    Text(zone.full(g.first_ts)),
                    Text(str(g.n), justify="right"),
                    literal(g.outcome),
                    literal(g.http_status),
                    literal(g.error_code),
                    literal(g.error_message, limit=80),
                )
                for g in self.failure_groups
            ],
            key=self.failure_groups,
            row_keys=[g.key for g in self.failure_groups],
        )
        probe_rows = []
        for p in d.probes:
            ok = "–" if p.ok is None else ("ok" if p.ok else "FAIL")
            probe_rows.append(
                (
                    Text(zone.full(p.ts)),
                    literal(p.probe, limit=24),
                    Text(ok, style="green" if p.ok else "bold red"),
                    literal(p.http_status),
                    Text(fmt_ms(p.latency_ms), justify="right"),
                    literal(p.status or p.error, limit=30),
                    literal(p.rate_limit or "–", limit=60),
                )
            )
        self._fill("probes", probe_rows, key=d.probes)
        self._fill(
            "dest-incidents",
            [
                (
                    Text(inc.id),
                    Text(inc.state),
                    Text(inc.severity),
                    Text(inc.detector),
                    Text(zone.full(inc.detected_at)),
                    literal(zone.localize_clocks(inc.summary, inc.detected_at), limit=50),
                )
                for inc in d.incidents
            ],
            key=[(i.id, i.state, i.severity, i.summary) for i in d.incidents],
        )

    def _fill(
        self,
        table_id: str,
        rows: list[tuple[Any, ...]],
        key: list[Any],
        row_keys: list[Any] | None = None,
    ) -> None:
        """Show ``rows`` in the table, unless what they show (``key``) has not changed; the
        cursor stays on its row (with ``row_keys``, on the row of the same key wherever it
        moved to, e.g. a failure group seen again moving to the top)."""
        if self._shown.get(table_id) == key:
            return
        self._shown[table_id] = list(key)
        table = self.query_one(f"#{table_id}", DataTable)
        row = table.cursor_row
        if row_keys is not None:
            old = self._row_keys.get(table_id, [])
            if 0 <= row < len(old) and old[row] in row_keys:
                row = row_keys.index(old[row])
            self._row_keys[table_id] = list(row_keys)
        table.clear()
        for cells in rows:
            table.add_row(*cells)
        if rows and row > 0:
            table.move_cursor(row=min(row, len(rows) - 1), animate=False)

    def _onset(self) -> float | None:
        """The onset of this destination's open incident (None: none open)."""
        snap = self.observatory.snapshot
        if snap is None:
            return None
        open_ = [
            i for i in snap.incidents if i.destination == self.destination and i.state != "resolved"
        ]
        return min((i.onset for i in open_), default=None)

    def action_write_missing(self) -> None:
        """Write this destination's missing backup events, as received, to a JSON-lines file
        in the working directory (what `observatory reconcile --output` writes), ready to
        re-send -- while the TUI holds the database, which `reconcile` cannot open (attached,
        the owner reads them)."""
        destinations = self.observatory.backup_destinations()
        if destinations is None or self.destination not in destinations:
            note = (
                "no [backup] table in the config"
                if destinations is None
                else "not a [backup] destination"
            )
            self.notify(f"no missing events to write: {note}", severity="warning", markup=False)
            return
        snap = self.observatory.snapshot
        now = snap.now if snap is not None else time.time()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.destination)
        self.save_missing(str(Path.cwd() / f"missing-{name}-{stamp}.jsonl"), now)

    @work(thread=True, exit_on_error=False, group="missing", exclusive=True)
    def save_missing(self, path: str, now: float) -> None:
        try:
            n = self.observatory.write_missing(self.destination, path, now)
        except Exception as exc:
            self.post_message(self.Wrote(f"writing missing events failed: {first_line(exc)}", True))
            return
        self.post_message(self.Wrote(f"{n} missing event{'s' if n != 1 else ''} written to {path}"))

    def on_destination_screen_wrote(self, event: Wrote) -> None:
        self.notify(event.text, severity="error" if event.error else "information", markup=False)

    def action_focus_failures(self) -> None:
        self.query_one("#failures", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        groups = self.failure_groups
        if event.data_table.id == "failures" and 0 <= event.cursor_row < len(groups):
            self.open_group(groups[event.cursor_row])

    @work(thread=True, exit_on_error=False, group="failure", exclusive=True)
    def open_group(self, group: FailureGroup) -> None:
        """A group's newest failure in full, with its count, first / last and members."""
        try:
            with self.observatory.read_cursor() as cur:
                detail = failure_group_detail(cur, self.destination, group)
        except Exception as exc:
            self.post_message(self.Failed(first_line(exc)))
            return
        screen = FailureScreen(
            detail.newest, group=group, members=detail.members, zone=self.observatory.zone
        )
        self.app.call_from_thread(self.app.push_screen, screen)


def chart_window(snap: Snapshot | None, destination: str) -> tuple[float, float]:
    """What the chart covers: the last CHART_SECONDS; for a destination with only history
    (STALE), up to its last event, and from the start of the stored history when nothing is
    live (what a replay went through; at most HISTORY_CHART_SECONDS)."""
    if snap is None:
        return 0.0 - CHART_SECONDS, 0.0
    status = snap.statuses.get(destination)
    if status is None or status.state != "stale" or status.last_event_ts is None:
        return snap.now - CHART_SECONDS, snap.now
    end = status.last_event_ts + 1.0
    start = end - CHART_SECONDS
    if snap.history is not None:
        start = max(min(start, snap.history[0]), end - HISTORY_CHART_SECONDS)
    return start, end


def _per_s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}/s"


def drift_text(
    d: DestinationDrift | None, zone: DisplayZone, status: DestinationStatus | None = None
) -> Text:
    """The accepted-rate ceiling (delivered/s while throttled) now and its baseline, and the
    429 share of attempts: the pane's figure, over the pane's window (``status``); the
    flag's time in ``zone``."""
    if d is None:
        return Text("ceiling: no deliveries seen yet", style="dim")
    text = Text()
    text.append(f"ceiling now (last {CEILING_SECONDS} s) ", style="dim")
    if d.current_ceiling is None:
        text.append("– (not throttled)", style="dim")
    else:
        text.append(_per_s(d.current_ceiling))
    text.append("  baseline ", style="dim")
    text.append(_per_s(d.baseline_ceiling))
    if d.baseline_kind == "lower_bound":
        text.append(" (never throttled: at least)", style="dim")
    if status is not None:
        text.append(f"  429 share (last {status.window_s} s) ", style="dim")
        text.append(fmt_pct(status.rate_limited_pct))
    if d.retry_after_s is not None:
        text.append("  Retry-After ", style="dim")
        text.append(f"{d.retry_after_s:g} s")
    if d.rate_limit_usage:
        warn = d.rate_limit_exceeded is not None or (d.rate_limit_used_pct or 0.0) >= 90.0
        text.append("  " + d.rate_limit_usage, style="yellow" if warn else "")
    if d.flagged:
        text.append("  DRIFT", style="bold red")
        when = zone.clock(d.flagged_at) if d.flagged_at is not None else ""
        text.append(f" flagged {when}: ceiling moved to {_per_s(d.flagged_ceiling)}", style="red")
    return text


def backup_text(row: dict[str, Any] | None, configured: bool) -> Text:
    """The backup webhook's reconciliation for this destination (missing counts live)."""
    if row is None:
        note = "not a [backup] destination" if configured else "no [backup] table in the config"
        return Text(f"backup: {note}", style="dim")
    text = Text("backup ", style="dim")
    for key in ("expected", "delivered", "missing", "late", "duplicates", "pending"):
        style = "bold red" if key == "missing" and row.get(key) else ""
        text.append(f" {key} ", style="dim")
        text.append(str(row.get(key, 0)), style=style)
    lost_in = row.get("lost_in_s")
    if lost_in is not None and row.get("failing"):
        text.append("  retry window ends in ", style="dim")
        text.append(format_duration(max(0.0, lost_in)), style="yellow")
    return text
