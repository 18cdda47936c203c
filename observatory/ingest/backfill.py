"""Backfill: read files once, from their committed positions to their last complete line."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb

from observatory.config import Config, ConfigError, SourceConfig
from observatory.ingest.tail import BLOCK, FileReader, FileState, committed_original, expand
from observatory.store.db import Store, Tally

# Bytes staged per transaction. DuckDB commits one large insert far faster than many
# small ones, so a backfill commits rarely; a crash only costs re-reading the open part.
# The staged lines stay in memory until the commit, so this also bounds peak memory
# (with storage.memory_limit for DuckDB itself): 128 MiB keeps ingest under 500 MB.
COMMIT_BYTES = 128 << 20
# Testing/tuning knob: OBSERVATORY_COMMIT_BYTES=N overrides COMMIT_BYTES for `observatory
# ingest` (the CLI has no option for it). The crash-safety test sets it small so that a
# SIGKILL lands between many small commits and inside open transactions.
COMMIT_BYTES_ENV = "OBSERVATORY_COMMIT_BYTES"
# Files of at least this many bytes, complete and not read before, are read by DuckDB itself
# (observatory/ingest/wholefile.py), each in a transaction of its own; smaller ones go in blocks,
# many files to a transaction. Testing/tuning knob: OBSERVATORY_WHOLE_FILE_MIN=N (0: every
# such file whole).
WHOLE_FILE_MIN = 4 << 20
WHOLE_FILE_MIN_ENV = "OBSERVATORY_WHOLE_FILE_MIN"


def _env_bytes(name: str, default: int, least: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number of bytes") from None
    if value < least:
        raise ConfigError(name, f"must be at least {least}")
    return value


def commit_bytes_default() -> int:
    """COMMIT_BYTES, or the positive integer in $OBSERVATORY_COMMIT_BYTES."""
    return _env_bytes(COMMIT_BYTES_ENV, COMMIT_BYTES, 1)


def whole_file_min_default() -> int:
    """WHOLE_FILE_MIN, or the integer in $OBSERVATORY_WHOLE_FILE_MIN."""
    return _env_bytes(WHOLE_FILE_MIN_ENV, WHOLE_FILE_MIN, 0)


@dataclass
class IngestResult:
    """What a backfill did; `summary()` is the JSON line `observatory ingest` prints."""

    tally: Tally
    seconds: float
    files: int
    # Files whose last line has no newline yet: (path, bytes waiting). Such a line is read
    # by the next run once its newline arrives.
    partial: list[tuple[str, int]] = field(default_factory=list)
    whole: int = 0  # files DuckDB read whole (wholefile.py); the others were read in blocks

    def summary(self) -> dict[str, float | int]:
        secs = max(self.seconds, 1e-9)
        return {
            "lines": self.tally.lines,
            "rows": self.tally.rows,
            "rejected": self.tally.rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.tally.rows / secs, 1),
        }


def plan_files(config: Config, paths: Sequence[str]) -> list[tuple[str, SourceConfig]]:
    """(file, source) pairs to read: PATHs with the source whose glob matches (or the only
    source), or every source's glob when no PATH is given."""
    if not config.sources:
        raise ConfigError("sources", "no [[sources]] configured")
    plan: list[tuple[str, SourceConfig]] = []
    if not paths:
        for src in config.sources:
            plan += [(p, src) for p in expand(config.source_glob(src))]
        return plan
    for given in paths:
        files = expand(given) if any(c in given for c in "*?[") else [given]
        if not files:
            raise ConfigError("PATH", f"no file matches {given!r}")
        for f in files:
            if not os.path.isfile(f):
                raise ConfigError("PATH", f"not a readable file: {f!r}")
            plan.append((f, source_for(config, f)))
    return plan


def source_for(config: Config, path: str) -> SourceConfig:
    """The source whose `path` glob matches `path`; the only source if there is one."""
    full = os.path.abspath(path)
    for src in config.sources:
        if fnmatch.fnmatch(full, config.source_glob(src)):
            return src
    if len(config.sources) == 1:
        return config.sources[0]
    names = ", ".join(s.name for s in config.sources)
    raise ConfigError("PATH", f"{path!r} matches no source's path glob (sources: {names})")


