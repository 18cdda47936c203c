"""Crash safety (Done means): `observatory ingest` SIGKILLed at random moments while a
writer appends to the log in arbitrary byte pieces still ends with every line exactly once.

A writer thread appends N pino-style lines (unique messageId each) in random-sized pieces
that split lines anywhere, flushing each piece. Meanwhile `python -m observatory ingest`
runs over and over in a subprocess with a small commit size (OBSERVATORY_COMMIT_BYTES), and
most runs are SIGKILLed 0.05-1.0 s after they start: during start-up, between commits and
inside open transactions. After each run the committed state is checked from outside: the
rows are exactly the lines before the committed offset. At the end one more ingest runs to
completion and `events` holds each of the N lines once, with no rejects.

The second test does the same to the whole-file path (DuckDB reading complete files
itself): a new complete file per round, each committed with all its lines or none.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pytest

from tests.helpers import make_config, pino_line

pytestmark = pytest.mark.slow  # SIGKILLs at random wall-clock moments while a writer appends

N = 20_000
MIN_KILLS = 12
MIN_KILLS_MID_INGEST = 3  # kills that came after the run had committed work
COMMIT_BYTES = 4096  # ~25 lines per transaction: kills land between and inside commits
SEED = 20_240_611
DESTINATIONS = ("tiktok_conversions", "meta_capi", "google_ads", "crm_webhook")


def log_line(i: int) -> bytes:
    dest = DESTINATIONS[i % len(DESTINATIONS)]
    if i % 17 == 0:  # some rate limiting, so classification sees more than 200s
        return pino_line(i, dest=dest, code=429, err={"code": "40100", "message": "QPS limit"})
    return pino_line(i, dest=dest, duration=float(i % 250))


class Writer(threading.Thread):
    """Appends `data` to `path` in random pieces (1 byte to 4 KiB), flushing each one."""

    def __init__(self, path: Path, data: bytes, seed: int) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.data = data
        self.seed = seed
        self.pieces = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        rng = random.Random(self.seed)
        try:
            with open(self.path, "ab", buffering=0) as f:
                pos = 0
                while pos < len(self.data):
                    size = rng.choice((rng.randint(1, 64), rng.randint(64, 4096)))
                    f.write(self.data[pos : pos + size])
                    f.flush()
                    pos += size
                    self.pieces += 1
                    time.sleep(rng.uniform(0, 0.008))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()


@dataclass
class Committed:
    rows: int
    distinct: int
    rejects: int
    offset: int
    line_no: int
    min_id: int | None
    max_id: int | None


def committed(db: Path) -> Committed:
    """What the last committed transaction left, read from outside (read-only)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows, distinct, lo, hi = con.execute(
            "SELECT count(*), count(DISTINCT message_id), "
            "min(CAST(substr(message_id, 2) AS INTEGER)), "
            "max(CAST(substr(message_id, 2) AS INTEGER)) FROM events"
        ).fetchall()[0]
        rejects = con.execute("SELECT count(*) FROM rejects").fetchall()[0][0]
        pos = con.execute('SELECT "offset", line_no FROM ingest_offsets').fetchall()
    finally:
        con.close()
    assert len(pos) <= 1, pos  # one file, one position
    offset, line_no = pos[0] if pos else (0, 0)
    return Committed(rows, distinct, rejects, offset, line_no, lo, hi)


def check_consistent(state: Committed, data: bytes) -> None:
    """Rows are exactly the lines before the committed offset: nothing lost, nothing twice."""
    lines_before = data[: state.offset].count(b"\n")
    assert state.offset == 0 or data[state.offset - 1 : state.offset] == b"\n"
    assert state.line_no == lines_before
    assert state.rows == state.distinct == lines_before
    assert state.rejects == 0
    if state.rows:
        assert (state.min_id, state.max_id) == (0, state.rows - 1)


def test_ingest_killed_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    config = make_config(tmp_path)
    db = tmp_path / "obs.duckdb"
    log = tmp_path / "logs" / "app.jsonl"
    log.touch()
    data = b"".join(log_line(i) for i in range(N))
    assert data.count(b"\n") == N

    cmd = [sys.executable, "-m", "observatory", "ingest", str(log), "--config", str(config)]
    cmd += ["--db", str(db)]
    env = {**os.environ, "OBSERVATORY_COMMIT_BYTES": str(COMMIT_BYTES)}
    writer = Writer(log, data, seed=SEED + 1)
    writer.start()

    kills = kills_mid_ingest = finished = 0
    last = Committed(0, 0, 0, 0, 0, None, None)
    while not writer.done.is_set() or kills < MIN_KILLS or kills_mid_ingest < MIN_KILLS_MID_INGEST:
        assert time.monotonic() - started < 100, (kills, kills_mid_ingest, finished)
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
        )
        kill_after = rng.uniform(0.05, 1.0) if rng.random() < 0.75 else None
        try:
            out, err = proc.communicate(timeout=kill_after if kill_after else 60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)  # a no-op if it exited just now
            out, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            state = committed(db) if db.exists() else last
            if state.offset > last.offset:
                kills_mid_ingest += 1  # it had committed work when it died
        else:
            assert proc.returncode == 0, err.decode()
            summary = orjson.loads(out.decode().strip().splitlines()[-1])
            assert summary["rejected"] == 0 and summary["rows"] == summary["lines"]
            finished += 1
            state = committed(db)
        check_consistent(state, data)
        assert state.offset >= last.offset  # a commit is never undone
        last = state

    writer.join(timeout=30)
    assert writer.error is None, writer.error
    assert log.read_bytes() == data

    final = subprocess.run(
        cmd, env=env, capture_output=True, cwd=tmp_path, timeout=120, check=False
    )
    assert final.returncode == 0, final.stderr.decode()
    summary = orjson.loads(final.stdout.decode().strip().splitlines()[-1])
    assert summary["rows"] == N - last.rows and summary["rejected"] == 0

    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM events"
        ).fetchall() == [(N, N)]
        assert con.execute("SELECT count(*) FROM rejects").fetchall() == [(0,)]
        assert con.execute('SELECT "offset", line_no FROM ingest_offsets').fetchall() == [
            (len(data), N)
        ]
        by_outcome = dict(con.execute("SELECT outcome, count(*) FROM events GROUP BY 1").fetchall())
        limited = len(range(0, N, 17))
        assert by_outcome == {"rate_limited": limited, "delivered": N - limited}
        assert con.execute(
            "SELECT count(*) FROM events WHERE message_id <> 'm' || "
            "CAST(epoch_ms(ts) - 1700000000000 AS VARCHAR)"
        ).fetchall() == [(0,)]
    finally:
        con.close()

    elapsed = time.monotonic() - started
    print(
        f"\ncrash test: {kills} kills ({kills_mid_ingest} after committing work), "
        f"{finished} runs finished, {writer.pieces} writer pieces, {elapsed:.1f} s"
    )
    assert kills >= MIN_KILLS and finished >= 1


