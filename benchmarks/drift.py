"""Rate-limit drift benchmark: is the limit change flagged no later than the engine's detectors?

Runs the simulator (in process, real time, about 130 s each) with two scenarios of the same
unannounced change: TikTok at its 100 requests/s limit (one event per request, so requests/s =
events/s), lowered to 40 at 50 s and raised back at 95 s.

* `tiktok-limit-cascade`: the forwarder has 12 slots per destination and throttled requests
  hold theirs through the backoff, so its attempts fall with the limit and volume_drop fires;
* `tiktok-limit-drift`: the forwarder has slots to spare, its retries keep the attempts up and
  volume_drop has nothing to see.

For each, a `Runtime` replays its logs (the config the simulator writes, an in-memory
database) and the benchmark prints, relative to the limit change (event time):

* when the drift was flagged, with the old and new ceilings (and when it was restored);
* when each engine detector first fired for tiktok_conversions (volume_drop above all).

Exit 1 on a miss: no drift flagged, a new ceiling not near 40/s, an old one not near 100/s, or
the drift flagged later than volume_drop (later than the first engine detector if volume_drop
never fires).

    python benchmarks/drift.py [--scenario NAME ...] [--logs DIR] [--speed 1.0] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from observatory.config import load_config
from observatory.detect.drift import DriftEvent
from observatory.incidents.model import Change
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.owner import build_runtime
from observatory.sim.forwarder import Simulation
from observatory.sim.scenario import load_scenario
from observatory.store.db import Store

SCENARIOS = ("tiktok-limit-cascade", "tiktok-limit-drift")
DEST = "tiktok_conversions"
OLD_LIMIT, NEW_LIMIT = 100.0, 40.0
TOLERANCE = 0.15  # ceilings within 15 % of the limits


def simulate(name: str, logs: Path, speed: float) -> tuple[float, float | None]:
    """Run the scenario; the wall (= event) times the TikTok limit dropped and came back."""
    scenario = load_scenario(name)
    sim = Simulation(scenario, logs, speed=speed)
    sim.start()
    wall0 = time.time() - sim.elapsed()
    t0 = time.monotonic()

    shown = [-1]

    def progress(s: Simulation) -> None:
        done = time.monotonic() - t0
        if int(done) // 10 != shown[0]:  # every 10 s
            shown[0] = int(done) // 10
            print(f"{name}: {done:3.0f} s of {s.scenario.duration:.0f} s", file=sys.stderr)

    try:
        sim.run(on_second=progress)
    finally:
        sim.stop()
    limits = [
        (at, action.args.get("qps"))
        for action, (at, _op) in zip(sim.scenario.timeline(), sim.applied, strict=False)
        if action.op == "set_qps_limit" and action.args.get("platform") == "tiktok"
    ]
    drop = next(wall0 + at for at, qps in limits if qps == NEW_LIMIT)
    back = next((wall0 + at for at, qps in limits if qps == OLD_LIMIT), None)
    return drop, back


def replay(logs: Path) -> tuple[list[DriftEvent], list[Change]]:
    config = load_config(logs / "config.toml")
    store = Store.for_config(config, ":memory:")
    drifts: list[DriftEvent] = []
    changes: list[Change] = []
    runtime = build_runtime(
        config, store=store, on_change=changes.append, on_drift=drifts.append, alerts=False
    )
    try:
        ingest_files(store, plan_files(config, []))
        runtime.replay_history()
    finally:
        runtime.close()
    return drifts, changes


def first_firings(changes: list[Change]) -> dict[str, float]:
    """Per engine detector, when it first fired for DEST (event time)."""
    out: dict[str, float] = {}
    for change in changes:
        inc = change.incident
        if inc.destination != DEST:
            continue
        for entry in inc.timeline:
            if entry.kind not in ("opened", "detector", "reopened"):
                continue
            name = entry.detail.split(" ", 1)[0]
            if name not in out or entry.ts < out[name]:
                out[name] = entry.ts
    return out


def judge(
    name: str, drop: float, back: float | None, drifts: list[DriftEvent], fired: dict[str, float]
) -> bool:
    """Print one scenario's drift and detector times; False on a miss."""

    def rel(ts: float) -> str:
        return f"{ts - drop:+6.1f} s"

    print(
        f"scenario {name}: TikTok limit {OLD_LIMIT:g} -> {NEW_LIMIT:g} requests/s "
        "(1 event/request: events/s) at t0"
        + ("" if back is None else f", back to {OLD_LIMIT:g} at t0{back - drop:+.1f} s")
    )
    ok = True
    for d in drifts:
        share = f"{d.throttled_share * 100:.0f}% throttled"
        print(
            f"  drift {d.kind:16s} {d.destination:18s} at t0{rel(d.ts)}: ceiling "
            f"{d.old_ceiling:6.1f}/s -> {d.new_ceiling:6.1f}/s ({share})"
        )
    for detector, ts in sorted(fired.items(), key=lambda kv: kv[1]):
        print(f"  engine {detector:24s} {DEST:18s} at t0{rel(ts)}")
    ours = [d for d in drifts if d.destination == DEST and d.kind == "ceiling_drop"]
    early = [d for d in ours if d.ts < drop]
    if early:
        print(f"  MISS: {len(early)} drift(s) flagged before the limit changed")
        ok = False
    flagged = next((d for d in ours if d.ts >= drop), None)
    if flagged is None:
        print("  MISS: the drift was never flagged")
        return False
    if abs(flagged.old_ceiling - OLD_LIMIT) > TOLERANCE * OLD_LIMIT:
        print(f"  MISS: old ceiling {flagged.old_ceiling:.1f}/s is not about {OLD_LIMIT:g}/s")
        ok = False
    if abs(flagged.new_ceiling - NEW_LIMIT) > TOLERANCE * NEW_LIMIT:
        print(f"  MISS: new ceiling {flagged.new_ceiling:.1f}/s is not about {NEW_LIMIT:g}/s")
        ok = False
    after = {k: v for k, v in fired.items() if v >= drop}
    if "volume_drop" in after:
        ref_name, ref = "volume_drop", after["volume_drop"]
    elif after:
        ref_name, ref = min(after.items(), key=lambda kv: kv[1])
        print(f"  note: volume_drop never fired; comparing with the first detector, {ref_name}")
    else:
        print("  note: no engine detector fired for the limit change; nothing to compare with")
        return ok
    lead = ref - flagged.ts
    verdict = "ok" if lead >= 0 else "MISS"
    print(
        f"  {verdict}: drift {flagged.old_ceiling:.0f}/s -> {flagged.new_ceiling:.0f}/s flagged at "
        f"t0{rel(flagged.ts)}, {ref_name} at t0{rel(ref)} (drift {lead:+.1f} s ahead)"
    )
    if back is not None and not any(
        d.kind == "ceiling_restored" and d.ts >= back for d in drifts if d.destination == DEST
    ):
        print("  note: the restored limit was not flagged as restored")
    return ok and lead >= 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--scenario",
        action="append",
        help=f"scenario name or .toml path, repeatable (default: {', '.join(SCENARIOS)})",
    )
    ap.add_argument("--logs", type=Path, help="keep the simulator logs under DIR/<scenario>")
    ap.add_argument("--speed", type=float, default=1.0, help="scenario time compression")
    ap.add_argument("--keep", action="store_true", help="keep the temp log directories")
    args = ap.parse_args()
    ok = True
    for name in args.scenario or SCENARIOS:
        stem = Path(name).stem
        logs = args.logs / stem if args.logs else Path(tempfile.mkdtemp(prefix=f"drift-{stem}-"))
        logs.mkdir(parents=True, exist_ok=True)
        try:
            drop, back = simulate(name, logs, args.speed)
            drifts, changes = replay(logs)
        finally:
            if args.logs is None and not args.keep:
                shutil.rmtree(logs, ignore_errors=True)
            else:
                print(f"logs kept in {logs}", file=sys.stderr)
        ok = judge(stem, drop, back, drifts, first_firings(changes)) and ok
    print("all scenarios met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
