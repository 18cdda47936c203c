"""A read cursor on the owner's database, through its API: what an attached viewer reads with.

:class:`RemoteCursor` answers the part of DuckDB's cursor that the viewer's read functions
use (``observatory.ui.queries``, ``observatory.incidents.store``): ``execute(sql, params)``
then ``fetchall``/``fetchone``/``fetchmany`` and ``description``; ``sql(q).to_arrow_table()``;
``extract_statements`` (parsed here, by an in-memory DuckDB that holds no data); ``interrupt``
(the owner interrupts the query); ``close`` and ``with``. Every statement runs on the owner
under its API guard (one SELECT over the database's own tables), in pages of PAGE_ROWS rows:
``execute`` fetches the first page, later fetches ask for more as they need it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from observatory.server.client import OwnerError
from observatory.server.models import MAX_SQL_ROWS
from observatory.server.sqlwire import decode_rows

if TYPE_CHECKING:
    import pyarrow as pa

    from observatory.server.client import OwnerClient

PAGE_ROWS = 1_024


class RemoteSqlError(duckdb.Error):
    """The owner refused or failed the statement (its one-line message)."""


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _parse(sql: str) -> list[Any]:
    """DuckDB's statements of ``sql`` (an empty in-memory database parses them)."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        return list(_parser.extract_statements(sql))


class _RemoteRelation:
    def __init__(self, cursor: RemoteCursor, sql: str) -> None:
        self._cursor = cursor
        self._sql = sql

    def to_arrow_table(self) -> pa.Table:
        return self._cursor._arrow(self._sql)


class RemoteCursor:
    """A DuckDB-like read cursor whose statements run on the owner (see the module)."""

    def __init__(self, owner: OwnerClient) -> None:
        self._owner = owner
        self._sql: str | None = None
        self._params: list[Any] = []
        self._columns: list[str] = []
        self._types: list[str] = []
        self._rows: list[tuple[Any, ...]] = []
        self._pos = 0
        self._fetched = 0  # rows received for this statement
        self._more = False
        self._query_id: str | None = None
        self._closed = False

    # -- DuckDB's cursor ----------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> RemoteCursor:
        self._check_open()
        self._sql, self._params = sql, list(params or [])
        self._rows, self._pos, self._fetched, self._more = [], 0, 0, False
        self._page(PAGE_ROWS)
        return self

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        if self._sql is None:
            return None
        return [(name, kind, None, None, None, None, None) for name, kind in self._column_types()]

    def _column_types(self) -> list[tuple[str, str]]:
        return list(zip(self._columns, self._types, strict=True))

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchmany(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        self._need(size)
        rows = self._rows[self._pos : self._pos + size]
        self._pos += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        while self._more:
            self._page(MAX_SQL_ROWS)
        rows = self._rows[self._pos :]
        self._pos = len(self._rows)
        return rows

    def sql(self, query: str) -> _RemoteRelation:
        """Like DuckDB's ``sql``: here only ``.to_arrow_table()`` (the whole result)."""
        self._check_open()
        return _RemoteRelation(self, query)

    def extract_statements(self, sql: str) -> list[Any]:
        return _parse(sql)

    def interrupt(self) -> None:
        """Ask the owner to interrupt the query under way (best effort)."""
        query_id = self._query_id
        if query_id is not None:
            try:
                self._owner.cancel_sql(query_id)
            except OwnerError:
                pass  # it has finished, or the owner is gone: nothing to interrupt

    def close(self) -> None:
        self._closed = True
        self._rows = []

    def __enter__(self) -> RemoteCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paging --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise duckdb.ConnectionException("the cursor is closed")

    def _need(self, size: int) -> None:
        while self._more and len(self._rows) - self._pos < size:
            self._page(max(PAGE_ROWS, min(MAX_SQL_ROWS, size)))

    def _page(self, limit: int) -> None:
        """The next ``limit`` rows of the statement, from the owner."""
        self._check_open()
        if self._sql is None:
            raise duckdb.InvalidInputException("no statement was executed")
        answer = self._ask(
            lambda qid: self._owner.sql(self._sql or "", self._params, limit, self._fetched, qid)
        )
        self._columns = [str(c) for c in answer["columns"]]
        self._types = [str(t) for t in answer["types"]]
        rows = decode_rows(self._types, answer["rows"])
        self._rows = self._rows[self._pos :] + rows
        self._pos = 0
        self._fetched += len(rows)
        self._more = bool(answer["more"])

    def _arrow(self, sql: str) -> pa.Table:
        table: pa.Table = self._ask(lambda qid: self._owner.sql_arrow(sql, [], qid))
        return table

    def _ask(self, call: Any) -> Any:
        self._query_id = uuid.uuid4().hex
        try:
            return call(self._query_id)
        except OwnerError as exc:
            if exc.status == 409:
                raise duckdb.InterruptException(str(exc)) from None
            raise RemoteSqlError(str(exc)) from None
        finally:
            self._query_id = None
