"""Ingest throughput against DuckDB's own JSON reader, logfmt lines/s, and peak RSS.

Generates a 1,000,000-line pino-style delivery log (~190 MB) and a logfmt log, then times
in the same run:
  * reference: DuckDB `read_json` loading the JSON file into a table of a fresh database file,
    timed in this process (no interpreter start-up charged to it: the strict reference) and as
    a whole `python -c` process (start-up charged, like ours);
  * `observatory ingest` on the same file, as a whole process (start-up included);
  * `observatory ingest` on the logfmt file, as a whole process.
Prints the ratios (reference seconds / observatory seconds: 1.0 = as fast as DuckDB alone),
logfmt lines/s, and the peak RSS of each observatory process.

    python benchmarks/ingest.py [--lines N] [--runs K]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import orjson

DATA = Path(__file__).parent / "data"
DESTS = ["tiktok_conversions", "meta_capi", "google_ads", "crm_webhook", "segment_webhook"]
EVENTS = ["CompletePayment", "AddToCart", "PlaceAnOrder", "Lead"]
T0 = 1795183200000  # 2026-11-20T14:00:00Z in ms


def records(n: int, seed: int = 1):
    rng = random.Random(seed)
    for i in range(n):
        dest = DESTS[i % 5]
        r = rng.random()
        code = 200 if r < 0.95 else (429 if r < 0.98 else (400 if r < 0.99 else 503))
        rec: dict[str, object] = {
            "level": 30 if code == 200 else 50,
            "time": T0 + i * 3,
            "pid": 4242,
            "hostname": "fwd-7c9f",
            "msg": "delivery ok" if code == 200 else "delivery failed",
            "dest": dest,
            "event": EVENTS[i % 4],
            "messageId": f"{rng.getrandbits(64):016x}-{i:08d}",
            "code": code,
            "duration": round(rng.lognormvariate(4.5, 0.6), 1),
            "attempt": 1,
        }
        if code != 200:
            rec["err"] = {
                "code": "40100" if code == 429 else f"E{code}",
                "message": "Too many requests",
            }
        yield rec


def write_json(path: Path, n: int) -> None:
    with open(path, "wb") as fh:
        buf = []
        for rec in records(n):
            buf.append(orjson.dumps(rec))
            if len(buf) >= 20000:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            fh.write(b"\n".join(buf) + b"\n")


def write_logfmt(path: Path, n: int) -> None:
    with open(path, "w") as fh:
        for rec in records(n, seed=2):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rec["time"] / 1000))  # type: ignore[operator]
            line = (
                f"ts={ts}.{rec['time'] % 1000:03d}Z level=info dest={rec['dest']} "  # type: ignore[operator]
                f"event={rec['event']} msg_id={rec['messageId']} status={rec['code']} "
                f"dur_ms={rec['duration']} attempt=1"
            )
            if "err" in rec:
                line += f' code={rec["err"]["code"]} error="{rec["err"]["message"]}"'  # type: ignore[index]
            fh.write(line + "\n")


CONFIG = """
[storage]
db = "{db}"
memory_limit = "256MB"

[[sources]]
name = "forwarder"
path = "{data}/*.jsonl"
format = "jsonl"
[sources.fields]
ts = "time"
destination = "dest"
http_status = "code"
latency_ms = "duration"
event_name = "event"
message_id = "messageId"
error_code = "err.code"
error_message = "err.message"

[[sources]]
name = "relay"
path = "{data}/*.logfmt"
format = "logfmt"
[sources.fields]
destination = "dest"
http_status = "status"
latency_ms = "dur_ms"
event_name = "event"
message_id = "msg_id"
error_code = "code"
error_message = "error"
"""


def reference(path: Path, tmp: Path) -> float:
    db = tmp / f"ref-{time.monotonic_ns()}.duckdb"
    t = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{path}')").fetchall()
    con.close()
    return time.perf_counter() - t


REF_SCRIPT = (
    "import sys, duckdb; con = duckdb.connect(sys.argv[1]); "
    "con.execute(f\"CREATE TABLE t AS SELECT * FROM read_json('{sys.argv[2]}')\").fetchall(); "
    "con.close()"
)


def reference_process(path: Path, tmp: Path) -> float:
    """The same load as a whole `python -c` process, start-up and import included."""
    db = tmp / f"refp-{time.monotonic_ns()}.duckdb"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", REF_SCRIPT, str(db), str(path)], check=True)
    return time.perf_counter() - t


def observatory(path: Path, config: Path, tmp: Path) -> tuple[float, int, dict]:
    db = tmp / f"obs-{time.monotonic_ns()}.duckdb"
    t = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observatory",
            "ingest",
            str(path),
            "--config",
            str(config),
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
    )
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"observatory ingest failed with status {status}")
    return secs, usage.ru_maxrss * 1024, orjson.loads(out.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    jpath = DATA / f"bench-{args.lines}.jsonl"
    lpath = DATA / f"bench-{args.lines}.logfmt"
    for path, writer in ((jpath, write_json), (lpath, write_logfmt)):
        if not path.exists():
            print(f"generating {path.name} ...", file=sys.stderr)
            tmp_path = path.with_suffix(".tmp")
            writer(tmp_path, args.lines)
            tmp_path.rename(path)
    print(f"json file: {jpath.stat().st_size / 1e6:.0f} MB, {args.lines:,} lines")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        config = tmp / "bench.toml"
        config.write_text(CONFIG.format(db=tmp / "unused.duckdb", data=DATA))
        refs, refps, obs, rss = [], [], [], []
        for _ in range(args.runs):  # interleaved, so machine noise hits both alike
            refs.append(reference(jpath, tmp))
            refps.append(reference_process(jpath, tmp))
            secs, peak, summary = observatory(jpath, config, tmp)
            obs.append(secs)
            rss.append(peak)
            assert summary["rows"] == args.lines, summary
        ref, refp, ours = min(refs), min(refps), min(obs)
        print(f"observatory ingest (whole process):           {ours:.2f} s")
        print(f"duckdb read_json into a table (in-process):   {ref:.2f} s")
        print(f"duckdb read_json into a table (whole process): {refp:.2f} s")
        # Like for like: both sides are a process that starts, loads the file, and exits.
        print(f"ratio vs whole-process read_json: {refp / ours:.2f}  (target >= 0.6, stretch 0.8)")
        print(f"ratio vs in-process read_json:    {ref / ours:.2f}  (stricter: no start-up for it)")
        print(f"observatory ingest peak RSS: {max(rss) / 2**20:.0f} MB  (target <= 500 MB)")
        lsecs, lpeak, lsum = min(
            (observatory(lpath, config, tmp) for _ in range(args.runs)), key=lambda r: r[0]
        )
        assert lsum["rows"] == args.lines, lsum
        print(
            f"logfmt: {args.lines / lsecs:,.0f} lines/s including process start "
            f"({lsecs:.2f} s, peak RSS {lpeak / 2**20:.0f} MB)  (target >= 200,000)"
        )


if __name__ == "__main__":
    main()
