"""One destination on the dashboard: state badge, rate, sparkline, ratios, latency, age.

The stats line starts with its window ("last 10 s:"): delivered/s, the success and 429 shares
of attempts and the mean latency are all over it, as is the state badge's rule
(``observatory.detect.status``). What has no window (the newest line's age, the probe) is on
the title line."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from observatory.detect.engine import DestinationStatus
from observatory.ui.text import fmt_ms, fmt_pct, literal
from observatory.util.durations import format_age
from observatory.util.zonetime import DisplayZone

BADGES = {
    "ok": ("OK", "bold black on green"),
    "degraded": ("DEGRADED", "bold black on yellow"),
    "down": ("DOWN", "bold white on red"),
    "stale": ("STALE", "bold black on grey70"),
    "warmup": ("WARMUP", "bold black on cyan"),
}


BLOCKS = " ▁▂▃▄▅▆▇█"


def spark_text(values: list[int], width: int, style: str = "") -> Text:
    """The last `width` values as block characters scaled to their max, as one Text.

    Cheaper to render than a Sparkline widget (one style, no per-bar colour blending),
    which matters with many panes refreshed several times a second."""
    values = values[-width:] if width > 0 else []
    top = max(values, default=0)
    if top <= 0:
        return Text(" " * len(values), style=style)
    scale = (len(BLOCKS) - 1) / top
    chars = "".join(BLOCKS[max(1, round(v * scale))] if v > 0 else " " for v in values)
    return Text(chars, style=style, no_wrap=True)


def badge(state: str) -> Text:
    label, style = BADGES.get(state, (state.upper(), "bold"))
    return Text(f" {label} ", style=style)


class DestinationPane(Widget, can_focus=True):
    """A focusable pane; Enter (or a click) asks for the destination screen."""

    # Enter is the dashboard's binding (it opens the focused pane), so the footer keys stay
    # the same (and the footer is not rebuilt) when focus moves between panes and the filter.

    class Selected(Message):
        """The user wants the destination screen of `destination`."""

        def __init__(self, destination: str) -> None:
            super().__init__()
            self.destination = destination

    def __init__(
        self,
        destination: str,
        zone: DisplayZone | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.destination = destination
        self.zone = zone if zone is not None else DisplayZone()  # of a STALE pane's last-seen
        self._shown: tuple[DestinationStatus, float, dict[str, Any] | None] | None = None
        self._drawn: tuple[object, ...] | None = None  # what is on screen now

    def compose(self) -> ComposeResult:
        yield Static(classes="pane-title")
        yield Static(classes="pane-spark")
        yield Static(classes="pane-stats")

    def on_mount(self) -> None:
        # Children are composed by now but a show() that came earlier was skipped.
        self.call_after_refresh(self._show_latest)

    def _show_latest(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def show(
        self, status: DestinationStatus, now: float, backup: dict[str, Any] | None = None
    ) -> None:
        """Render `status` (from a Snapshot) as of `now`; `backup`: its reconciliation."""
        self._shown = (status, now, backup)
        if not self.is_mounted or not self.children:
            return  # on_mount renders it
        width = max(0, self.content_region.width)
        stats = self._stats(status, now, backup)
        facts = self._facts(status, now, self.zone)
        spark = tuple(status.sparkline[-width:])
        key = (status.state, status.incident_id, width, spark, stats, facts)
        if key == self._drawn:
            return  # nothing visible changed: no refresh
        self._drawn = key
        self.set_class(status.state in ("down", "degraded"), "-alert")
        title = Text.assemble(badge(status.state), " ", literal(status.destination, "bold"))
        if status.incident_id:
            title.append(f"  incident {status.incident_id}", style="bold red")
        title.append_text(self._line(facts, "  "))
        # layout=False: these lines have a fixed height, so no relayout of the screen.
        self.query_one(".pane-title", Static).update(title, layout=False)
        self.query_one(".pane-spark", Static).update(
            spark_text(status.sparkline, width, "red" if status.state == "down" else ""),
            layout=False,
        )
        self.query_one(".pane-stats", Static).update(self._line(stats), layout=False)

    @staticmethod
    def _line(items: tuple[tuple[str, str], ...], lead: str = "") -> Text:
        text = Text()
        for n, (label, value) in enumerate(items):
            text.append("  " if n else lead)
            text.append(label, style="dim")
            if value:
                text.append(" " + value)
        return text

    def on_resize(self) -> None:
        self._drawn = None
        self._show_latest()

    @staticmethod
    def _facts(
        status: DestinationStatus, now: float, zone: DisplayZone
    ) -> tuple[tuple[str, str], ...]:
        """What has no window: the newest line's age (a STALE pane's: its time, in ``zone``)
        and the probe (on the title line)."""
        probe = "–" if status.probe_ok is None else ("ok" if status.probe_ok else "FAILING")
        return (("newest line", _last_seen(status, now, zone)), ("probe", probe))

    @staticmethod
    def _stats(
        status: DestinationStatus, now: float, backup: dict[str, Any] | None = None
    ) -> tuple[tuple[str, str], ...]:
        # One window for every figure (and the state), named first; each label one number.
        stats: tuple[tuple[str, str], ...] = (
            # a STALE pane's figures are over the last traffic it had, not the last seconds
            (f"last {status.window_s} s{' seen' if status.state == 'stale' else ''}:", ""),
            ("delivered/s", f"{status.delivered_now:.1f}"),
            ("success", fmt_pct(status.success_pct)),
            ("429", fmt_pct(status.rate_limited_pct)),
            ("latency", fmt_ms(status.avg_latency_ms)),
        )
        if status.feed is not None:  # a platform's metrics or API, not log lines
            stats += (("via", status.feed),)
            if status.feed_error:
                stats += (("feed", "FAILING"),)
        if backup is not None:  # the backup webhook's view: conversions never delivered
            stats += (("missing", str(backup.get("missing", 0))),)
            if backup.get("pending"):
                stats += (("pending", str(backup["pending"])),)
        return stats

    def action_open(self) -> None:
        self.post_message(self.Selected(self.destination))

    def on_click(self) -> None:
        self.focus()
        self.action_open()


def _last_seen(status: DestinationStatus, now: float, zone: DisplayZone) -> str:
    """How long ago its last event was; for a STALE pane (history), when: its last-seen time."""
    if status.state == "stale" and status.last_event_ts is not None:
        return zone.short(status.last_event_ts)[:11] + " " + zone.label(status.last_event_ts)
    return format_age(now, status.last_event_ts)
