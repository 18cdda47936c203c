"""Plain helpers shared by the test folders: a config file with a jsonl source over
`tmp_path/logs`, pino-style log lines, and a few queries and polls on a Store. The fixtures built
on them are in tests/conftest.py."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from observatory.ingest.tail import BLOCK, SourceTailer
from observatory.sim.loadgen import JSONL_FIELDS, backlog, line
from observatory.store.db import Store, Tally

if TYPE_CHECKING:
    from observatory.runtime import Runtime

# 2023-11-14T22:13:20Z, an instant every ts format below can express exactly.
BASE_EPOCH_MS = 1_700_000_000_000

# The pino field mapping the load generator writes, less event_name.
DEFAULT_FIELDS: dict[str, str] = {k: v for k, v in JSONL_FIELDS.items() if k != "event_name"}


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def make_config(
    tmp_path: Path,
    sources: list[dict[str, Any]] | None = None,
    db: str = "obs.duckdb",
    retention: str = "3650d",
) -> Path:
    """Write `tmp_path/config.toml` and return its path.

    By default one jsonl source `fwd` reads `logs/*.jsonl` (relative to tmp_path) with
    DEFAULT_FIELDS. Each dict in `sources` overrides keys of that default source
    (`fields` is merged into DEFAULT_FIELDS).
    """
    (tmp_path / "logs").mkdir(exist_ok=True)
    specs = sources if sources is not None else [{}]
    parts = [f"[storage]\ndb = {_toml_value(db)}\nretention = {_toml_value(retention)}\n"]
    for i, spec in enumerate(specs):
        src: dict[str, Any] = {"name": f"fwd{i}" if i else "fwd", "path": "logs/*.jsonl"}
        src["format"] = "jsonl"
        src.update({k: v for k, v in spec.items() if k != "fields"})
        fields = {**DEFAULT_FIELDS, **spec.get("fields", {})}
        body = "".join(f"{k} = {_toml_value(v)}\n" for k, v in src.items())
        body += "[sources.fields]\n" + "".join(
            f"{k} = {_toml_value(v)}\n" for k, v in fields.items()
        )
        parts.append("[[sources]]\n" + body)
    path = tmp_path / "config.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def pino_line(i: int, **overrides: Any) -> bytes:
    """One pino-style JSON delivery line (newline included) with messageId `m<i>`."""
    obj: dict[str, Any] = {
        "level": 30,
        "time": BASE_EPOCH_MS + i,
        "pid": 4242,
        "hostname": "fwd-1",
        "dest": "tiktok_conversions",
        "code": 200,
        "duration": 12.5,
        "messageId": f"m{i}",
        "msg": "delivered",
    }
    obj.update(overrides)
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def lines(start: int, stop: int, **overrides: Any) -> bytes:
    return b"".join(pino_line(i, **overrides) for i in range(start, stop))


def poll(store: Store, tailer: SourceTailer, block_size: int = BLOCK) -> Tally:
    """One tailer poll appended and committed in one transaction."""
    with store.transaction() as tally:
        for block in tailer.blocks(block_size):
            store.stage(block)
    return tally


def q(store: Store, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return store.con.execute(sql, params or []).fetchall()


def message_ids(store: Store) -> list[str]:
    """All message ids in `events`, sorted (duplicates kept)."""
    return [r[0] for r in q(store, "SELECT message_id FROM events ORDER BY message_id")]


def ids(start: int, stop: int) -> list[str]:
    return sorted(f"m{i}" for i in range(start, stop))


def counts(store: Store) -> tuple[int, int]:
    """(rows in events, rows in rejects)."""
    return (
        q(store, "SELECT count(*) FROM events")[0][0],
        q(store, "SELECT count(*) FROM rejects")[0][0],
    )


# An owner's history for the attach tests: traffic with a TikTok rate-limit outage.
RATES = {"tiktok_conversions": 40.0, "meta_capi": 15.0}
SECRET = "backup-secret-3c1d9b7e"


def history_with_outage(log: Path, now: float) -> None:
    """Traffic from 28 to 11 minutes ago, TikTok rate limited for two minutes of it: history
    (older than the staleness window), so nothing changes while the test looks."""
    backlog(log, RATES, now - 1680, now - 1200, seed=3)
    rng = random.Random(4)
    out = []
    for k in range(120 * 40):
        ts = now - 1200 + k / 40
        out.append(line("tiktok_conversions", ts, rng, fault="rate_limit"))
    with log.open("ab") as fh:
        fh.write(b"".join(out))
    backlog(log, {"meta_capi": RATES["meta_capi"]}, now - 1200, now - 1080, seed=6)
    backlog(log, RATES, now - 1080, now - 660, seed=5)


def owned_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config over a log with that history, a [backup] table and the API on a free loopback
    port: (the config file, its database)."""
    import time

    from observatory.sim.loadgen import config_toml

    logs = tmp_path / "logs"
    logs.mkdir()
    history_with_outage(logs / "fwd.jsonl", time.time())
    cfg = tmp_path / "config.toml"
    extra = (
        f'\n[backup]\nlisten = "127.0.0.1:0"\nsecret = "{SECRET}"\n'
        'destinations = ["tiktok_conversions"]\n\n[server]\nlisten = "127.0.0.1:0"\n'
    )
    cfg.write_text(config_toml(str(tmp_path / "obs.duckdb"), str(logs / "*.jsonl"), "60s", extra))
    return cfg, tmp_path / "obs.duckdb"


# The backup receiver tests' signing secret (BACKUP_WEBHOOK_SECRET) and config.
RECEIVER_SECRET = "s3cr3t-backup-key"


def backup_toml(**overrides: Any) -> str:
    """A [backup] table for the receiver tests (keys set to None are left out)."""
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "path": "/webhook",
        "secret": "${BACKUP_WEBHOOK_SECRET}",
        "destinations": ["tiktok_conversions", "meta_capi"],
        "window": "10m",
        "max_body": "4KB",
    }
    values.update(overrides)
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items() if v is not None)
    return "\n[backup]\n" + body


def write_backup_config(tmp_path: Path, **overrides: Any) -> Path:
    path = make_config(tmp_path)
    path.write_text(path.read_text() + backup_toml(**overrides))
    return path


def replayed_runtime(config_path: Path) -> Runtime:
    """A runtime on ``config_path``'s log files, ingested and replayed in event time, as
    `observatory replay` would (the caller closes it)."""
    from observatory.config import load_config
    from observatory.ingest.backfill import ingest_files, plan_files
    from observatory.runtime import Runtime

    config = load_config(config_path)
    runtime = Runtime(config)
    try:
        ingest_files(runtime.store, plan_files(config, ()))
        runtime.replay_history()
    except BaseException:
        runtime.close()
        raise
    return runtime
