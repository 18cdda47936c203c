"""The DuckDB store: one write connection, batched appends, offsets in the same transaction.

Every block of lines is appended with the file position it ends at inside one transaction,
so after a crash at any instant the database holds each line exactly once: either the block
and its position were committed, or neither was and the block is read again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from observatory.lines import split_lines
from observatory.normalize import SourceSQL, compile_source
from observatory.schema import DDL
from observatory.tail import Block, FileState

if TYPE_CHECKING:
    from observatory.config import Config, SourceConfig


@dataclass
class Tally:
    """What an append did."""

    lines: int = 0
    rows: int = 0
    rejected: int = 0

    def add(self, other: Tally) -> None:
        self.lines += other.lines
        self.rows += other.rows
        self.rejected += other.rejected


def connect(
    path: str, memory_limit: str = "256MB", threads: int | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the session settings the schema assumes (UTC)."""
    cfg: dict[str, Any] = {"memory_limit": memory_limit}
    if threads:
        cfg["threads"] = threads
    con = duckdb.connect(path, read_only=read_only, config=cfg)
    con.execute("SET TimeZone = 'UTC'").fetchall()
    return con


class Store:
    """Owns the write connection. Use from one thread; readers take `cursor()`."""

    def __init__(self, path: str, memory_limit: str = "256MB", threads: int | None = None) -> None:
        self.path = path
        self.con = connect(path, memory_limit, threads)
        for stmt in DDL:
            self.con.execute(stmt).fetchall()
        self._sources: dict[str, SourceSQL] = {}
        self._in_tx = False
        self.lock = threading.Lock()

    @classmethod
    def for_config(cls, config: Config, db: str | None = None) -> Store:
        store = cls(db or config.db_path, config.storage.memory_limit, config.storage.threads)
        vendors = {d.name: config.vendor_for(d.name) for d in config.destinations}
        for src in config.sources:
            store.add_source(src, vendors)
        return store

    def add_source(self, src: SourceConfig, vendors: dict[str, str]) -> None:
        """Compile a source's SQL and check DuckDB accepts it (a regex RE2 rejects, say)."""
        compiled = compile_source(src, vendors)
        self._sources[src.name] = compiled
        import pyarrow as pa

        empty = pa.table({"n": pa.array([], pa.int64()), "line": pa.array([], pa.string())})
        self.con.register("batch", empty)
        try:
            self.con.execute("BEGIN").fetchall()
            self.con.execute(compiled.insert_events).fetchall()
            self.con.execute(compiled.insert_rejects, ["", 0]).fetchall()
        finally:
            self.con.execute("ROLLBACK").fetchall()
            self.con.unregister("batch")

    def close(self) -> None:
        self.con.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for reads from another thread."""
        cur = self.con.cursor()
        cur.execute("SET TimeZone = 'UTC'").fetchall()
        return cur

    def file_states(self) -> dict[str, FileState]:
        rows = self.con.execute(
            'SELECT file_key, source, path, "offset", line_no, head_len, head_hash '
            "FROM ingest_offsets"
        ).fetchall()
        return {r[0]: FileState(*r) for r in rows}

    def begin(self) -> None:
        self.con.execute("BEGIN").fetchall()
        self._in_tx = True

    def commit(self) -> None:
        self._in_tx = False
        self.con.execute("COMMIT").fetchall()

    def rollback(self) -> None:
        self._in_tx = False
        self.con.execute("ROLLBACK").fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Appends inside commit together, with their file positions, or not at all."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def append(self, block: Block) -> Tally:
        """Parse and append one block and record its file position (inside `transaction`)."""
        assert self._in_tx, "append outside a transaction"
        src = self._sources[block.state.source]
        batch = split_lines(block.data)
        tally = Tally(lines=batch.count + len(block.skipped))
        if batch.table.num_rows:
            self.con.register("batch", batch.table)
            try:
                tally.rows = self.con.execute(src.insert_events).fetchall()[0][0]
                if tally.rows < batch.table.num_rows:
                    tally.rejected += self.con.execute(
                        src.insert_rejects, [block.state.path, block.first_line]
                    ).fetchall()[0][0]
            finally:
                self.con.unregister("batch")
        early = [
            (block.state.source, block.state.path, block.first_line + r.index, r.reason, r.head)
            for r in (*batch.rejects, *block.skipped)
        ]
        if early:
            self.con.executemany("INSERT INTO rejects VALUES (now(), ?, ?, ?, ?, ?)", early)
            tally.rejected += len(early)
        # Blank lines are neither rows nor rejects; they do not count as lines.
        tally.lines = tally.rows + tally.rejected
        st = block.state
        self.con.execute(
            "INSERT OR REPLACE INTO ingest_offsets VALUES (?, ?, ?, ?, ?, ?, ?, now())",
            [st.key, st.source, st.path, st.offset, st.line_no, st.head_len, st.head_hash],
        ).fetchall()
        return tally

    def prune(self, retention_s: float) -> int:
        """Delete events older than `retention_s` before the newest event (event time, so
        replayed history is not wiped by the wall clock). Returns rows deleted."""
        deleted = self.con.execute(
            "DELETE FROM events WHERE ts < (SELECT max(ts) FROM events) - to_seconds(?)",
            [float(retention_s)],
        ).fetchall()[0][0]
        self.con.execute(
            "DELETE FROM rejects WHERE ingested_at < now() - to_seconds(?)", [float(retention_s)]
        ).fetchall()
        return int(deleted)
