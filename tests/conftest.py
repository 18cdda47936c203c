"""Shared fixtures for every test folder: a config with a jsonl source over `tmp_path/logs` and
real DuckDB stores on its file. The plain helpers (config files, pino-style log lines, queries,
polls) are in tests/helpers.py; the UI tests' own fixtures are in tests/ui/conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from observatory.config import Config, load_config
from observatory.sim.server import SimServer
from observatory.store.db import Store
from tests.helpers import make_config


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def config_path(tmp_path: Path, logs: Path) -> Path:
    return make_config(tmp_path)


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    """A Store on a real DuckDB file (the config's `obs.duckdb` in tmp_path)."""
    s = Store.for_config(config)
    yield s
    s.close()


@pytest.fixture
def open_store(config: Config) -> Iterator[Callable[[], Store]]:
    """Open further Store instances on the same DB file (each closed at teardown)."""
    opened: list[Store] = []

    def _open() -> Store:
        s = Store.for_config(config)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        try:
            s.close()
        except Exception:  # already closed by the test
            pass


@pytest.fixture
def sim() -> Iterator[SimServer]:
    """The simulator on a free loopback port (seed 0)."""
    server = SimServer(host="127.0.0.1", port=0, seed=0).start()
    yield server
    server.stop()


@pytest.fixture
def los_angeles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's zone is America/Los_Angeles (TZ, as a user would set it)."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
