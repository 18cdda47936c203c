"""The ``drills`` table: every drill's report, and when the last passing one was."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from observatory.drills.run import DrillReport
from observatory.util.jsontext import json_bytes

DAY = 86400.0


def save_drill(con: duckdb.DuckDBPyConnection, report: DrillReport) -> None:
    """Store ``report`` (one row; the report itself as JSON)."""
    con.execute(
        "INSERT OR REPLACE INTO drills VALUES (?, to_timestamp(?), ?, ?, ?, ?, ?)",
        [
            report.id,
            report.started_at,
            report.destination,
            report.kind,
            report.passed,
            report.detect_s,
            json_bytes(report.as_dict()).decode(),
        ],
    )


def last_passed(con: duckdb.DuckDBPyConnection) -> float | None:
    """When the last passing drill started (epoch s), or None."""
    try:
        row = con.execute("SELECT epoch(max(started_at)) FROM drills WHERE passed").fetchone()
    except duckdb.CatalogException:  # a database from before drills
        return None
    return float(row[0]) if row and row[0] is not None else None


@dataclass(frozen=True)
class DrillDue:
    """Where the team stands with its drills, for the status line."""

    last_passed_at: float | None
    every_s: float
    now: float

    @property
    def days(self) -> float | None:
        """Days since the last passing drill (None: never)."""
        if self.last_passed_at is None:
            return None
        return max(0.0, self.now - self.last_passed_at) / DAY

    @property
    def overdue(self) -> bool:
        """The last passing drill is older than ``every`` (never drilled: not yet due)."""
        return self.last_passed_at is not None and self.now - self.last_passed_at > self.every_s

    def words(self) -> str:
        days = self.days
        if days is None:
            return "no drill yet"
        text = f"drill {days:.0f} d ago"
        return text + f", OVERDUE (every {self.every_s / DAY:g} d)" if self.overdue else text
