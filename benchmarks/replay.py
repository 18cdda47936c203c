"""Replay speed against ingest alone: detection must not be the bottleneck.

Generates a fresh 1,000,000-line file with benchmarks/ingest.py's seeded layouts (another
field layout every run unless --seed is given) and times, in the same run, interleaved,
`observatory ingest FILE` and `observatory replay FILE --speed max`, each a whole process on
a fresh database. Prints replay throughput as a share of ingest's.

    python benchmarks/replay.py [--runs 3] [--lines N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import json_source, write_json  # noqa: E402

TARGET = 0.5


def timed(cmd: list[str]) -> tuple[float, bytes]:
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None, help="layout and data seed (default: new)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    ingest_s, replay_s = [], []
    with tempfile.TemporaryDirectory(prefix="observatory-bench-") as td:
        tmp = Path(td)
        data = tmp / "data"
        data.mkdir()
        path = data / "relay.jsonl"
        print(f"generating {args.lines:,} JSON lines (seed {seed}) ...", file=sys.stderr)
        lay = write_json(path, args.lines, seed)
        cfg = tmp / "bench.toml"
        toml = f'[storage]\ndb = "{tmp}/unused.duckdb"\nmemory_limit = "256MB"\n'
        cfg.write_text(toml + json_source(lay, data))
        base = [sys.executable, "-m", "observatory"]
        for i in range(args.runs):  # interleaved, so machine noise hits both alike
            for kind, times in (("ingest", ingest_s), ("replay", replay_s)):
                secs, out = timed(
                    [
                        *base,
                        kind,
                        str(path),
                        "--config",
                        str(cfg),
                        "--db",
                        str(tmp / f"{kind}{i}.duckdb"),
                    ]
                )
                times.append(secs)
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
