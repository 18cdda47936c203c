"""The destination chart's geometry, without Textual: a true time axis over a window.

Column ``c`` of a ``width``-column chart over ``seconds`` seconds starting at ``start`` shows
the seconds ``start + c * seconds / width`` up to the next column's start, so a timestamp
maps to one column whatever data there is: seconds before the first data are left empty, not
stretched over the width. A column spanning several seconds shows their mean events/s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Tick spacings (s), the smallest that leaves room for a label is used.
_TICK_STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
# Eighth blocks, for bars two rows high (16 levels).
_BLOCKS = " ▁▂▃▄▅▆▇█"
ZERO = "·"  # a column with data in which nothing of that kind happened


@dataclass(frozen=True)
class TimeAxis:
    """``width`` columns over the ``seconds`` seconds from epoch ``start``."""

    start: float
    seconds: int
    width: int

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def seconds_per_column(self) -> float:
        return self.seconds / self.width

    def column(self, ts: float) -> int | None:
        """The column that shows the time ``ts``; None outside the window."""
        if not self.start <= ts < self.end:
            return None
        return min(self.width - 1, math.floor((ts - self.start) * self.width / self.seconds))

    def column_start(self, column: int) -> float:
        """The first time column ``column`` shows."""
        return self.start + column * self.seconds / self.width


def axis_for(now: float, seconds: int, available: int) -> TimeAxis:
    """The axis of the last ``seconds`` whole seconds before ``now`` (the second under way,
    still being counted, is left out) over ``available`` columns, at most one a second."""
    end = math.floor(now)
    return TimeAxis(start=end - seconds, seconds=seconds, width=max(1, min(available, seconds)))


def column_rates(
    axis: TimeAxis, per_second: Mapping[int, float], since: int | None
) -> list[float | None]:
    """Per column, the mean events/s over its seconds from ``since`` (the first second with
    data; a second from then on without a row counted 0); None for a column with none of
    those seconds (no data yet)."""
    sums = [0.0] * axis.width
    counts = [0] * axis.width
    if since is not None:
        first = max(math.ceil(axis.start), since)
        for sec in range(first, math.ceil(axis.end)):
            col = axis.column(sec)
            if col is None:
                continue
            sums[col] += per_second.get(sec, 0.0)
            counts[col] += 1
    return [s / n if n else None for s, n in zip(sums, counts, strict=True)]


def bar_rows(values: list[float | None], top: float) -> tuple[str, str]:
    """Two rows (upper, lower) of bars for ``values`` scaled to ``top``: blank for None,
    :data:`ZERO` for 0, and at least the lowest block for anything above 0."""
    upper, lower = [], []
    for v in values:
        if v is None:
            upper.append(" ")
            lower.append(" ")
            continue
        if v <= 0 or top <= 0:
            upper.append(" ")
            lower.append(ZERO)
            continue
        level = max(1, min(16, round(16 * v / top)))
        upper.append(_BLOCKS[level - 8] if level > 8 else " ")
        lower.append(_BLOCKS[min(level, 8)])
    return "".join(upper), "".join(lower)


def ticks(axis: TimeAxis, label: Callable[[float, int], str]) -> list[tuple[int, str]]:
    """(column, label) of the time ticks: whole multiples of a step wide enough for the
    labels. ``label(ts, step)`` writes one tick's time."""
    sample = len(label(axis.start, 1)) + 2  # the longest form
    step = next((s for s in _TICK_STEPS if s / axis.seconds_per_column >= sample), _TICK_STEPS[-1])
    out: list[tuple[int, str]] = []
    ts = math.ceil(axis.start / step) * step
    while ts < axis.end:
        col = axis.column(ts)
        if col is not None:
            out.append((col, label(ts, step)))
        ts += step
    return out


def tick_lines(axis: TimeAxis, marks: list[tuple[int, str]]) -> tuple[str, str]:
    """The axis line (``┬`` at each tick) and the labels under it, each starting at its tick
    (one that would run past the right edge is left out)."""
    line = ["─"] * axis.width
    labels = [" "] * axis.width
    for col, text in marks:
        line[col] = "┬"
        free = all(c == " " for c in labels[max(0, col - 1) : col + len(text)])
        if col + len(text) <= axis.width and free:
            labels[col : col + len(text)] = list(text)
    return "".join(line), "".join(labels)
