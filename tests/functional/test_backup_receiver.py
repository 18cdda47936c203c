"""The backup webhook receiver over real HTTP on loopback: signatures (401), size limit (413),
malformed bodies (400), single events and batches (200, durable before the answer), the
journal folded into `backup_events`, the [backup] config, and the Runtime hookup."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from observatory.backup import BackupService, fold_journal, journal_path, parse_events, sign
from observatory.config import Config, ConfigError, load_config
from observatory.runtime import Runtime
from observatory.store.db import Store
from tests.helpers import RECEIVER_SECRET, make_config, write_backup_config


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_WEBHOOK_SECRET", RECEIVER_SECRET)


@pytest.fixture
def bconfig(tmp_path: Path) -> Config:
    return load_config(write_backup_config(tmp_path))


@pytest.fixture
def service(bconfig: Config) -> Iterator[tuple[BackupService, Store]]:
    store = Store(bconfig.db_path)
    assert bconfig.backup is not None
    svc = BackupService(
        bconfig.backup, store.cursor(), journal_path(store.path, bconfig.base_dir), 3600
    )
    svc.start()
    yield svc, store
    svc.stop()
    store.close()


def post(url: str, body: bytes, signature: str | None = "good", **headers: str) -> httpx.Response:
    h = {"Content-Type": "application/json", **headers}
    if signature == "good":
        h["X-Signature"] = sign(RECEIVER_SECRET, body)
    elif signature is not None:
        h["X-Signature"] = signature
    return httpx.post(url, content=body, headers=h, timeout=10)


def event(mid: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": mid,
        "event": "CompletePayment",
        "properties": {"value": 12.5, "currency": "EUR"},
        "timestamp": "2026-05-01T12:00:00.000Z",
        **extra,
    }


def journal_ids(svc: BackupService) -> list[str]:
    text = svc.journal_path.read_text()
    return [json.loads(line)["id"] for line in text.splitlines()]


def table_rows(store: Store) -> list[tuple[Any, ...]]:
    return store.con.execute(
        "SELECT message_id, ts, destinations, raw FROM backup_events ORDER BY message_id"
    ).fetchall()


# -- answers over HTTP ----------------------------------------------------------------------


def test_single_event_is_durable_before_the_answer(
    service: tuple[BackupService, Store],
) -> None:
    svc, store = service
    body = (
        b'{"type":"track",\n  "messageId":"m-1","event":"Purchase",'
        b'"timestamp":"2026-05-01T12:00:00Z"}'
    )
    resp = post(svc.url, body)
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 1}
    # In the journal as soon as the answer is out (fsynced), and folded on demand.
    assert journal_ids(svc) == ["m-1"]
    assert svc.fold() == 1
    (row,) = table_rows(store)
    assert row[0] == "m-1"
    assert row[1].isoformat() == "2026-05-01T12:00:00+00:00"
    assert row[2] == ["tiktok_conversions", "meta_capi"]
    # As received (only the line break, JSON whitespace, became a space).
    assert row[3] == body.decode().replace("\n", " ")
    assert json.loads(row[3]) == json.loads(body)


def test_batch_is_accepted_whole(service: tuple[BackupService, Store]) -> None:
    svc, store = service
    events = [event(f"b-{i}") for i in range(5)] + [event("big", n=123456789012345678901234567890)]
    body = json.dumps({"batch": events}).encode()
    resp = post(svc.url, body)
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 6}
    assert journal_ids(svc) == [e["messageId"] for e in events]
    svc.fold()
    rows = table_rows(store)
    assert [r[0] for r in rows] == sorted(e["messageId"] for e in events)
    by_id = {r[0]: json.loads(r[3]) for r in rows}
    assert all(by_id[e["messageId"]] == e for e in events)  # big integers kept exactly


@pytest.mark.parametrize("signature", [None, "", "00" * 20, "not-hex", "sha1=whatever"])
def test_missing_or_bad_signature_is_401(
    service: tuple[BackupService, Store], signature: str | None
) -> None:
    svc, _ = service
    resp = post(svc.url, json.dumps(event("x")).encode(), signature=signature)
    assert resp.status_code == 401
    assert svc.journal_path.read_text() == ""


def test_signature_is_over_the_raw_body(service: tuple[BackupService, Store]) -> None:
    svc, _ = service
    body = json.dumps(event("x")).encode()
    respaced = json.dumps(event("x"), indent=2).encode()  # same JSON, other bytes
    assert post(svc.url, respaced, signature=sign(RECEIVER_SECRET, body)).status_code == 401
    assert post(svc.url, body, signature=sign("other-secret", body)).status_code == 401
    assert post(svc.url, body, signature=sign(RECEIVER_SECRET, body).upper()).status_code == 200


def test_body_over_the_limit_is_413(service: tuple[BackupService, Store]) -> None:
    svc, _ = service
    big = json.dumps(event("big", padding="x" * 5000)).encode()
    assert len(big) > 4000
    resp = post(svc.url, big)
    assert resp.status_code == 413
    assert svc.journal_path.read_text() == ""
    just_fits = json.dumps(
        event("fits", padding="x" * (3900 - len(json.dumps(event("fits")))))
    ).encode()
    assert len(just_fits) <= 4000
    assert post(svc.url, just_fits).status_code == 200


def test_413_is_decided_on_content_length_before_reading(
    service: tuple[BackupService, Store],
) -> None:
    """A client announcing 1 GB gets its 413 without sending a byte of body."""
    svc, _ = service
    where = urlsplit(svc.url)
    with socket.create_connection((str(where.hostname), int(where.port or 0)), timeout=5) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Signature: 00\r\nContent-Length: 1000000000\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'"text"',
        b'{"type":"track","event":"Purchase"}',
        b'{"type":"track","messageId":""}',
        b'{"type":"track","messageId":42}',
        b'{"batch": {"messageId": "a"}}',
        b'{"batch": [{"messageId": "a"}, {"event": "no id"}]}',
        b'{"batch": [{"messageId": "a"}, 7]}',
        b'{"messageId": "a", "v": NaN}',
    ],
)
def test_malformed_or_without_message_id_is_400(
    service: tuple[BackupService, Store], body: bytes
) -> None:
    svc, _ = service
    resp = post(svc.url, body)
    assert resp.status_code == 400
    assert "error" in resp.json()
    assert svc.journal_path.read_text() == ""  # a bad batch stores nothing of itself


def test_other_paths_and_methods(service: tuple[BackupService, Store]) -> None:
    svc, _ = service
    body = json.dumps(event("x")).encode()
    assert post(svc.url.replace("/webhook", "/other"), body).status_code == 404
    assert httpx.get(svc.url).status_code == 405
    assert post(svc.url + "?source=segment", body).status_code == 200


def raw_exchange(svc: BackupService, request: bytes, wait: float = 5) -> bytes:
    """Send ``request`` as is on a fresh connection; what came back before it closed."""
    where = urlsplit(svc.url)
    with socket.create_connection((str(where.hostname), int(where.port or 0)), timeout=wait) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_length_required_and_bad_lengths(service: tuple[BackupService, Store]) -> None:
    svc, _ = service
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Signature: 00\r\n"
    assert raw_exchange(svc, head + b"\r\n").startswith(b"HTTP/1.1 411")
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    answer = raw_exchange(svc, chunked)
    assert answer.startswith(b"HTTP/1.1 411") and b"Connection: close" in answer
    for bad in (b"-1", b"ten"):
        answer = raw_exchange(svc, head + b"Content-Length: " + bad + b"\r\n\r\n")
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    assert svc.journal_path.read_text() == ""


def test_expect_100_continue(service: tuple[BackupService, Store]) -> None:
    """Refused before the body is sent; invited otherwise."""
    svc, _ = service
    where = urlsplit(svc.url)
    big = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    assert raw_exchange(svc, big).startswith(b"HTTP/1.1 413")
    body = json.dumps(event("e-1")).encode()
    with socket.create_connection((str(where.hostname), int(where.port or 0)), timeout=5) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + f"X-Signature: {sign(RECEIVER_SECRET, body)}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"accepted":1}')
    assert journal_ids(svc) == ["e-1"]


def test_every_other_method_is_405(service: tuple[BackupService, Store]) -> None:
    svc, _ = service
    for method in ("GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
        assert httpx.request(method, svc.url).status_code == 405, method
    assert httpx.get(svc.url.replace("/webhook", "/other")).status_code == 405
    body = json.dumps(event("x")).encode()
    for signature in ("é" * 40).encode(), b"\xff" * 40:  # a non-ASCII signature is just wrong
        answer = raw_exchange(
            svc,
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Signature: "
            + signature
            + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )
        assert answer.startswith(b"HTTP/1.1 401"), answer


def test_journal_failure_is_503(
    service: tuple[BackupService, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, _ = service
    assert svc.journal is not None

    def broken(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(svc.journal, "append", broken)
    resp = post(svc.url, json.dumps(event("x")).encode())
    assert resp.status_code == 503 and "retry" in resp.json()["error"]


def test_slow_journal_writes_do_not_hold_other_requests(
    service: tuple[BackupService, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends wait for the disk off the event loop: concurrent posts wait together, and a
    request that needs no write is answered meanwhile."""
    svc, _ = service
    assert svc.journal is not None
    append = svc.journal.append
    release = threading.Event()
    waiting = threading.Semaphore(0)

    def blocked(data: bytes) -> None:
        waiting.release()
        assert release.wait(10)
        append(data)

    monkeypatch.setattr(svc.journal, "append", blocked)
    bodies = [json.dumps(event(f"c-{i}")).encode() for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(post, svc.url, body) for body in bodies]
        try:
            for _ in bodies:  # all eight appends under way at once
                assert waiting.acquire(timeout=10)
            assert not any(f.done() for f in answers)  # none answered before it is durable
            assert post(svc.url, bodies[0], signature="00").status_code == 401
        finally:
            release.set()
        codes = [f.result().status_code for f in answers]
    assert codes == [200] * 8
    assert sorted(journal_ids(svc)) == sorted(f"c-{i}" for i in range(8))


