"""A dashboard pane's chart, drawn without Textual: a window's buckets (a
:class:`~observatory.detect.trend.Trend`) as rows of rich Text.

Per column, stacked bars in eighth blocks from the bottom: delivered/s, then 429s/s, then
failed/s, each in its colour (the theme's success, warning and error); where two meet inside
a cell, the lower one is the block and the upper one its background. The baseline (the
delivered events/s the engine expected) is a dim ``╌`` in the empty cell at its height; the
open incident's onset is a ``┊`` down its column and ``▲ onset <time>`` on the axis line. On
the left, the scale: the peak at the top, the baseline at its row, 0 at the bottom; on the
right, when there is room, a legend.

Columns follow :class:`~observatory.ui.chart_axis.TimeAxis`: with room, each bucket gets the
same whole number of columns; with less, neighbouring buckets share a column (their mean).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from observatory.detect.trend import BUCKETS, Trend
from observatory.ui.chart_axis import TimeAxis

BLOCKS = " ▁▂▃▄▅▆▇█"
SCALE_WIDTH = 7  # the scale's numbers (and the window's name on the axis line)
LEGEND_WIDTH = 7  # " █ fail"
MAX_COLUMNS_PER_BUCKET = 3
BASELINE = "╌"
ONSET = "┊"
ZERO = "·"  # a column with data in which nothing was attempted


@dataclass(frozen=True)
class ChartColors:
    """Styles of the series (theme colours: see DestinationPane)."""

    delivered: str = "green"
    rate_limited: str = "yellow"
    failed: str = "red"
    baseline: str = "dim"
    baseline_over: str = "black"  # the baseline drawn through a 429 or failed bar
    onset: str = "bold red"
    axis: str = "dim"


@dataclass(frozen=True)
class Column:
    """One column's mean events/s (over the seconds it has data for)."""

    delivered: float
    rate_limited: float
    failed: float
    expected: float

    @property
    def total(self) -> float:
        return self.delivered + self.rate_limited + self.failed


def window_name(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def fmt_rate(value: float) -> str:
    """A scale number in at most 5 characters: 0.4, 12.3, 480, 12.3k, 123k."""
    if value < 100:
        return f"{value:.1f}"
    if value < 1000:
        return f"{value:.0f}"
    if value < 100_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1000:.0f}k"


