"""Incident export (observatory.incidents.export) and the `incidents` / `export` commands.

A real DuckDB file holds one incident and a few thousand synthetic `events` rows around it,
inserted with plain SQL so every number in the export is known in advance:
- tiktok_conversions, seconds 0..1799 after T0, 4 events a second;
- outside the incident (before T0+600, from T0+1200): all 4 delivered;
- inside: 1 delivered, 2 rate-limited, 1 failed (rejected every 10th second).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from observatory.incidents.export import (
    MAX_POINTS,
    Format,
    chart_data,
    export_incident,
    md_escape,
)
from observatory.incidents.model import Impact, Incident
from observatory.incidents.store import acknowledge, load_incident, save_incident
from observatory.store.db import Store, connect

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ONSET, DETECTED, RESOLVED = T0 + 600, T0 + 614.2, T0 + 1200
DEST = "tiktok_conversions"
HOSTILE = "TikTok <script>alert(1)</script> | 40100 \x1b[31mrate limited\x1b[0m\x07 now"
SECRET = "sk-live-0123456789"

EVENTS_SQL = """
INSERT INTO events
SELECT to_timestamp(? + s + k / 4.0), now(), 'fwd', ?, 'CompletePayment',
       'm' || s || '-' || k,
       (CASE WHEN s < 600 OR s >= 1200 OR k = 0 THEN 'delivered'
             WHEN k = 3 THEN (CASE WHEN s % 10 = 0 THEN 'rejected' ELSE 'failed' END)
             ELSE 'rate_limited' END)::outcome_t,
       NULL, NULL, NULL, 12.5, 1, NULL
FROM range(0, 1800) AS r(s), range(0, 4) AS q(k)
"""


def make_incident(**overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "3f2a9c1e7b",
        "destination": DEST,
        "detector": "rate_limit",
        "severity": "critical",
        "onset": ONSET,
        "detected_at": DETECTED,
        "state": "resolved",
        "detectors": ["rate_limit", "volume_drop"],
        "resolved_at": RESOLVED,
        "summary": HOSTILE,
        "evidence": {
            "top_errors": [
                {"code": "40100", "message": "Too many | requests <b>", "count": 1200},
                {"code": "500", "message": "upstream \x1b[1merror\x1b[0m", "count": 540},
            ],
            "rate_limited_share": 0.5,
            "error_ratio": 0.25,
            "retry_after": "30",
            "latency_ms": {"p50": 41.2, "p95": 180.5, "p99": 412.0},
            "probe": {
                "headers": {"Authorization": f"Bearer {SECRET}", "x-ratelimit-remaining": "0"},
                "status_url": f"https://status.example.com/api?token={SECRET}",
                "session": f"Bearer {SECRET}",
            },
        },
        "impact": Impact(not_delivered_est=9876, failed=540, rate_limited=1200, rejected=60),
    }
    fields.update(overrides)
    inc = Incident(**fields)
    if "timeline" not in overrides:
        inc.note(DETECTED, "opened", "rate_limit: 429 share 50 % | p0 0.1 %")
        inc.note(DETECTED + 20, "detector", "volume_drop joined")
        inc.note(DETECTED + 30, "escalated", "error -> critical")
        inc.note(DETECTED + 40, "note", '=HYPERLINK("x") \x1b[2J | <img src=x>')
        inc.note(RESOLVED, "resolved", "429s stopped")
    return inc


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A closed DuckDB file with the events above and the incident."""
    path = tmp_path / "obs.duckdb"
    store = Store(str(path))
    store.con.execute(EVENTS_SQL, [T0, DEST]).fetchall()
    store.con.execute(EVENTS_SQL, [T0, "meta_capi"]).fetchall()  # must not leak in
    save_incident(store.con, make_incident())
    store.close()
    return path


@pytest.fixture
def con(db: Path) -> Any:
    c = connect(str(db), read_only=True)
    yield c
    c.close()


def export(con: Any, fmt: Format, **overrides: Any) -> str:
    inc = make_incident(**overrides) if overrides else load_incident(con, "3f2a")
    return export_incident(con, inc, fmt)


# ------------------------------------------------------------------------- markdown


def test_markdown_is_a_postmortem_with_its_sections_in_order(con: Any) -> None:
    md = export(con, "md")
    assert md.startswith("# Incident 3f2a9c1e7b: tiktok_conversions (rate_limit, volume_drop)\n")
    heads = re.findall(r"^## (.+)$", md, re.M)
    assert heads == [
        "Summary",
        "Impact",
        "Detection",
        "Timeline",
        "Evidence",
        "Action items",
        "Appendix: detection statistics",
    ]
    assert md.splitlines()[2] == "All times are UTC."


