"""Progress of long work on stderr: a live line on a terminal, a line every 10 s otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO


class ProgressLine:
    """`update(done, total, tally)` at any rate; it prints at most a few times a second."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.25 if self.tty else 10.0
        self.last = time.monotonic()
        self.shown = False

    def update(self, done: int, total: int, tally: Any = None) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        pct = f"{100 * done / total:5.1f}% " if total else ""
        rows = f", {tally.rows:,} rows, {tally.rejected:,} rejected" if tally is not None else ""
        text = f"{self.label}: {pct}{done / 1e6:,.1f}/{total / 1e6:,.1f} MB{rows}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.shown and self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
