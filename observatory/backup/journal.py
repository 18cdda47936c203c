"""The backup receiver's append-only journal, and its folding into ``backup_events``.

An accepted webhook request is appended to the journal (one JSON line per event) and fsynced
before the 2xx goes out; concurrent requests share one fsync (group commit). The journal is
folded into DuckDB's ``backup_events`` by byte offset, the new offset committed in the same
transaction as the rows, and each fold skips message ids already present, so a crash at any
instant neither loses an acknowledged event nor stores one twice.

Journal line: ``{"id": messageId, "at": received epoch s, "ts": event timestamp or null,
"d": [expected destinations], "raw": the event JSON text as received}``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pyarrow as pa

__all__ = ["Journal", "fold_journal", "journal_path"]

# Fold at most this much journal per transaction (bounds memory at start-up after a long run).
FOLD_CHUNK = 64 * 1024 * 1024

_JOURNAL_SHAPE = (
    '{"id": "VARCHAR", "at": "DOUBLE", "ts": "VARCHAR", "d": "VARCHAR[]", "raw": "VARCHAR"}'
)


def journal_path(db_path: str, base_dir: Path | str) -> Path:
    """The journal next to the database file (in ``base_dir`` for an in-memory database)."""
    if db_path.startswith(":memory:"):
        return Path(base_dir) / "observatory-backup.journal"
    return Path(db_path + ".backup.journal")


class Journal:
    """Append-only, fsynced JSON-lines file; :meth:`append` returns once the data is durable.

    Writes are serialised (one ``write`` per request, so a request's lines are contiguous);
    whoever finds no fsync in flight syncs for every write completed so far, the others wait
    for it (group commit: N concurrent requests cost about one fsync, not N).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if created:
            _fsync_dir(self.path.parent)
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._written = 0
        self._synced = 0
        self._syncing = False

    def append(self, data: bytes) -> None:
        """Append ``data`` (whole lines) and return once it is on disk."""
        with self._write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            self._written += 1
            seq = self._written
        with self._cond:
            while self._synced < seq:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target = self._written  # every write up to here has completed
                self._cond.release()
                try:
                    os.fsync(self.fd)
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                self._synced = max(self._synced, target)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fold_journal(con: duckdb.DuckDBPyConnection, path: Path | str, truncate: bool = False) -> int:
    """Insert the journal's complete lines not folded yet into ``backup_events``; return how
    many rows were added.

    With ``truncate`` (only when nothing is appending, i.e. before the receiver starts), the
    journal is emptied afterwards, which also drops a torn last line left by a crash (its
    request was never acknowledged).
    """
    path = Path(path)
    key = str(path.resolve())
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    rows = con.execute('SELECT "offset" FROM backup_journal WHERE path = ?', [key]).fetchall()
    offset = int(rows[0][0]) if rows else 0
    if offset > size:  # emptied after its last fold (see below): start again from 0
        offset = 0
    added = 0
    if size > offset:
        with path.open("rb") as fh:
            fh.seek(offset)
            while True:
                chunk = fh.read(FOLD_CHUNK)
                if not chunk:
                    break
                end = chunk.rfind(b"\n") + 1
                if end == 0:
                    break  # a partial line: not acknowledged yet (or torn)
                if end < len(chunk):
                    fh.seek(offset + end)
                added += _fold_lines(con, key, chunk[:end], offset + end)
                offset += end
    if truncate and size > 0:
        os.truncate(path, 0)
        _set_offset(con, key, 0)
    return added


def _set_offset(con: duckdb.DuckDBPyConnection, key: str, offset: int) -> None:
    con.execute(
        'INSERT OR REPLACE INTO backup_journal (path, "offset", updated_at) VALUES (?, ?, now())',
        [key, offset],
    ).fetchall()


def _fold_lines(con: duckdb.DuckDBPyConnection, key: str, data: bytes, end: int) -> int:
    lines = pa.table({"line": pa.array(data.decode("utf-8", "replace").split("\n")[:-1])})
    name = f"backup_journal_lines_{threading.get_ident()}"
    con.register(name, lines)
    try:
        con.execute("BEGIN").fetchall()
        try:
            con.execute(
                f"""
                INSERT INTO backup_events
                SELECT j.id, to_timestamp(j."at"), try_cast(j.ts AS TIMESTAMPTZ), j.d, j.raw
                FROM (
                    SELECT r.id AS id, r."at" AS "at", r.ts AS ts, r.d AS d, r.raw AS raw,
                           row_number() OVER (PARTITION BY r.id ORDER BY r."at") AS rn
                    FROM (
                        SELECT json_transform(line, '{_JOURNAL_SHAPE}') AS r
                        FROM {name}
                        WHERE json_valid(line)
                    )
                    WHERE r.id IS NOT NULL AND r."at" IS NOT NULL AND r.raw IS NOT NULL
                ) AS j
                WHERE j.rn = 1
                  AND NOT EXISTS (
                      SELECT 1 FROM backup_events b WHERE b.message_id = j.id
                  )
                """
            )
            rows = con.fetchall()
            added = int(rows[0][0]) if rows else 0
            _set_offset(con, key, end)
            con.execute("COMMIT").fetchall()
        except BaseException:
            con.execute("ROLLBACK").fetchall()
            raise
    finally:
        con.unregister(name)
    return added