WHOLE_ROUNDS = 14
WHOLE_LINES = 12_000  # per complete file (about 1.8 MB)


def whole_line(k: int, i: int) -> bytes:
    return pino_line(i, messageId=f"f{k}-{i}", dest=DESTINATIONS[i % len(DESTINATIONS)])


def per_file(db: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """({path: (offset, line_no)}, {message id prefix: (rows, distinct)}), read from outside."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        pos = {
            r[0]: (r[1], r[2])
            for r in con.execute('SELECT path, "offset", line_no FROM ingest_offsets').fetchall()
        }
        rows = {
            r[0]: (r[1], r[2])
            for r in con.execute(
                "SELECT split_part(message_id, '-', 1), count(*), count(DISTINCT message_id) "
                "FROM events GROUP BY 1"
            ).fetchall()
        }
        assert con.execute("SELECT count(*) FROM rejects").fetchall() == [(0,)]
    finally:
        con.close()
    return pos, rows


def test_whole_file_reads_killed_at_random_moments_commit_all_or_nothing(tmp_path: Path) -> None:
    """DuckDB reading complete files itself (OBSERVATORY_WHOLE_FILE_MIN=0), SIGKILLed at
    random moments: each complete file is committed with all its lines or none of them,
    while a file a writer appends to keeps the exactly-once prefix rule; a last run
    leaves every line once."""
    started = time.monotonic()
    rng = random.Random(SEED + 7)
    config = make_config(tmp_path)
    db = tmp_path / "obs.duckdb"
    logs = tmp_path / "logs"
    growing = logs / "app.jsonl"
    growing.touch()
    data = b"".join(
        pino_line(i, messageId=f"w-{i}", dest=DESTINATIONS[i % len(DESTINATIONS)])
        for i in range(N // 2)
    )
    cmd = [sys.executable, "-m", "observatory", "ingest", "--config", str(config)]
    cmd += ["--db", str(db)]
    env = {**os.environ, "OBSERVATORY_WHOLE_FILE_MIN": "0"}
    writer = Writer(growing, data, seed=SEED + 8)
    writer.start()
    sizes: dict[str, tuple[int, int]] = {}  # path -> (k, size)
    kills = torn = 0
    typical = 1.5  # s: how long a whole run takes, until one has been timed
    for k in range(WHOLE_ROUNDS):
        assert time.monotonic() - started < 150, (k, kills, torn)
        path = logs / f"batch-{k:02d}.jsonl"
        path.write_bytes(b"".join(whole_line(k, i) for i in range(WHOLE_LINES)))
        sizes[str(path)] = (k, path.stat().st_size)
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
        )
        # A moment within a run as long as the last whole one took: a fast machine finishes
        # before a fixed 1.5 s and would hardly ever be killed.
        kill_after = rng.uniform(0.05, 1.0) * typical if rng.random() < 0.8 else None
        began = time.monotonic()
        try:
            out, err = proc.communicate(timeout=kill_after if kill_after else 60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert proc.returncode == 0, err.decode()
            typical = time.monotonic() - began
        if not db.exists():
            continue
        pos, rows = per_file(db)
        pending = [p for p in sizes if p not in pos]
        torn += 0 < len(pending) < len(sizes)  # killed between two files' commits
        for p, (n, size) in sizes.items():
            prefix = f"f{n}"
            if p in pos:
                assert pos[p] == (size, WHOLE_LINES)
                assert rows.get(prefix) == (WHOLE_LINES, WHOLE_LINES)
            else:
                assert prefix not in rows
        offset, line_no = pos.get(str(growing), (0, 0))
        lines_before = data[:offset].count(b"\n")
        assert line_no == lines_before
        assert rows.get("w", (0, 0)) == (lines_before, lines_before)

    writer.join(timeout=60)
    assert writer.error is None, writer.error
    final = subprocess.run(cmd, env=env, capture_output=True, cwd=tmp_path, timeout=120)
    assert final.returncode == 0, final.stderr.decode()
    pos, rows = per_file(db)
    for k in range(WHOLE_ROUNDS):
        assert rows[f"f{k}"] == (WHOLE_LINES, WHOLE_LINES)
    assert rows["w"] == (N // 2, N // 2)
    assert pos[str(growing)] == (len(data), N // 2)
    print(f"\nwhole-file crash test: {kills} kills, {torn} between files")
    assert kills >= 3
