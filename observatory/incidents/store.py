"""Incidents in DuckDB: save (upsert), load by id or unique prefix, list, acknowledge, note.

A running ledger (`observatory.incidents.ledger`) writes every change of its incidents through
`IncidentTable`; operator actions on incidents no ledger holds (`acknowledge`, `add_note`: the
CLI, or an earlier run's incident) go straight to the table. A process without the ledger
(the CLI beside a running `watch`) may have acknowledged or annotated an incident the ledger
still holds, so a save keeps those actions: an acknowledged incident saved as open stays
acknowledged, and timeline entries of the operator kinds ("acknowledged", "note") that are in
the database but not in the saved incident are kept. Everything else in the timeline is
replaced by the saved incident's.

Writes go through the store's write connection (`store.con`, from its owning thread);
reads work on any connection, including `connect(path, read_only=True)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import duckdb
import orjson

from observatory.incidents.model import OPERATOR_KINDS, Evidence, Impact, Incident, TimelineEntry
from observatory.util.jsontext import json_bytes

_COLUMNS = (
    "id, destination, detector, state, severity, detectors, epoch_us(onset), "
    "epoch_us(detected_at), epoch_us(acknowledged_at), epoch_us(resolved_at), summary, "
    "impact, evidence, flaps, historical, epoch_us(outage_end)"
)


class IncidentLookupError(KeyError):
    """No incident matches an id (or prefix), or a prefix matches several."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else "incident not found"


def _epoch(us: int | None) -> float | None:
    return None if us is None else us / 1e6


def _dumps(value: Any) -> str:
    # Evidence may hold numpy scalars or other odd values from the engine: never fail a
    # save over them, store their text instead.
    return json_bytes(value).decode()


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = orjson.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[Any]:
    return con.execute(sql, params or []).fetchall()


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `con` has an explicit transaction open.

    Probing with BEGIN would abort the caller's transaction when one is open; instead: in
    autocommit every statement is its own transaction, so two statements get different ids.
    """
    first = _run(con, "SELECT txid_current()")[0][0]
    return bool(_run(con, "SELECT txid_current()")[0][0] == first)


@contextmanager
def _atomic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Statements inside run in one transaction: the caller's if open, else their own."""
    if in_transaction(con):
        yield
        return
    _run(con, "BEGIN")
    try:
        yield
    except BaseException:
        try:
            _run(con, "ROLLBACK")
        except duckdb.Error:
            pass  # the failure already ended the transaction
        raise
    _run(con, "COMMIT")


def _entry_key(e: TimelineEntry) -> tuple[int, str, str]:
    return (round(e.ts * 1e6), e.kind, e.detail)


def save_incident(con: duckdb.DuckDBPyConnection, incident: Incident) -> None:
    """Upsert `incident` and replace its timeline, in one transaction (the caller's, if one
    is open). Operator actions already stored (acknowledgement, notes) are kept; see the
    module docstring. `incident` itself is not modified."""
    with _atomic(con):
        state, acknowledged_at = incident.state, incident.acknowledged_at
        stored = _run(
            con,
            "SELECT state, epoch_us(acknowledged_at) FROM incidents WHERE id = ?",
            [incident.id],
        )
        kept: list[TimelineEntry] = []
        if stored:
            old_state, old_ack = stored[0][0], _epoch(stored[0][1])
            if acknowledged_at is None:
                acknowledged_at = old_ack
            if old_state == "acknowledged" and state == "open":
                state = "acknowledged"
            present = {_entry_key(e) for e in incident.timeline}
            kept = [
                e
                for e in _timelines(con, [incident.id]).get(incident.id, [])
                if e.kind in OPERATOR_KINDS and _entry_key(e) not in present
            ]
        _run(
            con,
            "INSERT OR REPLACE INTO incidents (id, destination, detector, state, severity, "
            "detectors, onset, detected_at, acknowledged_at, resolved_at, summary, impact, "
            "evidence, flaps, historical, outage_end) VALUES (?, ?, ?, ?, ?, ?, to_timestamp(?), "
            "to_timestamp(?), to_timestamp(?), to_timestamp(?), ?, ?, ?, ?, ?, to_timestamp(?))",
            [
                incident.id,
                incident.destination,
                incident.detector,
                state,
                incident.severity,
                list(incident.detectors or [incident.detector]),
                incident.onset,
                incident.detected_at,
                acknowledged_at,
                incident.resolved_at,
                incident.summary,
                _dumps(incident.impact.as_dict() if incident.impact is not None else {}),
                _dumps(incident.evidence),
                incident.flaps,
                incident.historical,
                incident.outage_end,
            ],
        )
        _run(con, "DELETE FROM incident_timeline WHERE incident_id = ?", [incident.id])
        entries = sorted(
            enumerate([*incident.timeline, *kept]), key=lambda pair: (pair[1].ts, pair[0])
        )
        if entries:
            con.executemany(
                "INSERT INTO incident_timeline (incident_id, seq, ts, kind, detail) "
                "VALUES (?, ?, to_timestamp(?), ?, ?)",
                [[incident.id, seq, e.ts, e.kind, e.detail] for seq, (_, e) in enumerate(entries)],
            )


