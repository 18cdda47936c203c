"""Ad-hoc SQL on the captured data: `observatory query`, read-only."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, TextIO

import duckdb

from observatory.store.db import connect
from observatory.util.sqltext import sql_str

TABLE_ROWS = 1000  # rows shown by --format table; files get everything
CELL_WIDTH = 60


class QueryError(Exception):
    """A query that could not run; `exit_code` follows the CLI contract."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def first_line(exc: BaseException) -> str:
    """DuckDB errors carry a caret diagram on later lines; the first says what is wrong."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def open_readonly(db_path: str) -> duckdb.DuckDBPyConnection:
    if db_path != ":memory:" and not os.path.exists(db_path):
        raise QueryError(f"no database at {db_path} (run `observatory ingest` first)")
    try:
        return connect(db_path, read_only=db_path != ":memory:")
    except duckdb.Error as exc:
        raise QueryError(f"cannot open {db_path}: {first_line(exc)}") from exc


# Statements that only read. A read-only connection already refuses writes to the database,
# but not writes to files: `COPY events TO '<the database file>'` would overwrite it.
READ_STATEMENTS = frozenset(
    {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
        duckdb.StatementType.CALL,
    }
)


def single_statement(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    allowed: frozenset[duckdb.StatementType] = READ_STATEMENTS,
) -> str:
    """`sql` checked to be exactly one read-only statement of an `allowed` type (the one
    inside EXPLAIN too), trailing `;` removed."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {first_line(exc)}") from exc
    if len(statements) != 1:
        raise QueryError("give exactly one SQL statement", 2)
    _check_reads_only(sql, statements[0].type, allowed)
    return _without_trailing_semicolons(sql)


def _refused(kind: duckdb.StatementType) -> QueryError:
    return QueryError(f"refused: {kind.name} statements cannot run here; queries are read-only")


def _token_starts(sql: str) -> list[int]:
    """Where each non-comment token of `sql` starts, as string indexes.

    DuckDB reports token positions in UTF-8 bytes, hence the running conversion.
    """
    raw = sql.encode("utf-8")
    starts: list[int] = []
    byte = char = 0
    for pos, token_type in duckdb.tokenize(sql):
        char += len(raw[byte:pos].decode("utf-8"))
        byte = pos
        if token_type != duckdb.token_type.comment:
            starts.append(char)
    return starts


def _check_reads_only(
    sql: str, kind: duckdb.StatementType, allowed: frozenset[duckdb.StatementType]
) -> None:
    """Refuse anything but reads, including the statement inside EXPLAIN (ANALYZE runs it)."""
    if kind not in allowed:
        raise _refused(kind)
    if kind != duckdb.StatementType.EXPLAIN:
        return
    # The inner statement starts at the first later token from which the text parses as
    # one statement on its own (`EXPLAIN ANALYZE COPY ...`, `EXPLAIN (ANALYZE) ...`).
    for start in _token_starts(sql)[1:]:
        rest = sql[start:]
        try:
            inner = duckdb.extract_statements(rest)
        except duckdb.Error:
            continue
        if len(inner) == 1:
            _check_reads_only(rest, inner[0].type, allowed)
            return
    raise _refused(kind)


def _without_trailing_semicolons(sql: str) -> str:
    """`sql` without the `;` that end it (comments after them go too), so it can be nested."""
    while True:
        starts = _token_starts(sql)
        if not starts or sql[starts[-1]] != ";":
            return sql.strip()
        sql = sql[: starts[-1]]


def run_query(db_path: str, sql: str, fmt: str, output: str | None, out: TextIO) -> int:
    """Run `sql` and write it as table/csv/json/parquet to `output` or `out`. Returns rows."""
    if fmt == "parquet" and not output:
        raise QueryError("--format parquet needs --output FILE", 2)
    con = open_readonly(db_path)
    try:
        return query_on(con, sql, fmt, output, out)
    finally:
        con.close()


def query_on(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    fmt: str,
    output: str | None,
    out: TextIO,
    guard: Callable[[duckdb.DuckDBPyConnection, str], str] = single_statement,
) -> int:
    """`run_query` on an open connection, `sql` checked by `guard` first."""
    try:
        sql = guard(con, sql)
        if fmt == "table":
            return _table(con, sql, out, output)
        return _copy(con, sql, fmt, output, out)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {first_line(exc)}") from exc


def _copy(
    con: duckdb.DuckDBPyConnection, sql: str, fmt: str, output: str | None, out: TextIO
) -> int:
    options = {"csv": "FORMAT csv, HEADER", "json": "FORMAT json", "parquet": "FORMAT parquet"}
    target = output
    if target is None:
        fd, target = tempfile.mkstemp(suffix="." + fmt)
        os.close(fd)
    try:
        # Newlines, so a `-- comment` ending the query cannot swallow the closing parenthesis.
        copy = f"COPY (\n{sql}\n) TO {sql_str(target)} ({options[fmt]})"
        rows = con.execute(copy).fetchall()
        if output is None:
            out.flush()
            with open(target, encoding="utf-8") as fh:
                shutil.copyfileobj(fh, out)
        return int(rows[0][0]) if rows else 0
    finally:
        if output is None:
            os.unlink(target)


def cell(value: Any) -> str:
    """A value as one line of plain text: control characters escaped, long text cut."""
    if value is None:
        return "NULL"
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    if len(text) > CELL_WIDTH:
        text = text[: CELL_WIDTH - 1] + "…"
    return text


def render_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """An aligned plain-text table (numbers right-aligned)."""
    texts = [[cell(v) for v in row] for row in rows]
    heads = [cell(c) for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in texts]) for i, h in enumerate(heads)]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float) or r[i] is None for r in rows)
        for i in range(len(columns))
    ]

    def fmt_row(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    lines = [fmt_row(heads), "  ".join("─" * w for w in widths)]
    lines += [fmt_row(r) for r in texts]
    return "\n".join(lines)


def _table(con: duckdb.DuckDBPyConnection, sql: str, out: TextIO, output: str | None) -> int:
    con.execute(sql)
    columns = [d[0] for d in con.description or []]
    rows = con.fetchmany(TABLE_ROWS + 1)
    more = len(rows) > TABLE_ROWS
    rows = rows[:TABLE_ROWS]
    text = render_table(columns, rows)
    note = f"({len(rows)} row{'s' if len(rows) != 1 else ''}"
    note += "; more not shown, use --format csv --output F for all)" if more else ")"
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n" + note + "\n")
    else:
        out.write(text + "\n" + note + "\n")
    return len(rows)
