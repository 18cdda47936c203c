"""One destination on the dashboard: state badge, rate, sparkline, ratios, latency, age."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from observatory.engine.engine import DestinationStatus
from observatory.ui.text import fmt_age, fmt_ms, fmt_pct, literal

BADGES = {
    "ok": ("OK", "bold black on green"),
    "degraded": ("DEGRADED", "bold black on yellow"),
    "down": ("DOWN", "bold white on red"),
    "stale": ("STALE", "bold black on grey70"),
    "warmup": ("WARMUP", "bold black on cyan"),
}


def badge(state: str) -> Text:
    label, style = BADGES.get(state, (state.upper(), "bold"))
    return Text(f" {label} ", style=style)


class DestinationPane(Widget, can_focus=True):
    """A focusable pane; Enter (or a click) asks for the destination screen."""

    BINDINGS = [Binding("enter", "open", "Open", show=True)]

    class Selected(Message):
        """The user wants the destination screen of `destination`."""

        def __init__(self, destination: str) -> None:
            super().__init__()
            self.destination = destination

    def __init__(self, destination: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.destination = destination
        self._shown: tuple[DestinationStatus, float] | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="pane-title")
        yield Sparkline([], classes="pane-spark")
        yield Static(classes="pane-stats")

    def on_mount(self) -> None:
        # Children are composed by now but a show() that came earlier was skipped.
        self.call_after_refresh(self._show_latest)

    def _show_latest(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def show(self, status: DestinationStatus, now: float) -> None:
        """Render `status` (from a Snapshot) as of `now`."""
        self._shown = (status, now)
        if not self.is_mounted or not self.children:
            return  # on_mount renders it
        self.set_class(status.state in ("down", "degraded"), "-alert")
        title = Text.assemble(badge(status.state), " ", literal(status.destination, "bold"))
        if status.incident_id:
            title.append(f"  incident {status.incident_id}", style="bold red")
        self.query_one(".pane-title", Static).update(title)
        self.query_one(".pane-spark", Sparkline).data = [float(x) for x in status.sparkline[-120:]]
        probe = "–" if status.probe_ok is None else ("ok" if status.probe_ok else "FAILING")
        stats = Text()
        for n, (label, value) in enumerate(
            [
                ("ev/s", f"{status.rate_now:.1f}"),
                ("ok", fmt_pct(status.success_pct)),
                ("429", fmt_pct(status.rate_limited_pct)),
                ("latency", fmt_ms(status.avg_latency_ms)),
                ("last event", fmt_age(now, status.last_event_ts)),
                ("probe", probe),
            ]
        ):
            stats.append("   " if n else "")
            stats.append(label, style="dim")
            stats.append(" " + value)
        self.query_one(".pane-stats", Static).update(stats)

    def action_open(self) -> None:
        self.post_message(self.Selected(self.destination))

    def on_click(self) -> None:
        self.focus()
        self.action_open()