def plot_layout(width: int) -> tuple[int, bool]:
    """The plot's width in columns for a chart ``width`` wide, and whether a legend fits:
    a whole number of columns per bucket (up to 3) with the legend if it fits, else one a
    bucket without it, else fewer columns than buckets (shared)."""
    room = max(1, width - SCALE_WIDTH)
    if room >= BUCKETS + LEGEND_WIDTH:
        per = min(MAX_COLUMNS_PER_BUCKET, (room - LEGEND_WIDTH) // BUCKETS)
        return per * BUCKETS, True
    return min(room, BUCKETS), False


def columns(trend: Trend, axis: TimeAxis) -> list[Column | None]:
    """Per column of ``axis``, the mean events/s of the buckets it shows (None: no data)."""
    sums = [[0, 0, 0, 0, 0.0] for _ in range(axis.width)]
    for i, seconds in enumerate(trend.seconds):
        if not seconds:
            continue
        start = trend.start + i * trend.step
        first = axis.column(start)
        if first is None:
            continue
        end = start + trend.step
        nxt = axis.column(end) if end < axis.end else axis.width
        for col in range(first, max(first + 1, nxt if nxt is not None else axis.width)):
            cell = sums[col]
            cell[0] += seconds
            cell[1] += trend.delivered[i]
            cell[2] += trend.rate_limited[i]
            cell[3] += trend.failed[i]
            cell[4] += trend.expected[i]
    out: list[Column | None] = []
    for n, d, limited, failed, expected in sums:
        out.append(None if not n else Column(d / n, limited / n, failed / n, expected / n))
    return out


def chart_lines(
    trend: Trend | None,
    width: int,
    height: int,
    colors: ChartColors | None = None,
    onset: float | None = None,
    onset_label: str = "",
) -> list[Text]:
    """``height`` rows of bars and the axis line under them, each ``width`` cells at most.
    ``onset``: the open incident's onset (epoch s), written ``onset_label`` on the axis."""
    colors = colors or ChartColors()
    height = max(1, height)
    plot_width, legend = plot_layout(width)
    if trend is None or not trend.seconds:
        empty = [Text(" " * SCALE_WIDTH) for _ in range(height)]
        empty[height // 2].append("no data yet", style=colors.axis)
        return [*empty, Text(f"{'':>{SCALE_WIDTH}}", style=colors.axis)]
    axis = TimeAxis(start=trend.start, seconds=trend.window, width=plot_width)
    cols = columns(trend, axis)
    top = max((max(c.total, c.expected) for c in cols if c is not None), default=0.0)
    eighths = height * 8
    scale = eighths / top if top > 0 else 0.0
    onset_col = axis.column(onset) if onset is not None else None

    # per column: the tops of its three stacked segments and its baseline, in eighths
    stacks: list[tuple[int, int, int, int | None] | None] = []
    for c in cols:
        if c is None:
            stacks.append(None)
            continue
        b1 = round(c.delivered * scale)
        b2 = round((c.delivered + c.rate_limited) * scale)
        b3 = round(c.total * scale)
        if c.total > 0 and b3 == 0:  # anything at all shows: one eighth of its largest part
            most = max(range(3), key=lambda n: (c.delivered, c.rate_limited, c.failed)[n])
            b1, b2, b3 = int(most == 0), int(most <= 1), 1
        base = min(eighths - 1, int(c.expected * scale)) if c.expected > 0 else None
        stacks.append((b1, b2, b3, base))
    segment_styles = (colors.delivered, colors.rate_limited, colors.failed)

    base_row = _baseline_row(stacks, height)
    labels = _scale_labels(top, height, base_row, cols)
    legend_rows = [
        ("█", " ok", colors.delivered),
        ("█", " 429", colors.rate_limited),
        ("█", " fail", colors.failed),
        (BASELINE, " base", colors.baseline),
    ]
    lines: list[Text] = []
    for row in range(height):
        low = (height - 1 - row) * 8  # the cell's bottom, in eighths
        line = Text(no_wrap=True, overflow="crop")
        label, label_style = labels.get(row, ("", ""))
        line.append(f"{label:>{SCALE_WIDTH - 1}} ", style=label_style or colors.axis)
        # cells of one style are appended as one run (a span each, not one a cell)
        run: list[str] = []
        run_style = ""
        for col, stack in enumerate(stacks):
            ch, style = _cell(stack, low, segment_styles)
            if stack is not None and stack[3] is not None and low <= stack[3] < low + 8:
                # the baseline: in an empty cell, or through the 429s and failures stacked
                # over what was delivered (where delivery reaches it, it is met)
                if ch == " ":
                    ch, style = BASELINE, colors.baseline
                elif stack[3] >= stack[0] and stack[3] < stack[2]:
                    over = segment_styles[1 if stack[3] < stack[1] else 2]
                    ch, style = BASELINE, f"{colors.baseline_over} on {over}"
            if ch == " " and stack is not None and row == height - 1 and stack[2] == 0:
                ch, style = ZERO, colors.axis
            if col == onset_col and ch in (" ", BASELINE, ZERO):
                ch, style = ONSET, colors.onset
            if style != run_style and run:
                line.append("".join(run), style=run_style)
                run = []
            run_style = style
            run.append(ch)
        if run:
            line.append("".join(run), style=run_style)
        if legend and row < len(legend_rows):
            mark, name, style = legend_rows[row]
            line.append(" ")
            line.append(mark, style=style)
            line.append(name, style=colors.axis)
        lines.append(line)
    lines.append(_axis_line(trend, plot_width, onset, onset_col, onset_label, colors))
    return lines


def _cell(
    stack: tuple[int, int, int, int | None] | None, low: int, styles: tuple[str, str, str]
) -> tuple[str, str]:
    """The character and style of the cell whose bottom is ``low`` eighths up."""
    if stack is None:
        return " ", ""
    bounds = stack[:3]
    fill = min(8, bounds[2] - low)
    if fill <= 0:
        return " ", ""
    # the segment under the cell's bottom edge
    lower = next((n for n, b in enumerate(bounds) if low < b), 2)
    # the first segment boundary inside the cell, if any: the next segment above it
    for n in range(lower, 2):
        edge = bounds[n]
        if low < edge < low + 8 and bounds[n + 1] > edge:
            upper = next(m for m in range(n + 1, 3) if bounds[m] > edge)
            # the lower segment as the block, the one above it as its background
            return BLOCKS[edge - low], f"{styles[lower]} on {styles[upper]}"
    return BLOCKS[fill], styles[lower]


def _baseline_row(stacks: list[tuple[int, int, int, int | None] | None], height: int) -> int | None:
    """The row (from the top) of the newest column's baseline, for its scale label."""
    for stack in reversed(stacks):
        if stack is not None and stack[3] is not None:
            return height - 1 - stack[3] // 8
    return None


def _scale_labels(
    top: float, height: int, base_row: int | None, cols: list[Column | None]
) -> dict[int, tuple[str, str]]:
    """Scale labels by row: the peak events/s at the top, 0 at the bottom, and the newest
    baseline at its row (when that row is free)."""
    labels: dict[int, tuple[str, str]] = {height - 1: ("0", "")}
    if top > 0:
        labels[0] = (fmt_rate(top) + "/s" if height > 1 else fmt_rate(top), "")
    if base_row is not None and base_row not in labels:
        newest = next(c for c in reversed(cols) if c is not None and c.expected > 0)
        labels[base_row] = (fmt_rate(newest.expected) + BASELINE, "")
    return labels


def _axis_line(
    trend: Trend,
    plot_width: int,
    onset: float | None,
    onset_col: int | None,
    onset_label: str,
    colors: ChartColors,
) -> Text:
    """The window's name under the scale, and a line under the plot with the onset marked."""
    line = Text(no_wrap=True, overflow="crop")
    line.append(f"{window_name(trend.window):>{SCALE_WIDTH - 1}} ", style=colors.axis)
    cells = ["─"] * plot_width
    mark_at, mark = None, ""
    if onset is not None:
        label = f"onset {onset_label}".strip()
        if onset_col is not None:
            mark = f"▲ {label}"
            mark_at = onset_col
            if mark_at + len(mark) > plot_width:  # no room after it: ends at the column
                mark = f"{label} ▲"
                mark_at = max(0, onset_col - len(mark) + 1)
        elif onset < trend.start:
            mark, mark_at = f"◀ {label} (earlier)", 0
    if mark_at is None:
        line.append("".join(cells), style=colors.axis)
        return line
    mark = mark[: plot_width - mark_at]
    line.append("".join(cells[:mark_at]), style=colors.axis)
    line.append(mark, style=colors.onset)
    line.append("".join(cells[mark_at + len(mark) :]), style=colors.axis)
    return line
