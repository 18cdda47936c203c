"""`observatory demo`: the app on a running simulator's config, and the simulator stopped
when the app is done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from observatory.ui.app import make_app
from observatory.ui.demo import MARKER, DemoDirectoryError, demo_directory, prepare_demo
from tests.pilot import wait_for


@pytest.mark.slow  # waits for the live simulator's lines
@pytest.mark.asyncio
async def test_demo_opens_the_app_live_on_the_simulator(tmp_path: Path) -> None:
    setup = prepare_demo(tmp_path)
    try:
        assert not setup.replay and setup.process is not None, setup.note
        assert setup.config.name == "config.toml" and "simulator" in setup.note
        app = make_app(setup.config, note=setup.note)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    app.snapshot is not None
                    and {"tiktok_conversions", "meta_capi"} <= set(getattr(app.screen, "panes", {}))
                ),
                timeout=20,
            )
            assert app.snapshot.live
            # lines from the simulator's forwarder arrive while live
            await wait_for(
                pilot,
                lambda: app.snapshot.statuses["tiktok_conversions"].last_event_ts is not None,
                timeout=20,
            )
    finally:
        setup.stop()
    assert setup.process.poll() is not None  # the simulator is gone


def test_demo_falls_back_to_the_sample_logs(tmp_path: Path) -> None:
    setup = prepare_demo(tmp_path, try_simulator=False)
    assert setup.replay and setup.config.exists() and "sample" in setup.note


def test_demo_directory_is_visible_and_only_replaces_an_earlier_demo(tmp_path: Path) -> None:
    root = demo_directory(tmp_path / "observatory-demo")
    assert root.is_dir() and (root / MARKER).exists()
    (root / "old.duckdb").write_text("an earlier demo's")
    assert not (demo_directory(root) / "old.duckdb").exists()  # the earlier demo's: replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DemoDirectoryError, match="not empty"):
        demo_directory(other)
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.asyncio
async def test_demo_data_is_kept_where_it_says_and_incidents_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's headless part (the sample replay, as `observatory demo` runs it without a
    simulator) leaves its database in the demo folder; the status line and the closing
    line say where, and `observatory incidents --db` on that path lists its incidents."""
    monkeypatch.chdir(tmp_path)
    setup = prepare_demo(demo_directory(Path("observatory-demo")), try_simulator=False)
    assert setup.db.parent == tmp_path / "observatory-demo"
    app = make_app(setup.config, replay=setup.replay, note=setup.note)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)  # replayed by then
        assert "data in observatory-demo/" in str(app.screen.query_one("#status-line").render())
    kept = setup.kept()
    assert kept == (
        "demo data kept in observatory-demo; "
        "`observatory incidents --db observatory-demo/demo.duckdb` reads it"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "observatory",
            "incidents",
            "--db",
            str(setup.db),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed = [json.loads(line) for line in proc.stdout.splitlines()]  # one per incident
    assert listed and {"tiktok_conversions"} <= {i["destination"] for i in listed}
