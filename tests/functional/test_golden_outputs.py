"""Every command's output on sample_logs/, byte for byte, against files committed in
tests/golden/sample_logs/: a restructuring must not change what users and other tools read.

Outputs are made by real `python -m observatory` processes on a copy of the repository's
config.toml and sample_logs/. Only the timing fields of `ingest`'s summary are masked. When an
output changes on purpose, regenerate the files with `OBSERVATORY_UPDATE_GOLDEN=1 python -m
pytest tests/functional/test_golden_outputs.py` and read the diff before committing it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "sample_logs"
UPDATE = os.environ.get("OBSERVATORY_UPDATE_GOLDEN") == "1"
QUERY = (
    "select destination, outcome::varchar as outcome, count(*) as n, "
    "round(avg(latency_ms), 3) as avg_ms from events group by all order by all"
)


def _run(cwd: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "TZ": "UTC", "NO_COLOR": "1", "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "observatory", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _outputs(cwd: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    code, stdout, _ = _run(cwd, "ingest")
    summary = orjson.loads(stdout)
    summary["seconds"] = summary["rows_per_s"] = "masked"
    out["ingest.json"] = f"exit {code}\n" + orjson.dumps(summary).decode() + "\n"
    code, stdout, stderr = _run(cwd, "replay")
    out["replay.jsonl"] = f"exit {code}\n{stdout}"
    out["replay.stderr"] = re.sub(r"\r?replay: reading[^\n]*", "", stderr)
    for fmt in ("table", "json"):
        code, stdout, _ = _run(cwd, "incidents", "--format", fmt)
        out[f"incidents.{fmt}"] = f"exit {code}\n{stdout}"
    ids = [orjson.loads(line)["id"] for line in stdout.splitlines() if line.strip()]
    assert ids, "the sample logs hold an outage"
    for ident in ids:
        for fmt in ("md", "json", "csv", "html"):
            code, stdout, _ = _run(cwd, "export", ident, "--format", fmt)
            out[f"export-{ident}.{fmt}"] = f"exit {code}\n{stdout}"
    for fmt in ("table", "csv", "json"):
        code, stdout, _ = _run(cwd, "query", QUERY, "--format", fmt)
        out[f"query.{fmt}"] = f"exit {code}\n{stdout}"
    code, stdout, _ = _run(
        cwd,
        "query",
        "select source, regexp_extract(file, '[^/]+$') as file, line_no, reason, line "
        "from rejects order by all",
        "--format",
        "json",
    )
    out["rejects.json"] = f"exit {code}\n{stdout}"
    code, stdout, stderr = _run(cwd, "reconcile", "--format", "json")
    out["reconcile.txt"] = f"exit {code}\n{stdout}{stderr}"
    return out


def test_every_command_prints_what_it_printed_before(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "sample_logs", tmp_path / "sample_logs")
    outputs = _outputs(tmp_path)
    if UPDATE:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        for name, text in outputs.items():
            (GOLDEN / name).write_text(text, encoding="utf-8")
    expected = {p.name: p.read_text(encoding="utf-8") for p in sorted(GOLDEN.iterdir())}
    assert sorted(outputs) == sorted(expected)
    for name, text in outputs.items():
        assert text == expected[name], f"{name} differs from tests/golden/sample_logs/{name}"
