"""The API's request and error bodies, shared by the server and its client."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

QueryFormat = Literal["table", "csv", "json", "parquet"]
SqlParam = JsonValue  # a number, text, bool, null, or a list of them (list_contains(?, x))
MAX_SQL_ROWS = 100_000  # one answer of /api/sql in rows (the rest: another call, offset on)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryRequest(_Body):
    """``POST /api/query``: one SELECT, and how to write its result."""

    sql: str = Field(min_length=1, max_length=32_000)
    format: QueryFormat = "table"


class SqlRequest(_Body):
    """``POST /api/sql``: one SELECT with ``?`` parameters, for a viewer's read cursor.

    ``rows``: up to ``limit`` rows after skipping ``offset``, as JSON with each column's DuckDB
    type (``observatory.server.sqlwire``). ``arrow``: the whole result as an Arrow IPC stream.
    ``id`` names the query so that ``POST /api/sql/{id}/cancel`` can interrupt it."""

    sql: str = Field(min_length=1, max_length=32_000)
    params: list[SqlParam] = Field(default_factory=list, max_length=1_000)
    format: Literal["rows", "arrow"] = "rows"
    limit: int = Field(default=1_000, ge=1, le=MAX_SQL_ROWS)
    offset: int = Field(default=0, ge=0)
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class NoteRequest(_Body):
    """``POST /api/incidents/{id}/note``."""

    text: str = Field(min_length=1, max_length=4_000)


class ErrorBody(_Body):
    """Any refusal: what went wrong, and the exit code the CLI would have given."""

    error: str
    exit_code: int = 1
