"""Parsing and classification of log lines through a real (in-memory) DuckDB Store.

Each test writes a config, opens `Store.for_config(config, ":memory:")` and stages blocks
built from bytes exactly as the tailer hands them over, so the SQL the formats and
`normalize` compile is what runs.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from observatory.config import load_config
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.ingest.formats.presets import PRESETS
from observatory.ingest.tail import Block, FileState
from observatory.store.db import Store, Tally

REPO = Path(__file__).resolve().parents[2]
EGRESS_LOG = REPO / "sample_logs" / "egress.log"

T0_MS = 1_795_183_200_203  # 2026-11-20T14:00:00.203Z
T0 = datetime(2026, 11, 20, 14, 0, 0, 203000, tzinfo=UTC)

FORWARDER = """
[[sources]]
name = "fwd"
path = "logs/*.jsonl"
format = "jsonl"
[sources.fields]
ts = "time"
destination = "dest"
http_status = "code"
latency_ms = "duration"
event_name = "event"
message_id = "messageId"
error_code = "err.code"
error_message = "err.message"
attempt = "attempt"
outcome = "outcome"
"""

DESTINATIONS = """
[[destinations]]
name = "tiktok_conversions"
vendor = "tiktok"
[[destinations]]
name = "meta_capi"
vendor = "meta"
[[destinations]]
name = "google_ads"
vendor = "google_ads"
[[destinations]]
name = "crm_webhook"
vendor = "webhook"
[[destinations]]
name = "acme_events"
vendor = "tiktok"
"""

RELAY = """
[[sources]]
name = "relay"
path = "logs/*.logfmt"
format = "logfmt"
[sources.fields]
ts = "ts"
destination = "dest"
http_status = "status"
latency_ms = "dur_ms"
event_name = "event"
message_id = "msg_id"
error_code = "code"
error_message = "error"
attempt = "attempt"
"""

EGRESS = """
[[sources]]
name = "egress"
path = "logs/egress*.log"
format = "regex"
preset = "nginx_upstream"
[sources.map.destination]
"business-api.tiktok.com" = "tiktok_conversions"
"graph.facebook.com" = "meta_capi"
"googleads.googleapis.com" = "google_ads"
"""

HOSTS = {
    "business-api.tiktok.com": "tiktok_conversions",
    "graph.facebook.com": "meta_capi",
    "googleads.googleapis.com": "google_ads",
}

_keys = itertools.count()


def open_store(tmp_path: Path, toml: str) -> Store:
    """A Store on ":memory:" with the sources and destinations of `toml`."""
    path = tmp_path / "config.toml"
    path.write_text('[storage]\ndb = ":memory:"\n' + toml, encoding="utf-8")
    return Store.for_config(load_config(path))


def feed(store: Store, source: str, data: bytes, path: str = "/logs/test.log") -> Tally:
    """Stage `data` (complete lines) as one block of a fresh file and commit it."""
    state = FileState(
        key=f"test:{next(_keys)}",
        source=source,
        path=path,
        offset=len(data),
        line_no=data.count(b"\n"),
    )
    with store.transaction() as tally:
        store.stage(Block(state=state, data=data, first_line=1))
    return tally


def jsonl(*objs: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def events(store: Store, where: str = "true") -> list[dict[str, Any]]:
    cur = store.con.execute(
        "SELECT ts, source, destination, event_name, message_id, outcome::VARCHAR AS outcome, "
        "http_status, error_code, error_message, latency_ms, attempt "
        f"FROM events WHERE {where} ORDER BY message_id, ts"
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def rejects(store: Store) -> list[tuple[int, str, str]]:
    rows = store.con.execute("SELECT line_no, reason, line FROM rejects ORDER BY line_no")
    return rows.fetchall()


# ------------------------------------------------------------------ classification


def line(mid: str, dest: str, code: int | None = 200, err: Any = None, **extra: Any) -> dict:
    obj: dict[str, Any] = {"time": T0_MS, "dest": dest, "messageId": mid, "duration": 50.0}
    if code is not None:
        obj["code"] = code
    if err is not None:
        obj["err"] = {"code": err, "message": f"error {err}"}
    obj.update(extra)
    return obj


# (message id, line, expected outcome)
CASES: list[tuple[str, dict[str, Any], str]] = [
    # TikTok answers HTTP 200 and puts the verdict in its body code.
    ("tt_ok_0", line("tt_ok_0", "tiktok_conversions", 200, 0), "delivered"),
    ("tt_ok_20001", line("tt_ok_20001", "tiktok_conversions", 200, 20001), "delivered"),
    ("tt_ok_nocode", line("tt_ok_nocode", "tiktok_conversions", 200), "delivered"),
    ("tt_40100", line("tt_40100", "tiktok_conversions", 200, 40100), "rate_limited"),
    ("tt_40100_str", line("tt_40100_str", "tiktok_conversions", 200, "40100"), "rate_limited"),
    ("tt_40016", line("tt_40016", "tiktok_conversions", 200, 40016), "rate_limited"),
    ("tt_40132", line("tt_40132", "tiktok_conversions", 200, 40132), "rate_limited"),
    ("tt_40133", line("tt_40133", "tiktok_conversions", 200, 40133), "rate_limited"),
    ("tt_40001", line("tt_40001", "tiktok_conversions", 200, 40001), "rejected"),
    ("tt_40002", line("tt_40002", "tiktok_conversions", 200, 40002), "rejected"),
    ("tt_40105", line("tt_40105", "tiktok_conversions", 200, 40105), "rejected"),
    # Meta: HTTP 400 with error.code.
    ("meta_17", line("meta_17", "meta_capi", 400, 17), "rate_limited"),
    ("meta_4", line("meta_4", "meta_capi", 400, 4), "rate_limited"),
    ("meta_613", line("meta_613", "meta_capi", 400, 613), "rate_limited"),
    ("meta_80004", line("meta_80004", "meta_capi", 400, 80004), "rate_limited"),
    ("meta_100", line("meta_100", "meta_capi", 400, 100), "rejected"),
    ("meta_190", line("meta_190", "meta_capi", 400, 190), "rejected"),
    ("meta_ok", line("meta_ok", "meta_capi", 200), "delivered"),
    # Google Ads quota errors, whatever the HTTP status says.
    ("g_exhausted", line("g_exhausted", "google_ads", 400, "RESOURCE_EXHAUSTED"), "rate_limited"),
    (
        "g_temp",
        line("g_temp", "google_ads", None, "RESOURCE_TEMPORARILY_EXHAUSTED"),
        "rate_limited",
    ),
    ("g_unparseable", line("g_unparseable", "google_ads", 400, "UNPARSEABLE_GCLID"), "rejected"),
    # Generic HTTP rules.
    ("gen_200", line("gen_200", "crm_webhook", 200), "delivered"),
    ("gen_204", line("gen_204", "crm_webhook", 204), "delivered"),
    ("gen_429", line("gen_429", "crm_webhook", 429), "rate_limited"),
    ("gen_404", line("gen_404", "crm_webhook", 404), "rejected"),
    ("gen_400", line("gen_400", "crm_webhook", 400, "ERR_BAD_REQUEST"), "rejected"),
    ("gen_503", line("gen_503", "crm_webhook", 503), "failed"),
    ("gen_500", line("gen_500", "crm_webhook", 500, "ERR_BAD_RESPONSE"), "failed"),
    ("gen_timeout", line("gen_timeout", "crm_webhook", None, "ETIMEDOUT"), "failed"),
    ("gen_reset", line("gen_reset", "crm_webhook", None, "ECONNRESET"), "failed"),
    # An explicit outcome field wins over everything else.
    ("out_retrying", line("out_retrying", "crm_webhook", 200, outcome="retrying"), "retrying"),
    (
        "out_dropped",
        line("out_dropped", "tiktok_conversions", 200, 40100, outcome="dropped"),
        "dropped",
    ),
    ("out_synonym", line("out_synonym", "crm_webhook", 200, outcome=" Throttled "), "rate_limited"),
    # Destinations the config does not list: the vendor is guessed from the name.
    ("guess_tt_rl", line("guess_tt_rl", "tiktok_backup", 200, 40100), "rate_limited"),
    ("guess_tt_rej", line("guess_tt_rej", "EU_TikTok_Events", 200, 40001), "rejected"),
    ("guess_tt_ok", line("guess_tt_ok", "tiktok_backup", 200, 0), "delivered"),
    ("guess_meta", line("guess_meta", "facebook_capi_eu", 400, 17), "rate_limited"),
    # A configured vendor applies whatever the name says.
    ("cfg_vendor", line("cfg_vendor", "acme_events", 200, 40100), "rate_limited"),
]


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    store = open_store(tmp_path_factory.mktemp("classify"), FORWARDER + DESTINATIONS)
    try:
        tally = feed(store, "fwd", jsonl(*(obj for _, obj, _ in CASES)))
        assert (tally.rows, tally.rejected) == (len(CASES), 0), rejects(store)
        return {row["message_id"]: row for row in events(store)}
    finally:
        store.close()


@pytest.mark.parametrize(("mid", "expected"), [(m, e) for m, _, e in CASES], ids=lambda v: v)
def test_outcome_classification(
    classified: dict[str, dict[str, Any]], mid: str, expected: str
) -> None:
    assert classified[mid]["outcome"] == expected


def test_classified_rows_keep_the_raw_fields(classified: dict[str, dict[str, Any]]) -> None:
    row = classified["tt_40100"]
    assert row["ts"] == T0
    assert row["destination"] == "tiktok_conversions"
    assert row["source"] == "fwd"
    assert row["http_status"] == 200
    assert row["error_code"] == "40100"
    assert row["error_message"] == "error 40100"
    assert row["latency_ms"] == 50.0
    assert classified["gen_timeout"]["http_status"] is None
    assert classified["gen_timeout"]["error_code"] == "ETIMEDOUT"


def test_vendor_codes_do_not_leak_to_other_vendors(tmp_path: Path) -> None:
    """Meta's rate-limit code 17 means nothing for TikTok; TikTok's 40100 nothing for Meta."""
    store = open_store(tmp_path, FORWARDER + DESTINATIONS)
    feed(
        store,
        "fwd",
        jsonl(
            line("tt17", "tiktok_conversions", 400, 17),
            line("meta40100", "meta_capi", 400, 40100),
        ),
    )
    outcomes = {r["message_id"]: r["outcome"] for r in events(store)}
    assert outcomes == {"tt17": "rejected", "meta40100": "rejected"}


# ------------------------------------------------------------------ jsonl details


def test_jsonl_timestamps_every_accepted_form(tmp_path: Path) -> None:
    store = open_store(tmp_path, FORWARDER)
    forms: list[Any] = [
        T0_MS // 1000,  # epoch s (the .203 is lost)
        T0_MS,  # epoch ms
        T0_MS * 1000,  # epoch us
        T0_MS * 1_000_000,  # epoch ns
        str(T0_MS),  # epoch ms as a string
        "2026-11-20T14:00:00.203Z",
        "2026-11-20T16:00:00.203+02:00",
        "2026-11-20 14:00:00.203",
    ]
    feed(store, "fwd", jsonl(*(line(f"m{i}", "crm_webhook", time=t) for i, t in enumerate(forms))))
    got = {r["message_id"]: r["ts"] for r in events(store)}
    assert got.pop("m0") == T0.replace(microsecond=0)
    assert got == {f"m{i}": T0 for i in range(1, len(forms))}
    assert rejects(store) == []


@pytest.mark.parametrize("raw", [1795183200.703, "1795183200.703"], ids=["number", "string"])
def test_epoch_seconds_with_a_fraction_keep_their_subseconds(tmp_path: Path, raw: Any) -> None:
    """zap's JSON encoder writes `"ts": 1795183200.703` (float epoch seconds): the event
    happened at .703, not rounded to the next whole second."""
    store = open_store(tmp_path, FORWARDER)
    feed(store, "fwd", jsonl(line("z1", "crm_webhook", time=raw)))
    (row,) = events(store)
    assert row["ts"] == datetime(2026, 11, 20, 14, 0, 0, 703000, tzinfo=UTC)


def test_jsonl_bad_lines_are_rejects_with_reasons(tmp_path: Path) -> None:
    store = open_store(tmp_path, FORWARDER)
    data = (
        jsonl(line("ok", "crm_webhook"))
        + b"{not json\n"
        + b"[1, 2]\n"
        + b"\n"  # blank: neither a row nor a reject
        + jsonl({"dest": "crm_webhook", "messageId": "no_ts"})
        + jsonl(line("bad_ts", "crm_webhook", time="yesterday"))
        + jsonl({"time": T0_MS, "messageId": "no_dest"})
    )
    tally = feed(store, "fwd", data)
    assert (tally.rows, tally.rejected, tally.lines) == (1, 5, 6)
    got = rejects(store)
    assert [r[0] for r in got] == [2, 3, 5, 6, 7]
    reasons = [r[1] for r in got]
    assert "invalid JSON" in reasons[0]
    assert "invalid JSON" in reasons[1]
    assert reasons[2] == "missing field ts (time)"
    assert "timestamp" in reasons[3] and "yesterday" in reasons[3]
    assert reasons[4] == "missing field destination (dest)"
    assert got[0][2] == "{not json"


def test_jsonl_nested_dotted_paths_and_numbers_as_text(tmp_path: Path) -> None:
    toml = FORWARDER.replace('destination = "dest"', 'destination = "target.name"')
    store = open_store(tmp_path, toml)
    obj = line("n1", "ignored", 503, "ERR_BAD_RESPONSE", target={"name": "crm_webhook"})
    obj["attempt"] = "3"
    obj["duration"] = "12.5"
    feed(store, "fwd", jsonl(obj))
    (row,) = events(store)
    assert row["destination"] == "crm_webhook"
    assert row["attempt"] == 3
    assert row["latency_ms"] == 12.5
    assert row["outcome"] == "failed"


def test_poison_timestamp_is_a_reject_not_an_abort(tmp_path: Path) -> None:
    """The smallest BIGINT as a timestamp must be one rejected line, not an error that
    aborts the whole batch (abs() of it overflows in DuckDB)."""
    store = open_store(tmp_path, FORWARDER)
    data = jsonl(
        line("before", "crm_webhook"),
        line("poison", "crm_webhook", time=-9223372036854775808),
        line("after", "crm_webhook"),
    )
    tally = feed(store, "fwd", data)
    assert (tally.rows, tally.rejected) == (2, 1)
    assert [r["message_id"] for r in events(store)] == ["after", "before"]


def test_failed_commit_leaves_the_store_usable(tmp_path: Path) -> None:
    """When writing a transaction fails, it is rolled back and the next one works
    (a tailer must not be wedged forever by one failure)."""
    store = open_store(tmp_path, FORWARDER)
    with pytest.raises(duckdb.Error):
        with store.transaction():
            store.stage(
                Block(
                    state=FileState(key="k1", source="fwd", path="/a", offset=1, line_no=1),
                    data=jsonl(line("lost", "crm_webhook")),
                    first_line=1,
                )
            )
            # Make the commit's INSERT fail (the DROP is rolled back with it).
            store.con.execute("DROP TABLE events").fetchall()
    tally = feed(store, "fwd", jsonl(line("next", "crm_webhook")))
    assert tally.rows == 1
    assert [r["message_id"] for r in events(store)] == ["next"]


# ------------------------------------------------------------------ source options


def test_ts_format_explicit(tmp_path: Path) -> None:
    toml = FORWARDER.replace(
        'format = "jsonl"', 'format = "jsonl"\nts_format = "%d/%m/%Y %H:%M:%S"'
    )
    store = open_store(tmp_path, toml)
    feed(store, "fwd", jsonl(line("f1", "crm_webhook", time="20/11/2026 14:00:05")))
    (row,) = events(store)
    assert row["ts"] == datetime(2026, 11, 20, 14, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("unit", "raw", "expected_ms"),
    [("ms", 12.5, 12.5), ("s", 0.25, 250.0), ("us", 2500, 2.5), ("s", "1.5", 1500.0)],
)
def test_latency_unit(tmp_path: Path, unit: str, raw: Any, expected_ms: float) -> None:
    toml = FORWARDER.replace('format = "jsonl"', f'format = "jsonl"\nlatency_unit = "{unit}"')
    store = open_store(tmp_path, toml)
    feed(store, "fwd", jsonl(line("l1", "crm_webhook", duration=raw)))
    (row,) = events(store)
    assert row["latency_ms"] == pytest.approx(expected_ms)


def test_static_sets_a_constant(tmp_path: Path) -> None:
    toml = FORWARDER + '[sources.static]\ndestination = "crm_webhook"\nevent_name = "Lead"\n'
    store = open_store(tmp_path, toml)
    data = jsonl(
        {"time": T0_MS, "messageId": "s1", "code": 200},  # no dest field at all
        {"time": T0_MS, "messageId": "s2", "code": 429, "dest": "other", "event": "Purchase"},
    )
    tally = feed(store, "fwd", data)
    assert (tally.rows, tally.rejected) == (2, 0)
    rows = events(store)
    assert [(r["destination"], r["event_name"]) for r in rows] == [("crm_webhook", "Lead")] * 2
    assert [r["outcome"] for r in rows] == ["delivered", "rate_limited"]


def test_map_renames_values_and_classifies_the_renamed_destination(tmp_path: Path) -> None:
    toml = FORWARDER + '[sources.map.destination]\ntt = "tiktok_conversions"\n"m e" = "meta_capi"\n'
    store = open_store(tmp_path, toml + DESTINATIONS)
    feed(
        store,
        "fwd",
        jsonl(
            line("r1", "tt", 200, 40100),
            line("r2", "m e", 400, 17),
            line("r3", "unmapped_dest", 200),
        ),
    )
    got = {r["message_id"]: (r["destination"], r["outcome"]) for r in events(store)}
    assert got == {
        "r1": ("tiktok_conversions", "rate_limited"),
        "r2": ("meta_capi", "rate_limited"),
        "r3": ("unmapped_dest", "delivered"),
    }


# ------------------------------------------------------------------ logfmt


def test_logfmt_quoting_bare_keys_empty_values_and_order(tmp_path: Path) -> None:
    store = open_store(tmp_path, RELAY)
    data = (
        b"ts=2026-11-20T14:00:00.203Z dest=crm_webhook status=503 dur_ms=88 msg_id=q1 "
        b'error="upstream said \\"no\\" twice" code=ERR_BAD_RESPONSE\n'
        # bare keys and an empty value around the pairs that matter
        b"verbose msg_id=q2 ts=2026-11-20T14:00:00.203Z dest=meta_capi status=200 error= retry\n"
        # the same fields in another order, with tabs
        b"status=429\tdur_ms=1.5 dest=crm_webhook msg_id=q3 ts=2026-11-20T14:00:00.203Z\n"
        # a quoted value with spaces in a mapped key, and an escaped backslash
        b'ts=2026-11-20T14:00:00.203Z dest="crm webhook" msg_id=q4 event="A \\\\ B" status=200\n'
    )
    tally = feed(store, "relay", data)
    assert (tally.rows, tally.rejected) == (4, 0), rejects(store)
    rows = {r["message_id"]: r for r in events(store)}
    assert rows["q1"]["error_message"] == 'upstream said "no" twice'
    assert rows["q1"]["error_code"] == "ERR_BAD_RESPONSE"
    assert rows["q1"]["outcome"] == "failed"
    assert rows["q1"]["latency_ms"] == 88.0
    assert rows["q1"]["ts"] == T0
    assert rows["q2"]["destination"] == "meta_capi"
    assert rows["q2"]["error_message"] is None  # `error=` is empty, not the text "error="
    assert rows["q2"]["outcome"] == "delivered"
    assert rows["q3"]["outcome"] == "rate_limited"
    assert rows["q3"]["latency_ms"] == 1.5
    assert rows["q4"]["destination"] == "crm webhook"
    assert rows["q4"]["event_name"] == "A \\ B"


def test_logfmt_duplicate_keys_and_junk_do_not_crash(tmp_path: Path) -> None:
    store = open_store(tmp_path, RELAY)
    data = (
        b"ts=2026-11-20T14:00:00.203Z dest=a dest=b msg_id=d1 status=200 status=500\n"
        b'ts=2026-11-20T14:00:00.203Z dest="unterminated msg_id=d2\n'
        b'"just a quoted string"\n'
        b"==\n"
        b"plain words without pairs\n"
    )
    tally = feed(store, "relay", data)
    assert tally.lines == 5
    assert tally.rows + tally.rejected == 5
    d1 = [r for r in events(store) if r["message_id"] == "d1"]
    assert len(d1) == 1
    assert d1[0]["destination"] in {"a", "b"}
    assert d1[0]["http_status"] in {200, 500}
    reasons = [r[1] for r in rejects(store)]
    assert reasons.count("no key=value pairs (not logfmt)") >= 1


def test_relay_sample_log_parses(tmp_path: Path) -> None:
    store = open_store(tmp_path, RELAY)
    data = (REPO / "sample_logs" / "relay.logfmt").read_bytes()
    tally = feed(store, "relay", data)
    assert tally.rejected == 0, rejects(store)[:3]
    assert tally.rows == len([ln for ln in data.splitlines() if ln.strip()])
    assert store.con.execute(
        "SELECT count(*) FROM events WHERE message_id IS NULL OR ts IS NULL"
    ).fetchall() == [(0,)]
    # the timeouts have no status and an error: failed
    timeouts = store.con.execute(
        "SELECT DISTINCT outcome::VARCHAR, error_code FROM events WHERE http_status IS NULL"
    ).fetchall()
    assert timeouts == [("failed", "ETIMEDOUT")]


# ------------------------------------------------------------------ regex


def expected_egress_rows(text: str) -> Counter[tuple[Any, ...]]:
    pattern = re.compile(PRESETS["nginx_upstream"].pattern)
    out: Counter[tuple[Any, ...]] = Counter()
    for raw in text.splitlines():
        m = pattern.match(raw)
        assert m, raw
        ts = datetime.strptime(m["time_local"], "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
        urt = m["upstream_time"]
        latency = None if urt == "-" else round(float(urt) * 1000, 6)
        out[(ts, HOSTS.get(m["host"], m["host"]), int(m["status"]), latency)] += 1
    return out


def test_nginx_preset_parses_the_shipped_egress_log(tmp_path: Path) -> None:
    """Through the ingest functions with the real file: every line is a row, latency in ms
    is upstream_time * 1000, ts comes from time_local with its offset, hosts are renamed."""
    (tmp_path / "logs").mkdir()
    path = tmp_path / "config.toml"
    path.write_text('[storage]\ndb = ":memory:"\n' + EGRESS + DESTINATIONS, encoding="utf-8")
    config = load_config(path)
    store = Store.for_config(config)
    try:
        result = ingest_files(store, plan_files(config, [str(EGRESS_LOG)]))
        text = EGRESS_LOG.read_text(encoding="utf-8")
        expected = expected_egress_rows(text)
        assert result.tally.rejected == 0
        assert result.tally.rows == sum(expected.values()) == len(text.splitlines())
        got: Counter[tuple[Any, ...]] = Counter(
            (
                r["ts"],
                r["destination"],
                r["http_status"],
                None if r["latency_ms"] is None else round(r["latency_ms"], 6),
            )
            for r in events(store)
        )
        assert got == expected
        assert {r["source"] for r in events(store)} == {"egress"}
    finally:
        store.close()


def test_nginx_preset_offsets_dashes_and_non_matching_lines(tmp_path: Path) -> None:
    store = open_store(tmp_path, EGRESS + DESTINATIONS)
    data = (
        b'10.0.3.7 - - [20/Nov/2026:16:00:02 +0200] "POST /v21.0/1/events HTTP/1.1" 429 77 '
        b'"-" "forwarder/2.3" "graph.facebook.com" rt=0.102 urt=0.101\n'
        b'10.0.3.7 - - [20/Nov/2026:09:00:02 -0500] "POST /track/ HTTP/1.1" 502 0 '
        b'"-" "forwarder/2.3" "hooks.example.com" rt=0.002 urt=-\n'
        b"this is not an access log line\n"
    )
    tally = feed(store, "egress", data)
    assert (tally.rows, tally.rejected) == (2, 1)
    rows = sorted(events(store), key=lambda r: r["destination"])
    assert rows[0]["destination"] == "hooks.example.com"
    assert rows[0]["ts"] == datetime(2026, 11, 20, 14, 0, 2, tzinfo=UTC)
    assert rows[0]["latency_ms"] is None
    assert rows[0]["outcome"] == "failed"
    assert rows[1]["destination"] == "meta_capi"
    assert rows[1]["ts"] == datetime(2026, 11, 20, 14, 0, 2, tzinfo=UTC)
    assert rows[1]["latency_ms"] == pytest.approx(101.0)
    assert rows[1]["outcome"] == "rate_limited"
    ((line_no, reason, text),) = rejects(store)
    assert line_no == 3
    assert "does not match" in reason
    assert text == "this is not an access log line"


def test_regex_custom_pattern(tmp_path: Path) -> None:
    toml = r"""
[[sources]]
name = "custom"
path = "logs/*.log"
format = "regex"
pattern = '^(?P<when>\S+) (?P<to>\S+) status=(?P<status>\d+) took=(?P<took>[\d.]+)s$'
latency_unit = "s"
[sources.fields]
ts = "when"
destination = "to"
http_status = "status"
latency_ms = "took"
"""
    store = open_store(tmp_path, toml)
    tally = feed(
        store,
        "custom",
        b"2026-11-20T14:00:00.203Z crm_webhook status=404 took=0.5s\n"
        b"2026-11-20T14:00:00.203Z crm_webhook status=oops took=0.5s\n",
    )
    assert (tally.rows, tally.rejected) == (1, 1)
    (row,) = events(store)
    assert (row["ts"], row["outcome"], row["latency_ms"]) == (T0, "rejected", 500.0)
    assert T0 - timedelta(seconds=1) < row["ts"] <= T0
