"""Retention pruning (after `ingest`, and every minute of a live run: `watch`'s and the TUI's)
and what `observatory ingest` says about a file's unfinished last line."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from observatory.config import load_config
from observatory.owner import build_runtime
from observatory.runtime import PRUNE_INTERVAL, Runtime
from observatory.ui.driver import RuntimeDriver, Snapshot
from tests.helpers import make_config

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


def _append(log: Path, first: int, times_s: list[float]) -> None:
    with log.open("a") as fh:
        fh.writelines(_line(first + i, int(t * 1000)) + "\n" for i, t in enumerate(times_s))


def _ids(runtime: Runtime) -> list[str]:
    rows = runtime.store.con.execute("SELECT message_id FROM events ORDER BY ts").fetchall()
    return [r[0] for r in rows]


def test_a_live_run_prunes_past_the_retention_once_a_minute(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, retention="2m")
    log = tmp_path / "logs" / "a.jsonl"
    now = 1_795_183_200.0
    _append(log, 0, [now - 600 + i for i in range(5)])  # history: 10 minutes old
    runtime = build_runtime(load_config(cfg))
    try:
        runtime.start_live(now)
        runtime.poll(now)  # prunes at once: nothing is 2 min older than the newest event
        assert _ids(runtime) == [f"m{i}" for i in range(5)]
        _append(log, 5, [now + 1 + i for i in range(5)])  # live lines
        runtime.poll(now + 6)
        # Not a minute since the last prune: the history stays for now ...
        assert _ids(runtime) == [f"m{i}" for i in range(10)]
        runtime.poll(now + PRUNE_INTERVAL)
        # ... then what is older than 2 minutes before the newest event goes.
        assert _ids(runtime) == [f"m{i}" for i in range(5, 10)]
    finally:
        runtime.close()


def test_the_tuis_driver_prunes_past_the_retention_once_a_minute(tmp_path: Path) -> None:
    """The same on the TUI's path: its driver thread polls the runtime (on the driver's
    clock, stepped here: no waiting for the minute)."""
    cfg = make_config(tmp_path, retention="2m")
    log = tmp_path / "logs" / "a.jsonl"
    now = 1_795_183_200.0
    _append(log, 0, [now - 600 + i for i in range(5)])  # history: 10 minutes old
    clock = [now]
    published: queue.Queue[Snapshot] = queue.Queue()
    driver = RuntimeDriver(
        lambda: build_runtime(load_config(cfg)), published.put, clock=lambda: clock[0]
    )
    thread = threading.Thread(target=driver.run, daemon=True)
    thread.start()

    def ids_at(wall: float) -> list[str]:
        """The stored ids once the driver has polled at `wall` (two snapshots later)."""
        clock[0] = wall
        for _ in range(2):  # the second follows a poll begun after the clock moved
            published.get(timeout=30)
        return driver.submit(_ids).result(timeout=30)

    try:
        assert ids_at(now) == [f"m{i}" for i in range(5)]  # the first poll keeps them all
        _append(log, 5, [now + 1 + i for i in range(5)])  # live lines
        assert ids_at(now + 6) == [f"m{i}" for i in range(10)]  # not a minute yet
        assert ids_at(now + PRUNE_INTERVAL) == [f"m{i}" for i in range(5, 10)]
    finally:
        driver.stop()
        thread.join(30)
    assert driver.wait_closed(0)


@pytest.mark.slow  # a live `watch --duration 0.5`
def test_watch_prunes_past_the_retention(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, retention="2m")
    log = tmp_path / "logs" / "a.jsonl"
    now = time.time()
    _append(log, 0, [now - 600, now - 599, now - 5, now - 4])
    done = subprocess.run(
        [sys.executable, "-m", "observatory", "watch", "--config", str(cfg), "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(tmp_path / "obs.duckdb"), read_only=True)
    kept = [r[0] for r in con.execute("SELECT message_id FROM events ORDER BY ts").fetchall()]
    con.close()
    assert kept == ["m2", "m3"]


def test_a_line_stamped_in_the_future_does_not_make_a_live_run_prune_the_present(
    tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path, retention="2m")
    log = tmp_path / "logs" / "a.jsonl"
    now = 1_795_183_200.0
    _append(log, 0, [now - 600, now - 5, now - 4, now + 86_400])  # a skewed clock: +1 day
    runtime = Runtime(load_config(cfg))
    try:
        runtime.start_live(now)
        runtime.poll(now)
        # The newest event counts as `now` at the latest: the present stays.
        assert _ids(runtime) == ["m1", "m2", "m3"]
    finally:
        runtime.close()


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