Progress = Callable[[int, int, Tally], None]


def ingest_files(
    store: Store,
    plan: Sequence[tuple[str, SourceConfig]],
    progress: Progress | None = None,
    commit_bytes: int | None = None,
    whole_file_min: int | None = None,
) -> IngestResult:
    """Read every planned file to its last complete line; commit positions with rows.

    Complete files not read before, of `whole_file_min` bytes or more (default:
    `whole_file_min_default()`), are read whole by DuckDB (wholefile.py); the others in
    blocks, where `commit_bytes` (default: `commit_bytes_default()`) bounds the bytes
    appended per transaction; blocks are read no larger than that, so small values really
    commit often. A file planned twice (the same path given twice, a glob and a path, a
    hard link) is read once.
    """
    from observatory.ingest.wholefile import read_whole

    start = time.perf_counter()
    if commit_bytes is None:
        commit_bytes = commit_bytes_default()
    if whole_file_min is None:
        whole_file_min = whole_file_min_default()
    block_size = max(1, min(BLOCK, commit_bytes))
    readers = _open_readers(plan, store.file_states())
    total = sum(r.pending() for r in readers)
    tally = Tally()
    done = 0
    try:
        large = [r for r in readers if r.pending() >= max(whole_file_min, 1)]
        pending = {r.key: r.pending() for r in large}
        read, left = read_whole(store, large, block_size)
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    tally.add(read)
    whole = set(large) - set(left)
    for reader in whole:
        done += pending[reader.key]
        reader.close()
    if progress and whole:
        progress(done, total, tally)
    in_blocks = [r for r in readers if r not in whole]
    try:
        partial = _read_in_blocks(
            store, in_blocks, block_size, commit_bytes, tally, progress, done, total
        )
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    return IngestResult(tally, time.perf_counter() - start, len(readers), partial, len(whole))


def _open_readers(
    plan: Sequence[tuple[str, SourceConfig]], known: dict[str, FileState]
) -> list[FileReader]:
    """A reader per planned file, each file once (the same path given twice, a glob and a
    path, a hard link: reading it twice would duplicate rows)."""
    readers: list[FileReader] = []
    try:
        for path, src in plan:
            reader = FileReader(path, src.name, known)
            if any(r.key == reader.key for r in readers):
                reader.close()
                continue
            readers.append(reader)
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    # A copy of a file read before and truncated since (copytruncate while nothing ran) is
    # read on from that file's committed position, as the live tailer does.
    resumed = {r.key for r in readers if r.resumed}
    for reader in readers:
        if not reader.resumed and (donor := committed_original(reader, known, resumed)):
            reader.adopt(donor)
    return readers


def _read_in_blocks(
    store: Store,
    readers: list[FileReader],
    block_size: int,
    commit_bytes: int,
    tally: Tally,
    progress: Progress | None,
    done: int,
    total: int,
) -> list[tuple[str, int]]:
    """Stage every reader's blocks, committing every ``commit_bytes`` (counted into
    ``tally``); closes each reader once read. The files left with an incomplete last line."""
    partial: list[tuple[str, int]] = []
    uncommitted = 0
    store.begin()
    try:
        for reader in readers:
            try:
                for block in reader.blocks(block_size):
                    store.stage(block)
                    done += len(block.data)
                    uncommitted += max(len(block.data), 1)
                    if uncommitted >= commit_bytes:
                        tally.add(store.commit())
                        store.begin()
                        uncommitted = 0
                    if progress:
                        progress(done, total, tally)
                if reader.pending():
                    partial.append((reader.state.path, reader.pending()))
            finally:
                reader.close()
        tally.add(store.commit())
    except BaseException:
        # A failed commit (or append) must not leave the store inside a transaction. When
        # COMMIT itself failed, DuckDB has already ended it and ROLLBACK has nothing to undo.
        with contextlib.suppress(duckdb.Error):
            store.rollback()
        raise
    return partial