def test_stop_answers_the_requests_in_flight(
    service: tuple[BackupService, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, store = service
    assert svc.journal is not None
    append = svc.journal.append
    writing = threading.Event()

    def slow(data: bytes) -> None:
        writing.set()
        time.sleep(0.5)
        append(data)

    monkeypatch.setattr(svc.journal, "append", slow)
    url = svc.url
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, url, json.dumps(event("late")).encode())
        assert writing.wait(5)
        svc.stop()
        assert answer.result().status_code == 200  # durable, then answered, then stopped
    assert [r[0] for r in table_rows(store)] == ["late"]  # folded by the stop
    with pytest.raises(httpx.ConnectError):
        post(url, b"{}")


def test_keep_alive_connection_serves_many_requests(service: tuple[BackupService, Store]) -> None:
    svc, store = service
    with httpx.Client() as client:
        for i in range(50):
            body = json.dumps(event(f"k-{i}")).encode()
            r = client.post(
                svc.url, content=body, headers={"X-Signature": sign(RECEIVER_SECRET, body)}
            )
            assert r.status_code == 200
    svc.fold()
    assert store.con.execute("SELECT count(*) FROM backup_events").fetchone() == (50,)


# -- journal folding ------------------------------------------------------------------------


def test_fold_is_exactly_once_and_skips_a_torn_tail(tmp_path: Path) -> None:
    from observatory.backup.receiver import journal_lines

    store = Store(str(tmp_path / "f.duckdb"))
    path = tmp_path / "f.journal"
    events = parse_events(json.dumps({"batch": [event(f"f-{i}") for i in range(10)]}).encode())
    path.write_bytes(journal_lines(events[:6], 1_700_000_000.0, ["d"]))
    assert fold_journal(store.con, path) == 6
    assert fold_journal(store.con, path) == 0  # by offset
    # The same ids again (a platform retry), the rest, and a torn half line.
    with path.open("ab") as fh:
        fh.write(journal_lines(events, 1_700_000_100.0, ["d"]))
        fh.write(journal_lines(events[:1], 1_700_000_200.0, ["d"])[:20])
    assert fold_journal(store.con, path) == 4
    # Offset lost (as if the commit never happened): ids already present are skipped.
    store.con.execute("DELETE FROM backup_journal")
    assert fold_journal(store.con, path, truncate=True) == 0
    assert path.stat().st_size == 0
    rows = store.con.execute(
        "SELECT message_id, epoch(received_at) FROM backup_events ORDER BY message_id"
    ).fetchall()
    assert len(rows) == 10 and len({r[0] for r in rows}) == 10
    first = {r[0]: r[1] for r in rows}
    assert first["f-0"] == 1_700_000_000.0  # the first receipt wins
    assert first["f-9"] == 1_700_000_100.0
    store.close()


# -- config ---------------------------------------------------------------------------------


def test_config_defaults_and_overrides(tmp_path: Path) -> None:
    path = make_config(tmp_path)
    path.write_text(
        path.read_text()
        + '\n[backup]\nsecret = "${BACKUP_WEBHOOK_SECRET}"\ndestinations = ["tiktok_conversions"]\n'
        + 'retry_window = "3h"\n[backup.retry_windows]\nmeta_capi = "4h"\n'
    )
    backup = load_config(path).backup
    assert backup is not None
    assert (backup.listen, backup.host, backup.port, backup.path) == (
        "127.0.0.1:8765",
        "127.0.0.1",
        8765,
        "/webhook",
    )
    assert backup.window == 600.0 and backup.max_body == 1_000_000
    assert backup.retry_window_for("tiktok_conversions") == 3 * 3600.0
    assert backup.retry_window_for("meta_capi") == 4 * 3600.0
    assert RECEIVER_SECRET not in repr(backup) and RECEIVER_SECRET not in str(load_config(path))
    assert backup.secret_value() == RECEIVER_SECRET
    assert load_config(make_config(tmp_path)).backup is None


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        ({"listen": "localhost"}, "backup.listen", "HOST:PORT"),
        ({"listen": "127.0.0.1:99999"}, "backup.listen", "HOST:PORT"),
        ({"path": "webhook"}, "backup.path", "starting with /"),
        ({"destinations": []}, "backup.destinations", "at least one"),
        ({"destinations": None}, "backup.destinations", "required"),
        ({"window": "soon"}, "backup.window", "not a duration"),
        ({"max_body": "big"}, "backup.max_body", "not a size"),
        ({"retry_window": "0s"}, "backup.retry_window", "greater than 0"),
        ({"secret": None}, "backup.secret", "required"),
        ({"secret": ""}, "backup.secret", "must not be empty"),
        ({"windw": "5m"}, "backup.windw", "did you mean 'window'"),
    ],
)
def test_config_errors_name_the_key(
    tmp_path: Path, overrides: dict[str, Any], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_backup_config(tmp_path, **overrides))
    assert info.value.key == key
    assert fragment in info.value.message
    assert RECEIVER_SECRET not in str(info.value)


