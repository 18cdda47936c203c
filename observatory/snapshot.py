"""What the live panes render: a :class:`Snapshot` of the runtime, and its wire form.

The runtime's thread makes Snapshots (:class:`SnapshotMaker`): the TUI that owns the
database renders them directly; the owner's API streams them (``GET /api/snapshots``, one
JSON document per event, :func:`snapshot_json`) to attached viewers, which rebuild the same
dataclasses with :func:`snapshot_from_json`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson

from observatory.backup.reconcile import reconcile
from observatory.dependencies.observed import probe_states
from observatory.detect.drift import DestinationDrift
from observatory.detect.status import DestinationStatus
from observatory.detect.trend import Trend
from observatory.drills.store import DrillDue, last_passed
from observatory.history import StoredHistory, read_history
from observatory.incidents.model import Impact, Incident, TimelineEntry
from observatory.store.query import first_line

if TYPE_CHECKING:
    from observatory.runtime import Runtime

# How often what the panes show from a scan of the database (the backup reconciliation, the
# dependencies' newest probe results, the last passing drill) is read again.
RECOUNT_SECONDS = 5.0
# How often the stored history (destinations with no recent traffic) is read again.
HISTORY_SECONDS = 30.0
T = TypeVar("T")


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
    # live, with no destination live: the span (epoch s, first and last) of the stored
    # events, which are only history ("history: …, nothing live")
    history: tuple[float, float] | None = None


@dataclass
class _Recount(Generic[T]):
    """A value read from the database at most every RECOUNT_SECONDS; the last one between."""

    value: T
    at: float | None = None
    every: float = RECOUNT_SECONDS

    def get(self, maker: SnapshotMaker, read: Callable[[], T], what: str, now: bool = False) -> T:
        """The value, read again if it is time (or ``now``); a failed read keeps the last
        value and says so in the maker's note."""
        started = time.monotonic()
        if not now and self.at is not None and started - self.at < self.every:
            return self.value
        self.at = started
        try:
            self.value = read()
        except Exception as exc:  # the panes keep the last value
            maker.note = f"{what} failed: {first_line(exc)}"
        return self.value


@dataclass
class SnapshotMaker:
    """Makes Snapshots of one runtime, on the runtime's thread. What comes from scans of the
    database (the backup reconciliation, the dependencies' probe states, the last passing
    drill) is read again every RECOUNT_SECONDS only; a failure keeps the last value and says
    so in the note."""

    note: str = ""
    _backup: _Recount[dict[str, dict[str, Any]]] = field(default_factory=lambda: _Recount({}))
    _dependencies: _Recount[dict[str, dict[str, Any]]] = field(default_factory=lambda: _Recount({}))
    _drill_passed: _Recount[float | None] = field(default_factory=lambda: _Recount(None))
    _drills_seen: int = 0
    _history: _Recount[StoredHistory] = field(
        default_factory=lambda: _Recount(StoredHistory(), every=HISTORY_SECONDS)
    )
    _history_again: bool = True  # read the history at the next snapshot (start, a replay)

    def history_changed(self) -> None:
        """Read the stored history again at the next snapshot (after a replay)."""
        self._history_again = True

    def make(self, runtime: Runtime, now: float) -> Snapshot:
        drill, overdue = self._drill_due(runtime, now)
        statuses, history = self._with_history(runtime)
        return Snapshot(
            now=now,
            statuses=statuses,
            incidents=[i.snapshot() for i in runtime.engine.incidents()],
            live=runtime.live,
            note=self.note,
            drift=runtime.drift.status(),
            backup=self._backup_counts(runtime, now),
            drill=drill,
            drill_overdue=overdue,
            dependencies=self._dependency_states(runtime, now),
            history=history,
        )

    def _with_history(
        self, runtime: Runtime
    ) -> tuple[dict[str, DestinationStatus], tuple[float, float] | None]:
        """The engine's statuses, plus a STALE one for every destination known only from
        the database or the config (its last-seen time, last rates and last stretch of
        traffic); and, live with no destination live, the span of the stored events."""
        statuses = runtime.status()
        if not runtime.live:
            return statuses, None  # a replay: the engine has seen everything stored
        again, self._history_again = self._history_again, False
        stored = self._history.get(
            self,
            lambda: read_history(runtime.store.con, [d.name for d in runtime.config.destinations]),
            "reading the stored history",
            now=again,
        )
        missing = {k: v for k, v in stored.statuses.items() if k not in statuses}
        if missing:
            statuses = dict(sorted({**statuses, **missing}.items()))
        span = None
        if stored.first is not None and stored.last is not None:
            if all(s.state == "stale" for s in statuses.values()):
                span = (stored.first, stored.last)
        return statuses, span

    def _drill_due(self, runtime: Runtime, now: float) -> tuple[str, bool]:
        """The status line's drill words as of ``now`` (the last passing drill is read again
        at once after a drill)."""
        if runtime.drill is not None:
            return f"drill {runtime.drill.report.id} running", False
        if not runtime.config.alerts:
            return "", False  # no pager to prove
        finished = len(runtime.drill_reports)
        passed = self._drill_passed.get(
            self,
            lambda: last_passed(runtime.store.con),
            "reading the last drill",
            now=finished != self._drills_seen,
        )
        self._drills_seen = finished
        due = DrillDue(passed, float(runtime.config.drills.every), now)
        return due.words(), due.overdue

    def _backup_counts(self, runtime: Runtime, now: float) -> dict[str, dict[str, Any]]:
        backup = runtime.config.backup
        if backup is None:
            return {}
        return self._backup.get(
            self,
            lambda: {r["destination"]: r for r in reconcile(runtime.store.con, backup, now=now)},
            "backup reconciliation",
        )

    def _dependency_states(self, runtime: Runtime, now: float) -> dict[str, dict[str, Any]]:
        names = [d.name for d in runtime.config.dependencies if d.probes]
        if not names:
            return {}
        return self._dependencies.get(
            self, lambda: probe_states(runtime.store.con, names, now), "dependency states"
        )


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


def _status(data: dict[str, Any]) -> DestinationStatus:
    values = _pick(DestinationStatus, data)
    values["trends"] = [Trend.from_dict(t) for t in data.get("trends") or []]
    return DestinationStatus(**values)


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
        statuses={k: _status(v) for k, v in data["statuses"].items()},
        incidents=[_incident(i) for i in data["incidents"]],
        live=bool(data["live"]),
        note=str(data.get("note") or ""),
        drift={
            k: DestinationDrift(**_pick(DestinationDrift, v))
            for k, v in (data.get("drift") or {}).items()
        },
        backup=dict(data.get("backup") or {}),
        dependencies=dict(data.get("dependencies") or {}),
        history=_span(data.get("history")),
    )


def _span(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    return float(value[0]), float(value[1])
