"""Backup webhook receiver throughput: signed single-event POSTs from concurrent clients.

Runs ``python -m observatory.backup.receiver`` on loopback (a subprocess, as deployed; its
journal and database in a temp directory, so every 200 costs a real fsync, shared by
concurrent requests), then posts ``--requests`` signed single events from ``--clients``
concurrent ``httpx.AsyncClient`` s (one keep-alive connection each). Prints requests/s, the
p50/p95/p99 latency of a request, and checks every request got 200 and every event reached
``backup_events`` after the receiver's clean stop.

    python benchmarks/receiver.py [--requests 2000] [--clients 8] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from observatory.backup import sign

SECRET = "bench-receiver-secret"

CONFIG = """
[storage]
db = "obs.duckdb"
retention = "3650d"

[[sources]]
name = "fwd"
path = "logs/*.jsonl"
format = "jsonl"
[sources.fields]
ts = "time"
destination = "dest"
http_status = "code"

[backup]
listen = "127.0.0.1:0"
path = "/webhook"
secret = "${BACKUP_WEBHOOK_SECRET}"
destinations = ["tiktok_conversions", "meta_capi"]
"""


def event_body(i: int) -> bytes:
    return json.dumps(
        {
            "type": "track",
            "messageId": f"bench-{i}",
            "event": "CompletePayment",
            "properties": {"value": 12.5, "currency": "EUR", "order_id": f"o-{i}"},
            "timestamp": "2026-05-01T12:00:00.000Z",
        }
    ).encode()


async def post_all(url: str, first: int, n: int, clients: int) -> tuple[list[float], int]:
    """POST events ``first .. first+n-1``; the latency of each and how many were not 200."""
    latencies: list[float] = []
    failures = 0
    queue = iter(range(first, first + n))

    async def client() -> None:
        nonlocal failures
        async with httpx.AsyncClient(timeout=30) as http:
            for i in queue:  # shared: each index goes to exactly one client
                body = event_body(i)
                headers = {"Content-Type": "application/json", "X-Signature": sign(SECRET, body)}
                t0 = time.perf_counter()
                r = await http.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    failures += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, failures


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=100, help="requests before the timed ones")
    ap.add_argument("--dir", default=None, help="where the journal and database go")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="obs-bench-receiver-", dir=args.dir) as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "logs").mkdir()
        config = tmp / "config.toml"
        config.write_text(CONFIG)
        proc = subprocess.Popen(
            [sys.executable, "-m", "observatory.backup.receiver", "--config", str(config)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "BACKUP_WEBHOOK_SECRET": SECRET},
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                print("the receiver did not start", file=sys.stderr)
                return 1
            url = json.loads(line)["url"]
            asyncio.run(post_all(url, 0, args.warmup, args.clients))
            t0 = time.perf_counter()
            latencies, failures = asyncio.run(
                post_all(url, args.warmup, args.requests, args.clients)
            )
            elapsed = time.perf_counter() - t0
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        with duckdb.connect(str(tmp / "obs.duckdb"), read_only=True) as con:
            stored = con.execute("SELECT count(*) FROM backup_events").fetchone()
    total = args.warmup + args.requests
    ms = [x * 1000 for x in latencies]
    print(
        f"{args.requests} signed single-event POSTs, {args.clients} concurrent clients: "
        f"{args.requests / elapsed:,.0f} requests/s over {elapsed:.2f} s; latency "
        f"p50 {percentile(ms, 50):.2f} ms, p95 {percentile(ms, 95):.2f} ms, "
        f"p99 {percentile(ms, 99):.2f} ms, max {max(ms):.2f} ms"
    )
    ok = failures == 0 and code == 0 and stored == (total,)
    print(f"non-200: {failures}; exit {code}; stored {stored[0] if stored else None}/{total}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
