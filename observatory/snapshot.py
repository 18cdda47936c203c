"""What the live panes render: a :class:`Snapshot` of the runtime, and its wire form.

The runtime's thread makes Snapshots (:class:`SnapshotMaker`): the TUI that owns the
database renders them directly; the owner's API streams them (``GET /api/snapshots``, one
JSON document per event, :func:`snapshot_json`) to attached viewers, which rebuild the same
dataclasses with :func:`snapshot_from_json`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import orjson

from observatory.backup.reconcile import reconcile
from observatory.dependencies.observed import probe_states
from observatory.detect.drift import DestinationDrift
from observatory.detect.status import DestinationStatus
from observatory.drills.store import DrillDue, last_passed
from observatory.incidents.model import Impact, Incident, TimelineEntry
from observatory.store.query import first_line

if TYPE_CHECKING:
    from observatory.runtime import Runtime

BACKUP_SECONDS = 5.0  # how often the backup reconciliation is recounted for the panes
DEPENDENCY_SECONDS = 5.0  # how often the dependencies' newest probe results are re-read


@dataclass(frozen=True)
class Snapshot:
    """What the live panes render: copies, safe to hand to another thread."""

    now: float
    statuses: dict[str, DestinationStatus]
    incidents: list[Incident]
    live: bool
    note: str = ""
    drift: dict[str, DestinationDrift] = field(default_factory=dict)  # rate-limit ceilings
    # with a [backup] table: per destination, reconcile()'s summary (missing, pending, ...)
    backup: dict[str, dict[str, Any]] = field(default_factory=dict)
    # fire drills: days since the last passing one (or a drill running), and whether overdue
    drill: str = ""
    drill_overdue: bool = False
    # per configured dependency with probe results: what its newest ones say (state, ...)
    dependencies: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SnapshotMaker:
    """Makes Snapshots of one runtime, on the runtime's thread. The backup reconciliation
    scans the backup events and the deliveries, so it is recounted every BACKUP_SECONDS only;
    a failure keeps the last counts and says so in the note. The dependencies' probe states
    are re-read every DEPENDENCY_SECONDS the same way."""

    note: str = ""
    _backup: dict[str, dict[str, Any]] = field(default_factory=dict)
    _backup_at: float | None = None
    _drill_at: float | None = None
    _drill_passed: float | None = None
    _drills_seen: int = 0
    _dependencies: dict[str, dict[str, Any]] = field(default_factory=dict)
    _dependencies_at: float | None = None

    def make(self, runtime: Runtime, now: float) -> Snapshot:
        drill, overdue = self._drill_due(runtime, now)
        return Snapshot(
            now=now,
            statuses=runtime.status(),
            incidents=[i.snapshot() for i in runtime.engine.incidents()],
            live=runtime.live,
            note=self.note,
            drift=runtime.drift.status(),
            backup=self._backup_counts(runtime, now),
            drill=drill,
            drill_overdue=overdue,
            dependencies=self._dependency_states(runtime, now),
        )

    def _drill_due(self, runtime: Runtime, now: float) -> tuple[str, bool]:
        """The status line's drill words as of ``now`` (the last passing drill is re-read
        every BACKUP_SECONDS, and at once after a drill)."""
        if runtime.drill is not None:
            return f"drill {runtime.drill.report.id} running", False
        if not runtime.config.alerts:
            return "", False  # no pager to prove
        started = time.monotonic()
        finished = len(runtime.drill_reports)
        if (
            self._drill_at is None
            or started - self._drill_at >= BACKUP_SECONDS
            or finished != self._drills_seen
        ):
            self._drill_at = started
            self._drills_seen = finished
            self._drill_passed = last_passed(runtime.store.con)
        due = DrillDue(self._drill_passed, float(runtime.config.drills.every), now)
        return due.words(), due.overdue

    def _backup_counts(self, runtime: Runtime, now: float) -> dict[str, dict[str, Any]]:
        backup = runtime.config.backup
        if backup is None:
            return {}
        started = time.monotonic()
        if self._backup_at is not None and started - self._backup_at < BACKUP_SECONDS:
            return self._backup
        self._backup_at = started
        try:
            rows = reconcile(runtime.store.con, backup, now=now)
        except Exception as exc:  # the panes keep the last counts
            self.note = f"backup reconciliation failed: {first_line(exc)}"
            return self._backup
        self._backup = {row["destination"]: row for row in rows}
        return self._backup

    def _dependency_states(self, runtime: Runtime, now: float) -> dict[str, dict[str, Any]]:
        names = [d.name for d in runtime.config.dependencies if d.probes]
        if not names:
            return {}
        started = time.monotonic()
        if self._dependencies_at is not None and started - self._dependencies_at < (
            DEPENDENCY_SECONDS
        ):
            return self._dependencies
        self._dependencies_at = started
        try:
            self._dependencies = probe_states(runtime.store.con, names, now)
        except Exception as exc:  # the screen keeps the last states
            self.note = f"dependency states failed: {first_line(exc)}"
        return self._dependencies


def live_now(runtime: Runtime) -> float:
    """The runtime's "now": the wall clock when live; for replayed history, just past the
    data, so ages read as in the data."""
    if runtime.live:
        return time.time()
    return float(runtime.last_event_sec + 1) if runtime.last_event_sec is not None else 0.0


# -- wire form ----------------------------------------------------------------------------


def snapshot_json(snap: Snapshot) -> bytes:
    """The Snapshot as one line of JSON (dataclasses as objects; no newline inside)."""
    return orjson.dumps(snap, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


def _default(value: Any) -> Any:
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else str(value)


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of ``cls`` (a newer owner may send more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _incident(data: dict[str, Any]) -> Incident:
    values = _pick(Incident, data)
    values["timeline"] = [TimelineEntry(**_pick(TimelineEntry, e)) for e in data["timeline"]]
    impact = data.get("impact")
    values["impact"] = Impact.from_dict(impact) if isinstance(impact, dict) else None
    return Incident(**values)


def snapshot_from_json(body: bytes | str) -> Snapshot:
    """A Snapshot rebuilt from :func:`snapshot_json` (raises ValueError/KeyError/TypeError
    on a document that is not one)."""
    data = orjson.loads(body)
    return Snapshot(
        now=float(data["now"]),
        statuses={
            k: DestinationStatus(**_pick(DestinationStatus, v)) for k, v in data["statuses"].items()
        },
        incidents=[_incident(i) for i in data["incidents"]],
        live=bool(data["live"]),
        note=str(data.get("note") or ""),
        drift={
            k: DestinationDrift(**_pick(DestinationDrift, v))
            for k, v in (data.get("drift") or {}).items()
        },
        backup=dict(data.get("backup") or {}),
        dependencies=dict(data.get("dependencies") or {}),
    )
