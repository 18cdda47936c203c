"""The sink protocol every ``[[alerts]]`` sink follows, and the escalation tracking the bell
and webhook sinks share."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from observatory.incidents.model import SEVERITY_RANK, Change, Incident

_TRACKED_INCIDENTS = 10_000
"""Per sink, how many incidents' last-forwarded state is remembered (oldest forgotten first)."""


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go; one per ``[[alerts]]`` entry.

    ``deliver`` sends one change and raises on failure (an :class:`AlertDeliveryError` may say
    how long to wait, or that retrying is pointless); the dispatcher retries. It is only ever
    called from the sink's own worker thread. Optional attributes the dispatcher reads:
    ``min_severity`` (default ``"warning"``), ``every_update`` (default False: only updates
    that change severity, detectors or state are delivered) and ``close()``.
    """

    name: str

    def deliver(self, change: Change) -> None: ...


def _escalated(seen: dict[str, int], incident: Incident, kind: str) -> bool:
    """Track the highest severity seen per incident; True when this change is new or higher."""
    rank = SEVERITY_RANK.get(incident.severity, 0)
    if kind == "resolved":
        seen.pop(incident.id, None)
        return False
    previous = seen.get(incident.id)
    seen[incident.id] = max(rank, previous if previous is not None else rank)
    if len(seen) > _TRACKED_INCIDENTS:
        seen.pop(next(iter(seen)))
    return previous is None or rank > previous
