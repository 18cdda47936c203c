"""One destination: per-second chart, error breakdown, recent failures (Enter or a click
opens one in full), probe history with rate-limit headers, its incidents."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Sparkline, Static

from observatory.detect.drift import CEILING_SECONDS, DestinationDrift
from observatory.detect.status import DestinationStatus
from observatory.store.query import first_line
from observatory.ui.driver import Snapshot
from observatory.ui.queries import (
    CHART_SECONDS,
    DestinationDetail,
    FailureRow,
    destination_detail,
    failure_fields,
)
from observatory.ui.screens.base import ObservatoryScreen
from observatory.ui.screens.failure import FailureScreen
from observatory.ui.text import fmt_ms, fmt_pct, fmt_time, literal
from observatory.ui.widgets.footer import KeyFooter
from observatory.util.durations import format_duration


class DestinationScreen(ObservatoryScreen):
    """Drill-down for one destination; data read by a thread worker from a read cursor."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("f", "focus_failures", "Failures"),
        Binding("m", "write_missing", "Missing → file"),
    ]

    class Loaded(Message):
        def __init__(self, detail: DestinationDetail) -> None:
            super().__init__()
            self.detail = detail

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
        self.failures: list[FailureRow] = []

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(("Destination ", "bold"), literal(self.destination, "bold")),
            id="dest-title",
        )
        with VerticalScroll():
            with Vertical(id="chart"):
                for kind in ("delivered", "failed", "rate-limited"):
                    with Horizontal(classes="chart-row"):
                        yield Static(Text(kind), classes="chart-label")
                        yield Sparkline([], id=f"spark-{kind}", classes=f"chart-spark {kind}")
                        yield Static(classes="chart-total", id=f"total-{kind}")
                yield Static(id="chart-range", classes="dim-note")
            yield Static(Text("Rate limit and backup", style="bold"), classes="section")
            yield Static(id="ratelimit")
            yield Static(id="backup")
            yield Static(Text("Errors", style="bold"), classes="section")
            yield DataTable(id="errors", cursor_type="row")
            yield Static(Text("Recent failures", style="bold"), classes="section")
            yield DataTable(id="failures", cursor_type="row")
            yield Static(Text("Probe history", style="bold"), classes="section")
            yield DataTable(id="probes", cursor_type="row")
            yield Static(Text("Incidents", style="bold"), classes="section")
            yield DataTable(id="dest-incidents", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#errors", DataTable).add_columns("status", "code", "message", "count")
        self.query_one("#failures", DataTable).add_columns(
            "time", "outcome", "status", "code", "message", "latency"
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
        """The rate-limit ceiling and the backup counts, from the app's latest snapshot."""
        if snap is None:
            return
        self.query_one("#ratelimit", Static).update(
            drift_text(snap.drift.get(self.destination), snap.statuses.get(self.destination)),
            layout=False,
        )
        self.query_one("#backup", Static).update(
            backup_text(snap.backup.get(self.destination), bool(snap.backup)), layout=False
        )

    def action_reload(self) -> None:
        snap = self.observatory.snapshot
        now = snap.now if snap is not None else 0.0
        self.load(now)

    @work(thread=True, exit_on_error=False, group="destination", exclusive=True)
    def load(self, now: float) -> None:
        try:
            with self.observatory.read_cursor() as cur:
                detail = destination_detail(cur, self.destination, now)
        except Exception as exc:  # shown to the user, one line
            self.post_message(self.Failed(first_line(exc)))
            return
        self.post_message(self.Loaded(detail))

    def on_destination_screen_failed(self, event: Failed) -> None:
        self.query_one("#chart-range", Static).update(literal(event.error, "red"))

    def on_destination_screen_loaded(self, event: Loaded) -> None:
        d = event.detail
        for i, kind in enumerate(("delivered", "failed", "rate-limited"), start=1):
            series = self._series(d, i)
            self.query_one(f"#spark-{kind}", Sparkline).data = series
            self.query_one(f"#total-{kind}", Static).update(Text(f"{int(sum(series))}"))
        snap = self.observatory.snapshot
        end = snap.now if snap is not None else 0.0
        self.query_one("#chart-range", Static).update(
            Text(f"per second, {fmt_time(end - CHART_SECONDS)} – {fmt_time(end)} UTC", style="dim")
        )
        errors = self.query_one("#errors", DataTable)
        errors.clear()
        for status, code, message, n in d.errors:
            errors.add_row(
                literal(status),
                literal(code),
                literal(message, limit=80),
                Text(str(n), justify="right"),
            )
        failures = self.query_one("#failures", DataTable)
        failures.clear()
        self.failures = list(d.failures)
        for ts, outcome, status, code, message, latency, _mid in d.failures:
            failures.add_row(
                Text(fmt_time(float(ts))),
                literal(outcome),
                literal(status),
                literal(code),
                literal(message, limit=80),
                Text(fmt_ms(latency), justify="right"),
            )
        probes = self.query_one("#probes", DataTable)
        probes.clear()
        for p in d.probes:
            ok = "–" if p.ok is None else ("ok" if p.ok else "FAIL")
            probes.add_row(
                Text(fmt_time(p.ts)),
                literal(p.probe, limit=24),
                Text(ok, style="green" if p.ok else "bold red"),
                literal(p.http_status),
                Text(fmt_ms(p.latency_ms), justify="right"),
                literal(p.status or p.error, limit=30),
                literal(p.rate_limit or "–", limit=60),
            )
        incidents = self.query_one("#dest-incidents", DataTable)
        incidents.clear()
        for inc in d.incidents:
            incidents.add_row(
                Text(inc.id),
                Text(inc.state),
                Text(inc.severity),
                Text(inc.detector),
                Text(fmt_time(inc.detected_at)),
                literal(inc.summary, limit=50),
            )

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
        if event.data_table.id == "failures" and 0 <= event.cursor_row < len(self.failures):
            row = self.failures[event.cursor_row]
            self.open_failure(row.ts, row.message_id)

    @work(thread=True, exit_on_error=False, group="failure", exclusive=True)
    def open_failure(self, ts: float, message_id: str | None) -> None:
        try:
            with self.observatory.read_cursor() as cur:
                fields = failure_fields(cur, self.destination, ts, message_id)
        except Exception as exc:
            self.post_message(self.Failed(first_line(exc)))
            return
        self.app.call_from_thread(self.app.push_screen, FailureScreen(fields))

    @staticmethod
    def _series(d: DestinationDetail, column: int) -> list[float]:
        if not d.seconds:
            return []
        first, last = d.seconds[0][0], d.seconds[-1][0]
        by_sec = {row[0]: row[column] for row in d.seconds}
        return [float(by_sec.get(s, 0)) for s in range(first, last + 1)]


def _per_s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}/s"


def drift_text(d: DestinationDrift | None, status: DestinationStatus | None = None) -> Text:
    """The accepted-rate ceiling (delivered/s while throttled) now and its baseline, and the
    429 share of attempts: the pane's figure, over the pane's window (``status``)."""
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
        when = fmt_time(d.flagged_at)[11:] if d.flagged_at is not None else ""
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
