"""`observatory query` (DESIGN "Done means" item 7): ad-hoc, read-only SQL on captured data,
as a table, CSV, newline-delimited JSON or Parquet, with errors on one stderr line.

The sample logs are ingested once into a DuckDB file; every query runs in a real process.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from observatory.store.query import CELL_WIDTH, cell, render_table

REPO = Path(__file__).resolve().parents[2]
DESTINATIONS = ["crm_webhook", "google_ads", "meta_capi", "tiktok_conversions"]
BY_DEST = "select destination, count(*) as n from events group by 1 order by 1"


def observatory(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """`observatory ARGS...` in a subprocess; output kept as bytes to see every byte."""
    return subprocess.run(
        [sys.executable, "-m", "observatory", *args],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert proc.stdout == b""
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with config.toml, sample_logs/ and `events.duckdb` holding them."""
    path = tmp_path_factory.mktemp("query")
    shutil.copy(REPO / "config.toml", path / "config.toml")
    shutil.copytree(REPO / "sample_logs", path / "sample_logs")
    proc = observatory("ingest", "--db", "events.duckdb", cwd=path)
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def db(work: Path) -> Path:
    return work / "events.duckdb"


@pytest.fixture(scope="module")
def expected(db: Path) -> list[tuple[str, int]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(BY_DEST).fetchall()
    finally:
        con.close()


def event_count(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    finally:
        con.close()


# ------------------------------------------------------------------ results


def test_table_shows_each_destination(work: Path, db: Path, expected: list) -> None:
    proc = observatory(
        "query", "select destination, count(*) from events group by 1", "--db", str(db), cwd=work
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert [d for d, _ in expected] == DESTINATIONS
    lines = out.splitlines()
    for dest, n in expected:
        (row,) = [ln for ln in lines if ln.startswith(dest)]
        assert row.split() == [dest, str(n)]
    assert "(4 rows)" in out
    assert proc.stderr == b""


def test_csv_to_a_file(work: Path, db: Path, expected: list, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    proc = observatory(
        "query", BY_DEST, "--db", str(db), "--format", "csv", "--output", str(target), cwd=work
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    with target.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["destination", "n"]
    assert [(d, int(n)) for d, n in rows[1:]] == expected


def test_json_to_a_file_is_newline_delimited(
    work: Path, db: Path, expected: list, tmp_path: Path
) -> None:
    target = tmp_path / "out.json"
    proc = observatory(
        "query", BY_DEST, "--db", str(db), "--format", "json", "--output", str(target), cwd=work
    )
    assert proc.returncode == 0, proc.stderr
    lines = target.read_text(encoding="utf-8").splitlines()
    objs = [json.loads(ln) for ln in lines]
    assert objs == [{"destination": d, "n": n} for d, n in expected]


def test_parquet_to_a_file(work: Path, db: Path, expected: list, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    proc = observatory(
        "query",
        "select * from events where outcome = 'rate_limited'",
        "--db",
        str(db),
        "--format",
        "parquet",
        "--output",
        str(target),
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(target)
    con = duckdb.connect(str(db), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM events WHERE outcome = 'rate_limited'").fetchall()
    finally:
        con.close()
    assert table.num_rows == n[0][0] > 1000  # the TikTok 40100 outage
    assert "destination" in table.column_names and "ts" in table.column_names
    assert set(table.column("outcome").to_pylist()) == {"rate_limited"}


def test_csv_and_json_without_output_go_to_stdout(work: Path, db: Path, expected: list) -> None:
    proc = observatory("query", BY_DEST, "--db", str(db), "--format", "csv", cwd=work)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout.decode())))
    assert rows == [["destination", "n"]] + [[d, str(n)] for d, n in expected]

    proc = observatory("query", BY_DEST, "--db", str(db), "--format", "json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(ln) for ln in proc.stdout.decode().splitlines()]
    assert objs == [{"destination": d, "n": n} for d, n in expected]


def test_table_to_a_file(work: Path, db: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    proc = observatory("query", BY_DEST, "--db", str(db), "--output", str(target), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    text = target.read_text(encoding="utf-8")
    assert all(d in text for d in DESTINATIONS)


def test_default_db_comes_from_the_config(work: Path, tmp_path: Path) -> None:
    """Without --db the config's storage.db is read (./config.toml by default)."""
    scratch = tmp_path / "w"
    scratch.mkdir()
    shutil.copy(work / "config.toml", scratch / "config.toml")
    shutil.copy(work / "events.duckdb", scratch / "observatory.duckdb")
    proc = observatory("query", "select count(*) as n from events", "--format", "csv", cwd=scratch)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines()[1] == str(event_count(work / "events.duckdb"))


def test_trailing_semicolons_and_comments(work: Path, db: Path) -> None:
    for sql in (
        "select count(*) as n from events;",
        "select count(*) as n from events -- how many?",
        "select count(*) as n from events; -- how many?",
        "select count(*) as n /* é ✓ */ from events ;; ",
    ):
        for fmt in ("csv", "table"):
            proc = observatory("query", sql, "--db", str(db), "--format", fmt, cwd=work)
            assert proc.returncode == 0, (sql, fmt, proc.stderr)
            assert str(event_count(db)) in proc.stdout.decode(), (sql, fmt)


# ------------------------------------------------------------------ errors


def test_parquet_without_output_exits_2(work: Path, db: Path) -> None:
    proc = observatory("query", BY_DEST, "--db", str(db), "--format", "parquet", cwd=work)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert "--output" in line


def test_sql_error_is_one_line_exit_1(work: Path, db: Path) -> None:
    proc = observatory("query", "select nope from events", "--db", str(db), cwd=work)
    line = one_error_line(proc)
    assert proc.returncode == 1
    assert "nope" in line


def test_syntax_error_is_one_line_exit_1(work: Path, db: Path) -> None:
    proc = observatory("query", "selec destination fro events", "--db", str(db), cwd=work)
    line = one_error_line(proc)
    assert proc.returncode == 1
    assert "syntax" in line.lower()


def test_a_delete_is_refused_and_the_data_is_intact(work: Path, db: Path) -> None:
    before = event_count(db)
    for sql in (
        "delete from events",
        "drop table events",
        "update events set destination = 'x'",
        "insert into events select * from events",
        "create table t as select 1",
    ):
        proc = observatory("query", sql, "--db", str(db), cwd=work)
        one_error_line(proc)
        assert proc.returncode == 1, sql
    assert event_count(db) == before > 0


def test_file_writes_cannot_destroy_the_database(work: Path, tmp_path: Path) -> None:
    """A read-only connection still lets COPY write files, the database's own among them."""
    victim = tmp_path / "victim.duckdb"
    shutil.copy(work / "events.duckdb", victim)
    before = event_count(victim)
    attempts = [
        f"copy events to '{victim}'",
        f"copy events to '{victim}' (use_tmp_file false)",
        f"explain analyze copy events to '{victim}' (use_tmp_file false)",
        f"explain (analyze) copy events to '{victim}' (use_tmp_file false)",
        f"export database '{tmp_path / 'dump'}'",
        f"attach '{tmp_path / 'other.duckdb'}' as other",
        "set memory_limit = '1GB'",
    ]
    for sql in attempts:
        proc = observatory("query", sql, "--db", str(victim), cwd=tmp_path)
        line = one_error_line(proc)
        assert proc.returncode == 1, sql
        assert "refused" in line or "read-only" in line, line
    assert event_count(victim) == before
    assert not (tmp_path / "dump").exists()
    assert not (tmp_path / "other.duckdb").exists()


def test_reads_of_every_kind_still_work(work: Path, db: Path) -> None:
    for sql in (
        "from events limit 1",
        "with t as (select 1 as x) select * from t",
        "describe events",
        "show tables",
        "pragma table_info('events')",
        "explain select count(*) from events",
        "explain analyze select count(*) from events",
        "values (1, 'a')",
    ):
        proc = observatory("query", sql, "--db", str(db), cwd=work)
        assert proc.returncode == 0, (sql, proc.stderr)


def test_two_statements_exit_2(work: Path, db: Path) -> None:
    proc = observatory("query", "select 1; select 2", "--db", str(db), cwd=work)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert "one" in line


def test_a_missing_database_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    proc = observatory("query", "select 1", "--db", "nowhere.duckdb", cwd=tmp_path)
    line = one_error_line(proc)
    assert proc.returncode == 1
    assert "nowhere.duckdb" in line and "ingest" in line
    assert not (tmp_path / "nowhere.duckdb").exists()  # not created by looking


def test_a_file_that_is_not_a_database_exits_1(tmp_path: Path) -> None:
    (tmp_path / "notes.duckdb").write_text("hello\n")
    proc = observatory("query", "select 1", "--db", "notes.duckdb", cwd=tmp_path)
    one_error_line(proc)
    assert proc.returncode == 1


def test_output_into_a_missing_directory_exits_1(work: Path, db: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir.csv"
    proc = observatory(
        "query", BY_DEST, "--db", str(db), "--format", "csv", "--output", str(target), cwd=work
    )
    one_error_line(proc)
    assert proc.returncode == 1


# ------------------------------------------------------------------ untrusted text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DB whose events carry control characters, ANSI escapes and very long values,
    ingested from a real log file."""
    path = tmp_path_factory.mktemp("hostile")
    (path / "logs").mkdir()
    (path / "config.toml").write_text(
        '[storage]\ndb = "h.duckdb"\n'
        '[[sources]]\nname = "fwd"\npath = "logs/*.jsonl"\nformat = "jsonl"\n'
        '[sources.fields]\nts = "time"\ndestination = "dest"\nevent_name = "event"\n'
        'message_id = "id"\nerror_message = "msg"\n',
        encoding="utf-8",
    )
    rows = [
        {"time": 1795183200203, "dest": "d", "id": "ansi", "event": "\x1b[31mRED\x1b[0m"},
        {"time": 1795183200203, "dest": "d", "id": "ctrl", "event": "a\rb\nc\td\x07e\x00f\x08"},
        {"time": 1795183200203, "dest": "d", "id": "osc", "event": "\x1b]0;pwned\x07"},
        {"time": 1795183200203, "dest": "d", "id": "bidi", "event": "abc\u202edef"},
        {"time": 1795183200203, "dest": "d", "id": "long", "event": "x" * 5000, "msg": "y" * 300},
    ]
    (path / "logs" / "a.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    proc = observatory("ingest", cwd=path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"] == len(rows)
    return path


def test_control_characters_are_escaped_in_tables(hostile: Path) -> None:
    proc = observatory(
        "query",
        "select message_id, event_name from events order by 1",
        "--db",
        "h.duckdb",
        cwd=hostile,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert b"\x1b" not in out  # no raw ESC: nothing the terminal would interpret
    for byte in (b"\r", b"\x07", b"\x00", b"\x08", b"\t"):
        assert byte not in out
    assert "\u202e".encode() not in out
    text = out.decode()
    assert "\\x1b[31mRED" in text
    assert len(text.splitlines()) == 2 + 5 + 1  # header, rule, 5 rows, note: no row split


def test_long_cells_are_cut(hostile: Path) -> None:
    proc = observatory(
        "query",
        "select message_id, event_name, error_message from events where message_id = 'long'",
        "--db",
        "h.duckdb",
        cwd=hostile,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "x" * CELL_WIDTH not in text
    assert "…" in text
    assert max(len(ln) for ln in text.splitlines()) < 3 * CELL_WIDTH


def test_files_keep_the_full_values(hostile: Path, tmp_path: Path) -> None:
    """Only the table is for terminals: exports carry the data unchanged."""
    target = tmp_path / "all.json"
    proc = observatory(
        "query",
        "select message_id, event_name from events",
        "--db",
        "h.duckdb",
        "--format",
        "json",
        "--output",
        str(target),
        cwd=hostile,
    )
    assert proc.returncode == 0, proc.stderr
    got = {
        o["message_id"]: o["event_name"]
        for o in map(json.loads, target.read_text(encoding="utf-8").splitlines())
    }
    assert got["ansi"] == "\x1b[31mRED\x1b[0m"
    assert got["long"] == "x" * 5000


def test_cell_and_render_table_units() -> None:
    assert cell(None) == "NULL"
    assert cell("plain") == "plain"
    assert "\x1b" not in cell("\x1b[1mbold")
    assert len(cell("z" * 500)) == CELL_WIDTH
    table = render_table(["a", "n"], [("x\ny", 1), ("\x1b[2J", 22)])
    assert "\x1b" not in table and "\ny" not in table
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].endswith(" 1") and lines[3].endswith("22")  # numbers right-aligned


def test_tables_stop_at_a_thousand_rows_with_a_note(work: Path, db: Path) -> None:
    proc = observatory("query", "select * from range(1500)", "--db", str(db), cwd=work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 2 + 1000 + 1
    assert "more not shown" in lines[-1]


def test_a_reader_that_stops_early_gets_no_error_message(work: Path, db: Path) -> None:
    """`observatory query ... | head -1`: the closed pipe is not reported as a failure."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "observatory", "query", "select * from events", "--db", str(db)]
        + ["--format", "csv"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"ts,")
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert err == b""