def test_markdown_numbers(con: Any) -> None:
    md = export(con, "md")
    assert "- **Time to detect:** 14.2 s" in md
    assert "- **Events not delivered (estimate):** 9,876" in md
    assert "- **Failed:** 540" in md
    assert "- **Rate-limited (429):** 1,200" in md
    assert "- **Rejected:** 60" in md
    # no outage end recorded (an older incident): the outage is taken to last until resolved
    assert "- **Outage duration (counted over):** 10 min 00 s" in md
    assert "- **Outage duration:** 10 min 00 s" in md
    assert "- **Quiet period before resolving:** not recorded" in md
    assert "- **Time to resolve (detected to resolved):** 9 min 45 s" in md
    assert "- **Onset (estimated):** 2023-11-14T22:23:20.000Z" in md
    assert "- **Detected at:** 2023-11-14T22:23:34.200Z" in md
    # Evidence: nested dicts and lists of dicts become tables.
    assert "| Code | Message | Count |" in md
    assert "| 40100 | Too many \\| requests \\<b\\> | 1,200 |" in md
    assert "- **p95:** 180.5" in md and "- **Rate-limited share (429):** 50.00 %" in md
    assert "- **Retry-After:** 30" in md
    assert "- [ ] " in md and "Retry-After seen: 30" in md


def test_markdown_counts_impact_from_events_when_the_incident_has_none(con: Any) -> None:
    md = export(con, "md", impact=None)
    assert "- **Failed:** 540 (counted from captured events)" in md
    assert "- **Rejected:** 60 (counted from captured events)" in md
    assert "- **Rate-limited (429):** 1,200 (counted from captured events)" in md
    # 4 delivered/s before the onset, 1/s during 600 s: 1,800 not delivered.
    assert "- **Events not delivered (estimate):** ≈ 1,800" in md


def test_markdown_timeline_rows(con: Any) -> None:
    md = export(con, "md")
    rows = [ln for ln in md.splitlines() if ln.startswith("| 2023-11-14T")]
    assert len(rows) == 5
    assert (
        rows[0] == "| 2023-11-14T22:23:34.200Z | opened | rate_limit: 429 share 50 % \\| p0 0.1 % |"
    )
    for row in rows:  # four unescaped pipes: three columns
        assert len(re.findall(r"(?<!\\)\|", row)) == 4, row


