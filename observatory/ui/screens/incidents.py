"""Incidents: the list, the selected incident's timeline, acknowledge, note and export."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from observatory.config import response_plan
from observatory.incidents.model import Incident
from observatory.incidents.store import list_incidents
from observatory.ui.screens.base import ObservatoryScreen
from observatory.ui.text import clean, literal
from observatory.ui.widgets.footer import KeyFooter
from observatory.util.zonetime import DisplayZone

# Under this many columns the incident list leaves out its less needed columns.
NARROW = 120


class IncidentsScreen(ObservatoryScreen):
    """Every stored incident, newest first."""

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="back"),
        Binding("a", "acknowledge", "Acknowledge", tooltip="acknowledge the selected incident"),
        Binding("n", "note", "Note", tooltip="add a note to its timeline"),
        Binding(
            "e",
            "export",
            "Export .md",
            tooltip="export it as incident-<id>.md in the current directory",
        ),
        Binding("r", "reload", "Reload", tooltip="reload"),
    ]

    class Loaded(Message):
        def __init__(self, incidents: list[Incident]) -> None:
            super().__init__()
            self.incidents = incidents

    class Done(Message):
        """An action finished: a line to notify, whether it failed, and whether it changed
        the incidents (a reload shows the change; a failed list load must not retry itself)."""

        def __init__(self, text: str, error: bool = False, changed: bool = True) -> None:
            super().__init__()
            self.text = text
            self.error = error
            self.changed = changed

    def __init__(self, select: str | None = None) -> None:
        super().__init__()
        self.incidents: list[Incident] = []
        self.select = select  # the incident to select once the list is loaded

    def compose(self) -> ComposeResult:
        yield Static(Text("Incidents", style="bold"), classes="section")
        yield DataTable(id="incident-list", cursor_type="row")
        # Under the list, not at the bottom: notifications show bottom right, over it.
        yield Input(
            placeholder="note for the selected incident (Enter adds, Esc cancels)", id="note"
        )
        yield Static(id="incident-plan")
        yield Static(Text("Timeline", style="bold"), classes="section", id="timeline-title")
        yield DataTable(id="timeline", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._fill_list()
        self.action_reload()

    def on_resize(self, event: events.Resize) -> None:
        self._fill_list()  # the summary takes the new width
        self._show_timeline()  # the detail column wraps to the new width

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False, group="incidents", exclusive=True)
    def load(self) -> None:
        try:
            with self.observatory.read_cursor() as cur:
                found = list_incidents(cur)
        except Exception as exc:
            self.post_message(self.Done(f"cannot list incidents: {exc}", True, changed=False))
            return
        self.post_message(self.Loaded(found))

    def on_incidents_screen_loaded(self, event: Loaded) -> None:
        self.incidents = event.incidents
        self._fill_list()
        ids = [i.id for i in self.incidents]
        if self.select in ids:
            self.query_one("#incident-list", DataTable).move_cursor(row=ids.index(self.select))
        self.select = None
        self._show_timeline()

    def _fill_list(self) -> None:
        """The list, each column as wide as its widest cell and the summary taking the rest
        of the width, wrapped rather than cut. Narrow (under NARROW columns), severity,
        destination, detector and resolved time are left out: the summary (which starts with
        the destination) and the timeline say them."""
        table = self.query_one("#incident-list", DataTable)
        row = table.cursor_row
        zone = self.observatory.zone
        headers: tuple[str, ...] = (
            "id",
            "state",
            "severity",
            "destination",
            "detector",
            "detected",
            "resolved",
        )
        styles = {"open": "bold red", "acknowledged": "yellow"}
        rows: list[tuple[Text, ...]] = [
            (
                Text(inc.id),
                Text(inc.state, style=styles.get(inc.state, "green")),
                Text(inc.severity),
                literal(inc.destination),
                Text(inc.detector),
                Text(zone.short(inc.detected_at)),
                Text(zone.short(inc.resolved_at)),
            )
            for inc in self.incidents
        ]
        keep = [
            n
            for n, h in enumerate(headers)
            if self.size.width >= NARROW
            or h not in ("severity", "destination", "detector", "resolved")
        ]
        headers = tuple(headers[n] for n in keep)
        rows = [tuple(cells[n] for n in keep) for cells in rows]
        widths = [
            max([len(h), *(cells[n].cell_len for cells in rows)]) for n, h in enumerate(headers)
        ]
        pad = 2 * table.cell_padding
        # what is left of the screen's width (less a vertical scrollbar's 2 columns)
        room = max(24, self.size.width - sum(w + pad for w in widths) - pad - 2)
        table.clear(columns=True)
        for header, width in zip(headers, widths, strict=True):
            table.add_column(header, width=width)
        table.add_column("summary", width=room)
        for inc, cells in zip(self.incidents, rows, strict=True):
            table.add_row(*cells, _summary(inc, zone), key=inc.id, height=None)
        if self.incidents:
            table.move_cursor(row=min(max(row, 0), len(self.incidents) - 1))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "incident-list":
            self._show_timeline()

    def selected(self) -> Incident | None:
        table = self.query_one("#incident-list", DataTable)
        if not self.incidents or table.cursor_row < 0:
            return None
        return self.incidents[min(table.cursor_row, len(self.incidents) - 1)]

    def _show_timeline(self) -> None:
        """The selected incident's timeline; each detail wraps in full (nothing cut off)."""
        timeline = self.query_one("#timeline", DataTable)
        timeline.clear(columns=True)
        # time and kind at their widths; detail takes the rest (cell padding 1 each side,
        # and room for a vertical scrollbar)
        width = max(self.size.width, 40)
        timeline.add_column("time", width=23)
        timeline.add_column("kind", width=10)
        timeline.add_column("detail", width=max(20, width - 23 - 10 - 3 * 2 - 2))
        inc = self.selected()
        self._show_plan(inc)
        title = self.query_one("#timeline-title", Static)
        if inc is None:
            title.update(Text("Timeline (no incidents)", style="bold"))
            return
        title.update(Text.assemble(("Timeline of ", "bold"), (inc.id, "bold"), _found(inc)))
        zone = self.observatory.zone
        for entry in inc.timeline:
            timeline.add_row(
                Text(zone.full(entry.ts)),
                literal(entry.kind),
                Text(clean(zone.localize_clocks(entry.detail, entry.ts))),
                height=None,
            )

    def _show_plan(self, inc: Incident | None) -> None:
        """The selected incident's response plan from the config (fallback first), or
        nothing when the config has none for its destination."""
        box = self.query_one("#incident-plan", Static)
        plan = response_plan(self.observatory.config, inc.destination) if inc else None
        box.display = plan is not None
        if plan is None:
            return
        text = Text()
        for i, (label, value) in enumerate(plan.rows()):
            text.append(("\n" if i else "") + f"{label}: ", style="bold")
            text.append(clean(value))
        box.update(text)

    def action_acknowledge(self) -> None:
        inc = self.selected()
        if inc is None:
            self.notify("no incident selected", severity="warning")
            return
        clock = self.observatory.clock or time.time
        self.acknowledge(inc.id, clock())

    @work(thread=True, exit_on_error=False, group="incident-action")
    def acknowledge(self, incident_id: str, ts: float) -> None:
        try:
            incident = self.observatory.acknowledge(incident_id, ts)
        except Exception as exc:
            self.post_message(self.Done(f"acknowledge failed: {exc}", error=True))
            return
        self.post_message(self.Done(f"{incident.id} is {incident.state}"))

    def action_back(self) -> None:
        box = self.query_one("#note", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one("#incident-list", DataTable).focus()
            return
        self.app.pop_screen()

    def action_note(self) -> None:
        if self.selected() is None:
            self.notify("no incident selected", severity="warning")
            return
        box = self.query_one("#note", Input)
        box.display = True
        self.set_focus(box)  # now: the note's first keys must not trigger bindings

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "note":
            return
        text = event.value.strip()
        inc = self.selected()
        event.input.value = ""
        event.input.display = False
        self.query_one("#incident-list", DataTable).focus()
        if not text or inc is None:
            return
        clock = self.observatory.clock or time.time
        self.add_note(inc.id, clock(), text)

    @work(thread=True, exit_on_error=False, group="incident-action")
    def add_note(self, incident_id: str, ts: float, text: str) -> None:
        try:
            incident = self.observatory.add_note(incident_id, ts, text)
        except Exception as exc:
            self.post_message(self.Done(f"note failed: {exc}", error=True))
            return
        self.post_message(self.Done(f"note added to {incident.id}"))

    def action_export(self) -> None:
        inc = self.selected()
        if inc is None:
            self.notify("no incident selected", severity="warning")
            return
        self.export(inc.id)

    @work(thread=True, exit_on_error=False, group="incident-action")
    def export(self, incident_id: str) -> None:
        try:
            full_id, text = self.observatory.export_incident(incident_id, "md")
            path = Path.cwd() / f"incident-{full_id}.md"
            path.write_text(text, encoding="utf-8")
        except Exception as exc:
            self.post_message(self.Done(f"export failed: {exc}", True, changed=False))
            return
        self.post_message(self.Done(f"exported to {path}", changed=False))

    def on_incidents_screen_done(self, event: Done) -> None:
        # notify() renders markup; a path or error text may hold brackets, so escape it.
        from rich.markup import escape

        self.notify(escape(event.text), severity="error" if event.error else "information")
        if event.changed:
            self.load()


# An incident found while reading history (a replay, or the backlog at start-up) alerted
# nobody: the list and the timeline say so.
FOUND_IN_HISTORY = "found in history"


def _found(inc: Incident) -> Text:
    return Text(f"  {FOUND_IN_HISTORY}", style="italic") if inc.historical else Text()


def _summary(inc: Incident, zone: DisplayZone) -> Text:
    """The summary, wrapped in its column; its times in ``zone``; marked when found in
    history."""
    summary = Text(clean(zone.localize_clocks(inc.summary, inc.detected_at)))
    if not inc.historical:
        return summary
    return Text.assemble((f"{FOUND_IN_HISTORY}: ", "italic"), summary)
