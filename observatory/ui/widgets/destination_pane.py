"""One destination on the dashboard: state badge, a chart, ratios, latency, age.

The chart (``observatory.ui.pane_chart``) shows the dashboard's window (1, 15 or 60 minutes,
``w``) of delivered, 429 and failed events/s against the baseline, the open incident's onset
marked; it takes the rows the pane has left. The stats line starts with its window ("last
10 s:"): delivered/s, the success and 429 shares of attempts and the mean latency are all
over it, as is the state badge's rule (``observatory.detect.status``). What has no window
(the newest line's age, the probe) is on the title line when it fits, else first on the
stats lines, which wrap by item: nothing is cut."""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from observatory.detect.engine import DestinationStatus
from observatory.ui.pane_chart import ChartColors, chart_lines
from observatory.ui.text import fmt_ms, fmt_pct, literal
from observatory.util.durations import format_age
from observatory.util.zonetime import DisplayZone

# The badges' colours by state: theme colours where the theme has one (DestinationPane).
BADGE_LABELS = {
    "ok": "OK",
    "degraded": "DEGRADED",
    "down": "DOWN",
    "stale": "STALE",
    "warmup": "WARMUP",
}


def badge(state: str, styles: dict[str, str] | None = None) -> Text:
    label = BADGE_LABELS.get(state, state.upper())
    return Text(f" {label} ", style=(styles or {}).get(state, "bold reverse"))


def text_strip(line: Text, base: Style) -> Strip:
    """One line of Text (spans side by side, as the pane builds them) as a Strip over
    ``base``: a segment per span, styles parsed once (rich caches them)."""
    plain = line.plain
    segments: list[Segment] = []
    pos = 0
    if line.style:
        base = base + _style(line.style)
    for span in sorted(line.spans, key=lambda sp: sp.start):
        start = max(span.start, pos)
        if start >= span.end:
            continue  # inside one already drawn
        if start > pos:
            segments.append(Segment(plain[pos:start], base))
        segments.append(Segment(plain[start : span.end], base + _style(span.style)))
        pos = span.end
    if pos < len(plain):
        segments.append(Segment(plain[pos:], base))
    return Strip(segments)


def _style(style: str | Style) -> Style:
    return style if isinstance(style, Style) else Style.parse(style)


def wrap_items(items: list[Text], width: int, gap: int = 2) -> list[Text]:
    """``items`` on as few lines of ``width`` as they go on, each item whole (one longer
    than a line gets a line of its own, and wraps there)."""
    lines: list[Text] = []
    line = Text()
    for item in items:
        if line.cell_len and line.cell_len + gap + item.cell_len > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append(" " * gap)
        line.append_text(item)
    if line.cell_len or not lines:
        lines.append(line)
    return lines


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
        self._shown: (
            tuple[DestinationStatus, float, dict[str, Any] | None, int, float | None] | None
        ) = None
        self._drawn: tuple[object, ...] | None = None  # what is on screen now
        # what render() shows, and its parts (tests read them)
        self.title_text = Text()
        self.chart_text = Text()
        self.stats_text = Text()
        self._lines: list[Text] = []
        self._strips: list[Strip] = []
        self._strips_for: Style | None = None  # the base style the strips were made with
        self._base: Style | None = None  # the pane's style while it is painted

    def on_mount(self) -> None:
        # A show() before the pane had its size drew nothing.
        self.call_after_refresh(self._show_latest)

    def _show_latest(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def render_lines(self, crop: Region) -> list[Strip]:
        # the pane's colours (focus and theme included), worked out once per paint
        self._base = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._base = None

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the title, the chart and the stats lines. One widget a pane, drawn
        through the line API from strips made once per change: on a wide terminal a grid of
        panes all change each second, and Textual's own conversion of their text took a
        frame (measured: ~2 ms a pane, against ~0.1 ms for this)."""
        base = self._base or self.rich_style
        if self._strips_for != base:
            self._strips = [text_strip(line, base) for line in self._lines]
            self._strips_for = base
        return self._strips[y] if y < len(self._strips) else Strip.blank(0, base)

    def show(
        self,
        status: DestinationStatus,
        now: float,
        backup: dict[str, Any] | None = None,
        window: int = 1,
        onset: float | None = None,
    ) -> None:
        """Render `status` (from a Snapshot) as of `now`; `backup`: its reconciliation;
        `window`: which of its trends the chart shows; `onset`: its open incident's."""
        self._shown = (status, now, backup, window, onset)
        if not self.is_mounted:
            return  # on_mount renders it
        width = max(0, self.content_region.width)
        height = max(0, self.content_region.height)
        stats = self._stats(status, now, backup)
        facts = self._facts(status, now, self.zone)
        trend = status.trends[window] if window < len(status.trends) else None
        theme = self.app.current_theme.name
        key = (status.state, status.incident_id, width, height, trend, onset, stats, facts, theme)
        if key == self._drawn:
            return  # nothing visible changed: no refresh
        self._drawn = key
        self.set_class(status.state in ("down", "degraded"), "-alert")
        styles = self._styles()
        title = Text.assemble(badge(status.state, styles), " ", literal(status.destination, "bold"))
        if status.incident_id:
            title.append(f"  incident {status.incident_id}", style=styles["incident"])
        items = [self._line(((label, value),)) for label, value in stats]
        if stats and not stats[0][1]:  # the window's name stays with the first figure
            items[:2] = [Text("  ").join(items[:2])]
        on_title = self._line(facts, "  ")
        if title.cell_len + on_title.cell_len <= width:
            title.append_text(on_title)
        else:  # no room beside the name: first on the stats lines
            items = [self._line((fact,)) for fact in facts] + items
        lines = wrap_items(items, width)
        # the chart takes what the title and the stats leave (its axis line included)
        rows = max(1, height - 1 - len(lines) - 1)
        chart = chart_lines(
            trend,
            width,
            rows,
            self._chart_colors(),
            onset,
            self.zone.clock(onset) if onset is not None else "",
        )
        # no_wrap: every line is cut to the width already (wrapping them costs a frame)
        joiner = Text("\n", no_wrap=True, overflow="crop")
        self.title_text = title
        self.chart_text = joiner.join(chart)
        self.stats_text = joiner.join(lines)
        self._lines = [title, *chart, *lines]
        self._strips_for = None
        self.refresh()  # the pane's size is fixed: a repaint, no layout

    def _styles(self) -> dict[str, str]:
        """The badges' and the incident's styles from the theme's colours."""
        theme = self.app.current_theme
        success = theme.success or "green"
        warning = theme.warning or "yellow"
        error = theme.error or "red"
        return {
            "ok": f"bold black on {success}",
            "degraded": f"bold black on {warning}",
            "down": f"bold white on {error}",
            "stale": "bold black on grey70",
            "warmup": f"bold white on {theme.primary}",
            "incident": f"bold {error}",
        }

    def _chart_colors(self) -> ChartColors:
        theme = self.app.current_theme
        return ChartColors(
            delivered=theme.success or "green",
            rate_limited=theme.warning or "yellow",
            failed=theme.error or "red",
            onset=f"bold {theme.error or 'red'}",
        )

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
        return zone.stamp(status.last_event_ts, "%m-%d %H:%M")
    return format_age(now, status.last_event_ts)
