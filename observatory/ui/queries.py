"""The read queries behind the drill-down screens (plain functions on a DuckDB cursor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from observatory.incident_store import list_incidents
from observatory.incidents import Incident
from observatory.query import first_line, single_statement

SQL_ROW_CAP = 1000
CHART_SECONDS = 300
# The SQL console shares the runtime's database: only plain reads, no CALL/PRAGMA.
_CONSOLE_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


@dataclass
class DestinationDetail:
    """Everything the destination screen shows, read in one go."""

    seconds: list[tuple[int, int, int, int]] = field(default_factory=list)  # sec, ok, failed, 429
    errors: list[tuple[Any, ...]] = field(default_factory=list)  # status, code, message, count
    failures: list[tuple[Any, ...]] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)


def destination_detail(
    cur: duckdb.DuckDBPyConnection, destination: str, now: float
) -> DestinationDetail:
    since = now - CHART_SECONDS
    seconds = cur.execute(
        """
        SELECT floor(epoch(ts))::BIGINT AS sec,
               count(*) FILTER (WHERE outcome = 'delivered'),
               count(*) FILTER (WHERE outcome IN ('failed', 'rejected', 'dropped')),
               count(*) FILTER (WHERE outcome = 'rate_limited')
        FROM events WHERE destination = ? AND ts >= to_timestamp(?) AND ts < to_timestamp(?)
        GROUP BY 1 ORDER BY 1
        """,
        [destination, since, now],
    ).fetchall()
    errors = cur.execute(
        """
        SELECT http_status, error_code, error_message, count(*) AS n
        FROM events WHERE destination = ? AND outcome <> 'delivered'
        GROUP BY ALL ORDER BY n DESC, 1, 2, 3 LIMIT 50
        """,
        [destination],
    ).fetchall()
    failures = cur.execute(
        """
        SELECT epoch(ts), outcome::VARCHAR, http_status, error_code, error_message, latency_ms
        FROM events WHERE destination = ? AND outcome <> 'delivered'
        ORDER BY ts DESC, message_id LIMIT 200
        """,
        [destination],
    ).fetchall()
    return DestinationDetail(
        seconds=[(int(s), int(a), int(b), int(c)) for s, a, b, c in seconds],
        errors=errors,
        failures=failures,
        incidents=list_incidents(cur, destination),
    )


class ConsoleRefused(Exception):
    """A statement the console will not run."""


@dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    more: bool


def run_console_sql(cur: duckdb.DuckDBPyConnection, sql: str) -> SqlResult:
    """Run one read-only statement; at most SQL_ROW_CAP rows (`more` says if there were more).

    Raises ConsoleRefused (or observatory.query.QueryError) with a one-line message.
    """
    try:
        sql = single_statement(cur, sql)
        kind = cur.extract_statements(sql)[0].type
        if kind not in _CONSOLE_TYPES:
            raise ConsoleRefused(
                f"refused: {kind.name} statements cannot run here; the console is read-only"
            )
        cur.execute(sql)
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(SQL_ROW_CAP + 1)
    except duckdb.Error as exc:
        raise ConsoleRefused(f"query failed: {first_line(exc)}") from exc
    return SqlResult(columns, rows[:SQL_ROW_CAP], len(rows) > SQL_ROW_CAP)
