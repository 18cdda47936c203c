"""The TUI fires the config's alerts: live lines, a 429 outage, a webhook on loopback; and
quitting the app delivers what is still in flight before the exit returns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from observatory.sim.loadgen import LineWriter, backlog, config_toml
from observatory.ui.app import make_app
from tests.pilot import wait_for
from tests.recording_server import Server

RATES = {"tiktok_conversions": 50.0, "meta_capi": 20.0}


def opened(body: dict[str, Any]) -> bool:
    """An `open` message: no label (updated, escalated, resolved…) before the headline."""
    return str(body["text"]).split(" ", 1)[1].startswith("[")


@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_tui_alerts_a_live_outage_once_and_flushes_the_alert_when_quitting(
    tmp_path: Path,
) -> None:
    server = Server()
    try:
        bodies, stats = await _run_outage(tmp_path, server)
    finally:
        server.stop()
    # The exit waited for the delivery under way; nothing was dropped or given up.
    assert stats == {
        "sent": len(bodies),
        "failed_attempts": 0,
        "retried": 0,
        "dropped": 0,
        "given_up": 0,
    }
    opens = [b for b in bodies if opened(b)]
    assert len(opens) == 1, [b["text"] for b in bodies]
    assert "tiktok_conversions" in opens[0]["text"]
    assert "rate_limit" in opens[0]["text"]
    assert len({b["text"] for b in bodies}) == len(bodies)  # no duplicates


async def _run_outage(tmp_path: Path, server: Server) -> tuple[list[Any], dict[str, int]]:
    """The TUI on a live log with a webhook alert to `server`; a 429 outage once live; quit
    while the first alert is in flight. The bodies posted and the sink's stats at exit."""
    server.script.append(("sleep", 2.0))  # the first alert is still in flight at quit
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "forwarder.jsonl"
    now = time.time()
    backlog(log, RATES, now - 300, now - 1)  # history warms the detectors
    cfg = tmp_path / "config.toml"
    alerts = f'\n[[alerts]]\nkind = "webhook"\nurl = "{server.url()}"\n'
    cfg.write_text(config_toml(str(tmp_path / "obs.duckdb"), str(logs / "*.jsonl"), "60s", alerts))
    writer = LineWriter(log, RATES).start()
    app = make_app(cfg)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.live)
            writer.inject("tiktok_conversions", "rate_limit")
            await wait_for(pilot, lambda: bool(server.requests), timeout=30)
            await pilot.pause(0.5)  # live on while the alert is in flight: no second one
    finally:
        writer.stop()
    runtime = app.driver.runtime
    assert runtime is not None and runtime.dispatcher is not None
    return [r.json() for r in server.requests], runtime.dispatcher.stats()["webhook[0]"]
