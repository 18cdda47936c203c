"""The UI tests' deterministic data (tests/ui/dataset.py): the incident dataset replays into
one open incident."""

from __future__ import annotations

import shutil
from pathlib import Path

from observatory.config import load_config
from observatory.runtime import Runtime


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
