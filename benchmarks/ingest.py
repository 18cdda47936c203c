"""Ingest speed against DuckDB's own JSON reader, logfmt lines/s, and peak RSS.

Every run generates a FRESH JSON-lines delivery log (1,000,000 lines by default) whose layout
is drawn from a seed: the timestamp's key and format, where the destination, status,
latency, event and message id live (always nested, e.g. `delivery.target`), field order,
lean (pino-like, ~200 bytes a line) or full (ECS-like context objects, ~500 bytes) lines,
extra objects and arrays, numeric or string vendor codes under `err.code`, occasional long
lines. The config mapping for it is written alongside. Then, interleaved so machine noise
hits all alike, it times:
  * reference: DuckDB `read_json` loading the file into a table of a fresh database file,
    timed in this process (no interpreter start-up charged to it: the strict reference) and
    as a whole `python -c` process (start-up charged, like ours);
  * `observatory ingest` on the same file as a whole process, start-up included.
It prints min and median of each, both ratios (reference seconds / observatory seconds: 1.0
= as fast as DuckDB alone; targets are for the in-process one), the peak RSS of the
observatory process, and logfmt lines/s on a fresh logfmt log.

    python benchmarks/ingest.py [--lines N] [--runs K] [--seed S] [--skip-logfmt]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson

DESTS = [
    ("tiktok_conversions", "https://business-api.tiktok.com/open_api/v1.3/event/track/"),
    ("meta_capi", "https://graph.facebook.com/v19.0/1234567890/events"),
    ("google_ads", "https://googleads.googleapis.com/v16/customers/42:uploadClickConversions"),
    ("crm_webhook", "https://hooks.example-crm.io/in/7f3a"),
    ("snap_capi", "https://tr.snapchat.com/v2/conversion"),
]
EVENTS = ["Purchase", "AddToCart", "Lead", "CompleteRegistration", "ViewContent", "Subscribe"]
MESSAGES = [
    "Too many requests. QPS limit reached",
    "User request limit reached",
    "upstream said no — réessayer plus tard",
    "invalid pixel_code: 字段无效",
    "socket hang up",
]
T0 = datetime(2026, 11, 20, 14, 0, 0, tzinfo=UTC)


def layout(seed: int) -> dict[str, Any]:
    """Where this run's log keeps each field, and how it writes time."""
    rng = random.Random(seed)
    return {
        "ts_key": rng.choice(["@timestamp", "ts", "timestamp"]),
        "ts_format": rng.choice(["us_z", "ms_z", "us_offset", "s_local"]),
        "group": rng.choice(["delivery", "http", "outbound"]),
        "target": rng.choice(["target", "destination", "dest_name"]),
        "status": rng.choice(["status", "status_code", "statusCode"]),
        "latency": rng.choice([("elapsed_s", "s"), ("duration_ms", "ms"), ("took_us", "us")]),
        "event_group": rng.choice(["event", "conversion"]),
        # lean: about 200 bytes a line, pino-like; full: about 500, ECS-like context objects
        "extras": rng.choice(["lean", "full"]),
    }


def stamp(t: datetime, fmt: str) -> str:
    if fmt == "us_z":
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if fmt == "ms_z":
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    if fmt == "us_offset":
        return t.isoformat()  # 2026-11-20T14:00:00.123456+00:00
    local = t.astimezone(datetime.now().astimezone().tzinfo).replace(microsecond=0)
    return local.isoformat()


