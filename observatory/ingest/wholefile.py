"""Whole completed files read by DuckDB itself: the fast path of `ingest`.

On the block path Python reads a file, splits its lines and hands them to DuckDB; for files
read from their start to a final newline, DuckDB's own CSV reader can split the lines
instead, in parallel, straight into the source's INSERT: one streaming statement for all
such files of a source (each INSERT leaves part-filled row groups that closing the database
rewrites, so fewer is faster). Nothing is taken on trust, since that reader is a CSV reader
and a writer may be appending:

* the bytes: DuckDB opens `/proc/self/fd/N`, the very file `ingest` holds open (not a path
  that a rotation may have moved to another file), and each file's size and modification
  time must be what they were before the scan once the INSERT is done; otherwise (a writer
  appended, so DuckDB may have read past the last newline ingest saw) the transaction is
  rolled back, the files are tried one by one, and the one that changed goes the block path;
* the lines: `complete_lines` counts the newlines first and turns away files the CSV reader
  would not split into exactly those lines: a carriage return anywhere (it ends a CSV row),
  the delimiter byte 0x1F (it splits one, and DuckDB drops such a row without raising), a
  UTF-8 byte order mark (skipped). Invalid UTF-8 and lines over MAX_LINE make DuckDB raise,
  and raising sends the file the block path too (where such lines are rejects);
* rejects and line numbers: DuckDB's reader does not number lines, so when fewer rows than
  lines came out, the same bytes are staged by blocks for their rejects alone.

The files' positions are committed with their rows in the same transaction, as on the
block path, so a crash at any instant neither loses nor duplicates a line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb

from observatory.ingest.lines import MAX_LINE
from observatory.ingest.tail import FileReader
from observatory.store.db import Store, Tally
from observatory.util.sqltext import sql_str

SCAN_CHUNK = 8 << 20  # bytes counted at once
BOM = b"\xef\xbb\xbf"
PROC_FD = "/proc/self/fd"


def available() -> bool:
    """Can DuckDB open a file by the descriptor ingest holds (Linux's /proc)?"""
    return os.path.isdir(PROC_FD)


def lines_sql(paths: list[str]) -> str:
    """A query giving (n, line) for every line of the files at `paths`, read by DuckDB's
    CSV reader as one VARCHAR column: no quoting, escapes or header; strict, so a row that
    is not exactly one line raises. `n` is NULL (see the module doc)."""
    files = ", ".join(sql_str(p) for p in paths)
    return (
        f"SELECT NULL::BIGINT AS n, line FROM read_csv([{files}], "
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
        # a CR ends a CSV row; the delimiter byte splits one (DuckDB 2.0 then drops the row
        # without raising): either way the reader would not give these lines
        if buf.find(b"\r", 0, n) >= 0 or buf.find(b"\x1f", 0, n) >= 0:
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


@dataclass(frozen=True)
class _Whole:
    """A file found complete: its reader, what it looked like, and its lines."""

    reader: FileReader
    seen: _Seen
    lines: int


class _Changed(Exception):
    """A file changed while DuckDB read it."""


def read_whole(
    store: Store, readers: list[FileReader], block_size: int
) -> tuple[Tally, list[FileReader]]:
    """Read each of `readers`' files that is complete and not read before with DuckDB,
    from its start to its end, and commit their rows, rejects and positions: one
    transaction and INSERT per source. Returns what was committed and the readers it did
    not read (left where they were, for the block path)."""
    if not available():
        return Tally(), list(readers)
    by_source: dict[str, list[_Whole]] = {}
    rest: list[FileReader] = []
    for reader in readers:
        seen = _seen(reader.fd)
        lines = None
        if reader.state.offset == 0:
            lines = complete_lines(reader.fd, seen.size)
        if lines is None:
            rest.append(reader)
        else:
            by_source.setdefault(reader.state.source, []).append(_Whole(reader, seen, lines))
    tally = Tally()
    for group in by_source.values():
        done = _read(store, group, block_size)
        if done is None and len(group) > 1:  # one of them would not do: each on its own
            for whole in group:
                one = _read(store, [whole], block_size)
                if one is None:
                    rest.append(whole.reader)
                else:
                    tally.add(one)
        elif done is None:
            rest.append(group[0].reader)
        else:
            tally.add(done)
    left = set(rest)
    return tally, [r for r in readers if r in left]


def _read(store: Store, files: list[_Whole], block_size: int) -> Tally | None:
    """Read `files` (of one source) in one transaction; None if that did not work out,
    with nothing written and the readers where they were."""
    starts = [f.reader.state for f in files]
    source = starts[0].source
    paths = [f"{PROC_FD}/{f.reader.fd}" for f in files]
    lines = sum(f.lines for f in files)
    store.begin()
    try:
        rows = store.insert_events(source, lines_sql(paths))
        if rows < lines:  # rejects (or blank lines): they need their line numbers
            for f in files:
                for block in f.reader.blocks(block_size, end=f.seen.size):
                    store.stage(block, events_done=True)
        if rows > lines or any(_seen(f.reader.fd) != f.seen for f in files):
            raise _Changed
        ends = []
        for f, start in zip(files, starts, strict=True):
            f.reader.state = start
            ends.append(f.reader.position_after(f.seen.size, f.lines))
            store.note_position(ends[-1])
    except BaseException as exc:
        store.rollback()
        for f, start in zip(files, starts, strict=True):
            f.reader.state = start
        if isinstance(exc, duckdb.InterruptException):
            raise KeyboardInterrupt from None
        if isinstance(exc, duckdb.Error | ValueError | _Changed):
            return None
        raise
    tally = store.commit()
    for f, end in zip(files, ends, strict=True):
        f.reader.state = end
    return tally
