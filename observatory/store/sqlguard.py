"""SQL from outside the machine (the owner's API): one SELECT over Observatory's own tables.

The console's guard (:func:`observatory.store.query.single_statement`) keeps a statement to
reads. Through the API that is not enough: a SELECT can read any file the owner can
(``read_text('/etc/passwd')``, ``FROM 'secrets.csv'``) or reach the network. So the statement
is parsed (``json_serialize_sql``) and every table it names must be a table or view of the
database (or a CTE of the statement itself), and the only table functions allowed are those
that make rows out of nothing. ``information_schema.columns`` and ``.tables`` (names and
types) may be read too. ``?`` parameters are allowed; their values come with the statement.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from observatory.store.query import QueryError, single_statement

SELECT_ONLY = frozenset({duckdb.StatementType.SELECT})
SAFE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# The database's own description (the SQL console's schema sidebar): names and types only.
METADATA_VIEWS = frozenset({("information_schema", "columns"), ("information_schema", "tables")})


def _refuse(why: str) -> QueryError:
    return QueryError(f"refused: {why}; the API runs one SELECT over Observatory's tables", 2)


def _walk(
    node: Any, tables: list[tuple[str, str, str]], functions: list[str], ctes: set[str]
) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "BASE_TABLE":
            tables.append(
                (
                    str(node.get("catalog_name") or ""),
                    str(node.get("schema_name") or ""),
                    str(node.get("table_name") or ""),
                )
            )
        elif kind == "TABLE_FUNCTION":
            fn = node.get("function")
            functions.append(str(fn.get("function_name") if isinstance(fn, dict) else fn))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map") or []:
                if isinstance(entry, dict):
                    ctes.add(str(entry.get("key", "")).lower())
        for value in node.values():
            _walk(value, tables, functions, ctes)
    elif isinstance(node, list):
        for value in node:
            _walk(value, tables, functions, ctes)


def own_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal "
        "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    return {str(r[0]).lower() for r in rows}


def api_statement(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """``sql`` checked to be one SELECT that reads only the database's own tables; its text
    without trailing semicolons. Raises QueryError (exit code 2) otherwise."""
    sql = single_statement(con, sql, SELECT_ONLY)
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    except duckdb.Error as exc:
        raise _refuse("the statement could not be parsed") from exc
    tree = orjson.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise _refuse(str(tree.get("error_message") or "the statement could not be parsed"))
    tables: list[tuple[str, str, str]] = []
    functions: list[str] = []
    ctes: set[str] = set()
    _walk(tree, tables, functions, ctes)
    for fn in functions:
        if fn.lower() not in SAFE_TABLE_FUNCTIONS:
            raise _refuse(f"table function {fn}() reads outside the database")
    known = own_tables(con) | ctes
    for catalog, schema, name in tables:
        if not catalog and (schema.lower(), name.lower()) in METADATA_VIEWS:
            continue
        if catalog or schema.lower() not in ("", "main") or name.lower() not in known:
            shown = ".".join(p for p in (catalog, schema, name) if p)
            raise _refuse(f"{shown!r} is not one of the database's tables")
    return sql
