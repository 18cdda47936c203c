"""Whole completed files read by DuckDB itself (observatory/ingest/wholefile.py): each line exactly
once, rejects with their line numbers, and the block path wherever DuckDB's reader cannot
be trusted with a file (a partial last line, a CR, a BOM, bytes that are not UTF-8, a line
over the limit, a writer appending during the read)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from observatory.config import Config
from observatory.ingest.backfill import IngestResult, ingest_files, plan_files
from observatory.ingest.lines import MAX_LINE
from observatory.ingest.wholefile import available, lines_sql
from observatory.store.db import Store
from tests.helpers import ids, make_config, message_ids, pino_line, q

pytestmark = pytest.mark.skipif(not available(), reason="needs /proc/self/fd")


def ingest(store: Store, config: Config, path: Path, whole_file_min: int = 0) -> IngestResult:
    return ingest_files(store, plan_files(config, [str(path)]), whole_file_min=whole_file_min)


def pino(start: int, stop: int) -> bytes:
    return b"".join(pino_line(i) for i in range(start, stop))


def offsets(store: Store) -> list[tuple[Any, ...]]:
    return q(store, 'SELECT path, "offset", line_no FROM ingest_offsets')


def rejects(store: Store) -> list[tuple[Any, ...]]:
    return q(store, "SELECT file, line_no, reason, line FROM rejects ORDER BY line_no, file")


def test_a_complete_file_is_read_whole_and_only_once(
    store: Store, config: Config, logs: Path
) -> None:
    log = logs / "a.jsonl"
    log.write_bytes(pino(0, 1000))
    first = ingest(store, config, log)
    assert (first.whole, first.tally.rows, first.tally.rejected) == (1, 1000, 0)
    # The optimizer turned off for the streaming INSERT (database-wide) is on again.
    assert q(store, "SELECT current_setting('disabled_optimizers')") == [("",)]
    assert message_ids(store) == ids(0, 1000)
    assert offsets(store) == [(str(log), log.stat().st_size, 1000)]
    again = ingest(store, config, log)
    assert (again.whole, again.tally.lines) == (0, 0)
    assert message_ids(store) == ids(0, 1000)


def test_lines_appended_later_are_read_on_from_the_committed_position(
    store: Store, config: Config, logs: Path
) -> None:
    log = logs / "a.jsonl"
    log.write_bytes(pino(0, 500) + b"not json\n")
    assert ingest(store, config, log).whole == 1
    with log.open("ab") as fh:
        fh.write(pino(500, 520) + b"{broken\n")
    more = ingest(store, config, log)
    # Read on in blocks (DuckDB's reader cannot start mid-file), numbering lines on.
    assert (more.whole, more.tally.rows, more.tally.rejected) == (0, 20, 1)
    assert message_ids(store) == ids(0, 520)
    assert [(r[1], r[2]) for r in rejects(store)] == [(501, "invalid JSON"), (522, "invalid JSON")]
    assert offsets(store) == [(str(log), log.stat().st_size, 522)]


def test_a_partial_last_line_waits_for_its_newline(
    store: Store, config: Config, logs: Path
) -> None:
    log = logs / "a.jsonl"
    tail = pino_line(100)
    log.write_bytes(pino(0, 100) + tail[:-10])
    first = ingest(store, config, log)
    assert (first.whole, first.tally.rows) == (0, 100)  # not complete: read in blocks
    assert first.partial == [(str(log), len(tail) - 10)]
    with log.open("ab") as fh:
        fh.write(tail[-10:])
    second = ingest(store, config, log)
    assert (second.tally.rows, second.partial) == (1, [])
    assert message_ids(store) == ids(0, 101)


def test_bad_lines_in_the_middle_are_rejects_with_their_line_numbers(
    store: Store, config: Config, logs: Path
) -> None:
    body = [pino_line(i) for i in range(60)]
    body[4] = b'{"time": 1700000000004, "dest": "x", \n'  # line 5
    body[16] = pino_line(16, time=None)  # line 17: no timestamp
    body[29] = b"\n"  # line 30: blank, neither row nor reject
    body[41] = b"[1, 2, 3]\n"  # line 42
    body[50] = b" \t \n"  # line 51: blank too
    body[58] = "caf\u00e9 \U0001f600 \x00 not json\n".encode()  # line 59
    log = logs / "a.jsonl"
    log.write_bytes(b"".join(body))
    result = ingest(store, config, log)
    assert (result.whole, result.tally.rows, result.tally.rejected) == (1, 54, 4)
    assert [(r[0], r[1], r[2]) for r in rejects(store)] == [
        (str(log), 5, "invalid JSON"),
        (str(log), 17, "missing field ts (time)"),
        (str(log), 42, "invalid JSON: not an object"),
        (str(log), 59, "invalid JSON"),
    ]
    assert rejects(store)[-1][3] == "caf\u00e9 \U0001f600 \x00 not json"
    assert offsets(store) == [(str(log), log.stat().st_size, 60)]


def _same_in_blocks(tmp_path: Path, config: Config, log: Path) -> tuple[Any, ...]:
    """What the block path stores for `log`, on a database of its own."""
    other = Store.for_config(config, str(tmp_path / "blocks.duckdb"))
    try:
        ingest(other, config, log, whole_file_min=1 << 62)
        return _stored(other)
    finally:
        other.close()


def _stored(store: Store) -> tuple[Any, ...]:
    return (
        q(store, "SELECT * EXCLUDE (ingested_at) FROM events ORDER BY ALL"),
        q(store, "SELECT * EXCLUDE (ingested_at) FROM rejects ORDER BY ALL"),
        q(store, 'SELECT path, "offset", line_no FROM ingest_offsets ORDER BY path'),
    )


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param(b'{"time":1700000000999,"dest":"crlf"}\r\n', id="crlf"),
        pytest.param(b'{"time":1700000000999,"dest":"cr\rin the middle"}\n', id="cr"),
        pytest.param(b'{"time":1700000000999,"dest":"a\x1fb"}\n', id="delimiter-byte"),
        # last on its line, DuckDB 2.0 dropped the row without raising (found by hypothesis)
        pytest.param(b'{"time":1700000000999,"dest":"x"} \x1f\n', id="delimiter-byte-last"),
        pytest.param(b'{"time":1700000000999,"dest":"\xff\xfe"}\n', id="not-utf8"),
        pytest.param(b'{"pad":"' + b"x" * MAX_LINE + b'"}\n', id="over-max-line"),
        pytest.param(b"\xef\xbb\xbf", id="bom"),
    ],
)
def test_files_duckdb_would_not_split_exactly_go_in_blocks(
    store: Store, config: Config, logs: Path, tmp_path: Path, odd: bytes
) -> None:
    log = logs / "a.jsonl"
    bom = odd == b"\xef\xbb\xbf"
    log.write_bytes(odd + pino(0, 50) if bom else pino(0, 20) + odd + pino(20, 50))
    result = ingest(store, config, log)
    assert result.whole == 0
    assert _stored(store) == _same_in_blocks(tmp_path, config, log)


def test_a_line_of_exactly_max_line_bytes_is_read_whole(
    store: Store, config: Config, logs: Path, tmp_path: Path
) -> None:
    line = pino_line(7, pad="x" * (MAX_LINE + 1 - len(pino_line(7, pad=""))))
    assert len(line) == MAX_LINE + 1  # MAX_LINE bytes and the newline
    log = logs / "a.jsonl"
    log.write_bytes(pino(0, 5) + line + pino(8, 10))
    result = ingest(store, config, log)
    assert (result.whole, result.tally.rows) == (1, 8)
    assert _stored(store) == _same_in_blocks(tmp_path, config, log)


def test_a_writer_appending_during_the_read_sends_the_file_to_blocks(
    store: Store, config: Config, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logs / "a.jsonl"
    log.write_bytes(pino(0, 300))
    real = Store.insert_events

    def append_meanwhile(self: Store, source: str, lines: str) -> int:
        rows = real(self, source, lines)
        with log.open("ab") as fh:  # lands after DuckDB's read: it must not count
            fh.write(pino(300, 310))
        return rows

    monkeypatch.setattr(Store, "insert_events", append_meanwhile)
    result = ingest(store, config, log)
    assert result.whole == 0
    assert message_ids(store) == ids(0, 310)  # rolled back, then all read in blocks once
    assert offsets(store) == [(str(log), log.stat().st_size, 310)]


def test_duckdb_reads_the_file_ingest_opened_not_what_is_at_its_path_now(
    store: Store, config: Config, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logs / "a.jsonl"
    log.write_bytes(pino(0, 100))
    import observatory.ingest.wholefile as wholefile

    real = wholefile.complete_lines

    def rotate_meanwhile(fd: int, size: int) -> int | None:
        lines = real(fd, size)
        os.rename(log, logs / "a.jsonl.1")  # rename + create rotation under our feet
        log.write_bytes(pino(1000, 1005))
        return lines

    monkeypatch.setattr(wholefile, "complete_lines", rotate_meanwhile)
    result = ingest(store, config, log)
    assert (result.whole, result.tally.rows) == (1, 100)
    assert message_ids(store) == ids(0, 100)


def test_a_failing_read_leaves_nothing_behind_and_the_blocks_read_the_file(
    store: Store, config: Config, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logs / "a.jsonl"
    log.write_bytes(pino(0, 200) + b"bad\n")
    real = Store.stage

    def fail_after_staging(self: Store, block: Any, events_done: bool = False) -> int:
        staged = real(self, block, events_done)
        if events_done:
            raise duckdb.IOException("disk went away")
        return staged

    monkeypatch.setattr(Store, "stage", fail_after_staging)
    result = ingest(store, config, log)
    assert result.whole == 0
    assert message_ids(store) == ids(0, 200)
    assert [(r[1], r[2]) for r in rejects(store)] == [(201, "invalid JSON")]


def test_lines_sql_reads_lines_as_they_are(tmp_path: Path) -> None:
    text = ['  {"a": 1}  ', "", "   ", 'q"uo"te', "#hash", "back\\slash", "tab\there", "x\x00y"]
    path = tmp_path / "x.log"
    path.write_bytes(("\n".join(text) + "\n").encode())
    con = duckdb.connect()
    got = [r[1] for r in con.execute(lines_sql([str(path)])).fetchall()]
    assert got == [t or None for t in text]  # an empty line comes back NULL: blank either way


def test_summary_of_a_whole_file_read(tmp_path: Path, logs: Path) -> None:
    cfg = make_config(tmp_path)
    log = logs / "a.jsonl"
    log.write_bytes(pino(0, 30) + b"\n" + b"oops\n")
    import subprocess
    import sys

    env = {**os.environ, "OBSERVATORY_WHOLE_FILE_MIN": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "observatory", "ingest", str(log), "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["lines"], summary["rows"], summary["rejected"]) == (31, 30, 1)


def test_a_reused_descriptor_number_reads_the_new_file(
    store: Store, config: Config, logs: Path
) -> None:
    """Two files read one after the other through the same /proc/self/fd/N path, with the
    same size and modification time: DuckDB must not serve the first one's bytes again."""
    first, second = logs / "a.jsonl", logs / "b.jsonl"
    first.write_bytes(pino(100, 200))
    second.write_bytes(pino(200, 300))
    assert first.stat().st_size == second.stat().st_size
    st = first.stat()
    os.utime(second, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ingest(store, config, first).whole == 1
    assert ingest(store, config, second).whole == 1  # the same descriptor number again
    assert message_ids(store) == ids(100, 300)


def _three_files(logs: Path, odd: bytes = b"") -> list[Path]:
    paths = []
    for k in range(3):
        path = logs / f"app-{k}.jsonl"
        body = pino(k * 100, k * 100 + 50) + b"oops\n" + pino(k * 100 + 50, k * 100 + 100)
        path.write_bytes(body + (odd if k == 1 else b""))
        paths.append(path)
    return paths


def test_complete_files_of_a_source_are_read_in_one_statement(
    store: Store, config: Config, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _three_files(logs)
    calls = []
    real = Store.insert_events

    def counted(self: Store, source: str, lines: str) -> int:
        calls.append(source)
        return real(self, source, lines)

    monkeypatch.setattr(Store, "insert_events", counted)
    result = ingest_files(store, plan_files(config, [str(logs / "*.jsonl")]), whole_file_min=0)
    assert (result.whole, len(calls)) == (3, 1)  # one INSERT for the three files
    assert (result.tally.rows, result.tally.rejected) == (300, 3)
    assert message_ids(store) == ids(0, 300)
    assert [(r[0], r[1]) for r in rejects(store)] == sorted((str(p), 51) for p in paths)
    assert sorted(offsets(store)) == [(str(p), p.stat().st_size, 101) for p in paths]


def test_a_file_duckdb_cannot_read_leaves_the_others_to_it(
    store: Store, config: Config, logs: Path, tmp_path: Path
) -> None:
    _three_files(logs, odd=b'{"time":1700000000999,"dest":"a\x1fb"}\n')
    result = ingest_files(store, plan_files(config, [str(logs / "*.jsonl")]), whole_file_min=0)
    assert result.whole == 2  # app-1 (with the delimiter byte) was read in blocks
    other = Store.for_config(config, str(tmp_path / "blocks.duckdb"))
    try:
        ingest_files(other, plan_files(config, [str(logs / "*.jsonl")]), whole_file_min=1 << 62)
        assert _stored(store) == _stored(other)
    finally:
        other.close()
