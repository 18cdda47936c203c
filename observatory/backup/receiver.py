"""The backup webhook receiver: a loopback HTTP endpoint a CDP's webhook destination POSTs to.

``POST <path>`` with one Segment-style event (``{"type":"track","messageId":...}``),
``{"batch": [...]}``, or mParticle's Webhook batch (``{"events": [...], "mpid": ...}``: see
:mod:`observatory.backup.mparticle`). A request is authentic when it carries
``X-Signature`` = hex HMAC-SHA1 of the raw body keyed by ``secret`` (Segment), or an
``Authorization`` header equal to ``authorization`` (mParticle does not sign; both compared in
constant time). Answers: 200 ``{"accepted": N}`` once every event is durable in the journal
(``"rejected": M`` too when events of an mParticle batch were skipped); 401 missing or bad
signature and Authorization (before the body is read when it cannot pass); 413 body over
``max_body`` (judged on Content-Length, before reading); 400 malformed JSON or an event without
``messageId``; 411 no Content-Length;
404 another path; 405 another method; 503 when the journal cannot be written; 408 a body not
received within ``READ_TIMEOUT``. With ``Expect: 100-continue`` a refusal comes before the
body is sent. An authentic body that is refused (400) and the events an mParticle batch skips
are counted and kept as rejects (``rejects`` table, source ``backup``) at the next fold;
unauthenticated requests are only counted.

The server is aiohttp on its own event loop and thread
(:class:`~observatory.server.background.BackgroundServer`); ``stop`` waits up to
``DRAIN_TIMEOUT`` for the requests being answered. Nothing about a request is logged.

:class:`BackupService` runs the receiver with its journal and folds the journal into
``backup_events`` (at start-up, every second, and at stop). ``Runtime.start_live`` starts it
when the config has ``[backup]``; ``python -m observatory.backup.receiver --config F`` runs
it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from observatory.backup import mparticle
from observatory.backup.journal import Journal, fold_journal, journal_path
from observatory.server.background import BackgroundServer

if TYPE_CHECKING:
    import duckdb

    from observatory.config import BackupConfig, Config
    from observatory.store.db import Store

__all__ = [
    "BackupReceiver",
    "BackupService",
    "BadRequest",
    "journal_lines",
    "parse_body",
    "parse_events",
    "sign",
    "start_backup",
]

FOLD_EVERY = 1.0
# How long stop() waits for requests already being answered.
DRAIN_TIMEOUT = 5.0
# Seconds a client has to send a body it announced, and an idle keep-alive connection lives.
READ_TIMEOUT = 30.0
IDLE_TIMEOUT = 30.0
# Threads appending to the journal at once (their fsyncs are shared; more requests wait).
JOURNAL_WORKERS = 16
# Rejects waiting for the next fold into `rejects` (beyond this, only counted); their text cut.
MAX_PENDING_REJECTS = 1000
REJECT_TEXT = 1024
REJECT_SOURCE = "backup"


class BadRequest(ValueError):
    """The body is not one event or a batch of events with message ids (HTTP 400)."""


def sign(secret: str | bytes, body: bytes) -> str:
    """Hex HMAC-SHA1 of ``body`` keyed by ``secret`` (Segment's ``X-Signature``)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha1).hexdigest()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_LONG_NUMBER = re.compile(rb"\d{17}")

Event = tuple[str, str | None, str]  # message id, timestamp as sent, raw JSON text
Skipped = mparticle.Skipped  # position in the batch (1-based), reason, the event's JSON text


def parse_events(body: bytes) -> list[Event]:
    """The events of a request body, each with its raw JSON text; raises :class:`BadRequest`
    (events an mParticle batch skips are left out: :func:`parse_body` has them)."""
    return parse_body(body)[0]


def parse_body(body: bytes) -> tuple[list[Event], list[Skipped]]:
    """The events of a request body, each with its raw JSON text, and the events of an
    mParticle batch that were skipped; raises :class:`BadRequest`.

    A single event is kept byte for byte (line breaks, which JSON only allows as whitespace,
    become spaces so it fits on one line); events of a batch are re-serialised compactly,
    keys and values unchanged.
    """
    dumps: Any = orjson.dumps
    try:
        if _LONG_NUMBER.search(body):
            raise orjson.JSONDecodeError("", "", 0)
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson turns integers beyond 64 bits into floats; the standard library keeps them.
        try:
            doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed JSON") from None

        def dumps(obj: Any) -> bytes:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    if not isinstance(doc, dict):
        raise BadRequest('expected a JSON object (an event, {"batch": [...]} or {"events": [...]})')
    if mparticle.is_batch(doc):
        try:
            return mparticle.split_batch(doc, dumps)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    if "batch" in doc and "messageId" not in doc:
        batch = doc["batch"]
        if not isinstance(batch, list):
            raise BadRequest("batch must be a list of events")
        items: list[tuple[Any, str | None]] = [(e, None) for e in batch]
    else:
        whole = body.decode("utf-8").strip().replace("\r", " ").replace("\n", " ")
        items = [(doc, whole)]
    events: list[Event] = []
    for i, (event, text) in enumerate(items):
        where = f"batch[{i}]" if text is None else "event"
        if not isinstance(event, dict):
            raise BadRequest(f"{where}: expected a JSON object")
        mid = event.get("messageId")
        if not isinstance(mid, str) or not mid:
            raise BadRequest(f"{where}: missing messageId")
        ts = event.get("timestamp")
        raw = text if text is not None else dumps(event).decode()
        events.append((mid, ts if isinstance(ts, str) else None, raw))
    return events, []


def journal_lines(events: Sequence[Event], received_at: float, destinations: list[str]) -> bytes:
    """The journal lines recording ``events`` (see :mod:`observatory.backup.journal`)."""
    return b"".join(
        orjson.dumps({"id": mid, "at": received_at, "ts": ts, "d": destinations, "raw": raw})
        + b"\n"
        for mid, ts, raw in events
    )


class BackupReceiver:
    """The HTTP endpoint: an aiohttp application served by a
    :class:`~observatory.server.background.BackgroundServer`, appending to ``journal``.

    Requests are answered on the server's event loop; each journal append (a write and an
    fsync, shared by the appends in flight: see :class:`~observatory.backup.journal.Journal`)
    runs in the server's thread pool, so the loop keeps reading other requests meanwhile.
    """

    def __init__(
        self, backup: BackupConfig, journal: Journal, address: tuple[str, int] | None = None
    ) -> None:
        self.backup = backup
        self.journal = journal
        secret = backup.secret_value()
        self.secret = secret.encode() if secret is not None else None
        authorization = backup.authorization_value()
        self.authorization = authorization.encode() if authorization is not None else None
        # Counted on the server's loop, read by anyone (ints: a torn read is impossible).
        self.unauthorized = 0  # 401s
        self.rejected_requests = 0  # authentic bodies answered 400
        self.rejected_events = 0  # events skipped in mParticle batches that were stored
        # (file, line number, reason, text) for the `rejects` table, taken by the next fold
        self.pending_rejects: deque[tuple[str, int, str, str]] = deque(maxlen=MAX_PENDING_REJECTS)
        host, port = address if address is not None else (backup.host, backup.port)
        app = web.Application(client_max_size=max(backup.max_body, 1))
        app.router.add_route("*", "/{tail:.*}", self._handle, expect_handler=self._expect)
        self.http = BackgroundServer(
            app,
            host,
            port,
            name="backup-receiver",
            backlog=256,
            workers=JOURNAL_WORKERS,
            keepalive_timeout=IDLE_TIMEOUT,
            lingering_time=0,  # a refused body is not read: the connection closes instead
            auto_decompress=False,  # the signature is over the bytes as sent
        )

    @property
    def url(self) -> str:
        """Where the CDP posts, e.g. ``http://127.0.0.1:8765/webhook``."""
        return self.http.url + self.backup.path

    def start(self) -> BackupReceiver:
        """Listen; raises ``OSError`` if the address cannot be bound."""
        self.http.start()
        return self

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop listening; requests being answered get ``timeout`` seconds (idempotent)."""
        self.http.stop(timeout)

    # ------------------------------------------------------------------ requests

    def _refusal(self, request: web.BaseRequest) -> web.Response | None:
        """The answer to a request refused before its body is read, if it is."""
        if request.method != "POST":
            return _reply(405, {"error": "use POST"}, close=True)
        if urlsplit(request.raw_path).path != self.backup.path:
            return _reply(404, {"error": "not found"}, close=True)
        headers = request.headers
        if headers.get("Transfer-Encoding"):
            return _reply(411, {"error": "send a Content-Length (no chunked bodies)"}, close=True)
        length_text = headers.get("Content-Length")
        if length_text is None:
            return _reply(411, {"error": "Content-Length required"}, close=True)
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            return _reply(400, {"error": "bad Content-Length"}, close=True)
        if length > self.backup.max_body:
            return _reply(413, {"error": f"body over {self.backup.max_body} bytes"}, close=True)
        if not self._authorized_header(request) and (
            self.secret is None or not headers.get("X-Signature")
        ):
            self.unauthorized += 1  # nothing the body could change: not read
            return _reply(401, {"error": _AUTH_ERROR}, close=True)
        return None

    def _authorized_header(self, request: web.BaseRequest) -> bool:
        """Does the ``Authorization`` header equal the configured one (constant time)?"""
        if self.authorization is None:
            return False
        given = request.headers.get("Authorization")
        if given is None:
            return False
        return hmac.compare_digest(self.authorization, given.encode("utf-8", "replace"))

    def _authentic(self, request: web.BaseRequest, body: bytes) -> bool:
        """Authorization header, or else a good ``X-Signature`` of ``body``."""
        if self._authorized_header(request):
            return True
        if self.secret is None:
            return False
        given = (request.headers.get("X-Signature") or "").strip().lower()
        expected = sign(self.secret, body).encode()
        return bool(given) and hmac.compare_digest(expected, given.encode("utf-8", "replace"))

    def _reject(self, line_no: int, reason: str, text: str) -> None:
        self.pending_rejects.append((self.backup.path, line_no, reason, text[:REJECT_TEXT]))

    def take_rejects(self) -> list[tuple[str, int, str, str]]:
        """The rejects noted since the last call (for the fold to store)."""
        out: list[tuple[str, int, str, str]] = []
        while True:
            try:
                out.append(self.pending_rejects.popleft())
            except IndexError:
                return out

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: refuse before the client sends the body, or invite it."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _reply(417, {"error": "unknown Expect"}, close=True)
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer proper has not started
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                body = await request.read()  # at most max_body: Content-Length was checked
        except TimeoutError:
            return _reply(408, {"error": "body not received in time"}, close=True)
        except ConnectionError:
            return _reply(400, {"error": "incomplete body"}, close=True)  # nobody to read it
        if not self._authentic(request, body):
            self.unauthorized += 1
            return _reply(401, {"error": _AUTH_ERROR})
        try:
            events, skipped = parse_body(body)
        except BadRequest as exc:
            self.rejected_requests += 1
            self._reject(0, f"backup request: {exc}", body.decode("utf-8", "replace"))
            return _reply(400, {"error": str(exc)})
        if events:
            data = journal_lines(events, time.time(), self.backup.destinations)
            try:
                # Durable before the answer; the wait does not hold the loop.
                await asyncio.get_running_loop().run_in_executor(None, self.journal.append, data)
            except OSError:
                return _reply(503, {"error": "cannot store the events; retry later"}, close=True)
        if not skipped:
            return _reply(200, {"accepted": len(events)})
        # Counted once the good ones are stored: a 503 above is retried, and recounted.
        self.rejected_events += len(skipped)
        for line_no, reason, text in skipped:
            self._reject(line_no, f"mParticle batch: {reason}", text)
        return _reply(200, {"accepted": len(events), "rejected": len(skipped)})


_AUTH_ERROR = "missing or bad X-Signature or Authorization"


def _reply(status: int, payload: dict[str, Any], close: bool = False) -> web.Response:
    response = web.Response(
        status=status,
        body=orjson.dumps(payload),
        content_type="application/json",
        headers={"Server": "observatory-backup"},
    )
    if close:
        response.force_close()  # "Connection: close", and the body is not read
    return response


class BackupService:
    """The receiver, its journal, and the folding of the journal into ``backup_events``.

    ``con`` is a DuckDB connection (or cursor) this service alone uses, from its own thread.
    """

    def __init__(
        self,
        backup: BackupConfig,
        con: duckdb.DuckDBPyConnection,
        journal: Path | str,
        fold_every: float = FOLD_EVERY,
    ) -> None:
        self.backup = backup
        self.con = con
        self.journal_path = Path(journal)
        self.fold_every = fold_every
        self.journal: Journal | None = None
        self.server: BackupReceiver | None = None
        self.folded = 0
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._fold_lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where the receiver listens, e.g. ``http://127.0.0.1:8765/webhook``."""
        if self.server is None:
            raise RuntimeError("the backup receiver is not running")
        return self.server.url

    def start(self) -> None:
        """Fold what a previous run left in the journal, then listen."""
        from observatory.config import ConfigError

        self.folded += fold_journal(self.con, self.journal_path, truncate=True)
        self.journal = Journal(self.journal_path)
        try:
            self.server = BackupReceiver(self.backup, self.journal).start()
        except OSError as exc:
            self.journal.close()
            raise ConfigError(
                "backup.listen",
                f"cannot listen on {self.backup.listen}: {exc.strerror or exc}",
            ) from None
        fold = threading.Thread(target=self._fold_loop, name="backup-fold", daemon=True)
        self._threads = [fold]
        fold.start()

    def fold(self) -> int:
        """Fold new journal lines into ``backup_events`` now, and store the receiver's
        rejects; the number of rows added to ``backup_events``."""
        with self._fold_lock:
            added = fold_journal(self.con, self.journal_path)
            self.folded += added
            if self.server is not None:
                rejects = self.server.take_rejects()
                if rejects:
                    self.con.executemany(
                        "INSERT INTO rejects (ingested_at, source, file, line_no, reason, line) "
                        "VALUES (now(), ?, ?, ?, ?, ?)",
                        [[REJECT_SOURCE, *r] for r in rejects],
                    )
            return added

    def _fold_loop(self) -> None:
        while not self._stop.wait(self.fold_every):
            try:
                self.fold()
            except Exception:  # retried next second; the journal keeps everything
                pass

    def stop(self) -> None:
        """Stop listening, wait for requests in flight, fold the rest; safe to call twice."""
        self._stop.set()
        if self.server is not None:
            self.server.stop(DRAIN_TIMEOUT)  # then no append is under way
        for t in self._threads:
            t.join(timeout=DRAIN_TIMEOUT)
        self._threads = []
        if self.journal is not None:
            self.journal.close()
            self.journal = None
            try:
                self.fold()
            except Exception:  # folded at the next start instead
                pass
        self.server = None


def start_backup(config: Config, store: Store) -> BackupService | None:
    """Start the backup receiver of ``config`` on ``store``'s database (None without
    ``[backup]``). It uses its own cursor, so it never touches the runtime's connection."""
    if config.backup is None:
        return None
    service = BackupService(
        config.backup, store.cursor(), journal_path(store.path, config.base_dir)
    )
    try:
        service.start()
    except BaseException:
        service.con.close()
        raise
    return service


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m observatory.backup.receiver --config F [--db F]``: the receiver alone.

    Prints ``{"type":"backup","url":...}`` on stdout once listening; stops on SIGTERM/SIGINT.
    """
    import signal

    from observatory.config import ConfigError, load_config
    from observatory.store.db import Store

    parser = argparse.ArgumentParser(prog="python -m observatory.backup.receiver")
    parser.add_argument("--config", default="config.toml")
    parser.add_argument("--db")
    parser.add_argument(
        "--fold-every", type=float, default=FOLD_EVERY, help="Seconds between journal folds."
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if config.backup is None:
            raise ConfigError("backup", "not configured (add a [backup] table)")
        store = Store.for_config(config, args.db, only=set())
    except ConfigError as exc:
        print(f"observatory: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    service = BackupService(
        config.backup, store.con, journal_path(store.path, config.base_dir), args.fold_every
    )
    try:
        try:
            service.start()
        except ConfigError as exc:
            print(f"observatory: {exc}", file=sys.stderr)
            return 2
        sys.stdout.write(
            orjson.dumps({"type": "backup", "url": service.url, "folded": service.folded}).decode()
            + "\n"
        )
        sys.stdout.flush()
        while not stopping.wait(0.2):
            pass
    finally:
        service.stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
