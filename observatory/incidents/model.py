"""Incidents: the shared model of a flow interruption, and its JSON line.

An incident belongs to one destination. Detectors of that destination merge into it; its
severity only escalates; every change is a timeline entry. States follow PagerDuty:
open -> acknowledged -> resolved (dedup key: destination + incident id). Times are epoch
seconds (floats) in event time, except where a field says otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

Severity = Literal["warning", "error", "critical"]
State = Literal["open", "acknowledged", "resolved"]
ChangeKind = Literal["open", "update", "resolved"]
SEVERITY_RANK: dict[str, int] = {"warning": 0, "error": 1, "critical": 2}


if TYPE_CHECKING:
    DETECTORS: tuple[str, ...]  # the names of the shipped detectors, in registry order
else:

    def __getattr__(name: str) -> tuple[str, ...]:
        """``DETECTORS`` comes from the engine's registry (``observatory.detect.detectors``),
        looked up on first use: the engine imports this module, so importing the registry at
        the top here would be circular."""
        if name == "DETECTORS":
            from observatory.detect.detectors import DETECTOR_NAMES

            return DETECTOR_NAMES
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO-8601 UTC with milliseconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TimelineEntry:
    """One thing that happened to an incident: {ts, kind, detail}."""

    ts: float
    kind: str  # opened, detector, escalated, evidence, acknowledged, note, resolved, reopened
    detail: str


@dataclass
class Incident:
    """A flow interruption of one destination."""

    id: str
    destination: str
    detector: str  # the detector that opened it
    severity: Severity
    onset: float  # estimated start: the last time the detector's statistic was 0
    detected_at: float
    state: State = "open"
    detectors: list[str] = field(default_factory=list)  # every detector that fired
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    impact: dict[str, Any] = field(default_factory=dict)
    flaps: int = 0
    historical: bool = False  # detected while reading the backlog: no live alert
    timeline: list[TimelineEntry] = field(default_factory=list)

    def note(self, ts: float, kind: str, detail: str) -> None:
        self.timeline.append(TimelineEntry(ts, kind, detail))

    def snapshot(self) -> Incident:
        """A deep copy: the incident as it is now, unaffected by later changes."""
        return copy.deepcopy(self)

    def json_line(self, change: ChangeKind) -> dict[str, Any]:
        """DESIGN's incident JSON line (one per change on stdout of replay/watch)."""
        return {
            "type": "incident",
            "state": change,
            "id": self.id,
            "destination": self.destination,
            "detector": self.detector,
            "severity": self.severity,
            "onset": iso(self.onset),
            "detected_at": iso(self.detected_at),
            "resolved_at": iso(self.resolved_at),
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass
class Change:
    """An incident changed: opened, updated (escalated, new detector, evidence) or resolved."""

    kind: ChangeKind
    incident: Incident
