"""Simulator throughput while `observatory watch` follows it, end to end.

Runs `observatory simulate` (a steady scenario at a high upstream rate, written to a temp
TOML file) and `observatory watch` on the config it writes, both as subprocesses, for about
20 s. Prints the simulator's delivered events/s (delivered lines in its log during the window)
and the rate observatory stored (rows in its DuckDB / s). Exits 1 if delivered < TARGET.

    python benchmarks/simulator.py [--rate 700] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import orjson

TARGET = 2000.0  # delivered events/s while watched

SCENARIO = """
name = "bench-steady"
description = "steady traffic at a high rate, for the benchmark"
seed = 3
duration = {duration}
rate = {rate}
[limits]
tiktok = 1000
meta = 1000
google = 1000
webhook = 1000
[error_rate]
tiktok = 0.001
meta = 0.001
google = 0.001
webhook = 0.002
[forwarder]
flush_interval = 0.2
concurrency = 8
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=700.0, help="upstream conversions/s (x4 dests)")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="obs-bench-sim-") as tmp_s:
        tmp = Path(tmp_s)
        logs = tmp / "logs"
        scen = tmp / "bench.toml"
        scen.write_text(SCENARIO.format(duration=args.seconds + 10, rate=args.rate))
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "observatory",
                "simulate",
                "--scenario",
                str(scen),
                "--logs",
                str(logs),
                "--duration",
                str(args.seconds + 4),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert sim.stdout is not None
        head = json.loads(sim.stdout.readline())
        config = Path(head["config"])
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "observatory",
                "watch",
                "--config",
                str(config),
                "--duration",
                str(args.seconds),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        t0 = time.time()
        _, werr = watch.communicate(timeout=args.seconds + 120)
        t1 = time.time()
        sim.wait(timeout=60)
        if watch.returncode != 0:
            print(werr.decode(errors="replace")[-2000:], file=sys.stderr)
            print(f"watch exited {watch.returncode}", file=sys.stderr)
            return 1
        lo, hi = int(t0 * 1000), int(t1 * 1000)
        delivered = total = 0
        for raw in (logs / "forwarder.jsonl").read_bytes().splitlines():
            rec = orjson.loads(raw)
            if lo <= rec["time"] <= hi:
                total += 1
                if "err" not in rec and rec.get("code") == 200:
                    delivered += 1
        con = duckdb.connect(str(logs / "observatory.duckdb"), read_only=True)
        row = con.execute("select count(*) from events").fetchone()
        rows = int(row[0]) if row else 0
        con.close()
        span = t1 - t0
        result = {
            "seconds": round(span, 1),
            "upstream_rate": args.rate,
            "delivered_per_s": round(delivered / span, 1),
            "lines_per_s": round(total / span, 1),
            "stored_rows": rows,
            "stored_per_s": round(rows / span, 1),
            "target_delivered_per_s": TARGET,
        }
        print(json.dumps(result))
        return 0 if delivered / span >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
