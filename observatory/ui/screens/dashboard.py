"""The dashboard: an incident bar, a pane per destination, a filter, a status line."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Static

from observatory.ui.driver import Snapshot
from observatory.ui.text import literal
from observatory.ui.widgets.destination_pane import DestinationPane
from observatory.ui.widgets.footer import KeyFooter
from observatory.ui.widgets.incident_bar import IncidentBar


class DashboardScreen(Screen[None]):
    """Live panes, rendered from the app's latest Snapshot only (no queries per frame)."""

    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    AUTO_FOCUS = ".pane"

    def __init__(self) -> None:
        super().__init__()
        self.panes: dict[str, DestinationPane] = {}
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield IncidentBar(id="incident-bar")
        yield Input(placeholder="filter destinations", id="filter")
        yield VerticalScroll(id="panes")
        yield Static(id="status-line")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.show_snapshot)

    def show_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            self.query_one("#status-line", Static).update(Text("starting…", style="dim"))
            return
        self.query_one(IncidentBar).show(snap.incidents, snap.now)
        container = self.query_one("#panes", VerticalScroll)
        new = [name for name in snap.statuses if name not in self.panes]
        for name in new:
            pane = DestinationPane(name, classes="pane")
            self.panes[name] = pane
        if new:
            container.mount(*[self.panes[n] for n in new])
        self._apply(snap)
        self._status(snap)

    def _apply(self, snap: Snapshot) -> None:
        for name, status in snap.statuses.items():
            pane = self.panes[name]
            pane.show(status, snap.now)
            visible = self.filter_text.lower() in name.lower()
            if pane.display != visible:
                pane.display = visible
        if self.focused is None:
            shown = [p for p in self.panes.values() if p.display]
            if shown:
                shown[0].focus()

    def _status(self, snap: Snapshot) -> None:
        paused = getattr(self.app, "paused", False)
        text = Text()
        text.append(" LIVE " if snap.live else " HISTORY ", style="bold reverse")
        if paused:
            text.append(" PAUSED ", style="bold black on yellow")
        text.append(f"  {len(snap.statuses)} destinations  {len(snap.incidents)} open incidents")
        if self.filter_text:
            text.append("  filter: ")
            text.append_text(literal(self.filter_text))
        if snap.note:
            text.append("  ")
            text.append_text(literal(snap.note, "italic"))
        self.query_one("#status-line", Static).update(text, layout=False)

    def action_open(self) -> None:
        if isinstance(self.focused, DestinationPane):
            self.focused.action_open()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        # Focus now, not after the next idle (Widget.focus defers): keys typed right after
        # `/` (a fast typist, a paste) must land in the box, not trigger bindings.
        self.set_focus(box)

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self._set_filter("")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        visible = [p for p in self.panes.values() if p.display]
        if visible:
            visible[0].focus()
        if not event.value:
            event.input.display = False

    def _set_filter(self, value: str) -> None:
        self.filter_text = value
        for name, pane in self.panes.items():
            pane.display = value.lower() in name.lower()
        snap = getattr(self.app, "snapshot", None)
        if snap is not None:
            self._status(snap)

    def on_destination_pane_selected(self, event: DestinationPane.Selected) -> None:
        from observatory.ui.screens.destination import DestinationScreen

        self.app.push_screen(DestinationScreen(event.destination))
