"""Tests for the deterministic sample-log generator and the committed files in sample_logs/."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from observatory.sim.samples import (
    DESTINATIONS,
    FILE_NAMES,
    OUTAGE_END,
    OUTAGE_START,
    START,
    main,
    write_samples,
)

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_logs"

# The nginx_upstream preset's pattern, verbatim.
NGINX_UPSTREAM = re.compile(
    r"^(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<path>[^ "]*)[^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)" "(?P<host>[^"]*)" '
    r"rt=(?P<request_time>[\d.]+|-) urt=(?P<upstream_time>[\d.]+|-)"
)
LOGFMT_TOKEN = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?: |$)')

START_MS = int(START.timestamp() * 1000)
OUTAGE_START_MS = int(OUTAGE_START.timestamp() * 1000)
OUTAGE_END_MS = int(OUTAGE_END.timestamp() * 1000)


def parse_logfmt(line: str) -> dict[str, str]:
    """Tokenize one logfmt line; raise ValueError unless the whole line is key=value pairs."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        m = LOGFMT_TOKEN.match(line, pos)
        if m is None:
            raise ValueError(f"bad logfmt at {pos}: {line!r}")
        key, raw = m.group(1), m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = raw
        pos = m.end()
    return out


def read_lines(name: str) -> list[bytes]:
    data = (SAMPLE_DIR / name).read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


@pytest.fixture(scope="module")
def forwarder() -> tuple[list[dict[str, Any]], list[bytes]]:
    """(parsed good records, raw bad lines) of the committed forwarder log."""
    good: list[dict[str, Any]] = []
    bad: list[bytes] = []
    for raw in read_lines("forwarder.jsonl"):
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            bad.append(raw)
            continue
        if "time" not in record:
            bad.append(raw)
            continue
        good.append(record)
    return good, bad


def test_regenerating_is_byte_identical_to_committed_files(tmp_path: Path) -> None:
    paths = write_samples(tmp_path)
    assert [p.name for p in paths] == list(FILE_NAMES)
    for path in paths:
        assert path.read_bytes() == (SAMPLE_DIR / path.name).read_bytes(), path.name


def test_cli_regenerates_and_other_seeds_differ(tmp_path: Path) -> None:
    assert main([str(tmp_path / "a"), "--seed", "7"]) == 0
    for name in FILE_NAMES:
        assert (tmp_path / "a" / name).read_bytes() == (SAMPLE_DIR / name).read_bytes()
    write_samples(tmp_path / "b", seed=8)
    assert (tmp_path / "b" / FILE_NAMES[0]).read_bytes() != (
        SAMPLE_DIR / FILE_NAMES[0]
    ).read_bytes()


def test_total_size_is_small() -> None:
    total = sum((SAMPLE_DIR / name).stat().st_size for name in FILE_NAMES)
    assert total < 4.5 * 1024 * 1024
    assert total < 4_500_000


def test_forwarder_lines_have_the_configured_fields(
    forwarder: tuple[list[dict[str, Any]], list[bytes]],
) -> None:
    good, bad = forwarder
    assert len(bad) == 2
    truncated = [raw for raw in bad if not raw.rstrip().endswith(b"}")]
    assert len(truncated) == 1
    assert b'"time"' not in next(raw for raw in bad if raw.rstrip().endswith(b"}"))
    assert len(good) > 5000
    keys_order = ["level", "time", "pid", "hostname", "msg", "dest", "event", "messageId"]
    for record in good:
        assert list(record)[:8] == keys_order
        assert record["level"] in (30, 40, 50)
        assert isinstance(record["time"], int)
        assert record["dest"] in DESTINATIONS
        assert isinstance(record["event"], str)
        assert isinstance(record["messageId"], str) and len(record["messageId"]) == 36
        assert isinstance(record["duration"], float)
        assert isinstance(record["attempt"], int) and 1 <= record["attempt"] <= 3
        if record["msg"] == "delivery ok":
            assert record["level"] == 30 and "err" not in record and record["code"] == 200
            continue
        assert record["msg"] in ("delivery failed", "delivery retrying")
        err = record["err"]
        assert isinstance(err, dict)
        assert isinstance(err["code"], str) and isinstance(err["message"], str)
        if err["code"] == "ETIMEDOUT":
            assert "code" not in record
        else:
            assert isinstance(record["code"], int)


def test_forwarder_lines_are_sorted_and_span_forty_minutes(
    forwarder: tuple[list[dict[str, Any]], list[bytes]],
) -> None:
    times = [r["time"] for r in forwarder[0]]
    assert times == sorted(times)
    assert START_MS <= times[0] < START_MS + 60_000
    assert times[-1] >= START_MS + 39 * 60_000


