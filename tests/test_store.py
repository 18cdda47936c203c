"""Retention pruning and what `observatory ingest` says about a file's unfinished last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
from conftest import make_config

DAY_MS = 86_400_000
T0 = 1_795_183_200_000  # 2026-11-20T14:00:00Z


def _line(i: int, ts_ms: int) -> str:
    return json.dumps({"time": ts_ms, "dest": "crm_webhook", "code": 200, "messageId": f"m{i}"})


def _ingest(cfg: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observatory", "ingest", *map(str, paths), "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_retention_prunes_by_event_time_relative_to_the_newest_event(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, retention="7d")
    log = tmp_path / "logs" / "a.jsonl"
    # One event a day for 10 days, the newest last: days 0-2 are older than 7 days before it.
    log.write_text("".join(_line(i, T0 + i * DAY_MS) + "\n" for i in range(10)))
    done = _ingest(cfg, log)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 10
    con = duckdb.connect(str(tmp_path / "obs.duckdb"), read_only=True)
    kept = [r[0] for r in con.execute("SELECT message_id FROM events ORDER BY ts").fetchall()]
    con.close()
    # The cut is max(ts) - 7 days = day 2 exactly, which is kept (strictly older goes).
    assert kept == [f"m{i}" for i in range(2, 10)]


def test_ingest_reports_a_partial_last_line_on_stderr_and_reads_it_later(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    log = tmp_path / "logs" / "a.jsonl"
    whole, tail = _line(0, T0) + "\n", _line(1, T0 + 1)
    log.write_text(whole + tail)
    first = _ingest(cfg, log)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["rows"] == 1
    assert f"partial line ({len(tail)} bytes" in first.stderr
    with log.open("a") as fh:
        fh.write("\n")
    second = _ingest(cfg, log)
    assert json.loads(second.stdout) | {"seconds": 0, "rows_per_s": 0} == {
        "lines": 1,
        "rows": 1,
        "rejected": 0,
        "seconds": 0,
        "rows_per_s": 0,
    }
    assert "partial" not in second.stderr
