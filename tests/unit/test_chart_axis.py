"""The destination chart's time axis (observatory.ui.chart_axis): a timestamp maps to one
column whatever data there is; seconds before the data are blank, not stretched."""

from __future__ import annotations

from observatory.ui.chart_axis import (
    ZERO,
    TimeAxis,
    axis_for,
    bar_rows,
    column_rates,
    tick_lines,
    ticks,
)

START = 1_700_000_000.0


def test_timestamp_to_column_is_linear_in_time() -> None:
    axis = TimeAxis(start=START, seconds=300, width=100)
    assert axis.column(START) == 0
    assert axis.column(START + 150) == 50
    assert axis.column(START + 2.99) == 0
    assert axis.column(START + 3) == 1
    assert axis.column(START + 299.9) == 99
    assert axis.column(START - 0.1) is None
    assert axis.column(START + 300) is None
    assert axis.column_start(50) == START + 150


def test_the_axis_ends_before_the_second_under_way_and_has_at_most_a_column_a_second() -> None:
    axis = axis_for(START + 300.4, 300, 100)
    assert (axis.start, axis.end, axis.width) == (START, START + 300, 100)
    assert axis_for(START, 60, 500).width == 60


def test_data_only_in_the_last_40_seconds_fills_only_the_last_columns() -> None:
    axis = TimeAxis(start=START, seconds=300, width=100)
    first = int(START) + 260
    per_second = {s: 10.0 for s in range(first, first + 40)}
    values = column_rates(axis, per_second, since=first)
    filled = [c for c, v in enumerate(values) if v is not None]
    assert filled == list(range(86, 100))  # ~13 columns of 3 s: 260 s is in column 86
    assert all(v == 10.0 for v in values[87:])
    assert values[86] == 10.0  # its seconds before the data do not count
    upper, lower = bar_rows(values, 10.0)
    assert lower[:86].strip() == "" and upper[:86].strip() == ""
    assert lower[86:] == "█" * 14 and upper[86:] == "█" * 14


def test_a_second_without_rows_after_the_data_began_is_zero_and_a_column_is_a_mean() -> None:
    axis = TimeAxis(start=START, seconds=300, width=100)
    first = int(START)
    per_second = {first: 9.0, first + 2: 3.0}  # first + 1: nothing happened
    values = column_rates(axis, per_second, since=first)
    assert values[0] == 4.0  # (9 + 0 + 3) / 3 s
    assert values[1] == 0.0
    _, lower = bar_rows(values[:3], 4.0)
    assert lower[1:] == ZERO * 2
    assert column_rates(axis, {}, since=None) == [None] * 100


def test_ticks_fall_on_round_times_at_their_columns() -> None:
    axis = TimeAxis(start=START, seconds=300, width=100)  # 22:13:20 .. 22:18:20 UTC

    def label(ts: float, step: int) -> str:
        return f"{int(ts) % 3600 // 60:02}:{int(ts) % 60:02}" + ("" if step % 60 == 0 else "s")

    marks = ticks(axis, label)
    # every 30 s (10 columns: room for a label), from 22:13:30
    assert [c for c, _ in marks] == [axis.column(START + 10 + 30 * k) for k in range(10)]
    assert marks[:2] == [(3, "13:30s"), (13, "14:00s")]
    line, labels = tick_lines(axis, marks)
    assert line[3] == line[13] == "┬" and labels[13:19] == "14:00s"
    assert len(line) == len(labels) == 100
