"""The bar across the top of the dashboard while any incident is open.

Each open incident's summary is shown whole, wrapped at word boundaries (its numbers are the
point of it); the bar is focusable (↑ from the top row of panes, or a click) and Enter on it
opens the incidents screen with its first incident selected."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import Static

from observatory.incidents.model import Incident
from observatory.ui.text import clean
from observatory.util.durations import format_age
from observatory.util.zonetime import DisplayZone

SHOWN = 3  # incidents on the bar; the rest are counted


class IncidentBar(Static, can_focus=True):
    """Hidden when nothing is open; else each open incident (up to SHOWN), wrapped."""

    class Selected(Message):
        """The user wants incident ``incident_id`` opened."""

        def __init__(self, incident_id: str) -> None:
            super().__init__()
            self.incident_id = incident_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.incident_ids: list[str] = []
        self._drawn: tuple[object, ...] | None = None

    def show(self, incidents: list[Incident], now: float, zone: DisplayZone) -> None:
        """Summaries' times of day are shown in ``zone``, labelled."""
        self.incident_ids = [i.id for i in incidents[:SHOWN]]
        if self.display != bool(incidents):
            self.display = bool(incidents)
        if not incidents:
            return
        text = Text(overflow="fold")
        for n, inc in enumerate(incidents[:SHOWN]):
            if n:
                text.append("\n")
            text.append(f" {inc.severity.upper()} ", style="bold white on red")
            text.append(f" {inc.id} ", style="bold")
            summary = clean(zone.localize_clocks(inc.summary, inc.detected_at))
            name = clean(inc.destination)
            if not summary.startswith(f"{name}:"):  # the summary names it already
                text.append(name + " ", style="bold")
            text.append(
                f"{inc.detector} · {inc.state} · detected {format_age(now, inc.detected_at)} "
            )
            text.append(summary, style="italic")
        if len(incidents) > SHOWN:
            text.append(f"\n … and {len(incidents) - SHOWN} more (press i)")
        key = (text.plain, tuple(s.style for s in text.spans))
        if key != self._drawn:
            self._drawn = key
            self.update(text)

    def action_open(self) -> None:
        if self.incident_ids:
            self.post_message(self.Selected(self.incident_ids[0]))

    def on_click(self) -> None:
        self.focus()
        self.action_open()
