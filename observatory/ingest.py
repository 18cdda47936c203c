"""Backfill: read files once, from their committed positions to their last complete line."""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from observatory.config import Config, ConfigError, SourceConfig
from observatory.store import Store, Tally
from observatory.tail import FileReader, expand

# Bytes appended per transaction. DuckDB commits one large insert far faster than many
# small ones, so a backfill commits rarely; a crash only costs re-reading the open part.
COMMIT_BYTES = 256 << 20


@dataclass
class IngestResult:
    """What a backfill did; `summary()` is the JSON line `observatory ingest` prints."""

    tally: Tally
    seconds: float
    files: int

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
    commit_bytes: int = COMMIT_BYTES,
) -> IngestResult:
    """Read every planned file to its last complete line; commit positions with rows."""
    start = time.perf_counter()
    known = store.file_states()
    readers = [FileReader(path, src.name, known) for path, src in plan]
    total = sum(r.pending() for r in readers)
    tally = Tally()
    done = uncommitted = 0
    store.begin()
    try:
        for reader in readers:
            try:
                for block in reader.blocks():
                    tally.add(store.append(block))
                    done += len(block.data)
                    uncommitted += len(block.data)
                    if uncommitted >= commit_bytes:
                        store.commit()
                        store.begin()
                        uncommitted = 0
                    if progress:
                        progress(done, total, tally)
            finally:
                reader.close()
    except BaseException:
        store.rollback()
        raise
    store.commit()
    return IngestResult(tally, time.perf_counter() - start, len(readers))
