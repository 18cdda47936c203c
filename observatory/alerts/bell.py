"""The bell sink: rings the terminal bell on open and escalation."""

from __future__ import annotations

import sys
from typing import TextIO

from observatory.alerts.base import _escalated
from observatory.config import AlertConfig
from observatory.incidents.model import Change


class BellSink:
    """Rings the terminal bell (``\\a``) when an incident opens or escalates."""

    kind = "bell"
    every_update = False

    def __init__(self, name: str, config: AlertConfig, stream: TextIO | None) -> None:
        self.name = name
        self.min_severity = config.min_severity
        self._stream = stream
        self._seen: dict[str, int] = {}
        self._pending: Change | None = None  # a change whose ring failed, to retry

    def __repr__(self) -> str:
        return f"BellSink(name={self.name!r}, min_severity={self.min_severity!r})"

    def deliver(self, change: Change) -> None:
        retry = self._pending is change
        if not retry and not _escalated(self._seen, change.incident, change.kind):
            return
        self._pending = change
        if self._stream is not None:
            self._stream.write("\a")
            self._stream.flush()
        self._pending = None


def _default_bell_stream() -> TextIO | None:
    stream = sys.stderr
    try:
        return stream if stream is not None and stream.isatty() else None
    except (AttributeError, ValueError, OSError):
        return None