def record(rng: random.Random, t: datetime, lay: dict[str, Any]) -> dict[str, Any]:
    dest, url = rng.choice(DESTS)
    latency_key, unit = lay["latency"]
    seconds = rng.lognormvariate(-2.5, 0.7)
    latency = {"s": round(seconds, 4), "ms": round(seconds * 1000, 1), "us": int(seconds * 1e6)}
    full = lay["extras"] == "full"
    group: dict[str, Any] = {lay["target"]: dest}
    if full:
        group["endpoint"] = url
    group |= {lay["status"]: 200, latency_key: latency[unit], "try": 1}
    event = {"name": rng.choice(EVENTS), "id": f"evt_{rng.getrandbits(80):020x}"}
    rec: dict[str, Any] = {lay["ts_key"]: stamp(t, lay["ts_format"]), "level": "info"}
    if full:
        group["batch"] = rng.randint(1, 50)
        event |= {"value": round(rng.uniform(1, 400), 2), "currency": rng.choice(["EUR", "USD"])}
        rec |= {
            "service": {"name": "capi-relay", "version": rng.choice(["3.4.1", "3.5.0"])},
            "host": {"name": f"relay-{rng.randrange(8)}", "ip": f"10.0.{rng.randrange(4)}.7"},
            "trace": {"id": f"{rng.getrandbits(128):032x}"},
        }
    else:
        rec |= {"pid": 4242, "hostname": f"relay-{rng.randrange(8)}"}
    rec |= {lay["group"]: group, lay["event_group"]: event, "msg": "event delivered"}
    r = rng.random()
    if r < 0.04:
        group[lay["status"]] = 429 if rng.random() < 0.7 else 200
        group["try"] = rng.randint(1, 5)
        code: Any = 40100 if dest.startswith("tiktok") else rng.choice(["17", 4, "613"])
        rec["err"] = {"code": code, "message": rng.choice(MESSAGES[:2]), "retry_after_s": 30}
        rec.update(level="warn", msg="delivery throttled")
    elif r < 0.05:
        group[lay["status"]] = rng.choice([400, 500, 502, 503])
        rec["err"] = {
            "code": rng.choice(["E_BAD_PAYLOAD", "ECONNRESET", "100", 190]),
            "message": rng.choice(MESSAGES[2:]),
            "stack": "Error: upstream\n    at deliver (relay.js:42:7)",
        }
        rec.update(level="error", msg="delivery failed")
    if rng.random() < 0.1:
        rec["user"] = {"country": rng.choice(["DE", "FR", "US"]), "consent": [1, 0, 1]}
    if rng.random() < 0.03:
        rec["tags"] = [f"campaign:{rng.randrange(40)}", "region:eu"]
    if rng.random() < 0.005:  # a request body dump now and then
        rec["body"] = "x" * rng.randint(1000, 4000)
    if rng.random() < 0.2:  # another writer version: other key order
        keys = list(rec)
        rng.shuffle(keys)
        rec = {k: rec[k] for k in keys}
    return rec


def write_json(path: Path, n: int, seed: int) -> dict[str, Any]:
    lay = layout(seed)
    rng = random.Random(seed + 1)
    t = T0
    with open(path, "wb") as fh:
        buf: list[bytes] = []
        for _ in range(n):
            t += timedelta(microseconds=int(rng.expovariate(1 / 2500)))
            buf.append(orjson.dumps(record(rng, t, lay)))
            if len(buf) >= 20000:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            fh.write(b"\n".join(buf) + b"\n")
    return lay


def json_source(lay: dict[str, Any], data: Path) -> str:
    g, e = lay["group"], lay["event_group"]
    latency_key, unit = lay["latency"]
    return f"""
[[sources]]
name = "relay"
path = "{data}/*.jsonl"
format = "jsonl"
latency_unit = "{unit}"
[sources.fields]
ts = "{lay["ts_key"]}"
destination = "{g}.{lay["target"]}"
http_status = "{g}.{lay["status"]}"
latency_ms = "{g}.{latency_key}"
attempt = "{g}.try"
event_name = "{e}.name"
message_id = "{e}.id"
error_code = "err.code"
error_message = "err.message"
"""


