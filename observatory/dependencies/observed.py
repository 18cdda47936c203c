"""What has been observed about the nodes of the dependency map, read through a cursor.

Every function takes a read cursor: DuckDB's own (the database opened read-only, or the
runtime's connection for the Snapshot), or an attached viewer's
:class:`~observatory.server.remote_cursor.RemoteCursor`, so each statement is one SELECT over
the database's own tables (what the owner's API allows). Times come back as epoch seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from observatory.incidents.model import SEVERITY_RANK

FLOW_WINDOW = 900.0  # seconds: a destination with rows this recent "flows"
# A dependency's newest probe older than this says nothing about now.
PROBE_STALE_AFTER = FLOW_WINDOW


@dataclass(frozen=True)
class Flow:
    """A destination's traffic in ``outcomes`` (log lines and feed seconds alike)."""

    events: int  # in the window
    delivered: int  # in the window
    last_seen: float | None  # the newest row at all


@dataclass(frozen=True)
class IncidentRef:
    """The facts of one incident a dependency document repeats."""

    id: str
    detector: str
    severity: str
    state: str
    onset: float | None
    resolved_at: float | None

    @property
    def open(self) -> bool:
        return self.resolved_at is None and self.state != "resolved"


@dataclass(frozen=True)
class DrillRef:
    """The newest row of the ``drills`` table for a destination."""

    started_at: float | None
    kind: str
    passed: bool
    detect_s: float | None


def _marks(names: list[str]) -> str:
    return ", ".join("?" for _ in names)


def flows(
    cur: Any, names: Iterable[str], now: float, window: float = FLOW_WINDOW
) -> dict[str, Flow]:
    """Per destination in ``names`` that has any row: its traffic since ``now - window``."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    rows = cur.execute(
        "SELECT destination, "
        "coalesce(sum(n) FILTER (WHERE ts >= to_timestamp(?)), 0), "
        "coalesce(sum(n) FILTER (WHERE ts >= to_timestamp(?) AND outcome = 'delivered'), 0), "
        f"epoch(max(ts)) FROM outcomes WHERE destination IN ({_marks(wanted)}) GROUP BY 1",
        [now - window, now - window, *wanted],
    ).fetchall()
    return {str(r[0]): Flow(int(r[1]), int(r[2]), _epoch(r[3])) for r in rows}


def flowing_elsewhere(cur: Any, known: Iterable[str], now: float) -> list[str]:
    """Destinations with rows in the window that ``known`` does not name (not configured)."""
    rows = cur.execute(
        "SELECT DISTINCT destination FROM outcomes WHERE ts >= to_timestamp(?) ORDER BY 1",
        [now - FLOW_WINDOW],
    ).fetchall()
    seen = set(known)
    return [str(r[0]) for r in rows if str(r[0]) not in seen]


def incidents(
    cur: Any, names: Iterable[str]
) -> tuple[dict[str, IncidentRef], dict[str, IncidentRef]]:
    """(the most severe open incident, the newest incident) per destination in ``names``."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}, {}
    rows = cur.execute(
        "SELECT destination, id, detector, severity, state, epoch(onset), epoch(resolved_at), "
        "epoch(detected_at) FROM incidents "
        f"WHERE destination IN ({_marks(wanted)}) ORDER BY detected_at DESC, id",
        wanted,
    ).fetchall()
    newest: dict[str, IncidentRef] = {}
    worst: dict[str, IncidentRef] = {}
    for r in rows:
        dest = str(r[0])
        ref = IncidentRef(str(r[1]), str(r[2]), str(r[3]), str(r[4]), _epoch(r[5]), _epoch(r[6]))
        newest.setdefault(dest, ref)
        held = worst.get(dest)
        if ref.open and (
            held is None or SEVERITY_RANK.get(ref.severity, 0) > SEVERITY_RANK.get(held.severity, 0)
        ):
            worst[dest] = ref
    return worst, newest


def has_table(cur: Any, name: str) -> bool:
    """Whether the database has table ``name`` (``drills`` exists once a drill ran)."""
    row = cur.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def drills(cur: Any, names: Iterable[str]) -> dict[str, DrillRef] | None:
    """The newest drill per destination in ``names``; None when no drill table exists."""
    wanted = list(dict.fromkeys(names))
    if not has_table(cur, "drills"):
        return None
    if not wanted:
        return {}
    rows = cur.execute(
        "SELECT destination, epoch(started_at), kind, passed, detect_s FROM drills "
        f"WHERE destination IN ({_marks(wanted)}) ORDER BY started_at DESC",
        wanted,
    ).fetchall()
    out: dict[str, DrillRef] = {}
    for r in rows:
        out.setdefault(
            str(r[0]),
            DrillRef(_epoch(r[1]), str(r[2]), bool(r[3]), None if r[4] is None else float(r[4])),
        )
    return out


def probe_states(cur: Any, names: Iterable[str], now: float) -> dict[str, dict[str, Any]]:
    """Per name in ``names`` with probe rows, what its newest result of each probe says:
    ``state`` (``failing`` when any is not ok, ``stale`` when the newest is older than
    PROBE_STALE_AFTER, else ``ok``), ``checked_at``, ``detail`` (the failing probes and
    what they said, or every probe's status) and ``probes`` (how many). Plain values only:
    this rides in the Snapshot to attached viewers."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    rows = cur.execute(
        "SELECT destination, probe, epoch(ts), ok, http_status, status FROM probes "
        f"WHERE destination IN ({_marks(wanted)}) "
        "QUALIFY row_number() OVER (PARTITION BY destination, probe ORDER BY ts DESC) = 1 "
        "ORDER BY destination, probe",
        wanted,
    ).fetchall()
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        grouped.setdefault(str(r[0]), []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for name, latest in grouped.items():
        checked = max(_epoch(r[2]) or 0.0 for r in latest)
        failing = [r for r in latest if not r[3]]
        shown = failing or latest
        detail = "; ".join(f"{r[1]}: {_said(r)}" for r in shown)
        if failing:
            state = "failing"
        elif now - checked > PROBE_STALE_AFTER:
            state = "stale"
        else:
            state = "ok"
        out[name] = {
            "state": state,
            "checked_at": checked,
            "detail": detail,
            "probes": len(latest),
        }
    return out


def _said(row: tuple[Any, ...]) -> str:
    """What one probe result said: its status, else its HTTP status, else ok/failed."""
    if row[5]:
        return str(row[5])
    if row[4] is not None:
        return f"HTTP {int(row[4])}"
    return "ok" if row[3] else "failed"


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value)
