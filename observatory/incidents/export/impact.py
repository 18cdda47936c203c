"""The incident's window and impact numbers: what the engine recorded, and what is counted
from `events` when it did not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from observatory.incidents.export.formatting import fmt_value, label
from observatory.incidents.model import Incident
from observatory.util.durations import format_duration

# The impact fields shown first, in words (the others follow the duration).
IMPACT_LABELS: dict[str, str] = {
    "not_delivered_est": "Events not delivered (estimate)",
    "failed": "Failed",
    "rate_limited": "Rate-limited (429)",
    "rejected": "Rejected",
}
PRE_ONSET_S = 300.0  # chart margin, and the baseline window for the not-delivered estimate


@dataclass
class Window:
    """The incident's span: onset to resolved (or the last event), and within it the outage,
    onset to ``outage_end`` (its last abnormal second), over which the impact is counted.
    From ``outage_end`` to ``end`` is the quiet period before resolving."""

    start: float
    end: float
    ongoing: bool
    outage_end: float | None = None  # None: not recorded (an older incident): ``end``

    @property
    def outage_until(self) -> float:
        return self.end if self.outage_end is None else min(self.outage_end, self.end)

    @property
    def outage_s(self) -> float:
        return self.outage_until - self.start

    @property
    def quiet_s(self) -> float:
        return self.end - self.outage_until


def _q(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[Any]:
    try:
        return con.execute(sql, params).fetchall()
    except duckdb.CatalogException:  # a database without an events table
        return []


def last_event(con: duckdb.DuckDBPyConnection) -> float | None:
    """The newest event time in the database (log lines or feeds): as far as anything is known."""
    rows = _q(con, "SELECT epoch_us(max(ts)) FROM outcomes", [])
    return rows[0][0] / 1e6 if rows and rows[0][0] is not None else None


def incident_window(con: duckdb.DuckDBPyConnection, incident: Incident) -> Window:
    """Onset to resolution; while unresolved, onset to the newest event of any destination
    (a silent destination has no events of its own to say how long the silence lasted)."""
    if incident.resolved_at is not None:
        return Window(incident.onset, incident.resolved_at, False, incident.outage_end)
    last = last_event(con)
    end = max(incident.detected_at, incident.onset, last or incident.onset)
    return Window(incident.onset, end, True, incident.outage_end)


def outcome_counts(
    con: duckdb.DuckDBPyConnection, destination: str, start: float, end: float
) -> dict[str, int]:
    rows = _q(
        con,
        "SELECT outcome, sum(n) FROM outcomes WHERE destination = ? "
        "AND ts >= to_timestamp(?) AND ts < to_timestamp(?) GROUP BY 1",
        [destination, start, end],
    )
    return {str(o): int(n) for o, n in rows}


def impact_rows(
    con: duckdb.DuckDBPyConnection, incident: Incident, window: Window
) -> list[tuple[str, str]]:
    """The incident's impact numbers, over the outage (onset to its last abnormal second);
    what the engine did not record is counted from `events` over the outage (and said so)."""
    impact = incident.impact.as_dict() if incident.impact is not None else {}
    counted: dict[str, int] | None = None
    rows: list[tuple[str, str]] = []
    for key, name in IMPACT_LABELS.items():
        if key in impact:
            rows.append((name, fmt_value(impact[key], key)))
            continue
        if counted is None:
            counted = outcome_counts(con, incident.destination, window.start, window.outage_until)
        if key == "not_delivered_est":
            rows.append((name, _not_delivered_estimate(con, incident, window, counted)))
        else:
            rows.append((name, f"{counted.get(key, 0):,} (counted from captured events)"))
    rows.append(
        (
            "Outage duration (counted over)",
            format_duration(window.outage_s, long=True)
            + (" so far (ongoing)" if window.ongoing else ""),
        )
    )
    rows += [(label(k), fmt_value(v, k)) for k, v in impact.items() if k not in IMPACT_LABELS]
    return rows


def _not_delivered_estimate(
    con: duckdb.DuckDBPyConnection, incident: Incident, window: Window, counted: dict[str, int]
) -> str:
    before = outcome_counts(
        con, incident.destination, window.start - PRE_ONSET_S, window.start
    ).get("delivered", 0)
    if not before:
        return "unknown (no deliveries captured before the onset)"
    expected = before / PRE_ONSET_S * window.outage_s
    lost = max(0, round(expected - counted.get("delivered", 0)))
    baseline = format_duration(PRE_ONSET_S, long=True, coarse=True)
    return f"≈ {lost:,} (from captured events; baseline: the {baseline} before the onset)"
