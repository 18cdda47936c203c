"""Deterministic data for the UI tests: generated delivery lines at fixed times, ingested
once per session (the `datasets` fixture in tests/ui/conftest.py) into a DuckDB file that each
test copies, then replayed in event time."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from observatory.config import UiConfig, load_config
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.runtime import Runtime
from observatory.sim.loadgen import Fault, config_toml, line
from observatory.store.db import Store
from observatory.ui.app import ObservatoryApp, make_app

BASE = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SPAN = 900.0
NOW = BASE + SPAN  # the frozen clock of every UI test
MARKUP_DEST = "[bold red]x[/]"
ANSI_DEST = "\x1b[31mevil"


def write_lines(path: Path, incident: bool, odd_names: bool) -> None:
    rng = random.Random(7)
    rates = {"tiktok_conversions": 12.0, "meta_capi": 6.0}
    if odd_names:
        rates.update({MARKUP_DEST: 2.0, ANSI_DEST: 2.0})
    out: list[tuple[float, bytes]] = []
    for dest, rate in rates.items():
        t = BASE + rng.expovariate(rate)
        while t < NOW:
            fault: Fault | None = None
            if incident and dest == "tiktok_conversions" and t >= NOW - 90:
                fault = "rate_limit" if rng.random() < 0.8 else None
            elif dest == "meta_capi" and rng.random() < 0.01:
                fault = "failure"
            out.append((t, line(dest, t, rng, fault)))
            t += rng.expovariate(rate)
    out.sort()
    path.write_bytes(b"".join(b for _, b in out))


def add_probe_results(store: Store) -> None:
    """A few stored probe results for tiktok_conversions, the last ones rate-limited."""
    rows = []
    for n in range(6):
        ts = NOW - 60 + 10 * n
        limited = n >= 3
        details = {
            "kind": "http",
            "rate_limit_headers": {"retry-after": "30", "x-ratelimit-remaining": "0"}
            if limited
            else {"x-ratelimit-limit": "50", "x-ratelimit-remaining": str(40 - n)},
        }
        rows.append(
            [
                "tiktok_conversions",
                "health",
                ts,
                not limited,
                429 if limited else 200,
                35.0 + n,
                "rate_limited" if limited else "ok",
                json.dumps(details),
            ]
        )
    store.con.executemany(
        "INSERT INTO probes (destination, probe, ts, ok, http_status, latency_ms, status, "
        "details) VALUES (?, ?, to_timestamp(?), ?, ?, ?, ?, ?)",
        rows,
    )


DEPENDENCIES_TOML = """
[[destinations]]
name = "tiktok_conversions"
vendor = "tiktok"
via = ["segment", "tiktok_events_api"]
owner = "growth-eng"
runbook = "https://wiki.example.com/runbooks/tiktok"
fallback = "Route TikTok through the backup webhook; re-send missing events within the retry window"
retry_window = "4h"

[[destinations]]
name = "meta_capi"
vendor = "meta"
via = ["segment"]
fallback = "Upload the missing conversions as an offline event set [manual]"
retry_window = "7d"

[[dependencies]]
name = "segment"
kind = "cdp"
[[dependencies.probes]]
kind = "statuspage"
url = "http://127.0.0.1:9/api/v2/summary.json"
component = "Destinations"

[[dependencies]]
name = "tiktok_events_api"
kind = "platform_api"
[[dependencies.probes]]
kind = "http"
url = "http://127.0.0.1:9/health"
"""


def add_dependency_probes(store: Store) -> None:
    """Segment's status page going from operational to a major outage; TikTok's API fine."""
    store.con.executemany(
        "INSERT INTO probes (destination, probe, ts, ok, http_status, latency_ms, status, "
        "details) VALUES (?, ?, to_timestamp(?), ?, ?, 40.0, ?, '{}')",
        [
            ["segment", "statuspage:Destinations", NOW - 120, True, 200, "operational"],
            ["segment", "statuspage:Destinations", NOW - 20, False, 200, "major_outage"],
            ["tiktok_events_api", "http", NOW - 10, True, 200, None],
        ],
    )


def build_db(
    directory: Path, incident: bool, odd_names: bool = False, dependencies: bool = False
) -> Path:
    """A config + database under `directory`; returns the config path. `dependencies`:
    the config has chains and dependencies (DEPENDENCIES_TOML) and their probe results."""
    logs = directory / "logs"
    logs.mkdir(parents=True)
    write_lines(logs / "forwarder.jsonl", incident, odd_names)
    cfg = directory / "config.toml"
    extra = DEPENDENCIES_TOML if dependencies else ""
    cfg.write_text(config_toml(str(directory / "obs.duckdb"), str(logs / "*.jsonl"), "60s", extra))
    config = load_config(cfg)
    store = Store.for_config(config)
    try:
        ingest_files(store, plan_files(config, ()))
        add_probe_results(store)
        if dependencies:
            add_dependency_probes(store)
    finally:
        store.close()
    return cfg


def app_on(cfg: Path, tmp_path: Path, timezone: str = "UTC") -> ObservatoryApp:
    """An app on a private copy of `cfg`'s database: replayed, not polling, clock frozen;
    its times shown in `timezone` (`[ui] timezone`; UTC: the same on every machine)."""
    db = tmp_path / "copy.duckdb"
    shutil.copy(cfg.parent / "obs.duckdb", db)
    config = load_config(cfg)
    config.ui = UiConfig(timezone=timezone)

    def factory() -> Runtime:
        runtime = Runtime(config, str(db))
        runtime.replay_history()
        return runtime

    return make_app(config, poll=False, clock=lambda: NOW, runtime_factory=factory)


AppMaker = Callable[[str], ObservatoryApp]
