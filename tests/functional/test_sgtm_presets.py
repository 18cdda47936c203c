"""Server-side GTM presets (observatory/ingest/formats/sgtm.py) through the real ingest path:
log files on disk, a DuckDB database file, `plan_files` + `ingest_files`, read both whole by
DuckDB's reader and by blocks (the tail's path), which must agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from observatory.config import ConfigError, load_config
from observatory.config.sources import PRESET_FORMATS
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.ingest.formats.presets import PRESETS
from observatory.ingest.formats.sgtm import BODY_MAX
from observatory.store.db import Store, Tally

# Whole files read by DuckDB (0), or every file by blocks (never whole).
PATHS = pytest.mark.parametrize("whole_file_min", [0, 1 << 40], ids=["whole", "blocks"])

CLOUD_RUN = """
[[sources]]
name = "sgtm"
path = "logs/*.jsonl"
format = "jsonl"
preset = "gtm_cloud_logging"
"""

STAPE = """
[[sources]]
name = "stape"
path = "logs/*.jsonl"
format = "jsonl"
preset = "stape_gtms3"
"""

TIKTOK_URL = "https://business-api.tiktok.com/open_api/v1.3/event/track/"


def request_log(
    ts: str,
    status: Any,
    latency: Any,
    url: str = "https://sgtm.example.com/g/collect?v=2&en=purchase",
) -> dict[str, Any]:
    """A Cloud Run request LogEntry as a Cloud Storage sink writes it (one per line)."""
    return {
        "httpRequest": {
            "requestMethod": "POST",
            "requestUrl": url,
            "requestSize": "1873",
            "status": status,
            "responseSize": "412",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
            "remoteIp": "203.0.113.7",
            "serverIp": "216.239.32.53",
            "latency": latency,
            "protocol": "HTTP/1.1",
        },
        "insertId": f"6560a1f0000{ts[-8:-1]}",
        "labels": {"instanceId": "00c61b117c2f"},
        "logName": "projects/acme-sgtm/logs/run.googleapis.com%2Frequests",
        "receiveTimestamp": ts,
        "resource": {
            "type": "cloud_run_revision",
            "labels": {
                "configuration_name": "server-side-tagging",
                "location": "europe-west1",
                "project_id": "acme-sgtm",
                "revision_name": "server-side-tagging-00042-xyz",
                "service_name": "server-side-tagging",
            },
        },
        "severity": "INFO" if isinstance(status, int) and status < 500 else "ERROR",
        "spanId": "1234567890123456",
        "timestamp": ts,
        "trace": "projects/acme-sgtm/traces/4bf92f3577b34da6a3ce929d0e0e4736",
        "traceSampled": True,
    }


def gtms3(
    kind: str, trace: str, ts: str | None = "2026-11-20T14:17:03.2Z", **kw: Any
) -> dict[str, Any]:
    """A GTMS-3 line as Stape's tag templates log it (`ts`: the shipper's timestamp)."""
    obj: dict[str, Any] = {"Name": "TikTok", "Type": kind, "TraceId": trace, **kw}
    if ts is not None:
        obj["timestamp"] = ts
    return obj


def write_lines(path: Path, *items: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items)
    path.write_text(text, encoding="utf-8")
    return path


def ingest(tmp_path: Path, toml: str, log: Path, whole_file_min: int) -> tuple[Store, Tally]:
    """Ingest `log` into a DuckDB file with the config `toml` (sources only)."""
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text('[storage]\ndb = "obs.duckdb"\n' + toml, encoding="utf-8")
    config = load_config(cfg_path)
    store = Store.for_config(config)
    result = ingest_files(store, plan_files(config, [str(log)]), whole_file_min=whole_file_min)
    return store, result.tally


def rows(store: Store) -> list[dict[str, Any]]:
    cur = store.con.execute(
        "SELECT ts, destination, event_name, message_id, outcome::VARCHAR AS outcome, "
        "http_status, error_code, error_message, latency_ms FROM events ORDER BY ts, message_id"
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def rejects(store: Store) -> list[tuple[int, str]]:
    return store.con.execute("SELECT line_no, reason FROM rejects ORDER BY line_no").fetchall()


# ------------------------------------------------------------------ gtm_cloud_logging


@PATHS
def test_cloud_logging_request_logs(tmp_path: Path, whole_file_min: int) -> None:
    """Nanosecond timestamps truncate to DuckDB's microseconds; "0.123s" latencies become
    milliseconds and unreadable ones NULL (the row is kept); the status classifies; the
    destination is the Cloud Run service; other logs' entries are skipped; a line that is
    not JSON or has no time is a reject, never an error."""
    stdout_entry = {
        "textPayload": "Listening on port 8080",
        "insertId": "abc",
        "logName": "projects/acme-sgtm/logs/run.googleapis.com%2Fstdout",
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": "x"}},
        "timestamp": "2026-11-20T14:17:00Z",
    }
    no_time = request_log("2026-11-20T14:17:09Z", 200, "0.1s")
    del no_time["timestamp"]
    log = write_lines(
        tmp_path / "logs" / "requests.jsonl",
        request_log("2026-11-20T14:17:03.123456789Z", 200, "0.123s"),
        stdout_entry,
        request_log("2026-11-20T14:17:04.5Z", 429, "1.5s"),
        request_log(
            "2026-11-20T14:17:05Z", 503, "0s", url="https://sgtm.example.com/gtm.js?id=GTM-X"
        ),
        request_log("2026-11-20T14:17:06Z", 400, "soon"),
        request_log("2026-11-20T14:17:07Z", 200, None),
        request_log("2026-11-20T14:17:08Z", 204, 12),
        "{not json",
        no_time,
        "",
    )
    store, tally = ingest(tmp_path, CLOUD_RUN, log, whole_file_min)
    try:
        assert (tally.rows, tally.rejected) == (6, 2)
        got = rows(store)
        assert got[0]["ts"] == datetime(2026, 11, 20, 14, 17, 3, 123456, tzinfo=UTC)
        latencies = [r["latency_ms"] for r in got]
        assert latencies[:3] == pytest.approx([123.0, 1500.0, 0.0])
        assert latencies[3:5] == [None, None]
        assert latencies[5] == pytest.approx(12000.0)  # a bare number is seconds too
        assert [r["outcome"] for r in got] == [
            "delivered",
            "rate_limited",
            "failed",
            "rejected",
            "delivered",
            "delivered",
        ]
        assert {r["destination"] for r in got} == {"server-side-tagging"}
        assert [r["event_name"] for r in got[:3]] == ["purchase", "purchase", "POST /gtm.js"]
        assert got[0]["message_id"] == "projects/acme-sgtm/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        assert rejects(store) == [(8, "invalid JSON"), (9, "missing field ts (timestamp)")]
    finally:
        store.close()


def test_cloud_logging_without_resource_labels_uses_the_url_host(tmp_path: Path) -> None:
    entry = request_log("2026-11-20T14:17:03Z", 200, "0.05s")
    del entry["resource"]
    entry["httpRequest"]["requestUrl"] = "https://user@SGTM.Example.com:8443/data?x=1"
    log = write_lines(tmp_path / "logs" / "r.jsonl", entry)
    store, tally = ingest(tmp_path, CLOUD_RUN, log, 0)
    try:
        assert (tally.rows, tally.rejected) == (1, 0)
        (row,) = rows(store)
        assert row["destination"] == "sgtm.example.com"
        assert row["event_name"] == "POST /data"
    finally:
        store.close()


# ------------------------------------------------------------------ stape_gtms3


@PATHS
def test_stape_responses_are_deliveries(tmp_path: Path, whole_file_min: int) -> None:
    """Only Response lines become rows: Request and Message lines are neither rows nor
    rejects. The destination is RequestUrl's host, else the tag's Name; TikTok's 40100 in
    an HTTP 200 body is rate limiting; a body is kept as data, its message preferred."""
    html = "<html><script>alert(1)</script>" + "x" * 5000 + "</html>"
    log = write_lines(
        tmp_path / "logs" / "gtms3.jsonl",
        gtms3(
            "Request",
            "t1",
            EventName="CompletePayment",
            RequestMethod="POST",
            RequestUrl=TIKTOK_URL,
            RequestBody={"event": "CompletePayment"},
        ),
        gtms3(
            "Response",
            "t1",
            "2026-11-20T14:17:03.223456789Z",
            EventName="CompletePayment",
            ResponseStatusCode=200,
            ResponseHeaders={"content-type": "application/json"},
            ResponseBody=json.dumps(
                {"code": 40100, "message": "Too many requests", "request_id": "r1", "data": {}}
            ),
        ),
        gtms3(
            "Response",
            "t2",
            "2026-11-20T14:17:03.3Z",
            EventName="CompletePayment",
            RequestUrl=TIKTOK_URL,
            ResponseStatusCode=200,
            ResponseBody=json.dumps({"code": 0, "message": "OK", "data": {}}),
        ),
        gtms3("Message", "t2", Message="consent missing, skipping"),
        gtms3(
            "Response",
            "t3",
            "2026-11-20T14:17:03.4Z",
            Name="Facebook",
            EventName="Purchase",
            ResponseStatusCode=400,
            ResponseBody=json.dumps(
                {
                    "error": {
                        "message": "(#17) User request limit reached",
                        "type": "OAuthException",
                        "code": 17,
                    }
                }
            ),
        ),
        gtms3(
            "Response",
            "t4",
            "2026-11-20T14:17:03.5Z",
            Name="Webhook",
            RequestUrl="https://hooks.example.com/in",
            ResponseStatusCode=502,
            ResponseBody=html,
        ),
        gtms3("Response", "t5", "2026-11-20T14:17:03.6Z", Name="Webhook"),  # no answer
        gtms3("request", "t6"),  # the Type's case does not matter
        gtms3("Response", "t7", None, ResponseStatusCode=200),  # no time: a reject
        '{"Type": "Response", "TraceId": ',
        gtms3("Response", "t8", "2026-11-20T14:17:03.8Z", Name="", ResponseStatusCode=200),
    )
    store, tally = ingest(tmp_path, STAPE, log, whole_file_min)
    try:
        assert (tally.rows, tally.rejected) == (5, 3)
        assert tally.lines == 8  # skipped lines, like blank ones, are not counted
        got = {r["message_id"]: r for r in rows(store)}
        assert set(got) == {"t1", "t2", "t3", "t4", "t5"}
        t1 = got["t1"]
        assert t1["ts"] == datetime(2026, 11, 20, 14, 17, 3, 223456, tzinfo=UTC)
        assert (t1["destination"], t1["event_name"], t1["http_status"]) == (
            "TikTok",
            "CompletePayment",
            200,
        )
        assert (t1["outcome"], t1["error_code"], t1["error_message"]) == (
            "rate_limited",
            "40100",
            "Too many requests",
        )
        t2 = got["t2"]
        assert t2["destination"] == "business-api.tiktok.com"
        assert (t2["outcome"], t2["error_code"], t2["error_message"]) == ("delivered", None, None)
        t3 = got["t3"]
        assert (t3["destination"], t3["outcome"], t3["error_code"]) == (
            "Facebook",
            "rate_limited",
            "17",
        )
        assert t3["error_message"] == "(#17) User request limit reached"
        t4 = got["t4"]
        assert (t4["destination"], t4["outcome"], t4["error_code"]) == (
            "hooks.example.com",
            "failed",
            None,
        )
        assert t4["error_message"] == html[:BODY_MAX]
        assert (got["t5"]["outcome"], got["t5"]["http_status"]) == ("failed", None)
        assert [line for line, _ in rejects(store)] == [9, 10, 11]
        reasons = dict(rejects(store))
        assert reasons[9] == "missing field ts (timestamp)"
        assert reasons[10] == "invalid JSON"
        assert reasons[11] == "missing field destination (RequestUrl)"
    finally:
        store.close()


def test_stape_lines_wrapped_by_cloud_logging(tmp_path: Path) -> None:
    """GTMS-3 lines as Cloud Logging stores a container's JSON stdout: in `jsonPayload`,
    with the time at the top."""

    def wrapped(payload: dict[str, Any], ts: str) -> dict[str, Any]:
        return {
            "insertId": "q1",
            "jsonPayload": payload,
            "logName": "projects/acme-sgtm/logs/run.googleapis.com%2Fstdout",
            "timestamp": ts,
        }

    log = write_lines(
        tmp_path / "logs" / "stdout.jsonl",
        wrapped(gtms3("Request", "w1", None, RequestUrl=TIKTOK_URL), "2026-11-20T14:17:03.1Z"),
        wrapped(
            gtms3(
                "Response",
                "w1",
                None,
                EventName="Purchase",
                ResponseStatusCode=500,
                ResponseBody='{"code": 50002, "message": "System error"}',
            ),
            "2026-11-20T14:17:03.2Z",
        ),
    )
    store, tally = ingest(tmp_path, STAPE, log, 0)
    try:
        assert (tally.rows, tally.rejected) == (1, 0)
        (row,) = rows(store)
        assert (row["destination"], row["message_id"], row["outcome"]) == ("TikTok", "w1", "failed")
        assert (row["error_code"], row["error_message"]) == ("50002", "System error")
    finally:
        store.close()


ODD = [None, 0, -1, 1.5, "", " ", "abc", "%E0%A4", "1e400s", [], [1, "x"], {}, {"seconds": 1}, True]


@pytest.mark.parametrize("preset", ["gtm_cloud_logging", "stape_gtms3"])
def test_odd_values_never_raise(tmp_path: Path, preset: str) -> None:
    """Every key the presets read, set to values of every JSON type: each line is a row, a
    reject or skipped, and ingest goes on."""
    keys = (
        ["timestamp", "insertId", "trace", "logName", "httpRequest"]
        if preset == "gtm_cloud_logging"
        else [
            "Type",
            "Name",
            "TraceId",
            "EventName",
            "RequestUrl",
            "ResponseStatusCode",
            "ResponseBody",
            "jsonPayload",
        ]
    )
    lines: list[dict[str, Any]] = []
    for key in keys:
        for odd in ODD:
            base = (
                request_log("2026-11-20T14:17:03Z", 200, "0.1s")
                if preset == "gtm_cloud_logging"
                else gtms3("Response", "t", ResponseStatusCode=200, ResponseBody="{}")
            )
            base[key] = odd
            lines.append(base)
            if preset == "gtm_cloud_logging":
                nested = request_log("2026-11-20T14:17:03Z", odd, odd, url=str(odd))
                lines.append(nested)
            else:
                lines.append(gtms3("Response", "t", ResponseBody=odd, ResponseStatusCode=odd))
    log = write_lines(tmp_path / "logs" / "odd.jsonl", *lines)
    store, tally = ingest(tmp_path, CLOUD_RUN if preset == "gtm_cloud_logging" else STAPE, log, 0)
    try:
        assert 0 < tally.rows and tally.rows + tally.rejected <= len(lines)
        assert store.con.execute("SELECT count(*) FROM events").fetchone() == (tally.rows,)
    finally:
        store.close()


# ------------------------------------------------------------------ the user's settings win


def test_user_fields_static_and_map_override_the_preset(tmp_path: Path) -> None:
    toml = STAPE + (
        '[sources.fields]\ndestination = "Name"\nmessage_id = "EventId"\n'
        '[sources.static]\nevent_name = "conversion"\n'
        '[sources.map.destination]\nTikTok = "tiktok_conversions"\n'
    )
    log = write_lines(
        tmp_path / "logs" / "g.jsonl",
        gtms3(
            "Response",
            "t1",
            "2026-11-20T14:17:03Z",
            EventName="Purchase",
            EventId="e-1",
            RequestUrl=TIKTOK_URL,
            ResponseStatusCode=200,
        ),
        gtms3("Request", "t2"),
    )
    store, tally = ingest(tmp_path, toml, log, 0)
    try:
        assert (tally.rows, tally.rejected) == (1, 0)
        (row,) = rows(store)
        assert (row["destination"], row["message_id"], row["event_name"]) == (
            "tiktok_conversions",
            "e-1",
            "conversion",
        )
    finally:
        store.close()


def test_a_user_latency_field_uses_the_users_unit(tmp_path: Path) -> None:
    """Mapped by the user, latency is read in `latency_unit`; left to the preset, it is the
    Duration text whatever `latency_unit` says."""
    entry = request_log("2026-11-20T14:17:03Z", 200, "0.25s")
    entry["latency_ms"] = 40
    log = write_lines(tmp_path / "logs" / "r.jsonl", entry)
    for extra, expected in [
        ('latency_unit = "s"\n', 250.0),
        ('latency_unit = "s"\n[sources.fields]\nlatency_ms = "latency_ms"\n', 40_000.0),
    ]:
        db = tmp_path / "obs.duckdb"
        for f in tmp_path.glob("obs.duckdb*"):
            f.unlink()
        store, _ = ingest(tmp_path, CLOUD_RUN + extra, log, 0)
        try:
            assert [r["latency_ms"] for r in rows(store)] == pytest.approx([expected])
        finally:
            store.close()
        assert db.exists()


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("preset", ["gtm_cloud_logging", "stape_gtms3"])
def test_sgtm_presets_need_jsonl(tmp_path: Path, preset: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[sources]]\nname = "s"\npath = "x"\nformat = "logfmt"\npreset = "{preset}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "sources[0].preset"
    assert "only allowed with format = 'jsonl'" in str(info.value)


def test_config_and_presets_agree() -> None:
    assert {name: p.format for name, p in PRESETS.items()} == PRESET_FORMATS
