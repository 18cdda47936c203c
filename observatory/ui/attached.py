"""The TUI attached to another process's runtime: Snapshots and reads through the owner's API.

:class:`AttachedDriver` answers what :class:`~observatory.ui.driver.RuntimeDriver` answers
(``run``/``stop``/``paused``, a read cursor, incident actions, exports), over HTTP: the live
panes from the owner's Snapshot stream, reads through a
:class:`~observatory.server.remote_cursor.RemoteCursor`, acknowledgements and notes by the
owner's API (its runtime's ledger writes them).

When the owner goes away the stream ends (at once for a dead process; within
``STREAM_READ_TIMEOUT`` for a silent one) and the driver says so, then tries again every
RETRY_SECONDS: it re-reads the endpoint file beside the database each time, since a new
owner may listen on another port, and the token (the token file persists across owners).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from observatory.server.client import TOKEN_ENV, OwnerClient, OwnerError
from observatory.server.owner_files import read_endpoint, read_token
from observatory.server.remote_cursor import RemoteCursor
from observatory.snapshot import Snapshot
from observatory.store.query import first_line
from observatory.ui.driver import IncidentState

if TYPE_CHECKING:
    import duckdb

    from observatory.config import Config

RETRY_SECONDS = 0.5
UNAUTHORIZED = "unauthorized: the owner refused the token (--token, OBSERVATORY_TOKEN)"


@dataclass(frozen=True)
class OwnerTarget:
    """Where to find the owner: ``url`` (``--attach``) and/or the database whose endpoint
    file names it (re-read at every attempt, and preferred: it follows a restarted owner).
    The token: ``token`` (``--token``), else ``$OBSERVATORY_TOKEN``, else the token file."""

    url: str | None = None
    db_path: str | None = None
    token: str | None = None

    def locate(self) -> tuple[str, str | None] | None:
        """(URL, token) of the owner to try now; None when nothing names one."""
        url = None
        if self.db_path is not None and not self.db_path.startswith(":memory:"):
            endpoint = read_endpoint(self.db_path)
            url = endpoint.url if endpoint is not None else None
        url = url or self.url
        if url is None:
            return None
        token = self.token or os.environ.get(TOKEN_ENV)
        if token is None and self.db_path is not None:
            token = read_token(self.db_path)
        return url.rstrip("/"), token

    def shown(self) -> str:
        """What the status line says it is attached to (never the token)."""
        return self.url or f"the owner of {self.db_path}"


@dataclass(frozen=True)
class Link:
    """The attachment's state, for the status line: connected to ``url`` or not (why)."""

    connected: bool
    url: str
    reason: str = ""


class AttachedDriver:
    """Snapshots from the owner's stream; reads and incident actions through its API."""

    runtime = None  # no runtime in this process
    # The config the viewer was started with (--config), for the dependency map and the
    # response plans; None: the viewer shows none (the owner's config is not sent).
    config: Config | None = None

    def __init__(
        self,
        target: OwnerTarget,
        publish: Callable[[Snapshot], None],
        on_link: Callable[[Link], None],
    ) -> None:
        self.target = target
        self.publish = publish
        self.on_link = on_link
        self.paused = False
        self.link: Link | None = None
        self._stop = threading.Event()
        self._owner: OwnerClient | None = None  # the connected owner, for reads and actions
        self._stream: OwnerClient | None = None
        self._lock = threading.Lock()

    @property
    def attached_to(self) -> str:
        link = self.link
        return link.url if link is not None and link.url else self.target.shown()

    # -- the stream ----------------------------------------------------------------------------

    def run(self) -> None:
        """Follow the owner's Snapshots until stop(); reconnect when it goes away."""
        while not self._stop.is_set():
            found = self.target.locate()
            if found is None:
                self._set_link(Link(False, self.target.shown(), "no owner is running"))
                self._stop.wait(RETRY_SECONDS)
                continue
            url, token = found
            reason = self._follow(url, token)
            if self._stop.is_set():
                break
            self._set_link(Link(False, url, reason))
            self._stop.wait(RETRY_SECONDS)
        self._drop()

    def _follow(self, url: str, token: str | None) -> str:
        """Publish the Snapshots of the owner at ``url`` while they come; why they stopped."""
        stream = OwnerClient(url, token)
        with self._lock:
            self._stream = stream
        try:
            for snap in stream.snapshots():
                if self._stop.is_set():
                    return "stopped"
                if self.link is None or not self.link.connected or self.link.url != url:
                    self._connected(url, token)
                if not self.paused:
                    self.publish(snap)
            return "the stream ended"
        except OwnerError as exc:
            if exc.status == 401:
                return UNAUTHORIZED
            return str(exc)
        except Exception as exc:  # a malformed document, a closed client: try again
            return first_line(exc)
        finally:
            with self._lock:
                self._stream = None
            stream.close()

    def _connected(self, url: str, token: str | None) -> None:
        with self._lock:
            old, self._owner = self._owner, OwnerClient(url, token)
        if old is not None:
            old.close()
        self._set_link(Link(True, url))

    def _set_link(self, link: Link) -> None:
        if link != self.link:
            self.link = link
            self.on_link(link)

    def _drop(self) -> None:
        with self._lock:
            owner, self._owner = self._owner, None
        if owner is not None:
            owner.close()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            try:
                stream.close()  # ends a read under way at once
            except Exception:
                pass  # it closes itself when the read times out

    # -- what the screens ask (worker threads) ---------------------------------------------------

    def owner(self) -> OwnerClient:
        """The connected owner's client; OwnerError while disconnected."""
        owner = self._owner
        if owner is None or self.link is None or not self.link.connected:
            raise OwnerError(f"disconnected from {self.attached_to}, retrying")
        return owner

    def read_cursor(self) -> RemoteCursor:
        return RemoteCursor(self.owner())

    def acknowledge(self, incident_id: str, ts: float) -> IncidentState:
        answer = self.owner().acknowledge(incident_id)
        return IncidentState(answer.id, answer.state)

    def add_note(self, incident_id: str, ts: float, text: str) -> IncidentState:
        answer = self.owner().note(incident_id, text)
        return IncidentState(answer.id, answer.state)

    def export_incident(self, incident_id: str, fmt: str) -> tuple[str, str]:
        """The owner's export; with a config, rendered here from reads through the owner's
        API so it carries the destination's response plan."""
        if self.config is None:
            return incident_id, self.owner().export(incident_id, fmt)
        from observatory.config import response_plan
        from observatory.incidents.export import Format, export_incident
        from observatory.incidents.store import load_incident

        with self.read_cursor() as remote:
            cur = cast("duckdb.DuckDBPyConnection", remote)  # answers what the reads call
            incident = load_incident(cur, incident_id)
            plan = response_plan(self.config, incident.destination)
            text = export_incident(cur, incident, cast("Format", fmt), plan)
        return incident.id, text

    def backup_destinations(self, snap: Snapshot | None) -> list[str] | None:
        """The owner's [backup] destinations, as its Snapshots count them (None: none)."""
        return list(snap.backup) if snap is not None and snap.backup else None

    def write_missing(self, destination: str, path: str, now: float) -> int:
        body, count = self.owner().missing(destination, None, now)
        Path(path).write_bytes(body)
        return count
