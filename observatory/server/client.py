"""A client of the owner's API: how CLI commands and attached viewers reach the running owner.

:func:`find_owner` finds the owner of a database through the endpoint file beside it (or takes
``--attach URL``) and checks it answers; the token comes from ``--token``,
``OBSERVATORY_TOKEN`` or the token file beside the database. The token travels in the
``Authorization`` header only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

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
    SqlParam,
    SqlRequest,
    StatusAnswer,
)
from observatory.server.owner_files import read_endpoint, read_token
from observatory.snapshot import Snapshot, snapshot_from_json

TOKEN_ENV = "OBSERVATORY_TOKEN"
TIMEOUT = httpx.Timeout(60.0, connect=2.0)
# The snapshot stream: the owner sends something at least every second (a heartbeat when
# there is no new Snapshot), so this much silence means the connection is dead.
STREAM_READ_TIMEOUT = 1.5


class OwnerError(Exception):
    """The owner refused or could not answer; ``exit_code`` follows the CLI contract."""

    def __init__(self, message: str, exit_code: int = 1, status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status


class OwnerClient:
    """Calls on one owner's API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OwnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OwnerError(
                f"the owner at {self.url} did not answer: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            self._raise_for(response)
        return response

    def _raise_for(self, response: httpx.Response) -> None:
        try:
            body = ErrorBody.model_validate_json(response.content)
        except ValueError:
            raise OwnerError(
                f"the owner at {self.url} answered HTTP {response.status_code}",
                status=response.status_code,
            ) from None
        raise OwnerError(body.error, body.exit_code, response.status_code)

    def healthy(self) -> bool:
        try:
            answer = self._http.get("/healthz", timeout=2.0)
            return (
                answer.status_code == 200
                and Health.model_validate_json(answer.content).status == "ok"
            )
        except (httpx.HTTPError, ValueError):
            return False

    def query(self, sql: str, fmt: str) -> bytes:
        body = QueryRequest.model_validate({"sql": sql, "format": fmt}).model_dump_json()
        return self._call("POST", "/api/query", content=body).content

    def incidents(self, fmt: str) -> str:
        return self._call("GET", "/api/incidents", params={"format": fmt}).text

    def export(self, incident_id: str, fmt: str) -> str:
        return self._call("GET", f"/api/incidents/{incident_id}", params={"format": fmt}).text

    def acknowledge(self, incident_id: str) -> IncidentAnswer:
        answer = self._call("POST", f"/api/incidents/{incident_id}/ack")
        return IncidentAnswer.model_validate_json(answer.content)

    def note(self, incident_id: str, text: str) -> IncidentAnswer:
        body = NoteRequest(text=text).model_dump_json()
        answer = self._call("POST", f"/api/incidents/{incident_id}/note", content=body)
        return IncidentAnswer.model_validate_json(answer.content)

    def _reconcile_params(
        self, destination: str | None, since: float | None, now: float
    ) -> dict[str, str]:
        params = {"now": repr(now)}
        if destination is not None:
            params["destination"] = destination
        if since is not None:
            params["since"] = repr(since)
        return params

    def reconcile(self, fmt: str, destination: str | None, since: float | None, now: float) -> str:
        params = self._reconcile_params(destination, since, now) | {"format": fmt}
        return self._call("GET", "/api/reconcile", params=params).text

    def missing(
        self, destination: str | None, since: float | None, now: float
    ) -> tuple[bytes, int]:
        params = self._reconcile_params(destination, since, now)
        response = self._call("GET", "/api/reconcile/missing", params=params)
        return response.content, int(response.headers.get("X-Count", "0"))

    def rejects(self, limit: int = 100) -> list[RejectRow]:
        answer = self._call("GET", "/api/rejects", params={"limit": limit})
        return [RejectRow.model_validate(row) for row in orjson.loads(answer.content)]

    def sql(
        self,
        sql: str,
        params: list[SqlParam],
        limit: int,
        offset: int = 0,
        query_id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/sql``: ``{"columns", "types", "rows", "more"}`` (rows as sent; see
        ``observatory.server.sqlwire.decode_rows``)."""
        req = SqlRequest(sql=sql, params=params, limit=limit, offset=offset, id=query_id)
        body = self._call("POST", "/api/sql", content=req.model_dump_json()).content
        result: dict[str, Any] = orjson.loads(body)
        return result

    def sql_arrow(self, sql: str, params: list[SqlParam], query_id: str | None = None) -> Any:
        """The whole result of ``sql`` as a pyarrow Table."""
        import pyarrow as pa

        req = SqlRequest(sql=sql, params=params, format="arrow", id=query_id)
        body = self._call("POST", "/api/sql", content=req.model_dump_json()).content
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()

    def cancel_sql(self, query_id: str) -> bool:
        answer = self._call("POST", f"/api/sql/{query_id}/cancel")
        return Cancelled.model_validate_json(answer.content).cancelled

    def snapshots(self, read_timeout: float = STREAM_READ_TIMEOUT) -> Iterator[Snapshot]:
        """The owner's Snapshots as they come (``GET /api/snapshots``), until the connection
        ends or stays silent for ``read_timeout`` s: then OwnerError."""
        timeout = httpx.Timeout(read_timeout, connect=2.0)
        try:
            with self._http.stream("GET", "/api/snapshots", timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response)
                data: list[str] = []
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif not line and data:
                        yield snapshot_from_json("\n".join(data))
                        data = []
        except httpx.HTTPError as exc:
            raise OwnerError(f"the owner at {self.url} went away: {type(exc).__name__}") from exc
        raise OwnerError(f"the owner at {self.url} ended the stream")

    def start_drill(self, destination: str | None, kind: str) -> DrillAnswer:
        body = DrillRequest.model_validate({"destination": destination, "kind": kind})
        answer = self._call("POST", "/api/drills", content=body.model_dump_json())
        return DrillAnswer.model_validate_json(answer.content)

    def drill(self, drill_id: str) -> DrillAnswer:
        return DrillAnswer.model_validate_json(self._call("GET", f"/api/drills/{drill_id}").content)

    def status(self) -> StatusAnswer:
        return StatusAnswer.model_validate_json(self._call("GET", "/api/status").content)


def find_owner(
    db_path: str, url: str | None = None, token: str | None = None
) -> OwnerClient | None:
    """A client of the owner of ``db_path`` (or of ``url``) that answers; None when no owner
    runs. The token: ``token``, else ``$OBSERVATORY_TOKEN``, else the file beside the DB."""
    if url is None:
        if db_path.startswith(":memory:"):
            return None
        endpoint = read_endpoint(db_path)
        if endpoint is None:
            return None
        url = endpoint.url
    token = token or os.environ.get(TOKEN_ENV) or read_token(db_path)
    client = OwnerClient(url, token)
    if not client.healthy():
        client.close()
        return None
    return client
