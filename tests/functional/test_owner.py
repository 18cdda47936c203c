"""`build_runtime`, the one wiring of watch, replay and the TUI: the config's alerts are
attached, the runtime flushes them when it closes, and replaying history alerts nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from observatory.config import load_config
from observatory.incidents.model import Change
from observatory.owner import build_runtime
from tests.helpers import make_config
from tests.recording_server import Server, incident

REPO = Path(__file__).resolve().parents[2]


def webhook(server: Server) -> str:
    return f'\n[[alerts]]\nkind = "webhook"\nurl = "{server.url()}"\n'


def test_the_runtime_owns_its_dispatcher_and_flushes_it_when_closing(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    bare = build_runtime(load_config(cfg), db=":memory:")
    bare.close()
    assert bare.dispatcher is None  # no [[alerts]]: none
    with cfg.open("a") as fh:
        fh.write(webhook(server := Server()))
    try:
        history = build_runtime(load_config(cfg), db=":memory:", alerts=False)
        history.close()
        assert history.dispatcher is None
        runtime = build_runtime(load_config(cfg), db=":memory:")
        dispatcher = runtime.dispatcher
        assert dispatcher is not None
        server.script.append(("sleep", 0.5))  # still in flight when close() begins
        dispatcher.publish(Change("open", incident()))
        assert server.wait_for(1)
        runtime.close()
        assert dispatcher.stats()["webhook[0]"]["sent"] == 1
    finally:
        server.stop()


def test_replay_alerts_nothing(tmp_path: Path) -> None:
    """The sample logs hold an outage; replayed, it is printed, not alerted (history)."""
    shutil.copytree(REPO / "sample_logs", tmp_path / "sample_logs")
    server = Server()
    try:
        text = (REPO / "config.toml").read_text(encoding="utf-8") + webhook(server)
        (tmp_path / "config.toml").write_text(text, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "observatory", "replay"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "TZ": "UTC"},
            timeout=120,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    states = [orjson.loads(line).get("state") for line in done.stdout.splitlines()]
    assert "open" in states
    assert server.requests == []
