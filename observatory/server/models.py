"""The API's request and error bodies, shared by the server and its client."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QueryFormat = Literal["table", "csv", "json", "parquet"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryRequest(_Body):
    """``POST /api/query``: one SELECT, and how to write its result."""

    sql: str = Field(min_length=1, max_length=32_000)
    format: QueryFormat = "table"


class NoteRequest(_Body):
    """``POST /api/incidents/{id}/note``."""

    text: str = Field(min_length=1, max_length=4_000)


class ErrorBody(_Body):
    """Any refusal: what went wrong, and the exit code the CLI would have given."""

    error: str
    exit_code: int = 1
