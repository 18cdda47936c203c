"""Latency detection through the real pipeline: bins agree between DuckDB and Python, and the
live path (lines arriving in pieces, polled) finds the same incidents as a replay."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import orjson

from observatory.config import load_config
from observatory.detect.aggregate import fetch_seconds
from observatory.detect.counts import BIN_BASE, latency_bin
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.runtime import Runtime
from observatory.sim.latency_shapes import bins_of
from observatory.sim.loadgen import config_toml, write_history
from observatory.store.db import Store

T0 = 1_795_183_200  # 2026-11-20T14:00:00Z
RATES = {"tiktok_conversions": 200.0, "meta_capi": 50.0, "google_ads": 20.0}
SHAPES = {"tiktok_conversions": "uniform", "meta_capi": "quantised", "google_ads": "heavy"}


def test_duckdb_and_python_put_a_latency_in_the_same_bin(tmp_path: Path) -> None:
    edges = [BIN_BASE**k for k in range(0, 60)]
    values = [0.0, 0.2, 1.0, 1.1, 49.9, 50.0, 100.0, 200.0, 300.0, 1e7, 1e30]
    values += edges + [e * (1 + 1e-12) for e in edges] + [e * (1 - 1e-12) for e in edges]
    store = Store(str(tmp_path / "bins.duckdb"))
    try:
        store.con.executemany(
            "INSERT INTO events (ts, ingested_at, source, destination, outcome, latency_ms) "
            "VALUES (to_timestamp(?), now(), 's', 'd', 'delivered', ?)",
            [(T0 + i / 10_000, v) for i, v in enumerate(values)],  # one second, apart
        )
        store.con.execute(
            "INSERT INTO events (ts, ingested_at, source, destination, outcome) "
            "VALUES (to_timestamp(?), now(), 's', 'd', 'delivered')",
            [T0],
        )
        (second,) = fetch_seconds(store.con)
    finally:
        store.close()
    python = Counter(latency_bin(v) for v in values)
    assert second.hist == dict(python)
    assert dict(Counter(bins_of(np.array(values)).tolist())) == dict(python)
    assert second.latency_n == len(values) and second.total == len(values) + 1
    assert latency_bin(math.nan) == 0


def test_a_batch_is_one_latency_observation_however_many_events_it_carries(
    tmp_path: Path,
) -> None:
    # A forwarder that sends 20 events per request logs them with the request's timestamp
    # and latency: one slow request is one slow observation, not twenty.
    batches = [(T0 + 0.1, 40.0), (T0 + 0.3, 41.0), (T0 + 0.5, 400.0), (T0 + 0.7, 40.0)]
    store = Store(str(tmp_path / "batches.duckdb"))
    try:
        store.con.executemany(
            "INSERT INTO events (ts, ingested_at, source, destination, outcome, latency_ms) "
            "VALUES (to_timestamp(?), now(), 's', 'd', 'delivered', ?)",
            [(ts, ms) for ts, ms in batches for _ in range(20)],
        )
        (second,) = fetch_seconds(store.con)
    finally:
        store.close()
    assert second.delivered == second.latency_n == 80  # every event still counts as delivered
    assert second.hist == dict(Counter(latency_bin(ms) for _, ms in batches))
    assert sum(second.hist.values()) == 4


def _runtime(tmp: Path, name: str, log: Path) -> Runtime:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config_toml(str(tmp / f"{name}.duckdb"), str(log), "3m"), encoding="utf-8")
    return Runtime(load_config(cfg))


def _incidents(runtime: Runtime) -> list[tuple[str, str, float, list[str]]]:
    return [
        (i.destination, i.id, i.onset, sorted(i.detectors)) for i in runtime.engine.all_incidents()
    ]


def test_live_polling_and_replay_find_the_same_latency_incident(tmp_path: Path) -> None:
    """Eight minutes of traffic (uniform, quantised and heavy-tailed latencies), then Meta's
    latencies x3 for two minutes: read as a live run (appended and polled every 5 s, in pieces
    that split seconds) and as one replay, the incidents are the same, and the only one is
    Meta's latency incident."""
    onset = T0 + 480
    whole = tmp_path / "whole.jsonl"
    write_history(whole, RATES, T0, onset + 120, SHAPES, seed=3, slower=("meta_capi", onset, 3.0))
    replay = _runtime(tmp_path, "replay", whole)
    try:
        ingest_files(replay.store, plan_files(replay.config, (str(whole),)))
        replay.replay_history()
        replayed = _incidents(replay)
    finally:
        replay.close()

    live_log = tmp_path / "live.jsonl"
    live_log.touch()
    live = _runtime(tmp_path, "live", live_log)
    lines = whole.read_bytes().splitlines(keepends=True)
    times = [orjson.loads(line)["time"] for line in lines]
    try:
        live.start_live(now=T0)
        i = 0
        for until in range(T0 + 5, onset + 125, 5):
            chunk = []
            while i < len(lines) and times[i] < until * 1000:
                chunk.append(lines[i])
                i += 1
            # half a line first: the tailer must wait for its newline
            with live_log.open("ab") as fh:
                fh.write(b"".join(chunk[:-1]) + chunk[-1][:20] if chunk else b"")
            live.poll(now=until - 0.5)
            with live_log.open("ab") as fh:
                fh.write(chunk[-1][20:] if chunk else b"")
            live.poll(now=until)
        livened = _incidents(live)
    finally:
        live.close()

    assert [(d, det) for d, _, _, det in replayed] == [("meta_capi", ["latency"])]
    assert replayed[0][2] >= onset - 2
    assert livened == replayed
