"""Whole completed files read by DuckDB itself: the fast path of `ingest`.

On the block path Python reads a file, splits its lines and hands them to DuckDB; for a
file read from its start to a final newline, DuckDB's own CSV reader can split the lines
instead, in parallel, straight into the source's INSERT (one streaming statement per file).
Nothing is taken on trust, since that reader is a CSV reader and a writer may be appending:

* the bytes: DuckDB opens `/proc/self/fd/N`, the very file `ingest` holds open (not a path
  that a rotation may have moved to another file), and the file's size and modification
  time must be what they were before the scan once the INSERT is done; otherwise (a writer
  appended, so DuckDB may have read past the last newline ingest saw) the transaction is
  rolled back and the file goes the block path;
* the lines: `complete_lines` counts the newlines first and turns away files the CSV reader
  would not split into exactly those lines: a carriage return anywhere (it ends a CSV row),
  a UTF-8 byte order mark (skipped). Invalid UTF-8, the delimiter byte (0x1F) and lines over
  MAX_LINE make DuckDB raise, and raising sends the file the block path too (where such
  lines are rejects);
* rejects and line numbers: DuckDB's reader does not number lines, so when fewer rows than
  lines came out, the same bytes are staged by blocks for their rejects alone.

The file's position is committed with its rows in the same transaction, as on the block
path, so a crash at any instant neither loses nor duplicates a line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb

from observatory.lines import MAX_LINE
from observatory.sqltext import sql_str
from observatory.store import Store, Tally
from observatory.tail import FileReader

SCAN_CHUNK = 8 << 20  # bytes counted at once
BOM = b"\xef\xbb\xbf"
PROC_FD = "/proc/self/fd"


def available() -> bool:
    """Can DuckDB open a file by the descriptor ingest holds (Linux's /proc)?"""
    return os.path.isdir(PROC_FD)


def lines_sql(path: str) -> str:
    """A query giving (n, line) for every line of `path`, read by DuckDB's CSV reader as
    one VARCHAR column: no quoting, escapes or header; strict, so a row that is not exactly
    one line raises. `n` is NULL (see the module doc)."""
    return (
        f"SELECT NULL::BIGINT AS n, line FROM read_csv({sql_str(path)}, "
        "columns = {'line': 'VARCHAR'}, header = false, auto_detect = false, "
        "delim = chr(31), quote = '', escape = '', new_line = '\\n', strict_mode = true, "
        f"max_line_size = {MAX_LINE + 1}, compression = 'none', encoding = 'utf-8')"
    )


def complete_lines(fd: int, size: int) -> int | None:
    """The number of lines in the first `size` bytes of `fd`, if they are complete lines
    that DuckDB's CSV reader splits exactly as the block path does; else None."""
    if size == 0 or os.pread(fd, 1, size - 1) != b"\n" or os.pread(fd, 3, 0) == BOM:
        return None
    buf = bytearray(min(SCAN_CHUNK, size))
    lines = 0
    for pos in range(0, size, SCAN_CHUNK):
        n = min(SCAN_CHUNK, size - pos)
        view = memoryview(buf)[:n]
        if os.preadv(fd, [view], pos) != n:
            return None  # truncated meanwhile
        if buf.find(b"\r", 0, n) >= 0:  # (`in` on the memoryview would go byte by byte)
            return None
        # numpy counts faster, but importing it costs as much as counting 300 MB this way
        lines += buf.count(b"\n", 0, n)
    return lines


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int


def _seen(fd: int) -> _Seen:
    st = os.fstat(fd)
    return _Seen(st.st_size, st.st_mtime_ns)


class _Changed(Exception):
    """The file changed while DuckDB read it."""


def read_whole(store: Store, reader: FileReader, block_size: int) -> Tally | None:
    """Read `reader`'s file from its start to its end with DuckDB, in a transaction of its
    own, and commit its rows, rejects and position. None, with nothing written and the
    reader where it was, when the file is not one for this path (see the module doc)."""
    start = reader.state
    if start.offset != 0 or not available():
        return None
    seen = _seen(reader.fd)
    lines = complete_lines(reader.fd, seen.size)
    if lines is None:
        return None
    store.begin()
    try:
        rows = store.insert_events(start.source, lines_sql(f"{PROC_FD}/{reader.fd}"))
        if rows < lines:  # rejects (or blank lines): they need their line numbers
            for block in reader.blocks(block_size, end=seen.size):
                store.stage(block, events_done=True)
        if rows > lines or _seen(reader.fd) != seen:
            raise _Changed
        reader.state = start
        done = reader.position_after(seen.size, lines)
        store.note_position(done)
    except duckdb.InterruptException:
        store.rollback()
        reader.state = start
        raise KeyboardInterrupt from None
    except (duckdb.Error, ValueError, _Changed):
        store.rollback()
        reader.state = start
        return None
    except BaseException:
        store.rollback()
        reader.state = start
        raise
    tally = store.commit()
    reader.state = done
    return tally
