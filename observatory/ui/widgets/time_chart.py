"""The destination screen's chart: delivered, failed and rate-limited events/s on a true time
axis (observatory.ui.chart_axis), ticks labelled in the display zone, the open incident's
onset marked, totals over the window on the right."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widget import Widget

from observatory.ui.chart_axis import ZERO, axis_for, bar_rows, column_rates, tick_lines, ticks
from observatory.util.durations import format_duration
from observatory.util.zonetime import DisplayZone

LABEL_WIDTH = 14  # the series' names
SCALE_WIDTH = 8  # the y axis: the row's peak events/s at the top, 0 at the bottom
TOTAL_WIDTH = 11  # events in the window
KINDS = ("delivered", "failed", "rate-limited")
ONSET_STYLE = "on #5f1f1f"


def _rate(value: float) -> str:
    return f"{value:.3g}"


@dataclass
class ChartData:
    """What the chart shows: per second (epoch s) its counts per kind, over the ``seconds``
    up to ``now``; ``onset``: the open incident's (None: none open)."""

    now: float
    seconds: int
    rows: list[tuple[int, int, int, int]] = field(default_factory=list)  # sec, ok, failed, 429
    onset: float | None = None


class TimeChart(Widget):
    """Three series of bars two rows high over one time axis, redrawn for its width."""

    DEFAULT_CSS = """
    TimeChart {
        height: 10;
        padding: 0 1;
    }
    """

    def __init__(self, zone: DisplayZone, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.data: ChartData | None = None
        self.note: Text | None = None

    def show(self, data: ChartData) -> None:
        self.data, self.note = data, None
        self.refresh()

    def fail(self, note: Text) -> None:
        self.note = note
        self.refresh()

    def render(self) -> Text:
        if self.note is not None:
            return self.note
        if self.data is None:
            return Text("reading…", style="dim")
        return self.draw(self.data, self.size.width)

    def draw(self, data: ChartData, width: int) -> Text:
        margin = LABEL_WIDTH + SCALE_WIDTH + 1
        axis = axis_for(data.now, data.seconds, width - margin - TOTAL_WIDTH)
        since = data.rows[0][0] if data.rows else None
        colors = self._colors()
        onset_col = axis.column(data.onset) if data.onset is not None else None
        out = Text(no_wrap=True, overflow="crop")

        # header: the y unit, the onset's label over its column, the totals' heading
        out.append(f"{'':<{LABEL_WIDTH}}{'events/s':>{SCALE_WIDTH}} ", style="dim")
        head = " " * axis.width
        if data.onset is not None:
            mark = f"▼ onset {self.zone.clock(data.onset)}"
            if onset_col is None:  # before the window
                mark = f"◀ onset {self.zone.clock(data.onset)}"
                onset_at = 0
            elif onset_col + len(mark) <= axis.width:
                onset_at = onset_col
            else:  # no room after it: the label ends at the column
                mark = f"onset {self.zone.clock(data.onset)} ▼"
                onset_at = max(0, onset_col - len(mark) + 1)
            head = (head[:onset_at] + mark + head[onset_at + len(mark) :])[: axis.width]
        out.append(head, style="bold red")
        out.append(f"{'in window':>{TOTAL_WIDTH}}\n", style="dim")

        # the series: two rows each, scaled to their own peak (its value on the y axis)
        for n, kind in enumerate(KINDS, start=1):
            per_second = {row[0]: float(row[n]) for row in data.rows}
            values = column_rates(axis, per_second, since)
            top = max((v for v in values if v is not None), default=0.0)
            upper, lower = bar_rows(values, top)
            total = sum(int(row[n]) for row in data.rows)
            for row, (label, scale, bars) in enumerate(
                ((kind, _rate(top) if since is not None else "", upper), ("", "0", lower))
            ):
                out.append(f"{label:<{LABEL_WIDTH}}{scale:>{SCALE_WIDTH}} ", style="")
                for col, ch in enumerate(bars):
                    style = "dim" if ch == ZERO else colors[kind]
                    if col == onset_col:
                        style += " " + ONSET_STYLE
                    out.append(ch, style=style)
                out.append(f"{total if row == 0 else '':>{TOTAL_WIDTH}}\n")

        # the time axis, labelled with its zone
        marks = ticks(axis, self._tick_label)
        line, labels = tick_lines(axis, marks)
        zone = self.zone.label(data.now)
        out.append(f"{'':<{LABEL_WIDTH}}{'time':>{SCALE_WIDTH}} ", style="dim")
        out.append(line + "\n", style="dim")
        out.append(f"{'':<{LABEL_WIDTH}}{zone:>{SCALE_WIDTH}} ", style="dim")
        out.append(labels + "\n")
        per = axis.seconds_per_column
        each = "1 s a column" if per == 1 else f"mean of {per:.3g} s a column"
        start = self.zone.at(data.now - data.seconds)
        out.append(
            f"{'':<{margin}}{start:%Y-%m-%d %H:%M:%S} – {self.zone.clock(data.now)} "
            f"({format_duration(data.seconds, coarse=True)}) · {each} · blank: no data",
            style="dim",
        )
        return out

    def _tick_label(self, ts: float, step: int) -> str:
        when = self.zone.at(ts)
        return when.strftime("%H:%M" if step % 60 == 0 else "%H:%M:%S")

    def _colors(self) -> dict[str, str]:
        theme = self.app.current_theme
        return {
            "delivered": theme.success or "green",
            "failed": theme.error or "red",
            "rate-limited": theme.warning or "yellow",
        }
