"""A failed line in full: every stored field, shown literally."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from observatory.ui.text import literal


class FailureScreen(ModalScreen[None]):
    """Modal detail of one failure; Esc (or a click outside) closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    def __init__(self, fields: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.fields = fields

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
            yield Static(Text("Failed line", style="bold"), id="failure-title")
            yield Static(table, id="failure-fields")

    def on_click(self, event: events.Click) -> None:
        if event.widget is self:
            self.dismiss()
