"""`observatory watch` end to end, live: lines written in real time, a 429 outage injected,
the `open` line printed on stdout; `--fail-on-incident` exits 3. (Latency is measured by
benchmarks/live.py, not asserted here.)"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import orjson
import pytest

from observatory.sim.loadgen import LineWriter, backlog, config_toml

pytestmark = pytest.mark.slow  # a live `watch` on lines written in real time

RATES = {"tiktok_conversions": 50.0, "meta_capi": 20.0}


def test_watch_opens_the_rate_limit_incident_live_and_fails_on_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "forwarder.jsonl"
    now = time.time()
    backlog(log, RATES, now - 300, now - 1)
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_toml(str(tmp_path / "obs.duckdb"), str(logs / "*.jsonl"), "60s"))
    writer = LineWriter(log, RATES).start()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observatory",
            "watch",
            "--config",
            str(cfg),
            "--duration",
            "45",
            "--fail-on-incident",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, object]] = []
    live = threading.Event()

    def read_out() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            rec = orjson.loads(raw)
            if rec.get("type") == "incident":  # other line types (e.g. drift) may appear
                lines.append(rec)

    def read_err() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            if "watch: live" in raw:
                live.set()

    for target in (read_out, read_err):
        threading.Thread(target=target, daemon=True).start()
    try:
        assert live.wait(60), "watch never went live"
        time.sleep(5)
        writer.inject("tiktok_conversions", "rate_limit")
        deadline = time.time() + 30
        while time.time() < deadline and not any(
            rec["state"] == "open" and rec["destination"] == "tiktok_conversions" for rec in lines
        ):
            time.sleep(0.05)
    finally:
        writer.stop()
        proc.terminate()
        code = proc.wait(30)
    opened = [r for r in lines if r["state"] == "open"]
    assert [r["destination"] for r in opened] == ["tiktok_conversions"], lines
    assert opened[0]["detector"] == "rate_limit"
    assert opened[0]["type"] == "incident"
    assert code == 3  # --fail-on-incident, even when stopped by SIGTERM
    con = duckdb.connect(str(tmp_path / "obs.duckdb"), read_only=True)
    stored = con.execute("SELECT destination, state FROM incidents").fetchall()
    con.close()
    assert stored == [("tiktok_conversions", "open")]