def test_secret_never_in_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_WEBHOOK_SECRET", "7")
    path = write_backup_config(tmp_path, listen="${BACKUP_WEBHOOK_SECRET}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "backup.listen"
    assert "'7'" not in str(info.value)  # interpolated values are never echoed


# -- runtime hookup -------------------------------------------------------------------------


def test_runtime_starts_and_stops_the_receiver(bconfig: Config) -> None:
    runtime = Runtime(bconfig)
    try:
        runtime.start_live()
        assert runtime.backup is not None
        url = runtime.backup.url
        body = json.dumps({"batch": [event("r-1"), event("r-2")]}).encode()
        assert post(url, body).status_code == 200
        runtime.poll()
    finally:
        runtime.close()
    with pytest.raises(httpx.ConnectError):
        post(url, body)
    store = Store(bconfig.db_path)
    try:
        assert [r[0] for r in table_rows(store)] == ["r-1", "r-2"]
    finally:
        store.close()


def test_runtime_without_backup_starts_no_receiver(config: Config) -> None:
    runtime = Runtime(config)
    try:
        runtime.start_live()
        assert runtime.backup is None
    finally:
        runtime.close()


def test_port_in_use_is_a_config_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = load_config(write_backup_config(tmp_path, listen=f"127.0.0.1:{port}"))
        runtime = Runtime(cfg)
        try:
            with pytest.raises(ConfigError) as info:
                runtime.start_live()
        finally:
            runtime.close()
    assert info.value.key == "backup.listen"


def test_watch_runs_the_receiver(tmp_path: Path) -> None:
    """`observatory watch` with [backup] listens; what it acknowledged is in backup_events."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_backup_config(tmp_path, listen=f"127.0.0.1:{port}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "observatory", "watch", "--config", str(config)]
        + ["--duration", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "BACKUP_WEBHOOK_SECRET": RECEIVER_SECRET},
    )
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        body = json.dumps({"batch": [event("w-1"), event("w-2")]}).encode()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert post(url, body).status_code == 200
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    store = Store(str(tmp_path / "obs.duckdb"))
    try:
        assert [r[0] for r in table_rows(store)] == ["w-1", "w-2"]
    finally:
        store.close()
