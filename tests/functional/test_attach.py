"""With `observatory watch` holding the database, `query`, `incidents`, `export` and `reconcile`
run from other processes go through its API and print exactly what they print on the stopped
database; and the API keeps out whoever has no token and any SQL that is not a read of
Observatory's own tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from observatory.server.api import ROUTES
from observatory.server.client import OwnerClient, OwnerError
from observatory.server.owner_files import Endpoint, read_endpoint, read_token
from tests.helpers import SECRET, owned_config

pytestmark = pytest.mark.slow


def _cli(*args: str, cfg: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "observatory", *args, "--config", str(cfg)],
        capture_output=True,
        timeout=60,
    )


COMMANDS: list[tuple[str, ...]] = [
    ("query", "select destination, outcome, count(*) n from events group by all order by all"),
    ("query", "select * from events order by ts, message_id limit 50", "--format", "csv"),
    ("query", "select count(*) from incidents", "--format", "json"),
    ("incidents",),
    ("incidents", "--format", "json"),
    ("reconcile", "--format", "json"),
]


def _without_countdown(out: bytes) -> list[dict[str, object]]:
    rows = [orjson.loads(r) for r in out.splitlines()]
    for row in rows:
        row.pop("lost_in_s")
    return rows


def _start_owner(cfg: Path, db: Path) -> tuple[subprocess.Popen[bytes], Endpoint]:
    """`observatory watch` on `cfg`, once it has announced its API beside `db`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "observatory", "watch", "--config", str(cfg), "--duration", "120"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while (endpoint := read_endpoint(str(db))) is None:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the owner never announced its API"
        time.sleep(0.2)
    return proc, endpoint


@pytest.fixture
def owned(tmp_path: Path) -> tuple[Path, Path]:
    return owned_config(tmp_path)


def test_commands_beside_a_running_watch_match_the_stopped_database(
    owned: tuple[Path, Path],
) -> None:
    cfg, db = owned
    # a response plan for the destination: the owner's export carries it, as the direct one
    cfg.write_text(
        cfg.read_text() + '\n[[destinations]]\nname = "tiktok_conversions"\nvendor = "tiktok"\n'
        'fallback = "Route TikTok through the backup webhook"\n'
    )
    proc, _ = _start_owner(cfg, db)
    try:
        time.sleep(1.0)  # the backlog is stored and replayed before the API starts
        attached = [_cli(*c, cfg=cfg) for c in COMMANDS]
        listed = orjson.loads(attached[4].stdout.splitlines()[0])
        inc_id = listed["id"]
        html = _cli("export", inc_id[:5], "--format", "html", cfg=cfg)
        md = _cli("export", inc_id, "--format", "md", cfg=cfg)
        missing = _cli("export", "ffffffff", "--format", "md", cfg=cfg)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert read_endpoint(str(db)) is None  # gone with its owner
    assert listed["destination"] == "tiktok_conversions"
    for cmd, got in zip(COMMANDS, attached, strict=True):
        direct = _cli(*cmd, cfg=cfg)
        assert got.returncode == direct.returncode == 0, got.stderr
        if cmd[0] == "reconcile":  # the retry-window countdown moves on with the clock
            assert _without_countdown(got.stdout) == _without_countdown(direct.stdout)
            assert orjson.loads(got.stdout)["failing"] == 120 * 40  # the rate-limited events
        else:
            assert got.stdout == direct.stdout, cmd
    for fmt, got in (("html", html), ("md", md)):
        direct = _cli("export", inc_id, "--format", fmt, cfg=cfg)
        assert got.returncode == 0 and got.stdout == direct.stdout, fmt
    assert html.stdout.startswith(b"<!DOCTYPE html>")
    assert b"Route TikTok through the backup webhook" in md.stdout
    direct_missing = _cli("export", "ffffffff", "--format", "md", cfg=cfg)
    assert (missing.returncode, missing.stderr) == (
        direct_missing.returncode,
        direct_missing.stderr,
    )


def test_the_api_needs_the_token_and_runs_only_reads_of_its_own_tables(
    owned: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg, db = owned
    proc, endpoint = _start_owner(cfg, db)
    try:
        token = read_token(str(db))
        assert token and len(token) >= 32
        assert os.stat(f"{db}.token").st_mode & 0o777 == 0o600
        bodies_for = {"/api/query": {"sql": "select 1"}, "/api/incidents/{id}/note": {"text": "x"}}
        bodies_for["/api/sql"] = {"sql": "select 1"}
        routes = [
            (method, path.replace("{id}", "abc"), bodies_for.get(path))
            for method, path, _ in ROUTES
            if path != "/healthz"
        ]
        bodies: list[bytes] = []
        with httpx.Client(base_url=endpoint.url, timeout=10) as http:
            health = http.get("/healthz")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            for auth in (
                {},
                {"Authorization": "Bearer wrong-token-0123456789"},
                {"Authorization": token},
            ):
                for method, path, body in routes:
                    r = http.request(method, path, json=body, headers=auth)
                    assert r.status_code == 401, (method, path, auth)
                    bodies.append(r.content)
            ok = {"Authorization": f"Bearer {token}"}
            refused = [
                "delete from events",
                "copy events to '/tmp/stolen.csv'",
                "attach 'other.duckdb'",
                "select * from read_text('/etc/passwd')",
                "select * from '/etc/passwd'",
                f"select * from read_csv('{cfg}')",
                "select * from duckdb_settings()",
                "pragma database_list",
                "install httpfs",
                "select 1; drop table events",
            ]
            for sql in refused:
                r = http.post("/api/query", json={"sql": sql}, headers=ok)
                assert (
                    r.status_code == 400 and b"refused" in r.content or b"one SQL" in r.content
                ), sql
                bodies.append(r.content)
            big = http.post("/api/query", json={"sql": "select 1 -- " + "x" * 100_000}, headers=ok)
            assert big.status_code == 413
            for method, path, body in routes:
                if path == "/api/snapshots":  # a stream: its first event is enough
                    with http.stream(method, path, headers=ok) as stream:
                        assert stream.status_code == 200
                        first = b""
                        for chunk in stream.iter_bytes():
                            first += chunk
                            if b"\n\n" in first:
                                break
                    bodies.append(first)
                    continue
                r = http.request(method, path, json=body, headers=ok)
                assert r.status_code != 401
                bodies.append(r.content)
        # the typed answers, through the client the CLI and the attached TUI use
        with OwnerClient(endpoint.url, token) as owner:
            status = owner.status()
            assert set(status.destinations) == {"tiktok_conversions", "meta_capi"}
            assert owner.rejects() == []
            listed = orjson.loads(owner.incidents("json").splitlines()[0])
            acked = owner.acknowledge(listed["id"][:6])
            assert (acked.id, acked.destination) == (listed["id"], "tiktok_conversions")
            noted = owner.note(acked.id, "paged the TikTok integration owner")
            assert noted.id == acked.id and noted.model_extra is not None
            assert any(e["kind"] == "note" for e in noted.model_extra["timeline"])
            with pytest.raises(OwnerError) as missing:
                owner.acknowledge("ffffffff")
            assert missing.value.status == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    for body in bodies:
        assert token.encode() not in body and SECRET.encode() not in body
    assert token.encode() not in err and SECRET.encode() not in err
