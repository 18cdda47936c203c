"""The DuckDB store: one write connection, batched appends, offsets in the same transaction.

Every block of lines is appended with the file position it ends at inside one transaction,
so after a crash at any instant the database holds each line exactly once: either the block
and its position were committed, or neither was and the block is read again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from observatory.ingest.normalize import STREAMING_DISABLED_OPTIMIZERS, SourceSQL, compile_source
from observatory.ingest.tail import Block, FileState
from observatory.store.schema import DDL

if TYPE_CHECKING:
    import pyarrow as pa

    from observatory.config import Config, SourceConfig
    from observatory.detect.counts import SecondCounts


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


BlockSpan = tuple[int, int, str, int]  # first n, end n, file, first line number

# No lines, and no blocks: what a source's statements are checked against.
NO_LINES = "SELECT NULL::BIGINT AS n, NULL::VARCHAR AS line WHERE false"
NO_BLOCKS = (
    "SELECT NULL::BIGINT AS first_n, NULL::BIGINT AS end_n, NULL::VARCHAR AS file, "
    "NULL::BIGINT AS first_line WHERE false"
)


class Store:
    """Owns the write connection. Use from one thread; readers take `cursor()`.

    Writing is staged: `stage(block)` splits a block into an Arrow batch (no copy of the
    bytes) and notes the block's file position; `commit()` parses everything staged with
    one INSERT per source, writes rejects and positions, and commits, all in one
    transaction. One large insert is several times faster in DuckDB than many small ones.
    `insert_events(source, lines)` parses lines DuckDB reads itself (a whole file) inside
    the transaction; `note_position` records where that left the file.
    """

    def __init__(self, path: str, memory_limit: str = "256MB", threads: int | None = None) -> None:
        self.path = path
        self.con = connect(path, memory_limit, threads)
        # Rows carry their event time; their physical order in a table means nothing, and
        # not preserving it lets DuckDB insert from every thread at once.
        self.con.execute("SET preserve_insertion_order = false").fetchall()
        for stmt in DDL:
            self.con.execute(stmt).fetchall()
        self._sources: dict[str, SourceSQL] = {}
        self._in_tx = False
        self._next_id = 0
        # source -> staged Arrow batches (n, line) and their blocks (first n, end n, file,
        # first line number), from which rejects learn their file and line number
        self._staged: dict[str, list[pa.Table]] = {}
        self._blocks: dict[str, list[BlockSpan]] = {}
        self._early: list[tuple[str, str, int, str, str]] = []
        self._positions: dict[str, FileState] = {}
        # Sources whose staged lines already went to `events` (insert_events): only their
        # rejects are left to write.
        self._events_done: set[str] = set()
        self._rows_done = 0  # rows insert_events added in this transaction
        self.staged_bytes = 0
        self.lock = threading.Lock()

    @classmethod
    def for_config(
        cls, config: Config, db: str | None = None, only: set[str] | None = None
    ) -> Store:
        """A store on the config's (or `db`'s) database, ready for the config's sources
        (or just the sources named in `only`)."""
        store = cls(db or config.db_path, config.storage.memory_limit, config.storage.threads)
        vendors = {d.name: config.vendor_for(d.name) for d in config.destinations}
        try:
            for i, src in enumerate(config.sources):
                if only is None or src.name in only:
                    store.add_source(src, vendors, key=f"sources[{i}]")
        except BaseException:
            store.close()
            raise
        return store

    def add_source(self, src: SourceConfig, vendors: dict[str, str], key: str = "source") -> None:
        """Compile a source's SQL and check DuckDB accepts it. A pattern RE2 cannot run
        (look-arounds, back-references) is a ConfigError naming `key`.pattern."""
        from observatory.config import ConfigError

        compiled = compile_source(src, vendors)
        self._run("BEGIN")
        try:
            self._run(compiled.insert_events(NO_LINES))
            self._run(compiled.insert_rejects(NO_LINES, NO_BLOCKS))
        except duckdb.Error as exc:
            where = f"{key}.pattern" if src.format == "regex" else key
            detail = (str(exc).strip().splitlines() or ["rejected by DuckDB"])[0]
            raise ConfigError(where, f"DuckDB cannot run this source's parser: {detail}") from None
        finally:
            self._run("ROLLBACK")
        self._sources[src.name] = compiled

    def _register_stage(self, tables: list[pa.Table], blocks: list[BlockSpan]) -> None:
        """Expose staged lines as `stage(n, line)` and their blocks as `stage_blocks`."""
        import pyarrow as pa

        lines = pa.concat_tables(tables)
        first, end, files, first_line = (list(c) for c in zip(*blocks, strict=True))
        self.con.register("stage", lines)
        self.con.register(
            "stage_blocks",
            pa.table(
                {
                    "first_n": pa.array(first, pa.int64()),
                    "end_n": pa.array(end, pa.int64()),
                    "file": pa.array(files, pa.string()),
                    "first_line": pa.array(first_line, pa.int64()),
                }
            ),
        )

    def _unregister_stage(self) -> None:
        self.con.unregister("stage")
        self.con.unregister("stage_blocks")

    def _run_streaming(self, sql: str) -> int:
        """Run a streaming insert_events statement; rows added."""
        self._run(f"SET disabled_optimizers = '{STREAMING_DISABLED_OPTIMIZERS}'")
        try:
            return int(self._run(sql)[0][0])
        finally:
            self._run("RESET disabled_optimizers")

    def _run(self, sql: str, params: list[Any] | None = None) -> list[Any]:
        return self.con.execute(sql, params).fetchall()

    def close(self) -> None:
        self.con.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for reads from another thread."""
        cur = self.con.cursor()
        cur.execute("SET TimeZone = 'UTC'").fetchall()
        return cur

    def file_states(self) -> dict[str, FileState]:
        rows = self._run(
            'SELECT file_key, source, path, "offset", line_no, head_len, head_hash '
            "FROM ingest_offsets"
        )
        return {r[0]: FileState(*r) for r in rows}

    def begin(self) -> None:
        self._run("BEGIN")
        self._in_tx = True

    def commit(
        self, before_commit: Callable[[duckdb.DuckDBPyConnection], None] | None = None
    ) -> Tally:
        """Write everything staged, with its file positions, and commit. On failure the
        transaction is rolled back (nothing staged is kept) and the error raised.

        `before_commit(con)` runs inside the transaction after the rows are written: the
        rows of this commit are those with `ingested_at = now()` (the transaction's time)."""
        try:
            tally = self._flush()
            if before_commit is not None:
                before_commit(self.con)
            self._run("COMMIT")
        except BaseException:
            self.rollback()
            raise
        self._in_tx = False
        return tally

    def rollback(self) -> None:
        """Drop everything staged and roll back (harmless when no transaction is open)."""
        self._in_tx = False
        self._clear()
        try:
            self._run("ROLLBACK")
        except duckdb.TransactionException:
            pass  # no transaction was open

    @contextmanager
    def transaction(self) -> Iterator[Tally]:
        """Blocks staged inside commit together, with their file positions, or not at all.
        The yielded Tally is filled in at commit."""
        result = Tally()
        self.begin()
        try:
            yield result
            result.add(self.commit())
        except BaseException:
            self.rollback()
            raise

    def stage(self, block: Block, events_done: bool = False) -> int:
        """Queue one block's lines and its end position (inside a transaction); returns
        the number of lines it held. With `events_done` the block's good rows are already
        in `events` (insert_events read the same lines): only its rejects are written, and
        a line rejected before parsing (not UTF-8, too long) raises ValueError, as DuckDB
        cannot have read it."""
        from observatory.ingest.lines import split_lines

        assert self._in_tx, "stage outside a transaction"
        st = block.state
        batch = split_lines(block.data, first_id=self._next_id)
        if events_done:
            if batch.rejects or block.skipped:
                raise ValueError(f"{st.path}: a line DuckDB read is not valid here")
            self._events_done.add(st.source)
        elif st.source in self._events_done:
            raise ValueError(f"{st.source}: lines with and without their events staged at once")
        if batch.table.num_rows:
            self._staged.setdefault(st.source, []).append(batch.table)
            self._blocks.setdefault(st.source, []).append(
                (self._next_id, self._next_id + batch.count, st.path, block.first_line)
            )
        self._next_id += batch.count
        self._early += [
            (st.source, st.path, block.first_line + r.index, r.reason, r.head)
            for r in (*batch.rejects, *block.skipped)
        ]
        self._positions[st.key] = st
        self.staged_bytes += len(block.data)
        return batch.count + len(block.skipped)

    def insert_events(self, source: str, lines: str) -> int:
        """Parse `lines` (a query giving (n, line), e.g. DuckDB's reader over a whole file)
        as `source`'s and append the good rows to `events` (inside a transaction); returns
        the rows added. Their rejects are the caller's (stage the same lines with
        `events_done`); positions too (`note_position`). The statement streams, with an
        optimizer off for the whole database while it runs (normalize.py): for backfills,
        not beside readers."""
        assert self._in_tx, "insert_events outside a transaction"
        rows = self._run_streaming(self._sources[source].insert_events(lines, streaming=True))
        self._rows_done += rows
        return rows

    def note_position(self, state: FileState) -> None:
        """Commit `state` as its file's position with this transaction."""
        assert self._in_tx, "note_position outside a transaction"
        self._positions[state.key] = state

    def _flush(self) -> Tally:
        tally = Tally(rows=self._rows_done)
        for source, tables in self._staged.items():
            sql = self._sources[source]
            self._register_stage(tables, self._blocks[source])
            try:
                rows = 0
                if source not in self._events_done:
                    rows = self._run(sql.insert_events())[0][0]
                    tally.rows += rows
                if rows < sum(t.num_rows for t in tables):
                    tally.rejected += self._run(sql.insert_rejects())[0][0]
            finally:
                self._unregister_stage()
        if self._early:
            self.con.executemany("INSERT INTO rejects VALUES (now(), ?, ?, ?, ?, ?)", self._early)
            tally.rejected += len(self._early)
        for st in self._positions.values():
            self._run(
                "INSERT OR REPLACE INTO ingest_offsets VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                [st.key, st.source, st.path, st.offset, st.line_no, st.head_len, st.head_hash],
            )
        # Blank lines are neither rows nor rejects; they do not count as lines.
        tally.lines = tally.rows + tally.rejected
        self._clear()
        return tally

    def _clear(self) -> None:
        self._staged.clear()
        self._blocks.clear()
        self._early.clear()
        self._positions.clear()
        self._events_done.clear()
        self._rows_done = 0
        self.staged_bytes = 0

    def prune(self, retention_s: float, newest: float | None = None) -> int:
        """Delete events older than `retention_s` before the newest event (event time, so
        replayed history is not wiped by the wall clock); `newest` (epoch s), when the caller
        knows it, saves a scan of the whole table for it. Returns rows deleted."""
        newest_sql = "(SELECT max(ts) FROM events)" if newest is None else "to_timestamp(?)"
        deleted = self._run(
            f"DELETE FROM events WHERE ts < {newest_sql} - to_seconds(?)",
            ([] if newest is None else [float(newest)]) + [float(retention_s)],
        )[0][0]
        self._run("DELETE FROM rejects WHERE ingested_at < now() - to_seconds(?)", [retention_s])
        self._run(
            f"DELETE FROM feed_seconds WHERE ts < {newest_sql} - to_seconds(?)",
            ([] if newest is None else [float(newest)]) + [float(retention_s)],
        )
        return int(deleted)

    def store_feed(self, feed: str, counts: list[SecondCounts], rejects: list[str]) -> None:
        """A feed's per-second counts into ``feed_seconds``, and its rejected lines or bodies
        (a few, cut short) into ``rejects``; one transaction."""
        if not counts and not rejects:
            return
        con = self.con
        con.begin()
        try:
            if counts:
                con.executemany(
                    "INSERT INTO feed_seconds VALUES "
                    "(to_timestamp(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        [
                            c.sec,
                            c.destination,
                            feed,
                            c.delivered,
                            c.rate_limited,
                            c.rejected,
                            c.failed,
                            c.retrying,
                            c.dropped,
                            c.latency_n,
                            c.latency_sum,
                        ]
                        for c in counts
                    ],
                )
            if rejects:
                con.executemany(
                    "INSERT INTO rejects VALUES (now(), ?, ?, 0, 'malformed', ?)",
                    [[feed, "(feed)", line] for line in rejects],
                )
            con.commit()
        except BaseException:
            con.rollback()
            raise
