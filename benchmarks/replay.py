"""Replay speed against ingest alone: detection must not be the bottleneck.

Uses the 1,000,000-line file of benchmarks/ingest.py (generated if missing) and times, in
the same run, `observatory ingest FILE` and `observatory replay FILE --speed max`, each a
whole process on a fresh database. Prints replay throughput as a share of ingest's.

    python benchmarks/replay.py [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import CONFIG, DATA, write_json  # noqa: E402

TARGET = 0.5


def timed(cmd: list[str]) -> tuple[float, bytes]:
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / f"bench-{args.lines}.jsonl"
    if not path.exists():
        print(f"generating {path.name} ...", file=sys.stderr)
        write_json(path.with_suffix(".tmp"), args.lines)
        path.with_suffix(".tmp").rename(path)
    ingest_s, replay_s = [], []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        cfg = tmp / "bench.toml"
        cfg.write_text(CONFIG.format(db=tmp / "unused.duckdb", data=DATA))
        base = [sys.executable, "-m", "observatory"]
        for i in range(args.runs):
            secs, _ = timed(
                [
                    *base,
                    "ingest",
                    str(path),
                    "--config",
                    str(cfg),
                    "--db",
                    str(tmp / f"i{i}.duckdb"),
                ]
            )
            ingest_s.append(secs)
            secs, out = timed(
                [
                    *base,
                    "replay",
                    str(path),
                    "--config",
                    str(cfg),
                    "--db",
                    str(tmp / f"r{i}.duckdb"),
                ]
            )
            replay_s.append(secs)
    ing, rep = min(ingest_s), min(replay_s)
    changes = len(out.splitlines())
    print(
        f"ingest alone: {ing:.2f} s   replay (ingest + detection): {rep:.2f} s   "
        f"({changes} incident lines)"
    )
    print(f"replay speed / ingest speed: {ing / rep:.2f}  (target >= {TARGET})")
    sys.exit(0 if ing / rep >= TARGET else 1)


if __name__ == "__main__":
    main()
