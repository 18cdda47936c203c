"""Fire drills: through a live `watch` and real loopback sinks (a webhook, a PagerDuty-shaped
one), a sink that is down, the real flows left alone, and the status line's due date."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from observatory.config import load_config
from observatory.drills.store import DAY, DrillDue
from observatory.owner import build_runtime
from observatory.sim.loadgen import config_toml
from tests.helpers import SECRET, history_with_outage
from tests.recording_server import Server

ROUTING_KEY = "R0123456789abcdef0123456789abcdef"


def _config(tmp_path: Path, now: float, extra: str) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir(parents=True)
    history_with_outage(logs / "fwd.jsonl", now)
    cfg = tmp_path / "config.toml"
    backup = (
        f'\n[backup]\nlisten = "127.0.0.1:0"\nsecret = "{SECRET}"\n'
        'destinations = ["tiktok_conversions"]\n'
    )
    cfg.write_text(
        config_toml(str(tmp_path / "obs.duckdb"), str(logs / "*.jsonl"), "60s", backup + extra)
    )
    return cfg


def _sinks(hook: Server, pager: Server) -> str:
    return (
        f'\n[[alerts]]\nkind = "webhook"\nurl = "{hook.url()}"\n'
        f'\n[[alerts]]\nkind = "pagerduty"\nurl = "{pager.url("/v2/enqueue")}"\n'
        f'routing_key = "{ROUTING_KEY}"\n'
    )


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observatory", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


@pytest.mark.slow
def test_a_drill_through_a_live_watch_confirms_both_sinks_and_names_one_that_is_down(
    tmp_path: Path,
) -> None:
    hook, pager = Server(), Server()
    pager.default = ("status", 202, {})  # PagerDuty's "accepted"
    # a sink that does not confirm is given up on after confirm_within: 4 s keeps this short
    cfg = _config(
        tmp_path,
        time.time(),
        _sinks(hook, pager)
        + '\n[server]\nlisten = "127.0.0.1:0"\n[drills]\nconfirm_within = "4s"\n',
    )
    watch = subprocess.Popen(
        [sys.executable, "-m", "observatory", "watch", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        owner_file = tmp_path / "obs.duckdb.owner.json"
        deadline = time.monotonic() + 30
        while not owner_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert owner_file.exists(), "watch did not start its API"

        good = _run("drill", "--config", str(cfg), "--format", "json")
        assert good.returncode == 0, good.stdout + good.stderr
        assert "through the owner" in good.stderr
        report = json.loads(good.stdout)
        assert report["passed"] and report["drill_destination"].startswith("drill:")
        steps = {s["name"]: s for s in report["steps"]}
        assert steps["detect"]["took_s"] <= 5.0
        for sink in ("webhook[0]", "pagerduty[1]"):
            assert steps[f"{sink}: open confirmed"]["ok"]
            assert steps[f"{sink}: resolve confirmed"]["ok"]
        # the sinks were told it is a drill, and then that it is over
        hooked = [r.body.decode() for r in hook.requests]
        assert any("[DRILL]" in b and "drill:" in b for b in hooked)
        paged = [r.json() for r in pager.requests]
        assert [p["event_action"] for p in paged][0] == "trigger"
        assert paged[-1]["event_action"] == "resolve"

        pager.default = ("status", 503, {})  # the pager is down
        bad = _run("drill", "--config", str(cfg))
        assert bad.returncode == 1, bad.stdout + bad.stderr
        missed = [line for line in bad.stdout.splitlines() if "MISSED" in line]
        assert missed and all(line.startswith("pagerduty[1]") for line in missed), bad.stdout
        assert "FAILED" in bad.stdout and "MISSED" in bad.stdout
        assert "webhook[0]: open confirmed" in bad.stdout  # still there, and ok
        assert ROUTING_KEY not in bad.stdout + bad.stderr
    finally:
        watch.terminate()
        watch.wait(20)
        hook.stop()
        pager.stop()


def test_a_drill_leaves_the_real_flows_alone(tmp_path: Path) -> None:
    """Two runtimes on the same data and the same clock, one of them drilling: the real
    destinations' counts, baselines, incidents and reconciliation come out the same."""
    now = float(int(time.time()))
    runtimes = []
    for name in ("plain", "drilled"):
        cfg = _config(tmp_path / name, now, "\n[server]\nenabled = false\n")
        runtimes.append(build_runtime(load_config(str(cfg)), alerts=False))
    plain, drilled = runtimes
    try:
        for rt in runtimes:
            rt.start_live(now)
        drill_id = drilled.start_drill("tiktok_conversions", "rate_limit", now)
        t = now
        while t < now + 30:
            t += 0.2
            for rt in runtimes:
                rt.poll(t)
        report = drilled.drill_reports[drill_id]  # over: detected, resolved at once (no sinks)
        assert report.detect_s is not None and report.detect_s <= 5
        assert not report.passed and report.failures() == [
            "alerts: never (target 10 s): no [[alerts]] sink"
        ]

        def state(rt: object) -> tuple[object, ...]:
            from observatory.backup.reconcile import reconcile

            con = rt.store.con  # type: ignore[attr-defined]
            statuses = {
                name: (s.state, s.baseline_rate, s.sparkline, s.success_pct, s.incident_id)
                for name, s in rt.status().items()  # type: ignore[attr-defined]
            }
            tables = [
                con.execute(f"SELECT count(*) FROM {table}").fetchall()
                for table in ("events", "feed_seconds", "backup_events", "rejects")
            ]
            incidents = con.execute(
                "SELECT id, destination, detector, state FROM incidents ORDER BY id"
            ).fetchall()
            backup = rt.config.backup  # type: ignore[attr-defined]
            return statuses, tables, incidents, reconcile(con, backup, now=t)

        assert state(plain) == state(drilled)
        assert not any(name.startswith("drill:") for name in drilled.status())
        rows = drilled.store.con.execute("SELECT id, destination, passed FROM drills").fetchall()
        assert rows == [(drill_id, "tiktok_conversions", False)]
    finally:
        for rt in runtimes:
            rt.close()


def test_the_status_line_marks_a_drill_older_than_every(tmp_path: Path) -> None:
    """An injected clock: a passing drill 30 days ago is fine, 91 days ago overdue."""
    cfg = _config(
        tmp_path,
        time.time(),
        '\n[server]\nenabled = false\n[drills]\nevery = "90d"\n[[alerts]]\nkind = "bell"\n',
    )
    rt = build_runtime(load_config(str(cfg)), alerts=False)
    try:
        drilled_at = 1_790_000_000.0
        rt.store.con.execute(
            "INSERT INTO drills VALUES ('d1', to_timestamp(?), 'tiktok_conversions', "
            "'rate_limit', true, 2.0, '{}')",
            [drilled_at],
        )
        recent = rt.snapshots.make(rt, drilled_at + 30 * DAY)
        assert recent.drill == "drill 30 d ago" and not recent.drill_overdue
        late = rt.snapshots.make(rt, drilled_at + 91 * DAY)
        assert late.drill == "drill 91 d ago, OVERDUE (every 90 d)" and late.drill_overdue
    finally:
        rt.close()
    assert DrillDue(None, 90 * DAY, 0.0).words() == "no drill yet"
