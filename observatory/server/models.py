"""The API's JSON bodies, requests and answers, shared by the server and its client.

Text answers (``/api/query``, ``/api/incidents``, an export, ``/api/reconcile``) are the bytes the
matching command prints, not models; ``/api/sql`` rows use ``sqlwire``'s typed encoding."""

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


class Health(_Body):
    """``GET /healthz``: alive; nothing else (no token needed, no data)."""

    status: Literal["ok"] = "ok"


class Cancelled(_Body):
    """``POST /api/sql/{id}/cancel``: whether a query of that id was running."""

    cancelled: bool


class IncidentAnswer(BaseModel):
    """``POST /api/incidents/{id}/ack`` and ``/note``: the incident as it now is (the JSON
    export's fields: these are checked, the rest come along)."""

    model_config = ConfigDict(extra="allow")

    id: str
    destination: str
    state: Literal["open", "acknowledged", "resolved"]
    acknowledged_at: str | None = None


class RejectRow(_Body):
    """``GET /api/rejects``: one unparsed line, newest first."""

    source: str
    file: str
    line_no: int
    reason: str
    line: str | None
    ingested_at: str


class StatusAnswer(_Body):
    """``GET /api/status``: per destination what the dashboard shows, and the open incidents
    as their JSON lines."""

    live: bool
    last_event_sec: int | None
    destinations: dict[str, dict[str, JsonValue]]
    open_incidents: list[dict[str, JsonValue]]


class DrillRequest(_Body):
    """``POST /api/drills``: start a fire drill (``destination`` None: the owner picks)."""

    destination: str | None = Field(default=None, min_length=1, max_length=200)
    kind: Literal["rate_limit", "silence", "errors"] = "rate_limit"


class DrillAnswer(_Body):
    """``POST /api/drills`` and ``GET /api/drills/{id}``: the drill, and its report (the JSON
    form of ``observatory.drills.DrillReport``) once it is over."""

    id: str
    state: Literal["running", "done"]
    report: dict[str, JsonValue] | None = None
