"""`?` / F1: the keys, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from observatory.detect.status import STATE_RULES, STATE_SECONDS


@dataclass(frozen=True)
class HelpRow:
    """One line of help: the keys (Textual's names, what a test presses), what they do,
    and the action they run ("" for the mouse, which is no key)."""

    keys: tuple[str, ...]
    what: str
    action: str

    @property
    def shown(self) -> str:
        if not self.keys:
            return "mouse"
        labels = [key_label(k) for k in self.keys]
        return (" " if all(len(k) == 1 for k in labels) else " / ").join(labels)


_LABELS = {
    "question_mark": "?",
    "slash": "/",
    "escape": "Esc",
    "enter": "Enter",
    "tab": "tab",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
}


def key_label(key: str) -> str:
    """How a key is written in help: `?`, `Esc`, `F5`, `ctrl+↑`."""
    *mods, last = key.split("+")
    if last in _LABELS:
        last = _LABELS[last] if not mods else _LABELS[last].lower()
    elif len(last) > 1 and last[0] == "f" and last[1:].isdigit():
        last = last.upper()
    return "+".join([*mods, last])


def rows_of(bindings: Iterable[Binding | tuple[str, ...]]) -> list[HelpRow]:
    """A row per action (its arguments aside), its keys in binding order; the text is the
    first binding's tooltip (the longer help) or else its description."""
    keys: dict[str, list[str]] = {}
    text: dict[str, str] = {}
    for binding in bindings:
        if not isinstance(binding, Binding):
            continue
        action = binding.action.split("(")[0]
        keys.setdefault(action, []).extend(k.strip() for k in binding.key.split(","))
        if not text.get(action):
            text[action] = binding.tooltip or binding.description.lower()
    return [HelpRow(tuple(dict.fromkeys(keys[a])), text[a], a) for a in keys]


def help_sections() -> list[tuple[str, list[HelpRow]]]:
    """What the help screen shows: each screen's BINDINGS (the keys that really run), plus
    the keys Textual itself handles. Tests walk the same rows."""
    from observatory.ui.app import ObservatoryApp
    from observatory.ui.screens.dashboard import DashboardScreen
    from observatory.ui.screens.dependencies import DependenciesScreen
    from observatory.ui.screens.destination import DestinationScreen
    from observatory.ui.screens.incidents import IncidentsScreen
    from observatory.ui.screens.sql import SqlScreen

    return [
        (
            "Everywhere",
            [
                *rows_of(ObservatoryApp.BINDINGS),
                HelpRow(("ctrl+p",), "command palette (every action)", "command_palette"),
                HelpRow((), "click a pane to open it, a row to select it", ""),
            ],
        ),
        (
            "Dashboard",
            [
                *rows_of(DashboardScreen.BINDINGS),
                HelpRow(("tab",), "next pane (shift+tab: previous)", "focus_next"),
            ],
        ),
        ("Destination", rows_of(DestinationScreen.BINDINGS)),
        ("SQL console", rows_of(SqlScreen.BINDINGS)),
        ("Incidents", rows_of(IncidentsScreen.BINDINGS)),
        ("Dependencies", rows_of(DependenciesScreen.BINDINGS)),
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
        for n, (heading, rows) in enumerate(help_sections()):
            if n:
                table.add_row("", "")
            table.add_row(Text(heading, style="bold"), "")
            for row in rows:
                table.add_row(row.shown, row.what)
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
