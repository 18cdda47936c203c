"""The bar across the top of the dashboard while any incident is open."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from observatory.incidents.model import Incident
from observatory.ui.text import literal
from observatory.util.durations import format_age
from observatory.util.zonetime import DisplayZone


class IncidentBar(Static):
    """Hidden when nothing is open; else one line per open incident (up to three)."""

    def show(self, incidents: list[Incident], now: float, zone: DisplayZone) -> None:
        """Summaries' times of day are shown in ``zone``, labelled."""
        self.display = bool(incidents)
        if not incidents:
            return
        text = Text()
        for n, inc in enumerate(incidents[:3]):
            if n:
                text.append("\n")
            text.append(f" {inc.severity.upper()} ", style="bold white on red")
            text.append(f" {inc.id} ", style="bold")
            text.append_text(literal(inc.destination, "bold"))
            text.append(
                f" {inc.detector} · {inc.state} · detected {format_age(now, inc.detected_at)} "
            )
            summary = zone.localize_clocks(inc.summary, inc.detected_at)
            text.append_text(literal(summary, "italic", limit=100))
        if len(incidents) > 3:
            text.append(f"\n … and {len(incidents) - 3} more (press i)")
        self.update(text)
