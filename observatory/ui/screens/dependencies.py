"""`d`: the dependency map live. Per configured destination its chain (``via`` →
destination), each node's state now and the fallback; a failing dependency that several
destinations hang on is said first, with their names.

It renders from the Snapshot the app already has (destination statuses, open incidents,
``Snapshot.dependencies`` for the probed dependencies) and the config's map: no query per
frame. Names, statuses and fallbacks are untrusted text: Text objects, never markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from observatory.config import dependents
from observatory.dependencies import dependency_node
from observatory.dependencies.document import Node
from observatory.ui.screens.base import ObservatoryScreen
from observatory.ui.text import clean, literal
from observatory.ui.widgets.footer import KeyFooter
from observatory.util.durations import format_age, format_duration

if TYPE_CHECKING:
    from observatory.config import Config
    from observatory.snapshot import Snapshot

STATE_STYLE = {
    "ok": "green",
    "failing": "bold red",
    "critical": "bold red",
    "down": "bold red",
    "error": "red",
    "degraded": "yellow",
    "warning": "yellow",
    "stale": "dim",
    "warmup": "cyan",
    "unknown": "dim",
}
STATE_MARK = {"ok": "●", "failing": "✖", "critical": "✖", "error": "✖", "warning": "▲"}


def destination_node(config: Config, name: str, snap: Snapshot | None) -> Node:
    """The destination at the end of a chain, as the Snapshot has it: its open incident's
    severity, else its pane's state; never seen: unknown."""
    status = snap.statuses.get(name) if snap is not None else None
    incident = None
    if snap is not None:
        incident = next(
            (i for i in snap.incidents if i.destination == name and i.resolved_at is None), None
        )
    state: str
    if incident is not None:
        state, detail = incident.severity, f"open incident {incident.id} ({incident.detector})"
    elif status is not None:
        state = status.state
        detail = f"{status.rate_now:.1f}/s" if state != "stale" else "no recent traffic"
        if status.last_event_ts is not None and snap is not None:
            detail += f", last event {format_age(snap.now, status.last_event_ts)}"
    else:
        state, detail = "unknown", "no traffic seen"
    return Node(name, "destination", config.vendor_for(name), state, detail)


def failing_banner(config: Config, snap: Snapshot | None) -> Text | None:
    """One line per failing dependency that destinations hang on (None: none fails)."""
    probed = snap.dependencies if snap is not None else {}
    lines: list[Text] = []
    for dep in config.dependencies:
        node = dependency_node(dep, probed.get(dep.name))
        users = dependents(config, dep.name)
        if node.bad and users:
            lines.append(
                Text.assemble(
                    ("✖ ", "bold red"),
                    (clean(dep.name), "bold"),
                    f" ({dep.kind}) is {node.state}: ",
                    (", ".join(clean(u) for u in users), "bold"),
                    " hang on it" if len(users) > 1 else " hangs on it",
                )
            )
    return Text("\n").join(lines) if lines else None


def chain_view(config: Config, name: str, snap: Snapshot | None) -> RenderableType:
    """One destination: a heading, a row per node (upstream first), and its fallback."""
    dest = config.destination(name)
    probed = snap.dependencies if snap is not None else {}
    deps = {d.name: d for d in config.dependencies}
    nodes = [dependency_node(deps[v], probed.get(v)) for v in (dest.via if dest else [])]
    nodes.append(destination_node(config, name, snap))
    heading = Text.assemble((clean(name), "bold"))
    facts = []
    if dest is not None and dest.owner:
        facts.append(f"owner {clean(dest.owner)}")
    if dest is not None and dest.retry_window is not None:
        facts.append(f"retry window {format_duration(dest.retry_window, coarse=True)}")
    if facts:
        heading.append("   " + " · ".join(facts), style="dim")
    table = Table.grid(padding=(0, 2))
    table.add_column(width=2)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="dim")
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    now = snap.now if snap is not None else None
    for node in nodes:
        style = STATE_STYLE.get(node.state, "")
        detail = Text(clean(node.detail))
        if node.checked_at is not None and now is not None:
            detail.append(f" (checked {format_age(now, node.checked_at)})", style="dim")
        shared = [u for u in dependents(config, node.name) if u != name]
        if node.role == "dependency" and shared:
            detail.append("  also used by " + ", ".join(clean(u) for u in shared), style="italic")
        table.add_row(
            Text(STATE_MARK.get(node.state, "○"), style=style),
            literal(node.name),
            Text(node.kind),
            Text(node.state, style=style),
            detail,
        )
    fallback = Text.assemble(("  fallback: ", "bold"))
    if dest is not None and dest.fallback:
        fallback.append(clean(dest.fallback))
    else:
        fallback.append("not documented", style="dim")
    parts: list[RenderableType] = [heading, table, fallback]
    if dest is not None and dest.runbook:
        parts.append(Text.assemble(("  runbook: ", "bold"), clean(dest.runbook)))
    parts.append(Text(""))
    return Group(*parts)


class DependenciesScreen(ObservatoryScreen):
    """The dependency map with live state (see the module)."""

    BINDINGS = [Binding("escape", "back", "Back", tooltip="back")]

    def compose(self) -> ComposeResult:
        yield Static(Text("Dependencies", style="bold"), classes="section")
        yield Static(id="deps-banner")
        with VerticalScroll(id="deps-body"):
            yield Static(id="deps-chains")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.show_snapshot)

    def show_snapshot(self, snap: Snapshot | None) -> None:
        config = self.observatory.config
        banner = self.query_one("#deps-banner", Static)
        chains = self.query_one("#deps-chains", Static)
        if config is None:
            banner.display = False
            chains.update(
                Text(
                    "No config here: start the viewer with --config to see the dependency map.",
                    style="dim",
                )
            )
            return
        failing = failing_banner(config, snap)
        banner.display = failing is not None
        if failing is not None:
            banner.update(failing)
        if not config.destinations:
            chains.update(
                Text("No [[destinations]] in the config: nothing hangs on anything.", style="dim")
            )
            return
        chains.update(Group(*(chain_view(config, d.name, snap) for d in config.destinations)))

    def action_back(self) -> None:
        self.app.pop_screen()
