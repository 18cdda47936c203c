"""`?` / F1: the keys, in one place."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("Everywhere", ""),
    ("s", "SQL console"),
    ("i", "incidents"),
    ("p", "pause / resume live updates"),
    ("? / F1", "this help"),
    ("ctrl+p", "command palette (every action)"),
    ("Esc", "back"),
    ("q", "quit"),
    ("Dashboard", ""),
    ("/", "filter destinations (Esc clears)"),
    ("↑ ↓ / tab", "move between destinations"),
    ("Enter", "open the destination"),
    ("SQL console", ""),
    ("ctrl+enter", "run the query (also ctrl+r, F5)"),
    ("Incidents", ""),
    ("a", "acknowledge the selected incident"),
    ("e", "export it as incident-<id>.md in the current directory"),
    ("r", "reload"),
]


class HelpScreen(ModalScreen[None]):
    """A modal list of the keys; Esc, q or ? closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            if what:
                table.add_row(key, what)
            else:
                table.add_row("", "")
                table.add_row(f"[bold]{key}[/]", "")  # our own fixed headings, not user text
        with Vertical(id="help-box"):
            yield Static("[b]Observatory — keys[/b]", id="help-title")
            yield Static(table)
