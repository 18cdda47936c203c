"""`observatory deps` on a real DuckDB file (table, md, json; with and without a `drills`
table; an open incident; a failing dependency probe), and dependency probes stored without
becoming engine destinations."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from observatory.cli import main
from observatory.config import load_config
from observatory.probes import ProbeResult, build_probes
from observatory.runtime import Runtime
from observatory.store.db import Store
from tests.helpers import make_config

DEPS_TOML = """
[[destinations]]
name = "tiktok_conversions"
vendor = "tiktok"
via = ["segment", "tiktok_events_api"]
owner = "growth-eng"
runbook = "https://wiki.example.com/runbooks/tiktok?token=abc"
fallback = "Route through the <b>backup</b> webhook | re-send [missing] events"
retry_window = "4h"

[[destinations]]
name = "meta_capi"
vendor = "meta"
via = ["segment"]

[[destinations]]
name = "quiet_dest"

[[dependencies]]
name = "segment"
kind = "cdp"
docs = "https://segment.com/docs/"
owner = "data-platform"
[[dependencies.probes]]
kind = "statuspage"
url = "http://127.0.0.1:9/api/v2/summary.json"
component = "Destinations"

[[dependencies]]
name = "tiktok_events_api"
kind = "platform_api"
"""


def deps_config(tmp_path: Path) -> Path:
    path = make_config(tmp_path)
    path.write_text(path.read_text() + DEPS_TOML, encoding="utf-8")
    return path


def seed(path: Path, now: float, drills: bool) -> None:
    """Traffic for two destinations and an unconfigured one, segment's probe failing now,
    an open incident on tiktok_conversions and a resolved one on meta_capi."""
    config = load_config(path)
    store = Store.for_config(config)
    try:
        con = store.con
        rows = [
            (now - 60 + i, dest, "delivered" if i % 4 else "rate_limited")
            for i in range(20)
            for dest in ("tiktok_conversions", "meta_capi", "unlisted_dest")
        ]
        rows.append((now - 7200, "quiet_dest", "delivered"))
        con.executemany(
            "INSERT INTO events (ts, ingested_at, source, destination, outcome) "
            "VALUES (to_timestamp(?), now(), 'fwd', ?, ?)",
            rows,
        )
        con.executemany(
            "INSERT INTO probes (destination, probe, ts, ok, http_status, status, details) "
            "VALUES (?, 'statuspage:Destinations', to_timestamp(?), ?, 200, ?, '{}')",
            [
                ("segment", now - 300, True, "operational"),
                ("segment", now - 20, False, "major_outage"),
            ],
        )
        con.executemany(
            "INSERT INTO incidents (id, destination, detector, state, severity, onset, "
            "detected_at, resolved_at, summary) VALUES (?, ?, ?, ?, ?, to_timestamp(?), "
            "to_timestamp(?), to_timestamp(?), 's')",
            [
                (
                    "inc-open",
                    "tiktok_conversions",
                    "rate_limit",
                    "open",
                    "critical",
                    now - 50,
                    now - 45,
                    None,
                ),
                (
                    "inc-old",
                    "meta_capi",
                    "silence",
                    "resolved",
                    "warning",
                    now - 9000,
                    now - 8990,
                    now - 8000,
                ),
            ],
        )
        if not drills:
            con.execute("DROP TABLE drills")  # a database from before drills
        else:
            con.executemany(
                "INSERT INTO drills VALUES (?, to_timestamp(?), ?, ?, ?, ?, '{}')",
                [
                    ("d1", now - 86400 * 10, "tiktok_conversions", "silence", False, None),
                    ("d2", now - 86400, "tiktok_conversions", "rate_limit", True, 3.2),
                ],
            )
    finally:
        store.close()


def deps(path: Path, fmt: str) -> str:
    result = CliRunner().invoke(main, ["deps", "--config", str(path), "--format", fmt])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    path = deps_config(tmp_path)
    seed(path, time.time(), drills=False)
    return path


def test_json_document(seeded: Path) -> None:
    doc = json.loads(deps(seeded, "json"))
    assert doc["fallback_used"] == "unknown"
    assert doc["failing_shared"] == [
        {"dependency": "segment", "destinations": ["tiktok_conversions", "meta_capi"]}
    ]
    tiktok, meta, quiet = doc["destinations"]
    assert tiktok["chain"] == ["segment", "tiktok_events_api", "tiktok_conversions"]
    segment, api, dest = tiktok["nodes"]
    assert (segment["state"], segment["role"], segment["kind"]) == ("failing", "dependency", "cdp")
    assert "statuspage:Destinations: major_outage" in segment["detail"]
    assert (api["state"], api["detail"]) == ("unknown", "not probed (no probes configured)")
    assert (dest["state"], dest["detail"]) == ("critical", "open incident inc-open (rate_limit)")
    assert tiktok["flowing"] and tiktok["events_in_window"] == 20
    assert tiktok["delivered_in_window"] == 15
    assert tiktok["last_incident"]["id"] == "inc-open" and tiktok["last_incident"]["open"]
    assert tiktok["retry_window_s"] == 14400.0
    assert tiktok["last_drill"] is None and not tiktok["drills_recorded"]
    assert meta["nodes"][-1]["state"] == "ok"
    assert meta["last_incident"]["id"] == "inc-old" and not meta["last_incident"]["open"]
    assert not quiet["flowing"] and quiet["nodes"][-1]["state"] == "stale"
    assert doc["unconfigured_flowing"] == ["unlisted_dest"]
    assert [d["name"] for d in doc["dependencies"]] == ["segment", "tiktok_events_api"]
    assert doc["dependencies"][0]["used_by"] == ["tiktok_conversions", "meta_capi"]
    assert tiktok["runbook"] == "https://wiki.example.com/runbooks/tiktok?[redacted]"


def test_markdown_document(seeded: Path) -> None:
    md = deps(seeded, "md")
    assert md.startswith("# Dependencies and fallbacks\n")
    assert "Whether a fallback was ever used is unknown" in md
    assert "- **Failing now:** segment (cdp); tiktok_conversions, meta_capi hang on it" in md
    assert "## tiktok_conversions\n\nsegment → tiktok_events_api → tiktok_conversions" in md
    assert "| [segment](https://segment.com/docs/) | cdp | **failing** |" in md
    assert "| tiktok_conversions | tiktok | **critical** | open incident inc-open" in md
    # Untrusted text escaped; the runbook linked without its query string (tokens go there).
    assert (
        "> Route through the \\<b\\>backup\\</b\\> webhook \\| re-send \\[missing\\] events" in md
    )
    assert "<b>" not in md and "token=abc" not in md
    assert "[https://wiki.example.com/runbooks/tiktok" in md
    assert "(https://wiki.example.com/runbooks/tiktok)" in md
    assert "- **Last drill:** never" in md
    assert "- **Flows:** yes: 20 events in the last 15 min (15 delivered)" in md
    assert "## quiet_dest" in md and "no traffic seen in the last 15 min" in md
    assert "Flowing but not in the configuration: unlisted_dest." in md


def test_table_document(seeded: Path) -> None:
    text = deps(seeded, "table")
    assert "FAILING NOW: segment (cdp): tiktok_conversions, meta_capi hang on it" in text
    assert "last drill: never" in text
    assert "fallback used: unknown" in text
    assert "token=abc" not in text
    assert "critical" in text and "open incident inc-open (rate_limit)" in text


def test_last_drill_from_the_drills_table(tmp_path: Path) -> None:
    path = deps_config(tmp_path)
    seed(path, time.time(), drills=True)
    doc = json.loads(deps(path, "json"))
    tiktok, meta, _ = doc["destinations"]
    assert tiktok["last_drill"]["kind"] == "rate_limit"  # the newest, not the failed one
    assert tiktok["last_drill"]["passed"] is True and tiktok["last_drill"]["detect_s"] == 3.2
    assert meta["last_drill"] is None and meta["drills_recorded"]
    md = deps(path, "md")
    assert "- **Last drill:** passed " in md and "(rate\\_limit" not in md
    assert "rate_limit, detected in 3.2s)" in md


def test_without_a_database_it_says_so(tmp_path: Path) -> None:
    path = deps_config(tmp_path)
    result = CliRunner().invoke(main, ["deps", "--config", str(path)])
    assert result.exit_code != 0
    assert "no database at" in result.output


# ------------------------------------------------------------------ dependency probes


def test_dependency_probes_are_built_under_the_dependency_name(tmp_path: Path) -> None:
    probes = build_probes(load_config(deps_config(tmp_path)))
    assert [(p.destination, p.name) for p in probes] == [("segment", "statuspage:Destinations")]


def test_dependency_probes_are_stored_but_make_no_destination(tmp_path: Path) -> None:
    runtime = Runtime(load_config(deps_config(tmp_path)))
    try:
        now = time.time()
        runtime.record_probe_results(
            [
                ProbeResult(
                    "segment",
                    "statuspage:Destinations",
                    now,
                    False,
                    200,
                    40.0,
                    "major_outage",
                    {"kind": "statuspage"},
                ),
                ProbeResult("tiktok_conversions", "http", now, True, 200, 30.0, "ok", {}),
            ]
        )
        stored = runtime.store.con.execute(
            "SELECT destination, ok FROM probes ORDER BY destination"
        ).fetchall()
        assert stored == [("segment", False), ("tiktok_conversions", True)]
        assert "segment" not in runtime.status()
        assert "tiktok_conversions" in runtime.status()
        assert not runtime.engine.incidents()
    finally:
        runtime.close()


# ------------------------------------------------------------------ exports carry the plan


def test_exports_carry_the_plan_only_when_configured(seeded: Path) -> None:
    import duckdb

    from observatory.config import response_plan
    from observatory.incidents.export import export_incident
    from observatory.incidents.store import load_incident

    config = load_config(seeded)
    with duckdb.connect(config.db_path, read_only=True) as con:
        incident = load_incident(con, "inc-open")
        plan = response_plan(config, incident.destination)
        md = export_incident(con, incident, "md", plan)
        html = export_incident(con, incident, "html", plan)
        doc = json.loads(export_incident(con, incident, "json", plan))
        plain = export_incident(con, incident, "md")
        assert "response_plan" not in json.loads(export_incident(con, incident, "json"))
    assert "## Response plan" in md and "## Response plan" not in plain
    assert "- **Fallback:** Route through the \\<b\\>backup\\</b\\> webhook \\| re-send" in md
    assert "- **Retry window:** 4h" in md and "- **Owner:** growth-eng" in md
    assert "token=abc" not in md and "token=abc" not in html
    assert "&lt;b&gt;backup&lt;/b&gt;" in html and "<b>backup" not in html
    assert doc["response_plan"]["retry_window_s"] == 14400.0
    assert doc["response_plan"]["via"] == ["segment", "tiktok_events_api"]
    assert "token=abc" not in json.dumps(doc)


def test_cli_export_reads_the_plan_from_the_config(seeded: Path) -> None:
    result = CliRunner().invoke(
        main, ["export", "inc-open", "--config", str(seeded), "--format", "md"]
    )
    assert result.exit_code == 0, result.output
    assert "## Response plan" in result.output
