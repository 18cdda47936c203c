"""The owner's local API: what viewers and CLI commands ask of the process that holds the database.

aiohttp, on its own thread (:class:`~observatory.server.background.BackgroundServer`), loopback
by default (``[server] listen``). Every route but ``/healthz`` needs ``Authorization: Bearer
<token>`` (compared in constant time); the token is never logged or put in a URL. Reads run in
worker threads on cursors of their own; changes to incidents are submitted to the runtime's
thread, where the incident ledger writes them. Text answers are exactly what the matching
command prints on a stopped database, so an attached command's output is byte-identical.

Routes (JSON bodies are the pydantic models of ``observatory.server.models``):

- ``GET /healthz``: ``{"status": "ok"}``, no data, no token.
- ``POST /api/query`` (:class:`QueryRequest`): the result as ``observatory query`` writes it
  (table capped at 1,000 rows; csv/json/parquet whole, streamed from a file). One SELECT over
  the database's own tables (``observatory.store.sqlguard``).
- ``GET /api/incidents?format=table|json``; ``GET /api/incidents/{id}?format=md|json|csv|html``
  (the export); ``POST /api/incidents/{id}/ack``; ``POST /api/incidents/{id}/note``
  (:class:`NoteRequest`).
- ``GET /api/reconcile?format=&destination=&since=&now=``; ``GET /api/reconcile/missing?...``
  (the missing events as received, JSON lines).
- ``GET /api/rejects?limit=N``: the newest unparsed lines.
- ``GET /api/status``: per destination, what the dashboard shows, and the open incidents.
- ``GET /api/snapshots``: the dashboard's Snapshots as server-sent events, about four a
  second (``observatory.server.feed``), for attached viewers.
- ``POST /api/sql`` (:class:`SqlRequest`): one SELECT with ``?`` parameters, same guard as
  ``/api/query``; rows with their column names and DuckDB types (``observatory.server.sqlwire``)
  or the whole result as Arrow IPC: a viewer's read cursor. ``POST /api/sql/{id}/cancel``
  interrupts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from observatory.config.fields import split_host_port
from observatory.config.server import DEFAULT_LISTEN, is_loopback
from observatory.server.background import BackgroundServer
from observatory.server.feed import SnapshotFeed
from observatory.server.models import (
    Cancelled,
    DrillAnswer,
    DrillRequest,
    ErrorBody,
    Health,
    IncidentAnswer,
    NoteRequest,
    QueryRequest,
    RejectRow,
    SqlRequest,
    StatusAnswer,
)
from observatory.server.owner_files import load_or_create_token, remove_endpoint, write_endpoint
from observatory.util.jsontext import json_bytes

if TYPE_CHECKING:
    import duckdb

    from observatory.runtime import Runtime

MAX_BODY = 64 * 1024  # request bodies (SQL text, notes)
COMMAND_TIMEOUT = 10.0  # s to wait for the runtime's thread to run an incident change
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, exit_code: int = 1) -> web.Response:
    body = ErrorBody(error=message, exit_code=exit_code).model_dump_json()
    return web.Response(status=status, text=body, content_type="application/json")


# Every route: (method, path, ApiService method). All but /healthz need the token.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/healthz", "healthz"),
    ("POST", "/api/query", "query"),
    ("GET", "/api/incidents", "incidents"),
    ("GET", "/api/incidents/{id}", "export"),
    ("POST", "/api/incidents/{id}/ack", "acknowledge"),
    ("POST", "/api/incidents/{id}/note", "note"),
    ("GET", "/api/reconcile", "reconcile"),
    ("GET", "/api/reconcile/missing", "missing"),
    ("GET", "/api/rejects", "rejects"),
    ("GET", "/api/status", "status"),
    ("GET", "/api/snapshots", "snapshots"),
    ("POST", "/api/sql", "sql"),
    ("POST", "/api/sql/{id}/cancel", "cancel_sql"),
    ("POST", "/api/drills", "start_drill"),
    ("GET", "/api/drills/{id}", "drill"),
)


class ApiService:
    """The API of one runtime: serving from ``start()`` until ``stop()``."""

    def __init__(self, runtime: Runtime, token: str, host: str, port: int) -> None:
        self.runtime = runtime
        self._token = token.encode()
        self.db_path = runtime.store.path
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._auth])
        self.feed = SnapshotFeed(self._command)
        for method, path, name in ROUTES:
            app.router.add_route(method, path, getattr(self, name))
        app.on_shutdown.append(lambda _app: self.feed.close())
        self._running: dict[str, duckdb.DuckDBPyConnection] = {}  # /api/sql by id
        self._running_lock = threading.Lock()
        self.server = BackgroundServer(app, host, port)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()
        if not self.db_path.startswith(":memory:"):
            write_endpoint(self.db_path, self.url)

    def stop(self) -> None:
        if not self.db_path.startswith(":memory:"):
            remove_endpoint(self.db_path)
        self.server.stop()

    # -- plumbing ------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._token):
            return _error(401, "unauthorized: a valid bearer token is required")
        return await handler(request)

    async def _read(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``work(cursor)`` in a worker thread, on a cursor of its own."""

        def run() -> T:
            cursor = self.runtime.store.cursor()
            try:
                return work(cursor)
            finally:
                cursor.close()

        return await asyncio.get_running_loop().run_in_executor(None, run)

    async def _command(self, command: Callable[[Runtime], T]) -> T:
        """``command(runtime)`` on the runtime's thread (its next poll)."""
        future = self.runtime.submit(command)
        return await asyncio.wait_for(asyncio.wrap_future(future), COMMAND_TIMEOUT)

    # -- routes ----------------------------------------------------------------------------------

    async def snapshots(self, request: web.Request) -> web.StreamResponse:
        return await self.feed.handle(request)

    async def healthz(self, request: web.Request) -> web.Response:
        return _model(Health())

    async def query(self, request: web.Request) -> web.StreamResponse:
        from observatory.store.query import QueryError, query_on
        from observatory.store.sqlguard import api_statement

        try:
            req = QueryRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return _error(400, f"bad request: {exc.errors()[0]['msg']}", 2)
        fd, target = tempfile.mkstemp(prefix="observatory-api-", suffix="." + req.format)
        os.close(fd)

        def run(con: duckdb.DuckDBPyConnection) -> int:
            with open(target, "w", encoding="utf-8") as out:
                return query_on(con, req.sql, req.format, None, out, guard=api_statement)

        def run_to_file(con: duckdb.DuckDBPyConnection) -> int:
            return query_on(con, req.sql, req.format, target, io.StringIO(), guard=api_statement)

        try:
            try:
                await self._read(run_to_file if req.format == "parquet" else run)
            except QueryError as exc:
                return _error(400, str(exc), exc.exit_code)
            response = web.StreamResponse(headers={"Content-Type": _content_type(req.format)})
            await response.prepare(request)
            with open(target, "rb") as fh:
                while chunk := fh.read(1 << 16):
                    await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            with contextlib.suppress(OSError):
                os.unlink(target)

    async def sql(self, request: web.Request) -> web.Response:
        try:
            req = SqlRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return _error(400, f"bad request: {exc.errors()[0]['msg']}", 2)
        try:
            body = await self._read(lambda con: self._run_sql(con, req))
        except SqlInterrupted:
            return _error(409, "cancelled")
        except _SqlFailed as exc:
            return _error(400, str(exc), exc.exit_code)
        if req.format == "arrow":
            return web.Response(body=body, content_type="application/vnd.apache.arrow.stream")
        return web.Response(body=body, content_type="application/json")

    def _run_sql(self, con: duckdb.DuckDBPyConnection, req: SqlRequest) -> bytes:
        """``req`` on ``con`` (a worker thread): the encoded answer."""
        import duckdb

        from observatory.server.sqlwire import encode_result
        from observatory.store.query import QueryError, first_line
        from observatory.store.sqlguard import api_statement

        if req.id is not None:
            with self._running_lock:
                self._running[req.id] = con
        try:
            sql = api_statement(con, req.sql)
            if req.format == "arrow":
                return _arrow_ipc(con.sql(sql, params=req.params or None).to_arrow_table())
            con.execute(sql, req.params)
            columns = [d[0] for d in con.description or []]
            types = [str(d[1]) for d in con.description or []]
            if req.offset:
                con.fetchmany(req.offset)
            rows = con.fetchmany(req.limit + 1)
            return encode_result(columns, types, rows[: req.limit], len(rows) > req.limit)
        except QueryError as exc:
            raise _SqlFailed(str(exc), exc.exit_code) from exc
        except duckdb.InterruptException as exc:
            raise SqlInterrupted() from exc
        except duckdb.Error as exc:
            raise _SqlFailed(first_line(exc), 1) from exc
        finally:
            if req.id is not None:
                with self._running_lock:
                    self._running.pop(req.id, None)

    async def cancel_sql(self, request: web.Request) -> web.Response:
        with self._running_lock:
            con = self._running.get(request.match_info["id"])
        if con is not None:
            con.interrupt()
        return _model(Cancelled(cancelled=con is not None))

    async def incidents(self, request: web.Request) -> web.Response:
        from observatory.incidents.export import incidents_output
        from observatory.incidents.store import list_incidents

        fmt = request.query.get("format", "table")
        if fmt not in ("table", "json"):
            return _error(400, "format: one of table, json", 2)
        text = await self._read(lambda con: incidents_output(list_incidents(con), fmt))
        return web.Response(text=text, content_type="text/plain")

    async def export(self, request: web.Request) -> web.Response:
        from observatory.incidents.export import FORMATS, Format, export_incident
        from observatory.incidents.store import IncidentLookupError, load_incident

        asked = request.query.get("format", "json")
        if asked not in FORMATS:
            return _error(400, f"format: one of {', '.join(FORMATS)}", 2)
        fmt = cast(Format, asked)
        from observatory.config import response_plan

        inc_id = request.match_info["id"]
        config = self.runtime.config

        def render(con: duckdb.DuckDBPyConnection) -> str:
            incident = load_incident(con, inc_id)
            return export_incident(con, incident, fmt, response_plan(config, incident.destination))

        try:
            text = await self._read(render)
        except IncidentLookupError as exc:
            return _error(404, str(exc))
        return web.Response(text=text, content_type=_content_type(fmt))

    async def acknowledge(self, request: web.Request) -> web.Response:
        inc_id = request.match_info["id"]
        return await self._change(lambda rt: rt.acknowledge(inc_id, time.time()))

    async def note(self, request: web.Request) -> web.Response:
        try:
            req = NoteRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return _error(400, f"bad request: {exc.errors()[0]['msg']}", 2)
        inc_id = request.match_info["id"]
        return await self._change(lambda rt: rt.note(inc_id, time.time(), req.text))

    async def _change(self, command: Callable[[Runtime], Any]) -> web.Response:
        from observatory.incidents.export.formats import incident_json

        try:
            incident = await self._command(command)
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "incident not found")
        except ValueError as exc:
            return _error(400, str(exc), 2)
        return _model(IncidentAnswer.model_validate_json(_dumps(incident_json(incident))))

    async def start_drill(self, request: web.Request) -> web.Response:
        try:
            req = DrillRequest.model_validate_json(await request.read() or b"{}")
        except ValidationError as exc:
            return _error(400, f"bad request: {exc.errors()[0]['msg']}", 2)
        try:
            drill_id = await self._command(lambda rt: rt.start_drill(req.destination, req.kind))
        except ValueError as exc:
            return _error(409, str(exc), 1)
        return _model(DrillAnswer(id=drill_id, state="running"))

    async def drill(self, request: web.Request) -> web.Response:
        drill_id = request.match_info["id"]
        try:
            report = await self._command(lambda rt: rt.drill_report(drill_id))
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "no such drill")
        if report is None:
            return _model(DrillAnswer(id=drill_id, state="running"))
        body = orjson.loads(json_bytes(report.as_dict()))
        return _model(DrillAnswer(id=drill_id, state="done", report=body))

    def _reconcile_args(self, request: web.Request) -> tuple[str | None, float | None, float]:
        q = request.query
        since = float(q["since"]) if q.get("since") else None
        now = float(q["now"]) if q.get("now") else time.time()
        return q.get("destination") or None, since, now

    async def reconcile(self, request: web.Request) -> web.Response:
        from observatory.backup.reconcile import reconcile, reconcile_output

        backup = self.runtime.config.backup
        if backup is None:
            return _error(400, "backup: not configured (add a [backup] table to the config)", 2)
        fmt = request.query.get("format", "table")
        try:
            destination, since, now = self._reconcile_args(request)
        except ValueError:
            return _error(400, "since and now are epoch seconds", 2)
        rows = await self._read(lambda con: reconcile(con, backup, destination, since, now))
        return web.Response(text=reconcile_output(rows, fmt), content_type="text/plain")

    async def missing(self, request: web.Request) -> web.StreamResponse:
        from observatory.backup.reconcile import write_missing

        backup = self.runtime.config.backup
        if backup is None:
            return _error(400, "backup: not configured (add a [backup] table to the config)", 2)
        try:
            destination, since, now = self._reconcile_args(request)
        except ValueError:
            return _error(400, "since and now are epoch seconds", 2)
        fd, target = tempfile.mkstemp(prefix="observatory-missing-", suffix=".jsonl")
        os.close(fd)
        try:
            written = await self._read(
                lambda con: write_missing(con, backup, target, destination, since, now)
            )
            with open(target, "rb") as fh:
                body = fh.read()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(target)
        return web.Response(
            body=body, content_type="application/x-ndjson", headers={"X-Count": str(written)}
        )

    async def rejects(self, request: web.Request) -> web.Response:
        try:
            limit = max(1, min(int(request.query.get("limit", "100")), 10_000))
        except ValueError:
            return _error(400, "limit: a number", 2)
        rows = await self._read(
            lambda con: con.execute(
                "SELECT source, file, line_no, reason, line, ingested_at::VARCHAR FROM rejects "
                "ORDER BY ingested_at DESC, file, line_no DESC LIMIT ?",
                [limit],
            ).fetchall()
        )
        keys = ("source", "file", "line_no", "reason", "line", "ingested_at")
        answer = [RejectRow.model_validate(dict(zip(keys, r, strict=True))) for r in rows]
        return web.json_response(text="[" + ",".join(a.model_dump_json() for a in answer) + "]")

    async def status(self, request: web.Request) -> web.Response:
        def snapshot(rt: Runtime) -> dict[str, Any]:
            return {
                "live": rt.live,
                "last_event_sec": rt.last_event_sec,
                "destinations": rt.status(),
                "open_incidents": [i.json_line("update") for i in rt.engine.incidents()],
            }

        answer = StatusAnswer.model_validate_json(_dumps(await self._command(snapshot)))
        return _model(answer)