LOGFMT_SOURCE = """
[[sources]]
name = "worker"
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


def write_logfmt(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            t = T0 + timedelta(milliseconds=3 * i)
            dest = DESTS[i % len(DESTS)][0]
            status = 200 if rng.random() < 0.95 else rng.choice([429, 400, 503])
            line = (
                f"ts={t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z level=info dest={dest} "
                f"event={EVENTS[i % len(EVENTS)]} msg_id={rng.getrandbits(64):016x}-{i:08d} "
                f"status={status} dur_ms={rng.lognormvariate(4.5, 0.6):.1f} attempt=1"
            )
            if status != 200:
                line += f' code={40100 if status == 429 else status} error="{MESSAGES[0]}"'
            fh.write(line + "\n")


def reference(path: Path, tmp: Path) -> float:
    """read_json into a table of a fresh database file, timed in this process."""
    db = tmp / f"ref-{time.monotonic_ns()}.duckdb"
    t = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{path}')").fetchall()
    con.close()
    secs = time.perf_counter() - t
    db.unlink()
    return secs


REF_SCRIPT = (
    "import sys, duckdb; con = duckdb.connect(sys.argv[1]); "
    "con.execute('SET enable_progress_bar = false'); "
    "con.execute(f\"CREATE TABLE t AS SELECT * FROM read_json('{sys.argv[2]}')\").fetchall(); "
    "con.close()"
)


# Processes are started from this small launcher, not from the benchmark itself: a child's
# peak RSS includes the image of whatever forked it (the kernel keeps the high-water mark
# across exec), and this process holds hundreds of MB after the in-process reference.
LAUNCHER = (
    "import os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "proc = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(proc.pid, 0)\n"
    "print(status, time.perf_counter() - t, usage.ru_maxrss * 1024, file=sys.stderr)\n"
)


def launch(cmd: list[str]) -> tuple[float, int, bytes]:
    """Run `cmd` from the launcher: (its seconds, its peak RSS in bytes, its stdout)."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], capture_output=True)
    status, secs, rss = done.stderr.decode().split()[-3:]
    if done.returncode != 0 or int(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed ({status}): {done.stderr.decode()[-500:]}")
    return float(secs), int(rss), done.stdout


def reference_process(path: Path, tmp: Path) -> float:
    """The same load as a whole `python -c` process, start-up and import included."""
    db = tmp / f"refp-{time.monotonic_ns()}.duckdb"
    secs, _, _ = launch([sys.executable, "-c", REF_SCRIPT, str(db), str(path)])
    db.unlink()
    return secs


def observatory(path: Path, config: Path, tmp: Path) -> tuple[float, int, dict[str, Any]]:
    """`observatory ingest` as a whole process: (seconds, peak RSS bytes, its summary)."""
    db = tmp / f"obs-{time.monotonic_ns()}.duckdb"
    cmd = [sys.executable, "-m", "observatory", "ingest", str(path)]
    cmd += ["--config", str(config), "--db", str(db)]
    secs, rss, out = launch(cmd)
    db.unlink()
    return secs, rss, orjson.loads(out.splitlines()[-1])


def stats(xs: list[float]) -> str:
    return f"min {min(xs):.2f} s, median {statistics.median(xs):.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=None, help="layout and data seed (default: new)")
    ap.add_argument("--skip-logfmt", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    with tempfile.TemporaryDirectory(prefix="observatory-bench-") as td:
        tmp = Path(td)
        data = tmp / "data"
        data.mkdir()
        jpath = data / "relay.jsonl"
        print(f"generating {args.lines:,} JSON lines (seed {seed}) ...", file=sys.stderr)
        lay = write_json(jpath, args.lines, seed)
        config = tmp / "bench.toml"
        toml = f'[storage]\ndb = "{tmp}/unused.duckdb"\nmemory_limit = "256MB"\n'
        toml += json_source(lay, data) + LOGFMT_SOURCE.format(data=data)
        config.write_text(toml)
        with open(jpath, "rb") as fh:
            example = fh.readline().decode().strip()
        print(f"json file: {jpath.stat().st_size / 1e6:.0f} MB, {args.lines:,} lines, seed {seed}")
        print(f"layout: {lay}")
        print(f"first line: {example[:300]}")
        refs, refps, obs, rss = [], [], [], []
        for _ in range(args.runs):  # interleaved, so machine noise hits all alike
            refs.append(reference(jpath, tmp))
            refps.append(reference_process(jpath, tmp))
            secs, peak, summary = observatory(jpath, config, tmp)
            obs.append(secs)
            rss.append(peak)
            assert summary["rows"] == args.lines, summary
        print(f"observatory ingest (whole process):            {stats(obs)}")
        print(f"duckdb read_json into a table (in-process):    {stats(refs)}")
        print(f"duckdb read_json into a table (whole process): {stats(refps)}")
        for label, ref in (("in-process read_json", refs), ("whole-process read_json", refps)):
            print(
                f"ratio vs {label + ':':25s} {min(ref) / min(obs):.2f} (min/min), "
                f"{statistics.median(ref) / statistics.median(obs):.2f} (median/median)"
                + ("  (target >= 0.6, stretch 0.8)" if label.startswith("in") else "")
            )
        print(f"observatory ingest peak RSS: {max(rss) / 2**20:.0f} MB  (target <= 500 MB)")
        if args.skip_logfmt:
            return
        lpath = data / "worker.logfmt"
        print(f"generating {args.lines:,} logfmt lines ...", file=sys.stderr)
        write_logfmt(lpath, args.lines, seed)
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
