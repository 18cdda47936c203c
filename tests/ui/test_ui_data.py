"""Deterministic data for the UI tests: generated delivery lines at fixed times, ingested
once per session into a DuckDB file that each test copies, then replayed in event time."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.worker import Worker, WorkerFailed

from observatory.config import load_config
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.runtime import Runtime
from observatory.sim.loadgen import Fault, config_toml, line
from observatory.store.db import Store
from observatory.ui.app import ObservatoryApp, make_app
from observatory.ui.screens.incidents import IncidentsScreen

BASE = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SPAN = 900.0
NOW = BASE + SPAN  # the frozen clock of every UI test
MARKUP_DEST = "[bold red]x[/]"
ANSI_DEST = "\x1b[31mevil"


def write_lines(path: Path, incident: bool, odd_names: bool) -> None:
    rng = random.Random(7)
    rates = {"tiktok_conversions": 12.0, "meta_capi": 6.0}
    if odd_names:
        rates.update({MARKUP_DEST: 2.0, ANSI_DEST: 2.0})
    out: list[tuple[float, bytes]] = []
    for dest, rate in rates.items():
        t = BASE + rng.expovariate(rate)
        while t < NOW:
            fault: Fault | None = None
            if incident and dest == "tiktok_conversions" and t >= NOW - 90:
                fault = "rate_limit" if rng.random() < 0.8 else None
            elif dest == "meta_capi" and rng.random() < 0.01:
                fault = "failure"
            out.append((t, line(dest, t, rng, fault)))
            t += rng.expovariate(rate)
    out.sort()
    path.write_bytes(b"".join(b for _, b in out))


def add_probe_results(store: Store) -> None:
    """A few stored probe results for tiktok_conversions, the last ones rate-limited."""
    rows = []
    for n in range(6):
        ts = NOW - 60 + 10 * n
        limited = n >= 3
        details = {
            "kind": "http",
            "rate_limit_headers": {"retry-after": "30", "x-ratelimit-remaining": "0"}
            if limited
            else {"x-ratelimit-limit": "50", "x-ratelimit-remaining": str(40 - n)},
        }
        rows.append(
            [
                "tiktok_conversions",
                "health",
                ts,
                not limited,
                429 if limited else 200,
                35.0 + n,
                "rate_limited" if limited else "ok",
                json.dumps(details),
            ]
        )
    store.con.executemany(
        "INSERT INTO probes (destination, probe, ts, ok, http_status, latency_ms, status, "
        "details) VALUES (?, ?, to_timestamp(?), ?, ?, ?, ?, ?)",
        rows,
    )


def build_db(directory: Path, incident: bool, odd_names: bool = False) -> Path:
    """A config + database under `directory`; returns the config path."""
    logs = directory / "logs"
    logs.mkdir(parents=True)
    write_lines(logs / "forwarder.jsonl", incident, odd_names)
    cfg = directory / "config.toml"
    cfg.write_text(config_toml(str(directory / "obs.duckdb"), str(logs / "*.jsonl"), "60s"))
    config = load_config(cfg)
    store = Store.for_config(config)
    try:
        ingest_files(store, plan_files(config, ()))
        add_probe_results(store)
    finally:
        store.close()
    return cfg


def app_on(cfg: Path, tmp_path: Path) -> ObservatoryApp:
    """An app on a private copy of `cfg`'s database: replayed, not polling, clock frozen."""
    db = tmp_path / "copy.duckdb"
    shutil.copy(cfg.parent / "obs.duckdb", db)
    config = load_config(cfg)

    def factory() -> Runtime:
        runtime = Runtime(config, str(db))
        runtime.replay_history()
        return runtime

    return make_app(config, poll=False, clock=lambda: NOW, runtime_factory=factory)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ui-data")
    return {
        "healthy": build_db(root / "healthy", incident=False),
        "incident": build_db(root / "incident", incident=True),
        "odd": build_db(root / "odd", incident=False, odd_names=True),
    }


AppMaker = Callable[[str], ObservatoryApp]


@pytest.fixture
def make_ui(datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppMaker:
    # The SQL console's history file: private to the test, empty at the start.
    monkeypatch.setenv("OBSERVATORY_SQL_HISTORY", str(tmp_path / "sql_history"))
    return lambda name: app_on(datasets[name], tmp_path)


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until `predicate()` holds (a state the user sees) or fail after
    `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)
    await pilot.pause()


def busy(node: Widget) -> bool:
    """Whether any worker `node` started is still running."""
    return any(w.node is node and not w.is_finished for w in node.app.workers)


async def settle(pilot: Pilot[Any], node: Widget, timeout: float = 20.0) -> None:
    """Wait until the workers `node` (a screen) runs are done and what they posted is handled.

    A worker posts its reply before it finishes, so once it has finished a `pause()` hands the
    reply to the screen. A reply may start another worker (acknowledge, then reload the list),
    which may even finish within that pause: the screen's `run_worker` (what `@work` calls)
    is wrapped meanwhile so that one is waited for too. A worker that died of an exception
    fails the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    started: list[Worker[Any]] = []
    run_worker = node.run_worker

    def recording_run_worker(*args: Any, **kwargs: Any) -> Worker[Any]:
        worker = run_worker(*args, **kwargs)
        started.append(worker)
        return worker

    setattr(node, "run_worker", recording_run_worker)  # noqa: B010  # mypy: no method-assign
    try:
        await pilot.pause()  # the screen mounts (and starts its first load) first
        waited: set[Worker[Any]] = set()
        while True:
            running = [w for w in node.app.workers if w.node is node]
            workers = [w for w in dict.fromkeys([*started, *running]) if w not in waited]
            if not workers:
                return
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*(w.wait() for w in workers), return_exceptions=True),
                    deadline - loop.time(),
                )
            except TimeoutError:
                raise AssertionError(f"timed out waiting for the workers of {node!r}") from None
            for result in results:
                if isinstance(result, WorkerFailed):
                    raise result
            waited.update(workers)
            await pilot.pause()  # the replies they posted
    finally:
        del node.run_worker  # the class's method again


def test_the_incident_dataset_has_an_open_incident(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    config = load_config(datasets["incident"])
    db = tmp_path / "x.duckdb"
    shutil.copy(datasets["incident"].parent / "obs.duckdb", db)
    runtime = Runtime(config, str(db))
    try:
        runtime.replay_history()
        opened = runtime.engine.incidents()
        assert [i.destination for i in opened] == ["tiktok_conversions"]
    finally:
        runtime.close()


async def open_incidents(pilot: Pilot[Any]) -> IncidentsScreen:
    """`i` from the dashboard: the incidents screen, once its list has loaded."""
    await pilot.press("i")
    screen = pilot.app.screen
    assert isinstance(screen, IncidentsScreen)
    await settle(pilot, screen)
    return screen
