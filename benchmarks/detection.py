"""Detection benchmark: delay, false alarms and resolution of the real Engine on bursty traffic.

Engine level: traffic is generated directly as SecondCounts (observatory.sim.synthetic,
seeded numpy): six destinations at 0.3, 1, 10, 100, 500 and 1,500 ev/s fed by one upstream
multiplier (hourly wave ±30 %, 3x campaign minutes starting at random times and ending
abruptly), Poisson counts, ~0.5 % background errors, ~0.05 % background 429s, and latencies
as the aggregator's per-second histograms drawn from a latency shape (lognormal, uniform,
quantised, bimodal, heavy-tailed: observatory.sim.latency_shapes). The engine runs from a cold
start (warm-up included); each fault is injected on one destination 30 minutes in.

End to end: the same pipeline users run, on lines in a log file (3,000 lines/s over five
destinations at 1,500 to 50 ev/s, each with another latency shape, 1 % failures): `observatory
replay` of 15 minutes of clean traffic followed by a 3-minute latency x3 fault on one
destination, and `observatory watch` following a file written in real time from a cold start.

Prints the tables and exits 1 if a target is missed:

* per fault and rate, over several seeds: detection delay (detected_at - true onset, event
  time), onset estimate error, detectors and severity of the incident, resolution time after
  the fault ended, reopens (flaps), incidents elsewhere;
* per latency shape, incidents over 2 hours of fault-free traffic per seed (must be 0), plain
  and with batchy noise (lone one-second bursts of 20-200 failures, 429s or slow events: one
  failed, throttled or slow request of a batching forwarder), which must not alarm either;
* per feed (benchmarks/feeds.py: statsd, Prometheus, Segment Delivery Overview): delay of the
  TikTok 429 outage through the feed's shape (<= 3 s, <= scrape + 2 s, <= 150 s) and false
  alarms over 2 h of clean traffic for up to 5 seeds (must be 0);
* end to end: replay (false alarms, latency x3 delay <= 5 s) and live (false alarms).

    python benchmarks/detection.py [--seeds 3] [--fa-seeds 8] [--jobs 2]
        [--replays 5] [--replay-minutes 15] [--lives 1] [--live-minutes 6] [--scrape 15]
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import orjson
from feeds import detection_rows as feed_rows  # benchmarks/feeds.py

from observatory.config import DetectionConfig
from observatory.detect import Engine
from observatory.incidents.model import Change
from observatory.sim.latency_shapes import SHAPES, Shape
from observatory.sim.loadgen import LineWriter, config_toml, write_history
from observatory.sim.synthetic import Fault, FaultKind, Traffic

START = 1_700_000_000
LEAD = 1800  # seconds of traffic before the fault (the engine starts cold)
TAIL = 600  # seconds after the fault ends (twice that at 0.3 ev/s)
FA_SECONDS = 7200
RATES: dict[str, float] = {
    "r0.3": 0.3,
    "r1": 1.0,
    "r10": 10.0,
    "r100": 100.0,
    "r500": 500.0,
    "r1500": 1500.0,
}
RESOLVE_WITHIN = 120.0  # seconds after recovery

# (label, kind, level, expected detector, latency shape of the traffic)
FAULTS: list[tuple[str, FaultKind, float, str, Shape]] = [
    ("100% failures", "failures", 1.0, "error_rate", "lognormal"),
    ("100% 429s", "rate_limit", 1.0, "rate_limit", "lognormal"),
    ("silence", "silence", 1.0, "silence", "lognormal"),
    ("volume -50%", "volume", 0.5, "volume_drop", "lognormal"),
    ("429s at 30%", "rate_limit", 0.3, "rate_limit", "lognormal"),
] + [(f"latency x3 {shape[:5]}", "latency", 3.0, "latency", shape) for shape in SHAPES]

# maximum detection delay (s) per (fault label, rate)
TARGETS: dict[tuple[str, float], float] = {}
for _rate in (10.0, 100.0, 500.0, 1500.0):
    TARGETS[("100% failures", _rate)] = 2.0
    TARGETS[("100% 429s", _rate)] = 2.0
    TARGETS[("silence", _rate)] = 6.0
    for _shape in SHAPES:
        TARGETS[(f"latency x3 {_shape[:5]}", _rate)] = 5.0
TARGETS[("100% failures", 1.0)] = 15.0
TARGETS[("100% 429s", 1.0)] = 15.0
for _rate in (100.0, 500.0, 1500.0):
    TARGETS[("volume -50%", _rate)] = 10.0
    TARGETS[("429s at 30%", _rate)] = 5.0


def judged_in_time(label: str, rate: float) -> bool:
    """Whether 2 minutes of traffic can tell the destination's recovery from its fault.

    Telling normal traffic from the fault within 2 min, with both errors (resolving during the
    fault, resolving late) near 1 %, needs enough events in those 2 minutes. A flow halved
    (volume -50 %) needs about 90 (separation of the two Poisson means of 0.35·sqrt(E) sd):
    a 1 ev/s destination has 77-143 over the hourly wave, a 0.3 ev/s one 23-43. At 0.3 ev/s
    even an outage's recovery may bring fewer than 15 events in the first minute. These rows
    are measured and printed like the others, resolution after recovery and reopens included,
    but not held to the 2-minute rule; false alarms, misses and delays are checked everywhere.
    """
    if rate >= 10.0:
        return True
    return rate >= 1.0 and label != "volume -50%"


def fault_duration(kind: str, rate: float) -> int:
    """5 minutes, longer where the evidence needs it (a 50 % drop of 0.3 ev/s takes minutes)."""
    if rate < 1.0 or (kind == "volume" and rate <= 1.0):
        return 900
    return 300


@dataclass
class Outcome:
    label: str
    rate: float
    seed: int
    duration: int
    delay: float | None = None
    onset_error: float | None = None
    detectors: list[str] = field(default_factory=list)
    severity: str = ""
    resolved_after: float | None = None
    flaps: int = 0
    early: int = 0  # incidents on the faulty destination before the onset
    elsewhere: int = 0  # incidents on other destinations
    seconds: float = 0.0


def drive(traffic: Traffic, engine: Engine, start: int, stop: int) -> list[Change]:
    """Feed second by second as the runtime would: the watermark is the end of the last second."""
    changes: list[Change] = []
    for sec in range(start, stop):
        engine.feed(traffic.second(sec))
        changes += engine.advance(sec + 1)
    return changes


def run_fault(args: tuple[str, FaultKind, float, Shape, float, int]) -> Outcome:
    label, kind, level, shape, rate, seed = args
    began = time.perf_counter()
    name = next(n for n, r in RATES.items() if r == rate)
    duration = fault_duration(kind, rate)
    onset = START + LEAD
    fault = Fault(kind, name, onset, onset + duration, level)
    total = LEAD + duration + (2 * TAIL if rate < 1.0 else TAIL)
    traffic = Traffic(
        RATES,
        START,
        total,
        seed=seed * 1000 + int(rate * 10),
        faults=[fault],
        latency_shape=shape,
    )
    engine = Engine(DetectionConfig())
    changes = drive(traffic, engine, START, START + total)
    out = Outcome(label, rate, seed, duration)
    target_id: str | None = None
    for change in changes:
        incident = change.incident
        if change.kind != "open":
            if change.kind == "resolved" and incident.id == target_id:
                assert incident.resolved_at is not None
                out.resolved_after = incident.resolved_at - fault.end
            continue
        if incident.destination != name:
            out.elsewhere += 1
        elif incident.detected_at <= onset:
            out.early += 1
        elif incident.id == target_id:
            out.flaps += 1
        elif target_id is None and incident.detected_at <= fault.end:
            target_id = incident.id
            out.delay = incident.detected_at - onset
            out.onset_error = incident.onset - onset
        else:
            out.flaps += 1  # a second incident on the destination
    for incident in engine.all_incidents():
        if incident.id == target_id:
            out.detectors = list(incident.detectors)
            out.severity = incident.severity
            out.flaps = max(out.flaps, incident.flaps)
    out.seconds = time.perf_counter() - began
    return out


def run_quiet(args: tuple[Shape, int, bool]) -> tuple[Shape, int, bool, int, list[str], float]:
    shape, seed, bursts = args
    began = time.perf_counter()
    traffic = Traffic(RATES, START, FA_SECONDS, seed=seed, bursts=bursts, latency_shape=shape)
    engine = Engine(DetectionConfig())
    changes = drive(traffic, engine, START, START + FA_SECONDS)
    opened = [
        f"{c.incident.destination}:{c.incident.detector}@{c.incident.detected_at - START:.0f}s"
        for c in changes
        if c.kind == "open"
    ]
    return shape, seed, bursts, len(traffic.burst_seconds()), opened, time.perf_counter() - began


# End to end: lines in a log file -> DuckDB -> aggregation -> engine, as users run it.
E2E_RATES = {
    "tiktok_conversions": 1500.0,
    "meta_capi": 900.0,
    "google_ads": 400.0,
    "crm_webhook": 150.0,
    "segment_webhook": 50.0,
}
E2E_T0 = 1_795_183_200  # 2026-11-20T14:00:00Z
E2E_FAULT_SECONDS = 180


def e2e_shapes(rotation: int) -> dict[str, Shape]:
    """Every destination its own latency shape; rotations move each shape through the rates."""
    return {d: SHAPES[(i + rotation) % len(SHAPES)] for i, d in enumerate(E2E_RATES)}


def _opened(stdout: str) -> list[dict[str, object]]:
    out = []
    for raw in stdout.splitlines():
        rec = orjson.loads(raw)
        if rec.get("type") == "incident" and rec.get("state") == "open":
            out.append(rec)
    return out


def _epoch(iso: object) -> float:
    return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()


def replay_run(rotation: int, minutes: float, tmp: Path) -> dict[str, object]:
    """`observatory replay` of `minutes` of clean traffic at 3,000 lines/s (1 % failures),
    then every latency of one destination x3 for 3 minutes. False alarms: any incident before
    the fault, or on another destination."""
    shapes = e2e_shapes(rotation)
    target = list(E2E_RATES)[rotation % len(E2E_RATES)]
    onset = E2E_T0 + int(minutes * 60)
    log = tmp / "logs" / "forwarder.jsonl"
    log.parent.mkdir(parents=True)
    lines = write_history(
        log,
        E2E_RATES,
        E2E_T0,
        onset + E2E_FAULT_SECONDS,
        shapes,
        seed=rotation + 1,
        slower=(target, onset, 3.0),
    )
    cfg = tmp / "config.toml"
    cfg.write_text(config_toml(str(tmp / "obs.duckdb"), str(log.parent / "*.jsonl"), "3m"))
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "observatory", "replay", "--config", str(cfg)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - began
    opened = _opened(proc.stdout)
    false = [
        f"{o['destination']}:{o['detector']}"
        for o in opened
        if o["destination"] != target or _epoch(o["detected_at"]) <= onset
    ]
    hits = [o for o in opened if o["destination"] == target and _epoch(o["detected_at"]) > onset]
    delay = _epoch(hits[0]["detected_at"]) - onset if hits else None
    return {
        "rotation": rotation,
        "lines": lines,
        "seconds": seconds,
        "target": target,
        "shape": shapes[target],
        "rate": E2E_RATES[target],
        "delay": delay,
        "detector": hits[0]["detector"] if hits else None,
        "false": false,
    }


def live_run(rotation: int, minutes: float, tmp: Path) -> dict[str, object]:
    """`observatory watch` following a file written in real time at 3,000 lines/s (1 %
    failures), from a cold start (3-minute warm-up) for `minutes`: every incident is false."""
    shapes = e2e_shapes(rotation)
    logs = tmp / "logs"
    logs.mkdir()
    cfg = tmp / "config.toml"
    db = tmp / "obs.duckdb"
    cfg.write_text(config_toml(str(db), str(logs / "*.jsonl"), "3m"))
    writer = LineWriter(logs / "forwarder.jsonl", E2E_RATES, seed=rotation + 5, shapes=shapes)
    writer.error_share = 0.01
    writer.start()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "observatory",
            "watch",
            "--config",
            str(cfg),
            "--duration",
            str(minutes * 60),
        ],
        capture_output=True,
        text=True,
    )
    writer.stop()
    opened = _opened(proc.stdout)
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    stored = int(row[0]) if row else 0
    return {
        "rotation": rotation,
        "minutes": minutes,
        "written": writer.written,
        "stored": stored,
        "false": [f"{o['destination']}:{o['detector']}@{o['detected_at']}" for o in opened],
        "exit": proc.returncode,
    }


def e2e(replays: int, replay_minutes: float, lives: int, live_minutes: float) -> list[str]:
    """Run and print the end-to-end rows; the targets missed."""
    failures: list[str] = []
    rates = ", ".join(f"{d} {r:g}/s" for d, r in E2E_RATES.items())
    print(f"end to end, through log lines and DuckDB: {rates}; 1 % failures")
    if replays:
        print(
            f"replay: {replay_minutes:g} min clean, then one destination's latencies x3 for "
            f"{E2E_FAULT_SECONDS // 60} min (target: caught <= 5 s, no other incident)"
        )
        print(
            f"{'run':>3} {'lines':>9} {'replay s':>8}  {'latency x3 on':<30} {'delay':>5}  "
            "false alarms  shapes"
        )
    for rotation in range(replays):
        with tempfile.TemporaryDirectory() as td:
            r = replay_run(rotation, replay_minutes, Path(td))
        delay = r["delay"]
        where = f"{r['target']} ({r['shape']}, {r['rate']:g}/s)"
        shapes = " ".join(f"{s[:5]}" for s in e2e_shapes(rotation).values())
        print(
            f"{rotation + 1:>3} {r['lines']:>9,} {r['seconds']:>8.1f}  {where:<30} "
            f"{'-' if delay is None else f'{delay:.0f}':>5}  {len(r['false']):>12}  {shapes} "
            f"{' '.join(r['false'])}"
        )
        if r["false"]:
            failures.append(f"replay {rotation + 1}: false alarms {r['false']}")
        if delay is None or delay > 5.0 or r["detector"] != "latency":
            failures.append(f"replay {rotation + 1}: latency x3 on {where}: delay {delay}")
    if lives:
        print(f"live: observatory watch for {live_minutes:g} min from a cold start (target: none)")
        print(f"{'run':>3} {'written':>9} {'stored':>9} {'incidents':>9}  shapes")
    for rotation in range(lives):
        with tempfile.TemporaryDirectory() as td:
            r = live_run(rotation, live_minutes, Path(td))
        shapes = " ".join(f"{s[:5]}" for s in e2e_shapes(rotation).values())
        print(
            f"{rotation + 1:>3} {r['written']:>9,} {r['stored']:>9,} {len(r['false']):>9}  "
            f"{shapes} {' '.join(r['false'])}"
        )
        if r["false"]:
            failures.append(f"live {rotation + 1}: false alarms {r['false']}")
        if r["exit"] not in (0,):
            failures.append(f"live {rotation + 1}: watch exited {r['exit']}")
    print()
    return failures


def fmt(values: list[float | None], digits: int = 0) -> str:
    return " ".join("-" if v is None else f"{v:.{digits}f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per fault and rate")
    parser.add_argument("--fa-seeds", type=int, default=8, help="2-hour fault-free runs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--replays", type=int, default=5, help="end-to-end replay runs")
    parser.add_argument("--replay-minutes", type=float, default=15.0)
    parser.add_argument("--lives", type=int, default=1, help="end-to-end live runs (watch)")
    parser.add_argument("--live-minutes", type=float, default=6.0)
    parser.add_argument("--scrape", type=int, default=15, help="Prometheus scrape interval (s)")
    args = parser.parse_args(argv)
    began = time.perf_counter()

    jobs = [
        (label, kind, level, shape, rate, seed)
        for label, kind, level, _, shape in FAULTS
        for rate in RATES.values()
        for seed in range(1, args.seeds + 1)
    ]
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        quiet = pool.map_async(
            run_quiet,
            [
                (shape, seed, bursts)
                for shape in SHAPES
                for bursts in (False, True)
                for seed in range(1, args.fa_seeds + 1)
            ],
        )
        outcomes = pool.map(run_fault, jobs, chunksize=1)
        quiet_results = quiet.get()

    engine = Engine(DetectionConfig())
    print(f"h = {engine.h:.2f} (N=5 destinations, D=6 detectors, 1/week, tick 1 s)")
    print(f"rates (ev/s): {', '.join(f'{r:g}' for r in RATES.values())}")
    print(f"fault at {LEAD // 60} min after a cold start; {args.seeds} seeds per row; times in s")
    print()
    header = (
        f"{'fault':<14} {'rate':>5} {'target':>6} {'delay per seed':>16} {'max':>4} "
        f"{'onset err':>10} {'resolved after':>15} {'flaps':>5} {'else':>4}  detectors / severity"
    )
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    expected = {label: det for label, _, _, det, _ in FAULTS}
    for label, _, _, _, _ in FAULTS:
        for rate in RATES.values():
            rows = [o for o in outcomes if o.label == label and o.rate == rate]
            delays = [o.delay for o in rows]
            target = TARGETS.get((label, rate))
            worst = max((d for d in delays if d is not None), default=None)
            problems: list[str] = []
            if any(d is None for d in delays):
                problems.append("missed")
            if target is not None and worst is not None and worst > target:
                problems.append(f"delay {worst:.0f} > {target:.0f}")
            gated = judged_in_time(label, rate)
            for o in rows:
                if o.early or o.elsewhere:
                    problems.append(f"seed {o.seed}: {o.early + o.elsewhere} false alarm(s)")
                if o.delay is not None and o.resolved_after is None:
                    problems.append(f"seed {o.seed}: not resolved")
                if not gated:
                    continue
                if o.flaps:
                    problems.append(f"seed {o.seed}: reopened")
                if o.resolved_after is not None and o.resolved_after < 0:
                    problems.append(f"seed {o.seed}: resolved during the fault")
                elif o.resolved_after is not None and o.resolved_after > RESOLVE_WITHIN:
                    problems.append(f"seed {o.seed}: resolved after {o.resolved_after:.0f}")
                if o.delay is not None and expected[label] not in o.detectors:
                    problems.append(f"seed {o.seed}: {expected[label]} did not fire")
            slow_hold = not gated
            dets = sorted(
                {d for o in rows for d in o.detectors}, key=lambda d: (d != expected[label], d)
            )
            sev = "/".join(sorted({o.severity for o in rows if o.severity}))
            mark = "ok" if not problems else "FAIL: " + "; ".join(problems)
            print(
                f"{label:<14} {rate:>5g} {'' if target is None else f'<={target:g}':>6} "
                f"{fmt(delays):>16} {'-' if worst is None else f'{worst:.0f}':>4} "
                f"{fmt([o.onset_error for o in rows]):>10} "
                f"{fmt([o.resolved_after for o in rows]) + (' *' if slow_hold else ''):>15} "
                f"{sum(o.flaps for o in rows):>5} {sum(o.early + o.elsewhere for o in rows):>4}  "
                f"{','.join(dets)} / {sev}  {mark}"
            )
            if problems:
                failures.append(f"{label} @ {rate:g} ev/s: " + "; ".join(problems))
    print()
    print("* too few events in 2 minutes to judge recovery reliably (judged_in_time): the")
    print("  resolution time and reopens are shown, not held to the 2-minute rule; a negative")
    print("  resolution time is a resolution during the fault")
    print()
    print(f"fault-free traffic, all {len(RATES)} destinations, each latency shape;")
    print("'batchy': plus lone one-second bursts of 20-200")
    print("failures, 429s or slow events (one failed/throttled/slow batch), about once a minute")
    print("per destination, at least 30 s apart (less often where bursts would exceed 2 % of its")
    print("events: a slow destination sends few batches)")
    print(f"{'shape':<10} {'noise':>7} {'seeds':>5} {'hours':>5} {'bursts':>7} {'incidents':>9}")
    for shape in SHAPES:
        for bursts in (False, True):
            rows = [r for r in quiet_results if r[0] == shape and r[2] == bursts]
            noise = "batchy" if bursts else "plain"
            opened = [f"seed {r[1]}: {o}" for r in rows for o in r[4]]
            print(
                f"{shape:<10} {noise:>7} {len(rows):>5} {len(rows) * FA_SECONDS / 3600:>5g} "
                f"{sum(r[3] for r in rows):>7} {len(opened):>9}  {' '.join(opened)}"
            )
            if opened:
                failures.append(f"{shape} ({noise}): {len(opened)} false alarm(s): {opened}")
    print()
    # A row per feed (benchmarks/feeds.py): statsd, Prometheus, Delivery Overview.
    failures += feed_rows(args.seeds, min(args.fa_seeds, 5), args.scrape, args.jobs)
    print()
    failures += e2e(args.replays, args.replay_minutes, args.lives, args.live_minutes)
    print(f"wall time {time.perf_counter() - began:.1f} s ({args.jobs} processes)")
    if failures:
        print("\nTARGETS MISSED:")
        for line in failures:
            print(f"  {line}")
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
