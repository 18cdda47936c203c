"""A failed line in full: every stored field, shown literally. Opened from a group of alike
failures: the group's count, first and last time (in the display zone), its newest line in
full, then its newest members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from observatory.ui.text import fmt_ms, literal
from observatory.util.zonetime import DisplayZone

if TYPE_CHECKING:
    from observatory.ui.queries import FailureGroup, FailureRow


class FailureScreen(ModalScreen[None]):
    """Modal detail of one failure; Esc (or a click outside) closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    def __init__(
        self,
        fields: list[tuple[str, Any]],
        group: FailureGroup | None = None,
        members: list[FailureRow] | None = None,
        zone: DisplayZone | None = None,
    ) -> None:
        super().__init__()
        self.zone = zone if zone is not None else DisplayZone()
        self.fields = fields
        self.group = group
        self.members = members or []

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column(overflow="fold")
        for name, value in self.fields:
            # Values come from log lines: literal text, wrapped rather than cut.
            text = literal(value)
            text.no_wrap = False
            text.overflow = "fold"
            table.add_row(Text(name), text)
        if not self.fields:
            table.add_row("", Text("the line is no longer stored"))
        with VerticalScroll(id="failure-box"):
            if self.group is None:
                yield Static(Text("Failed line", style="bold"), id="failure-title")
                yield Static(table, id="failure-fields")
                return
            yield Static(self._group_title(self.group), id="failure-title")
            yield Static(Text("The newest, in full", style="bold"), classes="section")
            yield Static(table, id="failure-fields")
            yield Static(self._members(), id="failure-members")

    def _group_title(self, g: FailureGroup) -> Text:
        zone = self.zone
        text = Text.assemble(
            (f"{g.n} failure{'s' if g.n != 1 else ''} alike", "bold"),
            "  ",
            literal(g.outcome),
            " ",
            literal(g.http_status),
            " ",
            literal(g.error_code),
            " ",
            literal(g.error_message, limit=80),
        )
        text.append(f"\nfirst {zone.full(g.first_ts)}   last {zone.full(g.last_ts)}", "dim")
        return text

    def _members(self) -> Table:
        zone = self.zone
        table = Table.grid(padding=(0, 2))
        shown, total = len(self.members), self.group.n if self.group else len(self.members)
        title = f"The newest {shown} of {total}" if shown < total else f"All {total}"
        table.add_row(Text(title, style="bold"), "", "", "")
        table.add_row(*[Text(h, style="bold cyan") for h in ("time", "message id", "latency", "")])
        for m in self.members:
            table.add_row(
                Text(zone.full(m.ts)), literal(m.message_id), Text(fmt_ms(m.latency_ms)), ""
            )
        return table

    def on_click(self, event: events.Click) -> None:
        if event.widget is self:
            self.dismiss()
