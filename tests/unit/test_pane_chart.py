"""observatory.ui.pane_chart: a pane's chart as rows of text, without the app."""

from __future__ import annotations

from observatory.detect.trend import BUCKETS, Trend, trends_of
from observatory.ui.pane_chart import (
    BASELINE,
    LEGEND_WIDTH,
    ONSET,
    SCALE_WIDTH,
    ChartColors,
    chart_lines,
    fmt_rate,
    plot_layout,
)

START = 1_699_999_200  # a whole hour in epoch seconds
COLORS = ChartColors("green", "yellow", "red", "blue", "magenta")


def flat(delivered: int, limited: int = 0, expected: float = 0.0, seconds: int = BUCKETS) -> Trend:
    """A minute of 1 s buckets with the same counts, the last ``seconds`` of it with data."""
    rows = [(START + n, delivered, limited, 0, expected) for n in range(BUCKETS)]
    minute, _quarter, _hour = trends_of(rows[BUCKETS - seconds :])
    return minute


def plot(line_text: str) -> str:
    return line_text[SCALE_WIDTH : SCALE_WIDTH + BUCKETS]


def test_layout_gives_each_bucket_whole_columns_and_a_legend_when_it_fits() -> None:
    assert plot_layout(SCALE_WIDTH + BUCKETS + LEGEND_WIDTH) == (BUCKETS, True)
    assert plot_layout(SCALE_WIDTH + 2 * BUCKETS + LEGEND_WIDTH) == (2 * BUCKETS, True)
    assert plot_layout(SCALE_WIDTH + BUCKETS) == (BUCKETS, False)
    assert plot_layout(SCALE_WIDTH + 40) == (40, False)  # buckets share columns


def test_the_baseline_sits_at_its_height_above_a_collapse() -> None:
    """Delivered collapses to a quarter of an 8/s baseline: the bars fill the bottom row,
    the baseline marker is in the top row of 4 (8/s is the scale's top), and the scale
    names the peak and the baseline."""
    lines = chart_lines(flat(2, expected=8.0), SCALE_WIDTH + BUCKETS, 4, COLORS)
    assert len(lines) == 5  # 4 rows and the axis line
    rows = [line.plain for line in lines]
    assert set(plot(rows[0])) == {BASELINE}
    assert set(plot(rows[1])) == {" "} and set(plot(rows[2])) == {" "}
    assert set(plot(rows[3])) == {"█"}
    assert rows[0].startswith(" 8.0/s") and rows[3].startswith("     0")
    assert rows[4].lstrip().startswith("1 min")


def test_429s_stack_over_delivered_in_their_colours() -> None:
    """2 delivered and 6 rate-limited a second over 4 rows: one row green, three yellow."""
    lines = chart_lines(flat(2, limited=6), SCALE_WIDTH + BUCKETS, 4, COLORS)
    col = SCALE_WIDTH + 10

    def style_at(row: int) -> str:
        return " ".join(str(s.style) for s in lines[row].spans if s.start <= col < s.end)

    assert "yellow" in style_at(0) and "yellow" in style_at(2)
    assert "green" in style_at(3) and "yellow" not in style_at(3)


def test_onset_column_and_label() -> None:
    """The onset 45 s into the minute: a ┊ down its column over empty cells, and
    ▲ onset <time> under it (ending there when there is no room after it)."""
    onset = START + 45.5
    lines = chart_lines(flat(2, expected=8.0), SCALE_WIDTH + BUCKETS, 4, COLORS, onset, "12:00:45")
    rows = [line.plain for line in lines]
    assert rows[1][SCALE_WIDTH + 45] == ONSET and rows[2][SCALE_WIDTH + 44] == " "
    assert rows[3][SCALE_WIDTH + 45] == "█"  # the bar stays a bar
    axis = rows[4]
    assert "onset 12:00:45 ▲" in axis and axis.index("▲") == SCALE_WIDTH + 45
    early = chart_lines(flat(2), SCALE_WIDTH + BUCKETS, 4, COLORS, START - 600.0, "11:50")
    assert "◀ onset 11:50 (earlier)" in early[-1].plain


def test_buckets_before_the_data_are_blank_and_zero_is_a_dot() -> None:
    lines = chart_lines(flat(0, seconds=20), SCALE_WIDTH + BUCKETS, 3, COLORS)
    bottom = plot(lines[2].plain)
    assert bottom[:40] == " " * 40 and set(bottom[40:]) == {"·"}


def test_narrow_charts_share_columns_and_keep_the_mean() -> None:
    lines = chart_lines(flat(4, expected=4.0), SCALE_WIDTH + 30, 2, COLORS)
    assert all(line.cell_len <= SCALE_WIDTH + 30 for line in lines)
    assert set(lines[1].plain[SCALE_WIDTH:]) == {"█"}  # 4/s at every column, the top


def test_scale_numbers_stay_short() -> None:
    assert [fmt_rate(v) for v in (0.42, 12.34, 480.0, 12_345.0, 123_456.0)] == [
        "0.4",
        "12.3",
        "480",
        "12.3k",
        "123k",
    ]


def test_no_data() -> None:
    lines = chart_lines(None, 40, 3, COLORS)
    assert len(lines) == 4 and "no data yet" in lines[1].plain
