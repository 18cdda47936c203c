"""Done-means 2: reconciliation is exact on a generated case with known missing, late,
duplicated and pending ids (exact sets asserted), `--output` writes exactly the missing
events as received, and the retry-window countdown counts the failing ids."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from observatory.backup import fold_journal, journal_path, parse_events
from observatory.backup.receiver import journal_lines
from observatory.backup.reconcile import (
    COUNT_KEYS,
    format_table,
    parse_since,
    reconcile,
    reconcile_ids,
    retry_countdown,
    write_missing,
)
from observatory.cli import main
from observatory.config import Config, load_config
from observatory.store.db import Store
from tests.helpers import make_config

TIKTOK, META = "tiktok_conversions", "meta_capi"
DESTS = (TIKTOK, META)
WINDOW = 600.0
RETRY = {TIKTOK: 4 * 3600.0, META: 3 * 3600.0}
SECRET = "reconcile-secret"


@dataclass
class Case:
    """A generated history and the answers it must give."""

    now: float
    received: dict[str, float] = field(default_factory=dict)  # first receipt
    raw: dict[str, str] = field(default_factory=dict)
    sets: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: {d: {k: set() for k in COUNT_KEYS} for d in DESTS}
    )
    attempts: list[tuple[float, str, str, str]] = field(
        default_factory=list
    )  # ts, dest, id, outcome
    journal: list[bytes] = field(default_factory=list)

    def attempt(self, ts: float, dest: str, mid: str, outcome: str) -> None:
        self.attempts.append((ts, dest, mid, outcome))


OLD_FATES = (
    "on_time",
    "late",
    "dup_on_time",
    "dup_late",
    "missing",
    "missing_failing",
    "missing_rejected",
    "missing_other_dest",
    "late_after_failure",
)
RECENT_FATES = ("pending", "pending_failing", "on_time", "dup_on_time")


def generate(n: int, seed: int, now: float) -> Case:
    rng = random.Random(seed)
    case = Case(now=now)
    for i in range(n):
        mid = f"evt-{seed}-{i:05d}"
        recent = rng.random() < 0.15
        at = now - rng.uniform(20, 400) if recent else now - rng.uniform(WINDOW + 120, 5 * 3600)
        expected_at = list(DESTS) if rng.random() < 0.8 else [TIKTOK]
        doc = {
            "type": "track",
            "messageId": mid,
            "event": rng.choice(["CompletePayment", "AddToCart"]),
            "properties": {"value": round(rng.uniform(1, 500), 2), "currency": "EUR"},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at - 1)),
        }
        body = json.dumps(doc, indent=rng.choice([None, 1])).encode()
        events = parse_events(body)
        case.received[mid] = at
        case.raw[mid] = events[0][2]
        case.journal.append(journal_lines(events, at, expected_at))
        if rng.random() < 0.05:  # the platform sent it again later: the first receipt counts
            case.journal.append(journal_lines(events, at + rng.uniform(1, 30), expected_at))
        for dest in DESTS:
            if dest not in expected_at:
                # Deliveries where it was not expected are not reconciled.
                case.attempt(at + 2, dest, mid, "delivered")
                continue
            fate = rng.choice(RECENT_FATES if recent else OLD_FATES)
            sets = case.sets[dest]
            sets["expected"].add(mid)
            on_time = at + rng.uniform(-2, WINDOW - 1)
            late = at + rng.uniform(WINDOW + 1, WINDOW + 3000)
            if fate in ("on_time", "dup_on_time"):
                case.attempt(on_time, dest, mid, "delivered")
                sets["delivered"].add(mid)
            if fate in ("late", "dup_late", "late_after_failure"):
                case.attempt(late, dest, mid, "delivered")
                sets["delivered"].add(mid)
                sets["late"].add(mid)
            if fate in ("dup_on_time", "dup_late"):
                case.attempt(late + 5, dest, mid, "delivered")
                sets["duplicates"].add(mid)
            if fate.endswith("failing") or fate == "late_after_failure":
                for k in range(rng.randint(1, 3)):
                    outcome = rng.choice(["rate_limited", "failed", "retrying"])
                    case.attempt(at + 1 + 10 * k, dest, mid, outcome)
            if fate.startswith("missing"):
                sets["missing"].add(mid)
            if fate.startswith("pending"):
                sets["pending"].add(mid)
            if fate == "missing_rejected":
                case.attempt(at + 1, dest, mid, "rejected")
            if fate == "missing_other_dest":
                other = META if dest == TIKTOK else TIKTOK
                case.attempt(at + 1, other, mid, "delivered")  # counted only where expected
    # Noise: deliveries of ids the backup never saw, other destinations, no message id.
    for j in range(200):
        case.attempt(now - rng.uniform(0, 3600), rng.choice(DESTS), f"unknown-{j}", "delivered")
        case.attempt(now - rng.uniform(0, 3600), "google_ads", f"evt-{seed}-{j:05d}", "delivered")
    return case


def fix_cross_deliveries(case: Case) -> None:
    """A `missing_other_dest` delivery to the other destination changes that destination's
    answer when the id was expected there too: recompute its sets from the attempts."""
    delivered: dict[tuple[str, str], list[float]] = {}
    for ts, dest, mid, outcome in case.attempts:
        if outcome == "delivered":
            delivered.setdefault((dest, mid), []).append(ts)
    for dest in DESTS:
        sets = case.sets[dest]
        for mid in sets["expected"]:
            times = delivered.get((dest, mid), [])
            for key in ("delivered", "late", "duplicates", "missing", "pending"):
                sets[key].discard(mid)
            if times:
                sets["delivered"].add(mid)
                if min(times) > case.received[mid] + WINDOW:
                    sets["late"].add(mid)
                if len(times) > 1:
                    sets["duplicates"].add(mid)
            elif case.received[mid] + WINDOW <= case.now:
                sets["missing"].add(mid)
            else:
                sets["pending"].add(mid)


def write_case(config: Config, case: Case) -> None:
    store = Store(config.db_path)
    try:
        path = journal_path(store.path, config.base_dir)
        path.write_bytes(b"".join(case.journal))
        fold_journal(store.con, path, truncate=True)
        ts, dest, mid, outcome = (list(c) for c in zip(*case.attempts, strict=True))
        table = pa.table({"ts": ts, "destination": dest, "message_id": mid, "outcome": outcome})
        store.con.register("attempts", table)
        store.con.execute(
            "INSERT INTO events (ts, ingested_at, source, destination, message_id, outcome) "
            "SELECT to_timestamp(ts), now(), 'fwd', destination, message_id, outcome "
            "FROM attempts"
        ).fetchall()
        store.con.execute(
            "INSERT INTO events (ts, ingested_at, source, destination, outcome) "
            "VALUES (now(), now(), 'fwd', 'tiktok_conversions', 'delivered')"
        ).fetchall()
    finally:
        store.close()


@pytest.fixture
def case_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("BACKUP_WEBHOOK_SECRET", SECRET)
    path = make_config(tmp_path)
    path.write_text(
        path.read_text()
        + '\n[backup]\nlisten = "127.0.0.1:0"\nsecret = "${BACKUP_WEBHOOK_SECRET}"\n'
        + f'destinations = ["{TIKTOK}", "{META}"]\nwindow = "10m"\nretry_window = "4h"\n'
        + f'[backup.retry_windows]\n{META} = "3h"\n'
    )
    return load_config(path)


@pytest.fixture
def case(case_config: Config) -> Case:
    generated = generate(3000, seed=7, now=time.time())
    fix_cross_deliveries(generated)
    write_case(case_config, generated)
    return generated


def test_generated_case_has_every_kind(case: Case) -> None:
    for dest in DESTS:
        for key in COUNT_KEYS:
            assert len(case.sets[dest][key]) > 20, (dest, key)


def test_exact_id_sets(case_config: Config, case: Case) -> None:
    assert case_config.backup is not None
    store = Store(case_config.db_path)
    try:
        got = reconcile_ids(store.con, case_config.backup, now=case.now)
        summary = reconcile(store.con, case_config.backup, now=case.now)
    finally:
        store.close()
    for dest in DESTS:
        for key in COUNT_KEYS:
            assert got[dest][key] == case.sets[dest][key], (dest, key)
    for row in summary:
        sets = case.sets[row["destination"]]
        assert {k: row[k] for k in COUNT_KEYS} == {k: len(sets[k]) for k in COUNT_KEYS}
        assert row["expected"] == row["delivered"] + row["missing"] + row["pending"]
    assert [r["destination"] for r in summary] == list(DESTS)


def test_since_and_destination(case_config: Config, case: Case) -> None:
    assert case_config.backup is not None
    since = case.now - 3600
    store = Store(case_config.db_path)
    try:
        got = reconcile_ids(store.con, case_config.backup, META, since=since, now=case.now)
        (row,) = reconcile(store.con, case_config.backup, META, since=since, now=case.now)
    finally:
        store.close()
    assert list(got) == [META]
    for key in COUNT_KEYS:
        want = {m for m in case.sets[META][key] if case.received[m] >= since}
        assert got[META][key] == want
        assert row[key] == len(want)


def test_output_writes_exactly_the_missing_events_as_received(
    case_config: Config, case: Case, tmp_path: Path
) -> None:
    assert case_config.backup is not None
    missing = case.sets[TIKTOK]["missing"] | case.sets[META]["missing"]
    order = sorted(missing, key=lambda m: (case.received[m], m))
    store = Store(case_config.db_path)
    try:
        out = tmp_path / "missing.jsonl"
        assert write_missing(store.con, case_config.backup, out, now=case.now) == len(missing)
        assert out.read_text().splitlines() == [case.raw[m] for m in order]
        only = tmp_path / "tiktok.jsonl"
        write_missing(store.con, case_config.backup, only, TIKTOK, now=case.now)
    finally:
        store.close()
    lines = only.read_text().splitlines()
    assert {json.loads(line)["messageId"] for line in lines} == case.sets[TIKTOK]["missing"]


def test_cli_json_and_output(case_config: Config, case: Case, tmp_path: Path) -> None:
    out = tmp_path / "cli-missing.jsonl"
    result = CliRunner().invoke(
        main,
        ["reconcile", "--config", str(tmp_path / "config.toml"), "--format", "json"]
        + ["--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["destination"] for r in rows] == list(DESTS)
    for row in rows:
        sets = case.sets[row["destination"]]
        # Pending ones are minutes inside their window: the CLI's clock agrees.
        assert {k: row[k] for k in COUNT_KEYS} == {k: len(sets[k]) for k in COUNT_KEYS}
        assert {"failing", "lost", "oldest_undelivered_at", "lost_in_s"} <= row.keys()
    missing = case.sets[TIKTOK]["missing"] | case.sets[META]["missing"]
    assert sorted(out.read_text().splitlines()) == sorted(case.raw[m] for m in missing)
    assert f"{len(missing)} missing events written" in result.stderr


def test_cli_table_destination_and_since(case_config: Config, case: Case, tmp_path: Path) -> None:
    config = str(tmp_path / "config.toml")
    since = datetime.fromtimestamp(case.now - 7200, UTC).isoformat()
    result = CliRunner().invoke(
        main, ["reconcile", "--config", config, "--destination", TIKTOK, "--since", since]
    )
    assert result.exit_code == 0, result.output
    header, line = result.stdout.splitlines()
    assert header.split()[:7] == ["destination", *COUNT_KEYS]
    assert line.split()[0] == TIKTOK
    expected = {m for m in case.sets[TIKTOK]["expected"] if case.received[m] >= case.now - 7200}
    assert int(line.split()[1]) == len(expected)
    relative = CliRunner().invoke(main, ["reconcile", "--config", config, "--since", "2h"])
    assert relative.exit_code == 0, relative.output
    assert len(relative.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday-ish"], "--since:"),
        (["--destination", "google_ads"], "--destination:"),
    ],
)
def test_cli_usage_errors(
    case_config: Config, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        main, ["reconcile", "--config", str(tmp_path / "config.toml"), *args]
    )
    assert result.exit_code == 2
    assert message in result.stderr


def test_cli_without_backup_config(config_path: Path) -> None:
    result = CliRunner().invoke(main, ["reconcile", "--config", str(config_path)])
    assert result.exit_code == 2
    assert "backup:" in result.stderr


def test_retry_window_countdown(case_config: Config, case: Case) -> None:
    assert case_config.backup is not None
    firsts: dict[tuple[str, str], float] = {}
    last_fail: dict[tuple[str, str], float] = {}
    last_ok: dict[tuple[str, str], float] = {}
    for ts, dest, mid, outcome in case.attempts:
        key = (dest, mid)
        if outcome in ("failed", "rate_limited", "retrying"):
            firsts[key] = min(ts, firsts.get(key, ts))
            last_fail[key] = max(ts, last_fail.get(key, ts))
        elif outcome == "delivered":
            last_ok[key] = max(ts, last_ok.get(key, ts))
    store = Store(case_config.db_path)
    try:
        got = retry_countdown(store.con, case_config.backup, now=case.now)
    finally:
        store.close()
    for dest in DESTS:
        undelivered = [
            first
            for (d, m), first in firsts.items()
            if d == dest and last_ok.get((d, m), float("-inf")) < last_fail[(d, m)]
        ]
        open_ = [f for f in undelivered if f + RETRY[dest] > case.now]
        assert got[dest]["failing"] == len(open_) > 0
        assert got[dest]["lost"] == len(undelivered) - len(open_)
        assert got[dest]["retry_window_s"] == RETRY[dest]
        assert got[dest]["lost_in_s"] == pytest.approx(
            min(open_) + RETRY[dest] - case.now, abs=1e-3
        )
        assert got[dest]["oldest_undelivered_at"].endswith("Z")
    assert got[META]["lost"] > 0  # 3 h retry window, receipts up to 5 h old


def test_format_table_and_parse_since() -> None:
    row: dict[str, Any] = {"destination": "d", "failing": 2, "lost": 0, "lost_in_s": 5400.0}
    row.update({k: i for i, k in enumerate(COUNT_KEYS)})
    text = format_table([row])
    assert text.splitlines()[1].split(maxsplit=9) == [
        *["d", "0", "1", "2", "3", "4", "5", "2", "0"],
        "1h 30m",
    ]
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("2024-05-01T12:00:00Z") == parse_since("2024-05-01T12:00:00")
    assert parse_since("2024-05-01T14:00:00+02:00") == parse_since("2024-05-01T12:00:00Z")
    with pytest.raises(ValueError):
        parse_since("last tuesday")


def test_the_tui_snapshot_carries_the_missing_counts(case_config: Config, case: Case) -> None:
    """What the dashboard panes and the destination screen show, recounted every few seconds
    on the runtime's thread: reconcile()'s counts, per destination."""
    from observatory.runtime import Runtime
    from observatory.ui.driver import RuntimeDriver
    from observatory.ui.screens.destination import backup_text

    runtime = Runtime(case_config, case_config.db_path)
    try:
        driver = RuntimeDriver(
            factory=lambda: runtime, publish=lambda s: None, clock=lambda: case.now
        )
        snap = driver.snapshot(runtime)
        for dest in DESTS:
            row = snap.backup[dest]
            for key in COUNT_KEYS:
                assert row[key] == len(case.sets[dest][key]), (dest, key)
        text = str(backup_text(snap.backup[TIKTOK], True))
        assert f"missing {len(case.sets[TIKTOK]['missing'])}" in text
    finally:
        runtime.close()


@pytest.mark.asyncio
async def test_the_destination_screen_writes_the_missing_events(
    case_config: Config, case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`m` on a destination screen writes what `reconcile --output` would, while the TUI holds
    the database (which `reconcile` cannot open): exactly the missing events, as received."""
    from observatory.ui.app import make_app
    from observatory.ui.screens.destination import DestinationScreen
    from tests.pilot import settle, wait_for

    monkeypatch.chdir(tmp_path)
    app = make_app(case_config, poll=False, clock=lambda: case.now)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        screen = DestinationScreen(TIKTOK)
        app.push_screen(screen)
        await pilot.pause()
        await pilot.press("m")
        await settle(pilot, screen)
        (written,) = tmp_path.glob(f"missing-{TIKTOK}-*.jsonl")
        shown = [n.message for n in app._notifications]
        assert f"{len(case.sets[TIKTOK]['missing'])} missing events written to {written}" in shown
        lines = written.read_text(encoding="utf-8").splitlines()
        ids = {json.loads(line)["messageId"] for line in lines}
        assert ids == case.sets[TIKTOK]["missing"] and len(lines) == len(ids)
        assert set(lines) == {case.raw[mid] for mid in ids}
        # a destination the backup does not cover: nothing written, a warning instead
        app.push_screen(DestinationScreen("google_ads"))
        await pilot.pause()
        await pilot.press("m")
        await pilot.pause()
        shown = [n.message for n in app._notifications]
        assert "no missing events to write: not a [backup] destination" in shown
        assert len(list(tmp_path.glob("missing-*.jsonl"))) == 1
