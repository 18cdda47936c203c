"""Done-means 3: no accepted event is lost across a SIGKILL of the receiver's process.

The receiver runs alone (`python -m observatory.backup.receiver`) in a subprocess, folding
its journal into DuckDB every 20 ms so kills also land mid-fold. Concurrent clients POST
single events and batches; the process is SIGKILLed at random moments while they post, six
times, restarted in between. Every id that got a 2xx must be in `backup_events` exactly once
after the last start-up fold, and no id may be there twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from observatory.backup import sign
from observatory.store.db import Store
from tests.helpers import make_config

pytestmark = pytest.mark.slow  # SIGKILLs at random wall-clock moments while clients post

SECRET = "durability-secret"
KILLS = 6
CLIENTS = 8


def start_receiver(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "observatory.backup.receiver", "--config", str(config)]
        + ["--fold-every", "0.02"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BACKUP_WEBHOOK_SECRET": SECRET},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"receiver did not start: {proc.communicate()[1]}")
    head = json.loads(line)
    assert head["type"] == "backup"
    return proc, head["url"]


@pytest.mark.timeout(180)
def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.write_text(
        config.read_text()
        + '\n[backup]\nlisten = "127.0.0.1:0"\nsecret = "${BACKUP_WEBHOOK_SECRET}"\n'
        + 'destinations = ["tiktok_conversions"]\n'
    )
    rng = random.Random(20260501)
    acked: set[str] = set()
    sent = 0
    lock = threading.Lock()
    counter = iter(range(10**9))

    def client(url: str, stop: threading.Event, seed: int) -> None:
        nonlocal sent
        crng = random.Random(seed)
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                with lock:
                    ids = [f"k{next(counter)}" for _ in range(crng.choice([1, 1, 3, 20]))]
                    sent += len(ids)
                events = [{"type": "track", "messageId": i, "event": "Purchase"} for i in ids]
                doc = events[0] if len(events) == 1 else {"batch": events}
                body = json.dumps(doc).encode()
                try:
                    r = http.post(url, content=body, headers={"X-Signature": sign(SECRET, body)})
                except httpx.HTTPError:
                    if stop.wait(0.01):
                        return
                    continue  # the process is gone: its fate is unknown, not acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.update(ids)

    for round_no in range(KILLS):
        proc, url = start_receiver(config)
        stop = threading.Event()
        threads = [
            threading.Thread(target=client, args=(url, stop, round_no * 100 + i))
            for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        started = len(acked)
        deadline = time.monotonic() + 30
        while len(acked) == started and time.monotonic() < deadline:
            time.sleep(0.01)  # the clients are posting (making 8 clients takes a while)
        time.sleep(rng.uniform(0.3, 1.2))  # posting at full speed meanwhile
        before = len(acked)
        time.sleep(0.05)  # acknowledgements still coming in this last moment (asserted below)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert len(acked) > before or round_no > 0  # the kill came while posting
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()

    # The last start-up folds whatever the journal still held; a clean stop folds the rest.
    proc, _ = start_receiver(config)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()

    assert len(acked) > 500, f"too few acknowledged events to mean anything ({len(acked)})"
    store = Store(str(tmp_path / "obs.duckdb"))
    try:
        rows = store.con.execute(
            "SELECT message_id, count(*) FROM backup_events GROUP BY message_id"
        ).fetchall()
    finally:
        store.close()
    stored = {mid: n for mid, n in rows}
    assert not acked - stored.keys(), f"lost {len(acked - stored.keys())} acknowledged events"
    assert all(n == 1 for n in stored.values())
    assert len(stored) <= sent
