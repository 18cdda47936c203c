"""`?` / F1: the keys, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from observatory.detect.status import STATE_RULES, STATE_SECONDS

KEYS: list[tuple[str, str]] = [
    ("Everywhere", ""),
    ("s", "SQL console"),
    ("i", "incidents"),
    ("d", "dependencies: chains, their state, fallbacks"),
    ("p", "pause / resume live updates"),
    ("? / F1", "this help"),
    ("ctrl+p", "command palette (every action)"),
    ("Esc", "back"),
    ("q", "quit"),
    ("mouse", "click a pane to open it, a row to select it"),
    ("Dashboard", ""),
    ("/", "filter destinations (Esc clears)"),
    ("↑ ↓ / tab", "move between destinations"),
    ("Enter", "open the destination"),
    ("Destination", ""),
    ("f", "go to recent failures; Enter or a click shows one in full"),
    ("m", "write its missing backup events to a file"),
    ("r", "reload"),
    ("SQL console", ""),
    ("ctrl+enter", "run the query (also ctrl+r, F5)"),
    ("ctrl+g", "cancel the running query"),
    ("ctrl+s", "export the result (.csv, .parquet, .json)"),
    ("ctrl+↑ ctrl+↓", "older / newer query from the history"),
    ("ctrl+b", "show / hide the schema and history sidebar"),
    ("Incidents", ""),
    ("a", "acknowledge the selected incident"),
    ("n", "add a note to its timeline"),
    ("e", "export it as incident-<id>.md in the current directory"),
    ("r", "reload"),
]


def screen_commands(screen: object) -> list[tuple[str, str, Callable[[], Any]]]:
    """Palette entries for `screen`'s own bindings: (title, help, callback)."""
    out: list[tuple[str, str, Callable[[], Any]]] = []
    seen: set[str] = set()
    for binding in getattr(screen, "BINDINGS", []):
        if not isinstance(binding, Binding) or not binding.description:
            continue
        action = binding.action
        if action in seen or "." in action or "(" in action or action in ("dismiss",):
            continue
        seen.add(action)
        method = getattr(screen, f"action_{action}", None)
        if method is not None:
            out.append((binding.description, f"{binding.key_display or binding.key}", method))
    return out


class HelpScreen(ModalScreen[None]):
    """A modal list of the keys; Esc, q or ? closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        from textual.containers import VerticalScroll

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            if what:
                table.add_row(key, what)
            else:
                table.add_row("", "")
                table.add_row(f"[bold]{key}[/]", "")  # our own fixed headings, not user text
        with VerticalScroll(id="help-box"):
            yield Static("[b]Observatory — keys[/b]", id="help-title")
            yield Static(table)
            yield Static(_states())


def _states() -> Table:
    """The pane states' rule (observatory.detect.status), under the keys."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("", "")
    table.add_row("[bold]Pane states[/]", f"figures and state over the last {STATE_SECONDS} s")
    for state, rule in STATE_RULES:
        table.add_row(state, rule)
    return table
