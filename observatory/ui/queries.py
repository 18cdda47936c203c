"""The read queries behind the drill-down screens (plain functions on a DuckDB cursor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import duckdb

from observatory.config import CANONICAL_COLUMNS
from observatory.incidents.model import Incident
from observatory.incidents.store import list_incidents
from observatory.store.query import single_statement

SQL_ROW_CAP = 1000
CHART_SECONDS = 300
# A destination with only history: its chart covers the stored span, at most this long.
HISTORY_CHART_SECONDS = 6 * 3600
# The SQL console shares the runtime's database: only plain reads, no CALL/PRAGMA.
_CONSOLE_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class FailureRow(NamedTuple):
    """One event that was not delivered, as the destination screen lists it."""

    ts: float  # epoch seconds
    outcome: str
    http_status: int | None
    error_code: str | None
    error_message: str | None
    latency_ms: float | None
    message_id: str | None


class FailureGroup(NamedTuple):
    """Failures alike -- the same outcome, status, code and message -- counted together,
    with the first and the last time one was seen (epoch seconds)."""

    outcome: str
    http_status: int | None
    error_code: str | None
    error_message: str | None
    n: int  # how many
    first_ts: float
    last_ts: float

    @property
    def key(self) -> tuple[str, int | None, str | None, str | None]:
        """What makes failures alike (the group's identity across reads)."""
        return (self.outcome, self.http_status, self.error_code, self.error_message)


# At most this many groups on the destination screen, and members in a group's detail.
FAILURE_GROUPS = 50
GROUP_MEMBERS = 50


@dataclass
class DestinationDetail:
    """Everything the destination screen shows, read in one go."""

    seconds: list[tuple[int, int, int, int]] = field(default_factory=list)  # sec, ok, failed, 429
    errors: list[tuple[Any, ...]] = field(default_factory=list)  # status, code, message, count
    failure_groups: list[FailureGroup] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    probes: list[ProbeRow] = field(default_factory=list)


def destination_detail(
    cur: duckdb.DuckDBPyConnection, destination: str, now: float, since: float | None = None
) -> DestinationDetail:
    """What the destination screen shows; its chart covers ``since`` (default: CHART_SECONDS
    before ``now``) to ``now``."""
    since = now - CHART_SECONDS if since is None else since
    seconds = cur.execute(
        """
        SELECT floor(epoch(ts))::BIGINT AS sec,
               coalesce(sum(n) FILTER (WHERE outcome = 'delivered'), 0),
               coalesce(sum(n) FILTER (WHERE outcome IN ('failed', 'rejected', 'dropped')), 0),
               coalesce(sum(n) FILTER (WHERE outcome = 'rate_limited'), 0)
        FROM outcomes WHERE destination = ? AND ts >= to_timestamp(?) AND ts < to_timestamp(?)
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
    return DestinationDetail(
        seconds=[(int(s), int(a), int(b), int(c)) for s, a, b, c in seconds],
        errors=errors,
        failure_groups=failure_groups(cur, destination),
        incidents=list_incidents(cur, destination),
        probes=probe_history(cur, destination),
    )


def failure_groups(
    cur: duckdb.DuckDBPyConnection, destination: str, limit: int = FAILURE_GROUPS
) -> list[FailureGroup]:
    """The destination's stored failures grouped by (outcome, status, code, message), each
    with its count and first / last time; the most recently seen group first, at most
    ``limit`` groups."""
    rows = cur.execute(
        """
        SELECT outcome::VARCHAR, http_status, error_code, error_message, count(*) AS n,
               epoch(min(ts)), epoch(max(ts)) AS last_ts
        FROM events WHERE destination = ? AND outcome <> 'delivered'
        GROUP BY ALL
        ORDER BY last_ts DESC, n DESC, 1, 2 NULLS FIRST, 3 NULLS FIRST, 4 NULLS FIRST
        LIMIT ?
        """,
        [destination, limit],
    ).fetchall()
    return [
        FailureGroup(str(o), status, code, message, int(n), float(first), float(last))
        for o, status, code, message, n, first, last in rows
    ]


@dataclass
class FailureGroupDetail:
    """A group of alike failures opened: its newest failure in full and its newest members."""

    newest: list[tuple[str, Any]]  # (column, value as text) of the newest, every column
    members: list[FailureRow]  # newest first, at most GROUP_MEMBERS


_GROUP_WHERE = """
    destination = ? AND outcome <> 'delivered' AND outcome::VARCHAR = ?
    AND http_status IS NOT DISTINCT FROM ? AND error_code IS NOT DISTINCT FROM ?
    AND error_message IS NOT DISTINCT FROM ?
"""


def failure_group_detail(
    cur: duckdb.DuckDBPyConnection,
    destination: str,
    group: FailureGroup,
    limit: int = GROUP_MEMBERS,
) -> FailureGroupDetail:
    """The group's newest failure (every field) and its newest ``limit`` members; empty
    when none of it is stored any more."""
    params = [destination, *group.key]
    members = cur.execute(
        f"""
        SELECT epoch(ts), outcome::VARCHAR, http_status, error_code, error_message, latency_ms,
               message_id
        FROM events WHERE {_GROUP_WHERE}
        ORDER BY ts DESC, message_id LIMIT ?
        """,
        [*params, limit],
    ).fetchall()
    cols = ", ".join(f"{c}::VARCHAR" for c in FAILURE_COLUMNS)
    newest = cur.execute(
        f"SELECT {cols} FROM events WHERE {_GROUP_WHERE} ORDER BY ts DESC, message_id LIMIT 1",
        params,
    ).fetchone()
    return FailureGroupDetail(
        newest=[] if newest is None else list(zip(FAILURE_COLUMNS, newest, strict=True)),
        members=[FailureRow(*row) for row in members],
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

    Raises ConsoleRefused (or observatory.store.query.QueryError) with the whole message.
    """
    try:
        cur.execute(single_statement(cur, sql, _CONSOLE_TYPES))
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(SQL_ROW_CAP + 1)
    except duckdb.Error as exc:
        raise ConsoleRefused(_console_error(exc)) from exc
    return SqlResult(columns, rows[:SQL_ROW_CAP], len(rows) > SQL_ROW_CAP)


# -- destination screen: probe history -------------------------------------------------

PROBE_ROWS = 50


@dataclass
class ProbeRow:
    """One stored probe result, with its rate-limit headers as one line of text."""

    ts: float
    probe: str
    ok: bool | None
    http_status: int | None
    latency_ms: float | None
    status: str | None
    rate_limit: str
    error: str


def probe_history(cur: duckdb.DuckDBPyConnection, destination: str) -> list[ProbeRow]:
    """The destination's last PROBE_ROWS probe results, newest first."""
    rows = cur.execute(
        """
        SELECT epoch(ts), probe, ok, http_status, latency_ms, status, details
        FROM probes WHERE destination = ? ORDER BY ts DESC LIMIT ?
        """,
        [destination, PROBE_ROWS],
    ).fetchall()
    out = []
    for ts, probe, ok, status_code, latency, status, details in rows:
        facts = _json(details)
        headers = facts.get("rate_limit_headers") or {}
        rate = " ".join(f"{k}={v}" for k, v in headers.items()) if isinstance(headers, dict) else ""
        out.append(
            ProbeRow(
                float(ts),
                str(probe),
                ok,
                status_code,
                latency,
                status,
                rate,
                str(facts.get("error") or ""),
            )
        )
    return out


def _json(text: Any) -> dict[str, Any]:
    import orjson

    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# Every column of `events`, in table order.
FAILURE_COLUMNS = ("ts", "ingested_at", "source", *CANONICAL_COLUMNS[1:])


# -- SQL console: schema, external access, export ---------------------------------------


def schema(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, list[tuple[str, str]]]]:
    """The main schema's tables and views with their (column, type), in table order."""
    rows = cur.execute(
        """
        SELECT table_name, column_name, data_type FROM information_schema.columns
        WHERE table_schema = 'main' ORDER BY table_name, ordinal_position
        """
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        tables.setdefault(str(table), []).append((str(column), str(kind)))
    return list(tables.items())


def external_access_allowed(config: Any) -> bool:
    """Whether the config lets SQL reach files and the network: ``[storage]
    sql_external_access = true`` (off by default)."""
    storage = getattr(config, "storage", None)
    return bool(getattr(storage, "sql_external_access", False))


def disable_external_access(con: duckdb.DuckDBPyConnection) -> None:
    """No file or network access from SQL on this database (for every connection to it;
    DuckDB cannot turn it back on while the database is open). Arrow registration, which
    the store writes with, is not affected."""
    con.execute("SET enable_external_access = false").fetchall()


EXPORT_FORMATS = ("csv", "parquet", "json")


def export_format(path: str) -> str:
    """The export format from a file name's extension (.csv, .parquet, .json/.jsonl)."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    fmt = {"jsonl": "json", "ndjson": "json", "pq": "parquet"}.get(ext, ext)
    if fmt not in EXPORT_FORMATS:
        raise ConsoleRefused("name the file .csv, .parquet or .json")
    return fmt


def export_console_sql(cur: duckdb.DuckDBPyConnection, sql: str, path: str) -> int:
    """Run the console's `sql` again (same guard) and write every row to `path`, in the
    format its extension names; returns the row count. Written from Python (pyarrow), so
    DuckDB itself needs no file access."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = export_format(path)
    try:
        table = cur.sql(single_statement(cur, sql, _CONSOLE_TYPES)).to_arrow_table()
    except duckdb.Error as exc:
        raise ConsoleRefused(_console_error(exc)) from exc
    if fmt == "csv":
        pacsv.write_csv(table, path)
    elif fmt == "parquet":
        pq.write_table(table, path)
    else:
        import orjson

        with open(path, "wb") as fh:
            for row in table.to_pylist():
                fh.write(orjson.dumps(row, default=str) + b"\n")
    return table.num_rows


def _console_error(exc: duckdb.Error) -> str:
    if isinstance(exc, duckdb.PermissionException):
        return "refused: file and network access from SQL is disabled in the console"
    if isinstance(exc, duckdb.InterruptException):
        return "cancelled"
    # Whole: DuckDB's later lines say where ("LINE 1: ... ^") and what it meant instead.
    return f"query failed: {str(exc).strip() or type(exc).__name__}"
