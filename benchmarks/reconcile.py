"""Reconciliation of 1,000,000 backup events (Done-means 2: <= 10 s).

Builds a DuckDB file with 1,000,000 backup webhook events (expected at two destinations, so
2,000,000 expectations) and their primary deliveries: most on time, some late, some
delivered twice, some never (a few with rate-limited attempts), the newest still pending.
Then times:
  * `reconcile()` (the summary with the retry-window countdown) on an open connection;
  * `write_missing()` (the `--output` file);
  * `observatory reconcile --format json --output F` as a whole process (start-up included);
  * folding a 1,000,000-line receiver journal into `backup_events` (start-up after a crash).
Checks every count against the generator's own numbers, prints the seconds, and exits 1 when
a count is wrong or reconciliation takes longer than the target.

    python benchmarks/reconcile.py [--events N] [--target S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from observatory.backup import fold_journal
from observatory.backup.reconcile import COUNT_KEYS, reconcile, retry_countdown, write_missing
from observatory.config import load_config
from observatory.store.db import Store

DESTS = ["tiktok_conversions", "meta_capi"]
WINDOW = 600.0
SPAN = 7200.0  # receipts spread over the last two hours


def fates(n: int, dest_no: int) -> np.ndarray:
    """0 on time, 1 late, 2 delivered twice (on time), 3 never delivered, 4 never + a 429."""
    bucket = (np.arange(n) * (7 if dest_no else 1) + dest_no * 13) % 100
    out = np.zeros(n, np.int8)
    out[(bucket >= 3) & (bucket < 5)] = 1
    out[(bucket >= 5) & (bucket < 7)] = 2
    out[bucket == 1] = 3
    out[bucket == 2] = 3
    out[bucket == 0] = 4
    return out


def build(db: Path, n: int, now: float) -> dict[str, dict[str, int]]:
    """Write the case into `db`; return the expected counts per destination."""
    ids = np.char.add("msg-", np.arange(n).astype(str))
    # Receipts half a step off `now - WINDOW`, so none sits on the pending/missing boundary.
    received = now - 60 - SPAN + (np.arange(n) + 0.5) * (SPAN / n)
    raw = [
        orjson.dumps(
            {
                "type": "track",
                "messageId": mid,
                "event": "CompletePayment",
                "properties": {"value": 42.5, "currency": "EUR"},
                "timestamp": "2026-11-20T14:00:00.000Z",
            }
        ).decode()
        for mid in ids.tolist()
    ]
    store = Store(str(db))
    con = store.con
    con.register(
        "b",
        pa.table({"id": ids, "at": received, "raw": raw}),
    )
    con.execute(
        'INSERT INTO backup_events SELECT id, to_timestamp("at"), to_timestamp("at" - 1), '
        f"{DESTS!r}::VARCHAR[], raw FROM b"
    ).fetchall()
    con.unregister("b")
    expected: dict[str, dict[str, int]] = {}
    for k, dest in enumerate(DESTS):
        fate = fates(n, k)
        parts = []
        delivered_at = received + 3
        on_time = (fate == 0) | (fate == 2)
        parts.append((ids[on_time], delivered_at[on_time], "delivered"))
        late = fate == 1
        parts.append((ids[late], received[late] + WINDOW + 300, "delivered"))
        dup = fate == 2
        parts.append((ids[dup], received[dup] + 30, "delivered"))
        throttled = fate == 4
        parts.append((ids[throttled], received[throttled] + 1, "rate_limited"))
        parts.append((ids[throttled], received[throttled] + 5, "retrying"))
        # Some noise: deliveries of ids the backup never saw.
        noise = np.char.add("other-", np.arange(n // 10).astype(str))
        parts.append((noise, now - np.arange(n // 10) * 0.01, "delivered"))
        table = pa.table(
            {
                "message_id": np.concatenate([p[0] for p in parts]),
                "ts": np.concatenate([p[1] for p in parts]),
                "outcome": np.concatenate([np.full(len(p[0]), p[2]) for p in parts]),
            }
        )
        con.register("e", table)
        con.execute(
            "INSERT INTO events (ts, ingested_at, source, destination, message_id, outcome) "
            f"SELECT to_timestamp(ts), now(), 'fwd', '{dest}', message_id, outcome FROM e"
        ).fetchall()
        con.unregister("e")
        undelivered = fate >= 3
        inside = received + WINDOW > now
        expected[dest] = {
            "expected": n,
            "delivered": int((~undelivered).sum()),
            "missing": int((undelivered & ~inside).sum()),
            "late": int(late.sum()),
            "duplicates": int(dup.sum()),
            "pending": int((undelivered & inside).sum()),
            "failing": int(throttled.sum()),
        }
    con.execute("CHECKPOINT").fetchall()
    store.close()
    return expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--target", type=float, default=10.0)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="observatory-reconcile-") as tmp_dir:
        tmp = Path(tmp_dir)
        db = tmp / "bench.duckdb"
        config_path = tmp / "config.toml"
        config_path.write_text(
            f'[storage]\ndb = "{db.name}"\n[backup]\nsecret = "${{BENCH_SECRET}}"\n'
            f'destinations = {json.dumps(DESTS)}\nwindow = "10m"\n'
        )
        os.environ["BENCH_SECRET"] = "bench"
        config = load_config(config_path)
        assert config.backup is not None
        now = time.time()
        started = time.perf_counter()
        expected = build(db, args.events, now)
        print(f"built {args.events:,} backup events in {time.perf_counter() - started:.1f} s")

        store = Store(str(db))
        started = time.perf_counter()
        rows = reconcile(store.con, config.backup, now=now)
        t_fn = time.perf_counter() - started
        started = time.perf_counter()
        written = write_missing(store.con, config.backup, tmp / "missing-fn.jsonl", now=now)
        t_out = time.perf_counter() - started
        started = time.perf_counter()
        retry_countdown(store.con, config.backup, now=now)
        t_countdown = time.perf_counter() - started
        started = time.perf_counter()
        reconcile(store.con, config.backup, now=now)
        t_warm = time.perf_counter() - started
        store.close()
        for row in rows:
            want = expected[row["destination"]]
            got = {k: row[k] for k in (*COUNT_KEYS, "failing")}
            if got != want:
                print(f"WRONG {row['destination']}: got {got}, expected {want}")
                ok = False
        lines = (tmp / "missing-fn.jsonl").read_text().splitlines()
        n_missing = len(lines)
        if written != n_missing or n_missing == 0:
            print(f"WRONG --output: wrote {written}, file has {n_missing} lines")
            ok = False

        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "observatory", "reconcile", "--config", str(config_path)]
            + ["--format", "json", "--output", str(tmp / "missing-cli.jsonl")],
            capture_output=True,
            text=True,
        )
        t_cli = time.perf_counter() - started
        if proc.returncode != 0:
            print(f"WRONG: the CLI failed: {proc.stderr.strip()}")
            ok = False
        else:
            for line in proc.stdout.splitlines():
                row = json.loads(line)
                want = expected[row["destination"]]
                for key in ("expected", "delivered", "late", "duplicates"):
                    if row[key] != want[key]:
                        print(f"WRONG CLI {row['destination']} {key}: {row[key]} != {want[key]}")
                        ok = False

        # Start-up after a crash: a journal of N lines folded into a fresh table.
        journal = tmp / "fold.journal"
        with journal.open("wb") as fh:
            for i in range(args.events):
                fh.write(
                    orjson.dumps(
                        {
                            "id": f"j-{i}",
                            "at": now - i * 0.001,
                            "ts": "2026-11-20T14:00:00.000Z",
                            "d": DESTS,
                            "raw": lines[i % len(lines)],
                        }
                    )
                    + b"\n"
                )
        store = Store(str(tmp / "fold.duckdb"))
        started = time.perf_counter()
        folded = fold_journal(store.con, journal, truncate=True)
        t_fold = time.perf_counter() - started
        store.close()
        if folded != args.events:
            print(f"WRONG fold: {folded} rows from {args.events} lines")
            ok = False

    print(f"reconcile() on {args.events:,} backup events x {len(DESTS)} destinations: {t_fn:.2f} s")
    print(
        f"  of which the retry-window countdown: {t_countdown:.2f} s; again, warm: {t_warm:.2f} s"
    )
    print(f"write_missing(): {n_missing:,} events in {t_out:.2f} s")
    print(f"observatory reconcile --format json --output F (whole process): {t_cli:.2f} s")
    print(f"fold of a {args.events:,}-line journal: {t_fold:.2f} s")
    for name, seconds in (("reconcile()", t_fn + t_out), ("CLI", t_cli)):
        if seconds > args.target:
            print(f"MISS: {name} took {seconds:.2f} s > {args.target:.0f} s")
            ok = False
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