class SqlInterrupted(Exception):
    """An /api/sql query was cancelled."""


class _SqlFailed(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _arrow_ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _model(answer: BaseModel) -> web.Response:
    return web.Response(text=answer.model_dump_json(), content_type="application/json")


def _dumps(value: Any) -> str:
    return json_bytes(value).decode()


def _content_type(fmt: str) -> str:
    return {
        "json": "application/json",
        "html": "text/html",
        "parquet": "application/vnd.apache.parquet",
        "csv": "text/csv",
        "md": "text/markdown",
    }.get(fmt, "text/plain")


def start_api(runtime: Runtime) -> ApiService | None:
    """Serve ``runtime``'s API as its config says (None: disabled, or an in-memory database,
    which nobody could attach to). The default port taken by another owner: any free port
    (the endpoint file beside the database says which). Messages go to stderr."""
    cfg = runtime.config.server
    db_path = runtime.store.path
    if not cfg.enabled or db_path.startswith(":memory:"):
        return None
    host, port = split_host_port(cfg.listen)
    token = cfg.token.get_secret_value() if cfg.token is not None else None
    service = ApiService(runtime, token or load_or_create_token(db_path), host, port)
    try:
        service.start()
    except OSError as exc:
        if cfg.listen != DEFAULT_LISTEN:
            raise
        service = ApiService(runtime, token or load_or_create_token(db_path), host, 0)
        service.start()
        print(
            f"observatory: {cfg.listen} is taken ({exc.strerror}); API on {service.url}",
            file=sys.stderr,
        )
    if not is_loopback(host):
        print(
            f"observatory: the API listens on {cfg.listen}, beyond this machine "
            "(token from the config)",
            file=sys.stderr,
        )
    return service
