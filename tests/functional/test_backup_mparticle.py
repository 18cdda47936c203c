"""mParticle's Webhook output into the backup receiver, over real HTTP on loopback: the JSON
batch (one backup row per event, keyed by data.source_message_id), the configured
Authorization header (401 otherwise, before the body is read), malformed bodies (400, kept as
rejects), batches with some bad events (the good ones stored, the bad ones rejects), and the
reconciliation of those rows against delivery logs."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from observatory.backup import BackupService, journal_path
from observatory.backup.reconcile import reconcile, write_missing
from observatory.config import Config, ConfigError, load_config
from observatory.store.db import Store
from tests.helpers import RECEIVER_SECRET, write_backup_config

AUTH = "Basic bXBhcnRpY2xlOnMzY3IzdC13ZWJob29r"
T_MS = 1_777_636_800_000  # 2026-05-01T12:00:00Z

MP_AUTH_REF = "${MP_WEBHOOK_AUTH}"  # the config takes the header value from the environment


def mp_event(smid: str | None, name: str = "CompletePayment", **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_name": name,
        "custom_event_type": "transaction",
        "timestamp_unixtime_ms": T_MS,
        "event_id": 6004677780660780000,  # mParticle's own 64-bit id: not the key
        "custom_attributes": {"value": "12.5", "currency": "EUR"},
        **data,
    }
    if smid is not None:
        body["source_message_id"] = smid
    return {"event_type": "custom_event", "data": body}


def mp_batch(*events: Any) -> dict[str, Any]:
    return {
        "events": list(events),
        "mpid": -8433569646818451201,
        "source_request_id": "8a1a7a3c-3c2b-4f59-9d64-0fdc4b7e1c2a",
        "user_identities": {"customer_id": "c-42", "email": "ada@example.com"},
        "device_info": {"platform": "web"},
        "user_attributes": {"tier": "gold"},
        "schema_version": 2,
        "environment": "production",
        "ip": "203.0.113.7",
    }


@pytest.fixture(autouse=True)
def auth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MP_WEBHOOK_AUTH", AUTH)
    monkeypatch.setenv("BACKUP_WEBHOOK_SECRET", RECEIVER_SECRET)


@pytest.fixture
def mconfig(tmp_path: Path) -> Config:
    # mParticle only: no secret, an Authorization header.
    return load_config(write_backup_config(tmp_path, secret=None, authorization=MP_AUTH_REF))


@pytest.fixture
def service(mconfig: Config) -> Iterator[tuple[BackupService, Store]]:
    store = Store(mconfig.db_path)
    assert mconfig.backup is not None
    svc = BackupService(
        mconfig.backup, store.cursor(), journal_path(store.path, mconfig.base_dir), 3600
    )
    svc.start()
    yield svc, store
    svc.stop()
    store.close()


def post(url: str, body: bytes, auth: str | None = AUTH) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    return httpx.post(url, content=body, headers=headers, timeout=10)


def backup_rows(store: Store) -> list[tuple[Any, ...]]:
    return store.con.execute(
        "SELECT message_id, ts::VARCHAR, destinations, raw FROM backup_events ORDER BY message_id"
    ).fetchall()


def reject_rows(store: Store) -> list[tuple[Any, ...]]:
    return store.con.execute(
        "SELECT source, file, line_no, reason, line FROM rejects ORDER BY line_no, reason"
    ).fetchall()


def test_a_batch_becomes_one_row_per_event(service: tuple[BackupService, Store]) -> None:
    svc, store = service
    batch = mp_batch(mp_event("smid-1"), mp_event("smid-2", name="AddToCart"))
    resp = post(svc.url, json.dumps(batch).encode())
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 2}
    assert svc.fold() == 2
    rows = backup_rows(store)
    assert [r[0] for r in rows] == ["smid-1", "smid-2"]
    assert rows[0][1] == "2026-05-01 12:00:00+00"  # from data.timestamp_unixtime_ms
    assert rows[0][2] == ["tiktok_conversions", "meta_capi"]
    # Each row is the batch reduced to its event: re-sendable with its identities.
    raw = json.loads(rows[1][3])
    assert [e["data"]["source_message_id"] for e in raw["events"]] == ["smid-2"]
    assert raw["mpid"] == -8433569646818451201  # 64-bit ids kept exact
    assert raw["events"][0]["data"]["event_id"] == 6004677780660780000
    assert raw["user_identities"] == batch["user_identities"]
    assert raw["source_request_id"] == batch["source_request_id"]
    assert reject_rows(store) == []
    # mParticle retries: the same batch again stores nothing twice.
    assert post(svc.url, json.dumps(batch).encode()).status_code == 200
    svc.fold()
    assert len(backup_rows(store)) == 2


@pytest.mark.parametrize("auth", [None, "", "Basic wrong", AUTH + "x", AUTH.lower(), "x" * 300])
def test_wrong_or_missing_authorization_is_401(
    service: tuple[BackupService, Store], auth: str | None
) -> None:
    svc, store = service
    resp = post(svc.url, json.dumps(mp_batch(mp_event("smid-1"))).encode(), auth=auth)
    assert resp.status_code == 401
    assert "Authorization" in resp.json()["error"]
    assert AUTH not in resp.text
    assert svc.journal_path.read_text() == ""
    svc.fold()
    assert reject_rows(store) == []  # unauthenticated bodies are never kept
    assert svc.server is not None and svc.server.unauthorized == 1


def test_401_comes_before_the_body(service: tuple[BackupService, Store]) -> None:
    """Without the header nothing the body holds could pass: refused before it is sent."""
    svc, _ = service
    where = urlsplit(svc.url)
    with socket.create_connection((str(where.hostname), int(where.port or 0)), timeout=5) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Authorization: Basic nope\r\nContent-Length: 100\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'{"events": {"event_type": "custom_event"}}',
        b'{"events": "none"}',
        b'{"events": [], "ip": NaN}',
    ],
)
def test_malformed_body_is_400_and_a_reject(
    service: tuple[BackupService, Store], body: bytes
) -> None:
    svc, store = service
    resp = post(svc.url, body)
    assert resp.status_code == 400
    assert "error" in resp.json()
    assert svc.journal_path.read_text() == ""
    svc.fold()
    (row,) = reject_rows(store)
    assert row[:3] == ("backup", "/webhook", 0)
    assert row[3].startswith("backup request: ")
    assert row[4] == body.decode()
    assert svc.server is not None and svc.server.rejected_requests == 1


def test_bad_events_are_rejects_the_good_ones_are_stored(
    service: tuple[BackupService, Store],
) -> None:
    svc, store = service
    batch = mp_batch(
        mp_event("good-1"),
        mp_event(None),  # no source_message_id: could never be reconciled
        "not an event",
        {"event_type": "session_start"},  # no data
        mp_event("good-2", timestamp_unixtime_ms="soon"),
        mp_event(""),
    )
    resp = post(svc.url, json.dumps(batch).encode())
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 2, "rejected": 4}
    svc.fold()
    rows = backup_rows(store)
    assert [(r[0], r[1]) for r in rows] == [
        ("good-1", "2026-05-01 12:00:00+00"),
        ("good-2", None),  # an unreadable timestamp is no reason to lose the event
    ]
    rejects = reject_rows(store)
    assert [(r[0], r[1], r[2]) for r in rejects] == [
        ("backup", "/webhook", 2),
        ("backup", "/webhook", 3),
        ("backup", "/webhook", 4),
        ("backup", "/webhook", 6),
    ]
    assert rejects[0][3] == "mParticle batch: events[1]: missing data.source_message_id"
    assert rejects[1][3] == "mParticle batch: events[2]: not an object"
    assert rejects[2][3] == "mParticle batch: events[3]: no data object"
    assert json.loads(rejects[1][4]) == "not an event"
    assert svc.server is not None and svc.server.rejected_events == 4
    # A batch of nothing but bad events is still answered 200: retrying cannot mend them.
    resp = post(svc.url, json.dumps(mp_batch(mp_event(None))).encode())
    assert resp.status_code == 200 and resp.json() == {"accepted": 0, "rejected": 1}


def test_rows_reconcile_against_delivery_logs_by_source_message_id(
    service: tuple[BackupService, Store], tmp_path: Path
) -> None:
    svc, store = service
    batch = mp_batch(*(mp_event(f"smid-{i}") for i in range(4)))
    assert post(svc.url, json.dumps(batch).encode()).status_code == 200
    svc.fold()
    store.con.execute(
        "INSERT INTO events (ts, ingested_at, source, destination, message_id, outcome) "
        "SELECT now(), now(), 'fwd', 'tiktok_conversions', 'smid-' || i, 'delivered' "
        "FROM range(3) AS r(i)"
    )
    later = 1e10  # every window has passed
    backup = svc.backup
    (row,) = reconcile(store.con, backup, "tiktok_conversions", now=later)
    assert (row["expected"], row["delivered"], row["missing"]) == (4, 3, 1)
    out = tmp_path / "missing.jsonl"
    assert write_missing(store.con, backup, out, "tiktok_conversions", now=later) == 1
    (missing,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert missing["events"][0]["data"]["source_message_id"] == "smid-3"
    assert missing["mpid"] == batch["mpid"]


def test_either_authentication_passes_when_both_are_configured(tmp_path: Path) -> None:
    from observatory.backup.receiver import sign

    config = load_config(write_backup_config(tmp_path, authorization=MP_AUTH_REF))
    assert config.backup is not None
    store = Store(config.db_path)
    svc = BackupService(config.backup, store.cursor(), journal_path(store.path, tmp_path), 3600)
    svc.start()
    try:
        body = json.dumps(mp_batch(mp_event("a"))).encode()
        assert post(svc.url, body).status_code == 200
        signed = {"X-Signature": sign(RECEIVER_SECRET, body), "Content-Type": "application/json"}
        assert httpx.post(svc.url, content=body, headers=signed, timeout=10).status_code == 200
        assert post(svc.url, body, auth="Basic wrong").status_code == 401
    finally:
        svc.stop()
        store.close()


def test_config_needs_a_secret_or_an_authorization(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_backup_config(tmp_path, secret=None))
    assert info.value.key == "backup.secret" and "authorization" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_config(write_backup_config(tmp_path, secret=None, authorization=""))
    assert info.value.key == "backup.authorization"
    config = load_config(write_backup_config(tmp_path, secret=None, authorization=MP_AUTH_REF))
    assert config.backup is not None
    assert config.backup.authorization_value() == AUTH
    assert config.backup.secret_value() is None
    assert AUTH not in repr(config.backup) and AUTH not in str(config)
