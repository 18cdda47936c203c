"""Done-means for secrets: a probe token (in an Authorization header and in a URL's query
string) reaches the simulator but appears nowhere the observatory writes: not in probe
results, logs, the DB file or any table, stdout/stderr of `watch`, `ingest`, `query`,
`incidents`, `export`, nor in any export or query output format."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest
from click.testing import CliRunner

from observatory.cli import main
from observatory.config import load_config
from observatory.probes import ProbeResult, build_probes
from observatory.runtime import Runtime
from observatory.sim.server import SimServer


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, base: str) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    now_ms = int(time.time() * 1000)
    with (logs / "fwd.jsonl").open("w") as f:
        for i in range(50):
            f.write(
                orjson.dumps(
                    {
                        "time": now_ms - 60_000 + i * 1000,
                        "dest": "tiktok_conversions",
                        "code": 429 if i % 5 == 0 else 200,
                        "duration": 20.0,
                        "messageId": f"m{i}",
                    }
                ).decode()
                + "\n"
            )
    dead = f"http://127.0.0.1:{_closed_port()}"
    q = "token=${SEG_TOKEN}"
    auth = '[destinations.probes.headers]\nAuthorization = "Bearer ${SEG_TOKEN}"\n'
    text = f"""
[storage]
db = "{tmp_path / "obs.duckdb"}"
retention = "3650d"

[[sources]]
name = "fwd"
path = "{logs}/*.jsonl"
format = "jsonl"
[sources.fields]
ts = "time"
destination = "dest"
http_status = "code"
latency_ms = "duration"
message_id = "messageId"

