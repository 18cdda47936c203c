"""`observatory demo`: the app on a running simulator's config, and the simulator stopped
when the app is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory.ui.app import make_app
from observatory.ui.demo import prepare_demo
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