def test_bad_lines_are_in_the_middle() -> None:
    lines = read_lines("forwarder.jsonl")
    positions = []
    for i, raw in enumerate(lines):
        try:
            ok = "time" in orjson.loads(raw)
        except orjson.JSONDecodeError:
            ok = False
        if not ok:
            positions.append(i)
    assert len(positions) == 2
    assert all(len(lines) // 5 < i < 4 * len(lines) // 5 for i in positions)


def test_tiktok_outage_window(forwarder: tuple[list[dict[str, Any]], list[bytes]]) -> None:
    good, _ = forwarder
    tiktok = [r for r in good if r["dest"] == "tiktok_conversions"]
    core_lo, core_hi = START_MS + 23 * 60_000, START_MS + 28 * 60_000
    core = [r for r in tiktok if core_lo <= r["time"] < core_hi]
    outside = [r for r in tiktok if not OUTAGE_START_MS <= r["time"] < OUTAGE_END_MS]
    assert len(core) > 500 and len(outside) > 3000
    failed = sum(r["msg"] != "delivery ok" for r in core)
    throttled = sum(r.get("err", {}).get("code") == "40100" for r in core)
    assert failed / len(core) > 0.5
    assert throttled / len(core) > 0.5
    assert sum(r.get("err", {}).get("code") == "40016" for r in core) > 0
    assert sum(r["msg"] != "delivery ok" for r in outside) / len(outside) < 0.02
    # Throttles come back as HTTP 200 with the code in the body, and retries fail too.
    throttles = [r for r in tiktok if r.get("err", {}).get("code") in ("40100", "40016")]
    assert {r["code"] for r in throttles} == {200}
    assert {r["attempt"] for r in throttles} == {1, 2, 3}
    assert all(OUTAGE_START_MS <= r["time"] < OUTAGE_END_MS + 30_000 for r in throttles)


def test_tiktok_throughput_collapses_and_recovers(
    forwarder: tuple[list[dict[str, Any]], list[bytes]],
) -> None:
    delivered: Counter[int] = Counter()
    for r in forwarder[0]:
        if r["dest"] == "tiktok_conversions" and r["msg"] == "delivery ok":
            delivered[(r["time"] - START_MS) // 60_000] += 1
    before = sum(delivered[m] for m in range(17, 22)) / 5
    after = sum(delivered[m] for m in range(29, 34)) / 5
    assert all(delivered[m] < 0.2 * before for m in (24, 25, 26))
    assert after > 0.7 * before


def test_background_noise(forwarder: tuple[list[dict[str, Any]], list[bytes]]) -> None:
    codes: Counter[tuple[object, object, object]] = Counter()
    for r in forwarder[0]:
        err = r.get("err")
        if isinstance(err, dict):
            codes[(r["dest"], r.get("code"), err["code"])] += 1
    assert codes[("meta_capi", 400, "100")] > 0
    assert codes[("google_ads", 200, "UNPARSEABLE_GCLID")] > 0
    assert sum(n for (_, status, code), n in codes.items() if code == "ETIMEDOUT") > 0
    assert all(status is None for (_, status, code) in codes if code == "ETIMEDOUT")
    assert sum(
        n for (_, status, _), n in codes.items() if isinstance(status, int) and status >= 500
    )


def test_egress_lines_match_the_nginx_upstream_preset() -> None:
    hosts: Counter[str] = Counter()
    statuses: Counter[tuple[str, str]] = Counter()
    previous: datetime | None = None
    for raw in read_lines("egress.log"):
        m = NGINX_UPSTREAM.match(raw.decode())
        assert m is not None, raw
        stamp = datetime.strptime(m["time_local"], "%d/%b/%Y:%H:%M:%S %z")
        assert previous is None or stamp >= previous
        previous = stamp
        hosts[m["host"]] += 1
        statuses[(m["host"], m["status"])] += 1
        if OUTAGE_START <= stamp < OUTAGE_END and m["host"] == "business-api.tiktok.com":
            assert m["status"] in ("200", "429", "500", "502", "503", "504")
    assert set(hosts) == {
        "business-api.tiktok.com",
        "graph.facebook.com",
        "googleads.googleapis.com",
    }
    assert statuses[("business-api.tiktok.com", "429")] > 0
    assert (
        statuses[("business-api.tiktok.com", "200")] > statuses[("business-api.tiktok.com", "429")]
    )


def test_relay_lines_parse_as_logfmt() -> None:
    lines = [raw.decode() for raw in read_lines("relay.logfmt")]
    escaped = 0
    previous = ""
    dests: Counter[str] = Counter()
    for line in lines:
        fields = parse_logfmt(line)
        for key in ("ts", "level", "dest", "event", "msg_id", "dur_ms", "attempt"):
            assert key in fields, (key, line)
        assert fields["ts"] >= previous
        previous = fields["ts"]
        datetime.strptime(fields["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        dests[fields["dest"]] += 1
        if fields["level"] != "info":
            assert "code" in fields and "error" in fields
        if "status" not in fields:
            assert fields["code"] == "ETIMEDOUT"
        if '\\"' in line:
            escaped += 1
            assert '"' in fields["error"]
    assert set(dests) == {"meta_capi", "crm_webhook"}
    assert escaped > 0
    assert any(" " in parse_logfmt(line).get("error", "") for line in lines)


def test_traffic_split_between_files() -> None:
    counts = {name: len(read_lines(name)) for name in FILE_NAMES}
    total = sum(counts.values())
    assert 0.68 < counts["forwarder.jsonl"] / total < 0.82
    assert 0.10 < counts["relay.logfmt"] / total < 0.20
    assert 0.06 < counts["egress.log"] / total < 0.14