def _timelines(
    con: duckdb.DuckDBPyConnection, ids: list[str] | None = None
) -> dict[str, list[TimelineEntry]]:
    """Timeline entries by incident id, in order (all incidents when `ids` is None)."""
    sql = "SELECT incident_id, epoch_us(ts), kind, detail FROM incident_timeline"
    params: list[Any] = []
    if ids is not None:
        sql += " WHERE list_contains(?, incident_id)"
        params.append(ids)
    out: dict[str, list[TimelineEntry]] = {}
    for inc_id, ts_us, kind, detail in _run(con, sql + " ORDER BY incident_id, seq", params):
        out.setdefault(inc_id, []).append(TimelineEntry(ts_us / 1e6, kind, detail or ""))
    return out


def _incident(row: tuple[Any, ...], timeline: list[TimelineEntry]) -> Incident:
    (
        inc_id,
        dest,
        detector,
        state,
        severity,
        detectors,
        onset,
        detected,
        acked,
        resolved,
        summary,
        impact,
        evidence,
        flaps,
        historical,
        outage_end,
    ) = row
    return Incident(
        id=inc_id,
        destination=dest,
        detector=detector,
        severity=severity,
        onset=_epoch(onset) or 0.0,
        detected_at=_epoch(detected) or 0.0,
        state=state,
        detectors=list(detectors or []),
        acknowledged_at=_epoch(acked),
        resolved_at=_epoch(resolved),
        outage_end=_epoch(outage_end),
        summary=summary or "",
        evidence=cast(Evidence, _loads(evidence)),
        impact=Impact.from_dict(_loads(impact)),
        flaps=flaps or 0,
        historical=bool(historical),
        timeline=timeline,
    )


def resolve_id(con: duckdb.DuckDBPyConnection, id_or_prefix: str) -> str:
    """The full id of the one incident whose id is, or starts with, `id_or_prefix`."""
    prefix = id_or_prefix.strip()
    if not prefix:
        raise IncidentLookupError("no incident id given")
    rows = _run(
        con,
        "SELECT id FROM incidents WHERE starts_with(id, ?) ORDER BY id = ? DESC, id LIMIT 6",
        [prefix, prefix],
    )
    if not rows:
        raise IncidentLookupError(f"no incident with id {prefix!r}")
    if rows[0][0] == prefix or len(rows) == 1:
        return str(rows[0][0])
    shown = ", ".join(r[0] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    raise IncidentLookupError(f"incident id {prefix!r} is ambiguous: it starts {shown}")


def load_incident(con: duckdb.DuckDBPyConnection, id_or_prefix: str) -> Incident:
    """The incident with this id, or the only one whose id starts with it, timeline
    included. Raises IncidentLookupError (a KeyError) when none or several match."""
    inc_id = resolve_id(con, id_or_prefix)
    rows = _run(con, f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", [inc_id])
    if not rows:  # deleted between the two statements
        raise IncidentLookupError(f"no incident with id {id_or_prefix!r}")
    return _incident(rows[0], _timelines(con, [inc_id]).get(inc_id, []))


def list_incidents(
    con: duckdb.DuckDBPyConnection, destination: str | None = None
) -> list[Incident]:
    """All incidents (of `destination`, when given), newest first, timelines included."""
    sql = f"SELECT {_COLUMNS} FROM incidents"
    params: list[Any] = []
    if destination is not None:
        sql += " WHERE destination = ?"
        params.append(destination)
    sql += " ORDER BY detected_at DESC NULLS LAST, onset DESC NULLS LAST, id"
    rows = _run(con, sql, params)
    if not rows:
        return []
    timelines = _timelines(con, None if destination is None else [r[0] for r in rows])
    return [_incident(r, timelines.get(r[0], [])) for r in rows]


def acknowledge(con: duckdb.DuckDBPyConnection, id_or_prefix: str, ts: float) -> Incident:
    """Acknowledge an open incident at `ts` (a timeline entry records it). Acknowledging
    again, or acknowledging a resolved incident, changes nothing."""
    with _atomic(con):
        incident = load_incident(con, id_or_prefix)
        if incident.state != "open":
            return incident
        incident.state = "acknowledged"
        incident.acknowledged_at = ts
        incident.note(ts, "acknowledged", "acknowledged")
        save_incident(con, incident)
        return load_incident(con, incident.id)  # as stored: timeline in time order


def add_note(con: duckdb.DuckDBPyConnection, id_or_prefix: str, ts: float, text: str) -> Incident:
    """Add a free-text note to an incident's timeline (kind "note") at `ts`."""
    text = text.strip()
    if not text:
        raise ValueError("an empty note")
    with _atomic(con):
        incident = load_incident(con, id_or_prefix)
        incident.note(ts, "note", text)
        save_incident(con, incident)
        return load_incident(con, incident.id)


class IncidentTable:
    """The ``incidents`` table as the ledger's sink (``observatory.incidents.ledger``): the
    ledger writes every change through it, and operator actions on incidents it no longer
    holds (an earlier run's) go straight to the table."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def save(self, incident: Incident) -> None:
        save_incident(self.con, incident)

    def acknowledge(self, id_or_prefix: str, ts: float) -> Incident:
        return acknowledge(self.con, id_or_prefix, ts)

    def add_note(self, id_or_prefix: str, ts: float, text: str) -> Incident:
        return add_note(self.con, id_or_prefix, ts, text)