def test_markdown_escapes_untrusted_text(con: Any) -> None:
    md = export(con, "md")
    assert not re.search(r"(?<!\\)[<>]", md)  # every angle bracket escaped: no raw HTML
    assert "\\<script\\>alert(1)\\</script\\>" in md
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", md)  # ANSI, BEL gone (newlines stay)
    assert "40100 rate limited now" in md
    assert md_escape("# not a heading", line_start=True) == "\\# not a heading"
    assert md_escape("1. not a list", line_start=True) == "1\\. not a list"
    assert md_escape("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"


def test_no_format_carries_secrets(con: Any) -> None:
    for fmt in ("md", "json", "csv", "html"):
        text = export(con, fmt)
        assert SECRET not in text, fmt
        assert "token=" not in text, fmt
    assert "\\[redacted\\]" in export(con, "md")


# ------------------------------------------------------------------------- json / csv


def test_json_has_every_field_iso_and_epoch_times_and_the_timeline(con: Any) -> None:
    doc = json.loads(export(con, "json"))
    assert doc["id"] == "3f2a9c1e7b" and doc["state"] == "resolved"
    assert doc["detectors"] == ["rate_limit", "volume_drop"]
    assert doc["onset"] == "2023-11-14T22:23:20.000Z" and doc["onset_epoch"] == ONSET
    assert doc["detected_at_epoch"] == DETECTED and doc["acknowledged_at"] is None
    assert doc["time_to_detect_s"] == 14.2 and doc["time_to_resolve_s"] == 585.8
    assert doc["summary"] == HOSTILE  # JSON escapes it; the data stays as it was
    assert doc["impact"]["not_delivered_est"] == 9876
    assert doc["evidence"]["probe"]["headers"]["Authorization"] == "[redacted]"
    assert doc["evidence"]["probe"]["headers"]["x-ratelimit-remaining"] == "0"
    assert [e["kind"] for e in doc["timeline"]] == [
        "opened",
        "detector",
        "escalated",
        "note",
        "resolved",
    ]
    assert doc["timeline"][0] == {
        "ts": "2023-11-14T22:23:34.200Z",
        "ts_epoch": DETECTED,
        "kind": "opened",
        "detail": "rate_limit: 429 share 50 % | p0 0.1 %",
    }


def test_csv_is_the_timeline_with_a_header(con: Any) -> None:
    rows = list(csv.reader(io.StringIO(export(con, "csv"))))
    assert rows[0] == ["ts", "kind", "detail"]
    assert len(rows) == 6
    assert rows[1] == [
        "2023-11-14T22:23:34.200Z",
        "opened",
        "rate_limit: 429 share 50 % | p0 0.1 %",
    ]
    for ts, _, _ in rows[1:]:
        datetime.fromisoformat(ts.replace("Z", "+00:00"))
    # Control characters out; a formula-looking cell cannot run in a spreadsheet.
    assert rows[4] == ["2023-11-14T22:24:14.200Z", "note", '\'=HYPERLINK("x")  | <img src=x>']


# ------------------------------------------------------------------------- html


def test_html_is_one_self_contained_page(con: Any) -> None:
    page = export(con, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    for ref in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "url("):
        assert ref not in page.lower(), ref
    assert not re.search(r"<[^>]+\s(?:src|href|xlink:href)\s*=", page)
    assert "<style>" in page and page.count("<svg") == 1
    assert "\x1b" not in page and "\x07" not in page


def test_html_has_the_same_content_as_markdown(con: Any) -> None:
    page = export(con, "html")
    for heading in ("Summary", "Impact", "Detection", "Timeline", "Evidence", "Action items"):
        assert f"<h2>{heading}</h2>" in page
    assert "<th>Time to detect</th><td>14.2 s</td>" in page
    assert "<th>Events not delivered (estimate)</th><td>9,876</td>" in page
    assert page.count('<td class="fit">2023-11-14T') == 5  # timeline rows
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | 40100 rate limited now" in page
    assert "&lt;img src=x&gt;" in page
    assert 'type="checkbox"' in page


def test_html_chart_has_three_series_a_legend_axes_and_markers(con: Any) -> None:
    page = export(con, "html")
    series = re.findall(r'<polyline class="series" data-series="(\w+)" points="([^"]+)"', page)
    assert sorted(name for name, _ in series) == ["delivered", "failed", "rate_limited"]
    for _, points in series:
        assert 100 < len(points.split()) <= MAX_POINTS
    for legend in ("delivered", "failed + rejected", "rate-limited (429)", "detected"):
        assert f">{legend}</text>" in page
    assert ">onset 22:23:20</text>" in page and ">resolved 22:33:20</text>" in page
    assert "detected 22:23:34 (+14.2 s)" in page
    assert re.search(r">22:\d\d:\d\d</text>", page)  # time ticks
    assert "events/s (mean per 2 s)" in page  # y axis; 1,800 s window in 2 s buckets
    # Count ticks on whole 1-2-5 steps up to the peak (4 delivered/s).
    ticks = re.findall(r'text-anchor="end" fill="#424a53">([\d.,]+)</text>', page)
    assert ticks == ["0", "1", "2", "3", "4"]


def test_chart_data_is_per_second_for_the_destination(con: Any) -> None:
    data = chart_data(con, DEST, ONSET - 300, RESOLVED + 300)
    assert data.step == 2 and len(data.delivered) <= MAX_POINTS
    at = {t: i for i, t in enumerate(range(data.start, data.end, data.step))}
    before, inside = at[int(ONSET) - 100], at[int(ONSET) + 100]
    assert (data.delivered[before], data.failed[before], data.rate_limited[before]) == (4, 0, 0)
    assert (data.delivered[inside], data.failed[inside], data.rate_limited[inside]) == (1, 1, 2)
    # A long window is bucketed to at most MAX_POINTS positions; empty buckets are zeros.
    wide = chart_data(con, DEST, T0 - 6 * 3600, T0 + 6 * 3600)
    assert wide.step >= 60 and len(wide.delivered) <= MAX_POINTS
    assert sum(wide.delivered) * wide.step == pytest.approx(1800 * 4 - 600 * 3)
    assert chart_data(con, "nobody", T0, T0 + 60).delivered == [0.0] * 60


def test_an_ongoing_silence_exports_too(con: Any) -> None:
    md = export(con, "md", detector="silence", detectors=[], state="open", resolved_at=None)
    assert "- **Resolved at:** not resolved" in md
    assert "so far (ongoing)" in md
    page = export(con, "html", detector="silence", state="open", resolved_at=None)
    assert "incident (ongoing)" in page and "last data" in page


# ------------------------------------------------------------------------- the CLI


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observatory", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_incidents_table_and_json(db: Path, tmp_path: Path) -> None:
    store = Store(str(db))
    save_incident(store.con, make_incident(id="77aa", state="open", resolved_at=None))
    acknowledge(store.con, "77aa", T0 + 650)
    store.close()
    proc = run("incidents", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    for col in ("id", "destination", "state", "severity", "detectors", "time to detect"):
        assert col in lines[0]
    assert "3f2a9c1e7b" in proc.stdout and "14.2 s" in proc.stdout
    assert "2023-11-14 22:23:20" in proc.stdout and lines[-1] == "(2 incidents)"

    proc = run("incidents", "--db", str(db), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    objs = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert {o["id"]: o["state"] for o in objs} == {"3f2a9c1e7b": "resolved", "77aa": "acknowledged"}
    ack = next(o for o in objs if o["id"] == "77aa")
    assert ack["acknowledged_at"] == "2023-11-14T22:24:10.000Z" and ack["flaps"] == 0
    assert ack["type"] == "incident" and ack["onset"] == "2023-11-14T22:23:20.000Z"
    assert SECRET not in proc.stdout


def test_cli_incidents_defaults_to_the_configs_database(db: Path, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[storage]\ndb = "obs.duckdb"\n\n[[sources]]\nname = "fwd"\npath = "logs/*.jsonl"\n'
        'format = "jsonl"\n[sources.fields]\nts = "time"\ndestination = "dest"\n',
        encoding="utf-8",
    )
    proc = run("incidents", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == "3f2a9c1e7b"


def test_cli_export_to_stdout_and_to_a_file(db: Path, tmp_path: Path) -> None:
    proc = run("export", "3f2a", "--db", str(db), "--format", "md", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("# Incident 3f2a9c1e7b")
    proc = run("export", "3f", "--db", str(db), "--format", "csv", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("ts,kind,detail\n")
    out = tmp_path / "incident.html"
    proc = run(
        "export",
        "3f2a9c1e7b",
        "--db",
        str(db),
        "--format",
        "html",
        "--output",
        str(out),
        cwd=tmp_path,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert out.read_text(encoding="utf-8").count("<svg") == 1


def test_cli_export_errors(db: Path, tmp_path: Path) -> None:
    store = Store(str(db))
    save_incident(store.con, make_incident(id="3f2b0000"))
    store.close()
    line = one_error_line(run("export", "zz", "--db", str(db), "--format", "md", cwd=tmp_path))
    assert "no incident with id 'zz'" in line
    line = one_error_line(run("export", "3f2", "--db", str(db), "--format", "md", cwd=tmp_path))
    assert "ambiguous" in line
    missing = tmp_path / "missing.duckdb"
    line = one_error_line(run("export", "3f", "--db", str(missing), "--format", "md", cwd=tmp_path))
    assert "no database at" in line
    line = one_error_line(run("incidents", "--db", str(missing), cwd=tmp_path))
    assert "no database at" in line and not missing.exists()
    proc = run("export", "3f2a", "--db", str(db), cwd=tmp_path)  # --format is required
    assert proc.returncode == 2


def test_outage_quiet_period_and_resolution_are_apart(con: Any) -> None:
    """With the outage's end recorded, impact counted from events covers the outage only and
    the quiet period before resolving is its own figure."""
    md = export(con, "md", impact=None, outage_end=ONSET + 300)
    assert "- **Outage duration:** 5 min 00 s" in md
    assert "- **Quiet period before resolving:** 5 min 00 s" in md
    assert "- **Outage ended (last abnormal second):** 2023-11-14T22:28:20.000Z" in md
    # inside: 2 rate-limited and 1 failed a second (rejected every 10th): 300 s of it
    assert "- **Rate-limited (429):** 600 (counted from captured events)" in md
    assert "- **Failed:** 270 (counted from captured events)" in md
    assert "- **Rejected:** 30 (counted from captured events)" in md


def test_times_and_empty_values_in_evidence_read_as_words(con: Any) -> None:
    facts = {"component_status": "degraded", "checked_at": 1_796_403_293.65, "incidents": []}
    md = export(con, "md", evidence={"status_page": facts, "p_value": 5.421e-20})
    assert "- **Checked at (UTC):** 2026-12-04T" in md and "1,796,403,293" not in md
    assert "- **Incidents:** none" in md
    assert "< 0.0001" in md and "e-20" not in md  # a tiny number reads as tiny
    page = export(con, "html", evidence={"status_page": facts})
    assert "1,796,403,293" not in page and "<td>none</td>" in page
