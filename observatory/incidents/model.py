"""Incidents: the shared model of a flow interruption, and its JSON line.

An incident belongs to one destination. Detectors of that destination merge into it; its
severity only escalates; every change is a timeline entry. States follow PagerDuty:
open -> acknowledged -> resolved (dedup key: destination + incident id). Times are epoch
seconds (floats) in event time, except where a field says otherwise.

The store, the exports, the alerts and the UI all read the same typed parts: :class:`Impact`
(what the incident cost), :class:`Evidence` (why the engine believes it) and
:class:`TimelineEntry` (what happened to it, of a :data:`TimelineKind`). Only the incident
ledger (``observatory.incidents.ledger``) changes an incident.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict

from observatory.util.isotime import iso

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


TimelineKind = Literal[
    "opened",  # the first detector fired
    "detector",  # another detector of the destination fired
    "escalated",  # severity went up
    "reopened",  # fired again soon after resolving (a flap)
    "resolved",
    "acknowledged",  # an operator
    "note",  # an operator's free text
    "drift",  # rate-limit drift: the accepted-rate ceiling moved, or came back
    "status_page",  # what the vendor's status page said
]
# Kinds written by people, not by the engine.
OPERATOR_KINDS: frozenset[str] = frozenset({"acknowledged", "note"})


@dataclass
class TimelineEntry:
    """One thing that happened to an incident: {ts, kind, detail}. ``kind`` is a
    :data:`TimelineKind` when written here; one read back from an older database may be
    another word, shown as it is."""

    ts: float
    kind: str
    detail: str


@dataclass(frozen=True)
class Impact:
    """What an incident cost, counted by the engine over the outage's seconds (onset to the last
    abnormal second; the quiet period before resolving is not counted):
    ``not_delivered_est`` ≈ ∫(expected − delivered) dt, and the outcomes of the attempts."""

    not_delivered_est: int = 0
    failed: int = 0
    rate_limited: int = 0
    rejected: int = 0
    attempts: int = 0
    delivered: int = 0

    # Older databases named the estimate differently.
    ALIASES: ClassVar[dict[str, str]] = {
        "not_delivered": "not_delivered_est",
        "not_delivered_estimate": "not_delivered_est",
    }

    def as_dict(self) -> dict[str, int]:
        """As stored and exported (``impact`` in JSON), in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Impact | None:
        """From stored JSON (None when nothing was recorded); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        picked: dict[str, int] = {}
        for key, v in value.items():
            name = cls.ALIASES.get(key, key)
            if name in known and isinstance(v, int | float) and not isinstance(v, bool):
                picked[name] = round(v)
        return cls(**picked) if picked else None


class ErrorRatio(TypedDict):
    """Failed or rejected attempts over the incident, with a 95 % Wilson interval."""

    failed_or_rejected: int
    attempts: int
    ratio: float
    wilson95: list[float]


class Snapshot(TypedDict, total=False):
    """The flow as measured at one moment of the outage (``Evidence.at_detection`` and
    ``Evidence.at_worst``): averages over the ``over_s`` seconds ending at ``at`` (never
    before the onset). Rates are events per second; shares are of attempts."""

    at: str  # ISO, the end of the measured seconds
    over_s: int
    attempts_per_s: float
    delivered_per_s: float
    expected_delivered_per_s: float  # what the baseline says should have been delivered
    delivered_of_expected: float  # delivered / expected (1.0 = normal); the worst is lowest
    rate_limited_share: float
    failed_share: float  # failed or rejected
    probe_headers: dict[str, Any]  # what probes saw in the vendor's response headers then
    probes: dict[str, dict[str, Any]]  # each probe's ok/status then


class Evidence(TypedDict, total=False):
    """Why the engine believes in an incident: measured during the outage only.

    Frozen in time: ``at_detection`` when the incident first fired; ``at_worst`` at the worst
    point of the outage (the lowest ``delivered_of_expected`` over the measured seconds, ties
    broken by the highest share of failed and rate-limited attempts; the earliest on a tie);
    everything else (the shares, the error ratio, the detectors' statistics, the providers'
    facts) as of the last abnormal second. Nothing measured after the outage ended (the quiet
    period before resolving) is written here, so a resolved incident's evidence never shows
    the recovery. The state *now* belongs to the live views, not to the incident.

    The ledger writes the engine's keys; providers add ``status_page`` and
    ``rate_limit_drift``; ``detectors`` holds each firing's own evidence (onset, detection time,
    severity and the detector's statistics). Rates are events per second.
    """

    window: dict[str, str | None]  # the outage: start (onset), end (its last abnormal second)
    baseline_rate_per_s: float  # attempts per second normally (the frozen baseline)
    expected_delivered_per_s: float  # delivered per second normally
    rate_limited_share: float  # of the outage's attempts
    at_detection: Snapshot
    at_worst: Snapshot
    h: float  # the detectors' alarm threshold (nats)
    quiet_s: int  # seconds without an alarm before resolving
    detectors: dict[str, dict[str, Any]]
    error_ratio: ErrorRatio  # over the outage
    status_page: dict[str, Any]  # what the vendor's status page said during the outage
    rate_limit_drift: dict[str, Any]


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
    # The end of the outage: the end of the last abnormal second (so far, while open). From
    # there until ``resolved_at`` is the quiet period the engine waits before resolving; the
    # impact and the evidence cover onset..outage_end only. None: not recorded (older data).
    outage_end: float | None = None
    summary: str = ""
    evidence: Evidence = field(default_factory=lambda: Evidence())
    impact: Impact | None = None  # None: not counted (yet)
    flaps: int = 0
    historical: bool = False  # detected while reading the backlog: no live alert
    timeline: list[TimelineEntry] = field(default_factory=list)

    def note(self, ts: float, kind: TimelineKind, detail: str) -> None:
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
