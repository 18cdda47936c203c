"""Rate-limit drift benchmark: is the limit change flagged no later than the engine's detectors?

Runs the simulator (in process, real time) with the `tiktok-limit-drift` scenario: TikTok at its
100 requests/s limit (one event per request, so requests/s = events/s), lowered to 40 at 50 s
and raised back at 95 s. Then a `Runtime` replays its logs (the config the simulator writes,
an in-memory database) and the benchmark prints, relative to the limit change (event time):

* when the drift was flagged, with the old and new ceilings (and when it was restored);
* when each engine detector first fired for tiktok_conversions (volume_drop above all).

Exit 1 on a miss: no drift flagged, a new ceiling not near 40/s, an old one not near 100/s, or
the drift flagged later than volume_drop (later than the first engine detector if volume_drop
never fires).

    python benchmarks/drift.py [--logs DIR] [--speed 1.0] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from observatory.config import load_config
from observatory.drift import DriftEvent
from observatory.incidents import Change
from observatory.ingest import ingest_files, plan_files
from observatory.runtime import Runtime
from observatory.simulator.forwarder import Simulation
from observatory.simulator.scenario import load_scenario
from observatory.store import Store

SCENARIO = "tiktok-limit-drift"
DEST = "tiktok_conversions"
OLD_LIMIT, NEW_LIMIT = 100.0, 40.0
TOLERANCE = 0.15  # ceilings within 15 % of the limits


def simulate(logs: Path, speed: float) -> tuple[float, float | None]:
    """Run the scenario; the wall (= event) times the TikTok limit dropped and came back."""
    scenario = load_scenario(SCENARIO)
    sim = Simulation(scenario, logs, speed=speed)
    sim.start()
    wall0 = time.time() - sim.elapsed()
    t0 = time.monotonic()

    def progress(s: Simulation) -> None:
        done = time.monotonic() - t0
        if int(done) % 10 == 0:
            print(f"simulating: {done:3.0f} s of {s.scenario.duration:.0f} s", file=sys.stderr)

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
    runtime = Runtime(config, store=store, on_change=changes.append, on_drift=drifts.append)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--logs", type=Path, help="simulator log directory (default: a temp dir)")
    ap.add_argument("--speed", type=float, default=1.0, help="scenario time compression")
    ap.add_argument("--keep", action="store_true", help="keep the temp log directory")
    args = ap.parse_args()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="observatory-drift-"))
    try:
        drop, back = simulate(logs, args.speed)
        drifts, changes = replay(logs)
    finally:
        if args.logs is None and not args.keep:
            shutil.rmtree(logs, ignore_errors=True)
        elif args.keep:
            print(f"logs kept in {logs}", file=sys.stderr)

    def rel(ts: float) -> str:
        return f"{ts - drop:+6.1f} s"

    print(
        f"scenario {SCENARIO}: TikTok limit {OLD_LIMIT:g} -> {NEW_LIMIT:g} requests/s "
        "(1 event/request: events/s) at t0"
        + ("" if back is None else f", back to {OLD_LIMIT:g} at t0{back - drop:+.1f} s")
    )
    ok = True
    flagged = next(
        (d for d in drifts if d.destination == DEST and d.kind == "ceiling_drop" and d.ts >= drop),
        None,
    )
    for d in drifts:
        share = f"{d.throttled_share * 100:.0f}% throttled"
        print(
            f"  drift {d.kind:16s} {d.destination:18s} at t0{rel(d.ts)}: ceiling "
            f"{d.old_ceiling:6.1f}/s -> {d.new_ceiling:6.1f}/s ({share})"
        )
    fired = first_firings(changes)
    for name, ts in sorted(fired.items(), key=lambda kv: kv[1]):
        print(f"  engine {name:24s} {DEST:18s} at t0{rel(ts)}")
    early = [
        d for d in drifts if d.destination == DEST and d.kind == "ceiling_drop" and d.ts < drop
    ]
    if early:
        print(f"MISS: {len(early)} drift(s) flagged before the limit changed")
        ok = False
    if flagged is None:
        print("MISS: the drift was never flagged")
        return 1
    if abs(flagged.old_ceiling - OLD_LIMIT) > TOLERANCE * OLD_LIMIT:
        print(f"MISS: old ceiling {flagged.old_ceiling:.1f}/s is not about {OLD_LIMIT:g}/s")
        ok = False
    if abs(flagged.new_ceiling - NEW_LIMIT) > TOLERANCE * NEW_LIMIT:
        print(f"MISS: new ceiling {flagged.new_ceiling:.1f}/s is not about {NEW_LIMIT:g}/s")
        ok = False
    after = {k: v for k, v in fired.items() if v >= drop}
    if "volume_drop" in after:
        ref_name, ref = "volume_drop", after["volume_drop"]
    elif after:
        ref_name, ref = min(after.items(), key=lambda kv: kv[1])
        print(f"note: volume_drop never fired; comparing with the first detector, {ref_name}")
    else:
        ref_name, ref = "", None
        print("note: no engine detector fired for the limit change; nothing to compare with")
    if ref is not None:
        lead = ref - flagged.ts
        verdict = "ok" if lead >= 0 else "MISS"
        print(
            f"{verdict}: drift flagged at t0{rel(flagged.ts)}, {ref_name} at t0{rel(ref)} "
            f"(drift {lead:+.1f} s ahead)"
        )
        ok = ok and lead >= 0
    restored = [d for d in drifts if d.destination == DEST and d.kind == "ceiling_restored"]
    if back is not None and not restored:
        print("note: the restored limit was not flagged as restored")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
