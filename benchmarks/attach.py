"""Line-to-pane through the owner's API: a TUI attached to the owner, beside the owning TUI.

Another process appends pino lines to a tailed file at `--rate` lines/s (2,000 by default, in
50 ms bulks). The owning TUI runs headless here (`run_test`, as in benchmarks/ui.py); an
attached TUI runs headless in a process of its own (`--viewer`), fed by the owner's Snapshot
stream. A line for a fresh destination is written every 0.2 s; measured until its pane is on
each dashboard showing it (its last event set): in the owner (the local figure, ui.py's
method) and in the viewer (the time it reports, same wall clock). Target: attached p95 <=
1.5 s. Prints one JSON line with both; exits 1 on a miss.

    python benchmarks/attach.py [--rate 2000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui import BULK_DESTS, _line, bulk_writer, dashboard_with_panes, pct  # noqa: E402

TARGET_P95_MS = 1500.0


def shown(pane: object) -> bool:
    """A pane on the dashboard, showing a last event (what ui.py waits for)."""
    last = getattr(pane, "_shown", None)
    return (
        pane is not None
        and getattr(pane, "is_mounted", False)
        and pane.region.height > 0  # type: ignore[attr-defined]  # a mounted widget's region
        and last is not None
        and last[0].last_event_ts is not None
    )


async def viewer(db: str, seconds: float) -> None:
    """The attached TUI: print `{"ready": true}` once it shows the bulk destinations, then
    `{"name": ..., "at": wall time}` for every marker pane the moment it shows it."""
    from observatory.ui.app import make_attached_app
    from observatory.ui.attached import OwnerTarget
    from observatory.ui.screens.dashboard import DashboardScreen

    app = make_attached_app(OwnerTarget(db_path=db))
    reported: set[str] = set()
    async with app.run_test(size=(120, 40)):
        deadline = time.monotonic() + 60
        while not (
            isinstance(app.screen, DashboardScreen) and len(app.screen.panes) >= len(BULK_DESTS)
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the viewer did not show the destinations within 60 s")
            await asyncio.sleep(0.05)
        dash = app.screen
        print(json.dumps({"ready": True}), flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for name, pane in list(dash.panes.items()):
                if name.startswith("marker_") and name not in reported and shown(pane):
                    reported.add(name)
                    print(json.dumps({"name": name, "at": time.time()}), flush=True)
            await asyncio.sleep(0.005)


def _read_viewer(
    proc: subprocess.Popen[str], seen: dict[str, float], ready: threading.Event
) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if msg.get("ready"):
            ready.set()
        elif "name" in msg:
            seen[msg["name"]] = float(msg["at"])


async def measure(config: Path, db: str, logs: Path, seconds: float) -> dict[str, float]:
    from observatory.server.owner_files import read_endpoint
    from observatory.ui.app import make_app

    app = make_app(config)
    local: list[float] = []
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    async with app.run_test(size=(120, 40)):
        dash = await dashboard_with_panes(app, "the owning app")
        while read_endpoint(db) is None:
            await asyncio.sleep(0.05)
        proc = subprocess.Popen(
            [sys.executable, __file__, "--viewer", db, "--seconds", str(seconds + 40)],
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()
        reader = threading.Thread(target=_read_viewer, args=(proc, seen, ready), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 60
            while not ready.is_set():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the attached viewer did not start")
                await asyncio.sleep(0.05)
            marker = logs / "marker.jsonl"
            end = time.monotonic() + seconds
            k = 0
            while time.monotonic() < end:
                k += 1
                name = f"marker_{k}"
                t0 = time.perf_counter()
                written[name] = time.time()
                with marker.open("ab") as fh:
                    fh.write(_line(name, int(time.time() * 1000), k))
                while not shown(dash.panes.get(name)):
                    if time.perf_counter() - t0 > 10:
                        break
                    await asyncio.sleep(0.005)
                local.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.2)
            # the viewer's last few
            deadline = time.monotonic() + 10
            while len(seen) < len(written) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
    attached = [(seen[n] - t) * 1000 if n in seen else 10_000.0 for n, t in written.items()]
    return {
        "attached_line_to_pane_p95_ms": round(pct(attached, 95), 1),
        "attached_line_to_pane_median_ms": round(statistics.median(attached), 1),
        "local_line_to_pane_p95_ms": round(pct(local, 95), 1),
        "local_line_to_pane_median_ms": round(statistics.median(local), 1),
        "samples": len(written),
        "attached_missed": sum(1 for n in written if n not in seen),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--viewer", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewer:
        asyncio.run(viewer(args.viewer, args.seconds))
        return 0

    from observatory.sim.loadgen import config_toml

    with tempfile.TemporaryDirectory(prefix="observatory-attach-bench-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        logs.mkdir()
        db = str(root / "bench.duckdb")
        config = root / "config.toml"
        server = '\n[server]\nlisten = "127.0.0.1:0"\n'
        config.write_text(config_toml(db, str(logs / "*.jsonl"), "30s", server))
        stop = multiprocessing.Event()
        writer = multiprocessing.Process(
            target=bulk_writer, args=(str(logs / "bulk.jsonl"), args.rate, stop), daemon=True
        )
        writer.start()
        started = time.monotonic()
        try:
            result = asyncio.run(measure(config, db, logs, args.seconds))
        finally:
            stop.set()
            writer.join(5)
        elapsed = time.monotonic() - started
        written = (logs / "bulk.jsonl").read_bytes().count(b"\n")
    result["rate_lines_per_s"] = round(written / elapsed)
    result["target_rate"] = args.rate
    ok = result["attached_line_to_pane_p95_ms"] <= TARGET_P95_MS
    result["ok"] = ok
    print(json.dumps(result))
    if not ok:
        print("missed: attached_line_to_pane_p95_ms", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