[[destinations]]
name = "tiktok_conversions"
vendor = "tiktok"
[[destinations.probes]]
kind = "segment_delivery"
url = "{base}/destinations/dst_tiktok/delivery-metrics?sourceId=src1&{q}"
every = "0.3s"
{auth}
[[destinations.probes]]
kind = "statuspage"
url = "{base}/api/v2/summary.json?{q}"
component = "TikTok Conversions"
every = "0.3s"
{auth}
[[destinations.probes]]
kind = "prometheus"
url = "{base}/metrics?{q}"
selector = 'router_response_counts{{respStatusCode="429"}}'
every = "0.3s"
{auth}
[[destinations.probes]]
kind = "http"
url = "{dead}/health?{q}"
every = "0.3s"
{auth}
[[destinations.probes]]
kind = "http"
url = "{base}/no/such/path?{q}"
every = "0.3s"
{auth}
"""
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "observatory", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=120,
    )


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """The same command in this process (click's runner): the many reads after `watch` each
    cost an interpreter start otherwise. What a command prints is what is checked."""
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return subprocess.CompletedProcess(
        args, result.exit_code, result.stdout_bytes, result.stderr_bytes
    )


@pytest.mark.slow  # live probes for 3 s, then `watch --duration 5`
def test_probe_token_appears_nowhere(
    tmp_path: Path, sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = f"SEGTOK{uuid.uuid4().hex}"
    needle = token.encode()
    monkeypatch.setenv("SEG_TOKEN", token)
    env = {**os.environ, "SEG_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    cfg_path = _config(tmp_path, sim.url)
    config = load_config(cfg_path)
    # Positive control: the token really is configured (and so sent).
    seg = config.destinations[0].probes[0]
    assert seg.header_values()["Authorization"] == f"Bearer {token}"
    assert token in seg.url_value()
    assert token not in repr(config) and token not in str(config)

    # Faults: the status page degrades (an incident with status-page evidence), the
    # Prometheus endpoint fails, the Segment API rate-limits once in a while.
    sim.set_component("TikTok Conversions", "major_outage")
    sim.set_fault("/metrics", "http_error", status=503)

    # 1. The probes in-process, with every logger at DEBUG.
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        probes = build_probes(config)

        async def run_all() -> list[ProbeResult]:
            async with httpx.AsyncClient() as client:
                return list(await asyncio.gather(*(p.run(client) for p in probes)))

        results = asyncio.run(run_all())
        assert [r.ok for r in results] == [True, False, False, False, False]
        assert {r.status for r in results[1:]} == {
            "major_outage",
            "http 503",
            "connection refused",
            "http 404",
        }
        for r in results:
            assert token not in repr(r)
            assert token not in orjson.dumps(r.details).decode()

        # The runtime with its scheduler, logging at DEBUG too.
        runtime = Runtime(config, db=str(tmp_path / "inproc.duckdb"))
        try:
            runtime.start_live()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                runtime.poll()
                time.sleep(0.1)
            assert runtime.probes_stored >= 10
            assert runtime.engine.incidents()
        finally:
            runtime.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    log_text = captured.getvalue()
    assert "HTTP Request" in log_text  # httpx did log its requests...
    assert token not in log_text  # ...without the token

    # 2. The CLI: watch (probes live, an incident opens), then ingest, query, incidents, export.
    outputs: dict[str, bytes] = {}
    sim.set_fault("/destinations/", "rate_limit", retry_after="1")
    watch = _run(["watch", "--config", str(cfg_path), "--duration", "5"], env, tmp_path)
    outputs["watch.out"], outputs["watch.err"] = watch.stdout, watch.stderr
    assert watch.returncode == 0, watch.stderr.decode()
    opened = [orjson.loads(line) for line in watch.stdout.splitlines() if line.strip()]
    assert any(o.get("detector") == "probe" or "probe" in str(o) for o in opened), opened

    ingest = _run(["ingest", "--config", str(cfg_path)], env, tmp_path)
    outputs["ingest.out"], outputs["ingest.err"] = ingest.stdout, ingest.stderr
    assert ingest.returncode == 0, ingest.stderr.decode()

    db = str(tmp_path / "obs.duckdb")
    with duckdb.connect(db, read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        [(probes,)] = con.execute("SELECT count(*) FROM probes").fetchall()
        assert probes >= 10
        refused_sql = "SELECT count(*) FROM probes WHERE NOT ok AND status = 'connection refused'"
        [(refused,)] = con.execute(refused_sql).fetchall()
        assert refused > 0
    assert {"probes", "incidents", "incident_timeline", "events"} <= set(tables)

    for table in tables:
        for fmt in ("table", "csv", "json"):
            q = _cli(["query", f"SELECT * FROM {table}", "--db", db, "--format", fmt], env)
            assert q.returncode == 0, q.stderr.decode()
            outputs[f"query.{table}.{fmt}"] = q.stdout + q.stderr
        out = tmp_path / f"{table}.parquet"
        q = _cli(
            [
                "query",
                f"SELECT * FROM {table}",
                "--db",
                db,
                "--format",
                "parquet",
                "--output",
                str(out),
            ],
            env,
        )
        assert q.returncode == 0, q.stderr.decode()
        outputs[f"query.{table}.parquet"] = out.read_bytes() + q.stdout + q.stderr
    # every table's text, straight from DuckDB
    with duckdb.connect(db, read_only=True) as con:
        for table in tables:
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            outputs[f"table.{table}"] = repr(rows).encode()

    for fmt in ("table", "json"):
        inc = _cli(["incidents", "--db", db, "--format", fmt], env)
        assert inc.returncode == 0, inc.stderr.decode()
        outputs[f"incidents.{fmt}"] = inc.stdout + inc.stderr
    ids = [
        orjson.loads(line)["id"]
        for line in outputs["incidents.json"].splitlines()
        if line.startswith(b"{")
    ]
    assert ids, outputs["incidents.json"][:500]
    exported_probe_evidence = False
    for inc_id in ids:
        for fmt in ("md", "json", "csv", "html"):
            out = tmp_path / f"export-{inc_id}.{fmt}"
            ex = _cli(["export", inc_id, "--db", db, "--format", fmt, "--output", str(out)], env)
            assert ex.returncode == 0, ex.stderr.decode()
            data = out.read_bytes()
            outputs[f"export.{inc_id}.{fmt}"] = data + ex.stdout + ex.stderr
            exported_probe_evidence |= b"major_outage" in data
            # and to stdout
            ex = _cli(["export", inc_id, "--db", db, "--format", fmt], env)
            outputs[f"export.{inc_id}.{fmt}.stdout"] = ex.stdout + ex.stderr
    assert exported_probe_evidence  # the status page's evidence did reach the exports

    # 3. The files: the DB (and any WAL), every output, any file the runs left behind.
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "config.toml":
            outputs[f"file.{path.relative_to(tmp_path)}"] = path.read_bytes()
    assert any(k.startswith("file.obs.duckdb") for k in outputs)
    leaks = [name for name, data in outputs.items() if needle in data]
    assert not leaks, leaks
    # the positive control for the grep itself
    assert needle in (cfg_path.read_bytes() + env["SEG_TOKEN"].encode())
