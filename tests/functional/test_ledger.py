"""The incident ledger is the one writer of incidents: what a viewer is told when an incident
opens, what the database holds after every later save, and what is exported agree."""

from __future__ import annotations

import json
from pathlib import Path

from observatory.config import load_config
from observatory.incidents.export import export_incident
from observatory.incidents.model import Change
from observatory.incidents.store import list_incidents, load_incident
from observatory.runtime import Runtime
from observatory.util.isotime import iso
from tests.helpers import BASE_EPOCH_MS, make_config, pino_line, replayed_runtime

DEST = "tiktok_conversions"
RATE = 20  # events per second
START = BASE_EPOCH_MS // 1000
HEALTHY_S = 240
WALL_OFFSET = 0.637  # live, the wall clock runs this far into the second after the data


def _second(sec: int, code: int) -> bytes:
    msg = "delivered" if code == 200 else "Too many requests"
    return b"".join(
        pino_line(
            sec * 1000 + k,
            time=sec * 1000 + k * (1000 // RATE),
            code=code,
            msg=msg,
            messageId=f"m{sec}-{k}",
        )
        for k in range(RATE)
    )


def test_detected_at_is_one_time_in_the_open_line_the_database_and_exports(
    tmp_path: Path,
) -> None:
    path = make_config(tmp_path)
    path.write_text(path.read_text() + '\n[detection]\nwarmup = "30s"\n', encoding="utf-8")
    log = tmp_path / "logs" / "fwd.jsonl"
    log.write_bytes(b"".join(_second(START + i, 200) for i in range(HEALTHY_S)))
    opened: list[dict[str, object]] = []

    def on_change(change: Change) -> None:
        if change.kind == "open":
            opened.append(change.incident.json_line("open"))  # what `watch` prints

    runtime = Runtime(load_config(path), on_change=on_change)
    try:
        runtime.start_live(now=START + HEALTHY_S + WALL_OFFSET)
        sec = START + HEALTHY_S
        while not opened and sec < START + HEALTHY_S + 60:
            with log.open("ab") as f:
                f.write(_second(sec, 429))
            runtime.poll(now=sec + 1 + WALL_OFFSET)
            sec += 1
        assert len(opened) == 1, "a rate-limit outage opens one incident"
        line = opened[0]
        inc_id = str(line["id"])
        # later saves: the outage goes on (the ledger refreshes and saves), an operator acts
        for s in range(sec, sec + 20):
            with log.open("ab") as f:
                f.write(_second(s, 429))
            runtime.poll(now=s + 1 + WALL_OFFSET)
        runtime.acknowledge(inc_id[:6], sec + 21.0)
        runtime.note(inc_id, sec + 22.0, "paged the TikTok integration owner")
    finally:
        runtime.close()

    detected = line["detected_at"]
    assert isinstance(detected, str) and detected.endswith(f"{WALL_OFFSET:.3f}Z"[1:])
    from observatory.store.db import Store

    store = Store.for_config(load_config(path))
    try:
        stored = load_incident(store.con, inc_id)
        assert iso(stored.detected_at) == detected
        assert stored.state == "acknowledged"
        assert [e.kind for e in stored.timeline].count("note") == 1
        assert [i.id for i in list_incidents(store.con)] == [inc_id]
        exported = json.loads(export_incident(store.con, stored, "json"))
        assert exported["detected_at"] == detected
        assert exported["time_to_detect_s"] == round(stored.detected_at - stored.onset, 6)
        md = export_incident(store.con, stored, "md")
        assert detected[11:19] in md.split("Detected at", 1)[1].splitlines()[0]
    finally:
        store.close()


def test_a_replayed_incident_is_detected_in_event_time(tmp_path: Path) -> None:
    path = make_config(tmp_path)
    path.write_text(path.read_text() + '\n[detection]\nwarmup = "30s"\n', encoding="utf-8")
    log = tmp_path / "logs" / "fwd.jsonl"
    body = [_second(START + i, 200) for i in range(HEALTHY_S)]
    body += [_second(START + HEALTHY_S + i, 429) for i in range(30)]
    log.write_bytes(b"".join(body))
    runtime = replayed_runtime(path)
    try:
        (inc,) = runtime.engine.all_incidents()
        assert inc.detected_at == int(inc.detected_at)  # the end of an event second
        assert START + HEALTHY_S < inc.detected_at <= START + HEALTHY_S + 30
        assert load_incident(runtime.store.con, inc.id).detected_at == inc.detected_at
    finally:
        runtime.close()
