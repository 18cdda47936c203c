"""Quoting helpers for SQL text built from configuration (never from log data)."""

from __future__ import annotations

from collections.abc import Iterable


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    """A comma-separated list of SQL string literals."""
    return ", ".join(sql_str(v) for v in values)


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
