"""Fixtures for the UI tests: the deterministic datasets (built once per session) and `make_ui`,
an app on a private copy of one of them. The data itself is in tests/ui/dataset.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.dataset import AppMaker, app_on, build_db


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The config paths of the datasets, each with its database beside it."""
    root = tmp_path_factory.mktemp("ui-data")
    return {
        "healthy": build_db(root / "healthy", incident=False),
        "incident": build_db(root / "incident", incident=True),
        "odd": build_db(root / "odd", incident=False, odd_names=True),
        "deps": build_db(root / "deps", incident=True, dependencies=True),
    }


@pytest.fixture
def make_ui(datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppMaker:
    """`make_ui(name)`: an app on a private copy of that dataset (see `app_on`)."""
    # The SQL console's history file: private to the test, empty at the start.
    monkeypatch.setenv("OBSERVATORY_SQL_HISTORY", str(tmp_path / "sql_history"))
    return lambda name: app_on(datasets[name], tmp_path)
