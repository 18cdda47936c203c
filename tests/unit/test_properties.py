"""Property tests: the parsers never raise, whatever the bytes (DESIGN "Done means" item 5).

Arbitrary bytes, and text biased towards each format (JSON-ish fragments, `k=v` soup with
quotes and backslashes, NUL bytes, ANSI escapes, absurd timestamps), go through the real
pipeline: `split_lines`, then a real in-memory DuckDB Store. Every non-blank line must come
out as exactly one row or one reject, and nothing may raise.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from observatory.config import SourceConfig
from observatory.ingest.lines import split_lines
from observatory.ingest.tail import Block, FileState
from observatory.store.db import Store

EXAMPLES = 60
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# The pattern for the custom-regex source: optional groups so that partial matches happen.
CUSTOM_PATTERN = (
    r'^(?P<ts>\S+) (?P<dest>\S+) (?P<status>\S+)(?: (?P<lat>\S+))?(?: "(?P<msg>[^"]*)")?'
)

SOURCES = [
    SourceConfig(
        name="jsonl",
        path="x",
        format="jsonl",
        fields={
            "ts": "time",
            "destination": "dest",
            "http_status": "code",
            "latency_ms": "duration",
            "event_name": "event",
            "message_id": "messageId",
            "error_code": "err.code",
            "error_message": "err.message",
            "attempt": "attempt",
            "outcome": "outcome",
        },
    ),
    SourceConfig(
        name="logfmt",
        path="x",
        format="logfmt",
        fields={
            "ts": "ts",
            "destination": "dest",
            "http_status": "status",
            "latency_ms": "dur_ms",
            "error_code": "code",
            "error_message": "error",
            "attempt": "attempt",
            "outcome": "outcome",
        },
    ),
    SourceConfig(
        name="regex",
        path="x",
        format="regex",
        pattern=CUSTOM_PATTERN,
        latency_unit="s",
        fields={
            "ts": "ts",
            "destination": "dest",
            "http_status": "status",
            "latency_ms": "lat",
            "error_message": "msg",
        },
    ),
    SourceConfig(
        name="nginx",
        path="x",
        format="regex",
        preset="nginx_upstream",
        map={"destination": {"business-api.tiktok.com": "tiktok_conversions"}},
    ),
]
VENDORS = {"tiktok_conversions": "tiktok", "meta_capi": "meta", "google_ads": "google_ads"}

_store: Store | None = None
_keys = itertools.count()


def get_store() -> Store:
    """One in-memory Store with every source, shared by the examples."""
    global _store
    if _store is None:
        _store = Store(":memory:")
        for src in SOURCES:
            _store.add_source(src, VENDORS)
    return _store


def discard_store() -> None:
    """Drop the shared store after a failure (it may be left in a broken transaction), so
    one failing example does not make every later test fail too."""
    global _store
    if _store is not None:
        try:
            _store.close()
        finally:
            _store = None


def non_blank_lines(data: bytes) -> int:
    """Lines the pipeline must account for: blank ones (spaces, tabs, CR) are skipped."""
    return sum(1 for ln in data.split(b"\n")[:-1] if ln.strip(b" \t\r"))


def counts(store: Store) -> tuple[int, int]:
    return (
        store.con.execute("SELECT count(*) FROM events").fetchall()[0][0],
        store.con.execute("SELECT count(*) FROM rejects").fetchall()[0][0],
    )


def check_pipeline(source: str, data: bytes) -> None:
    """Stage and commit `data` for `source`; every non-blank line is one row or one reject."""
    assert data == b"" or data.endswith(b"\n")
    store = get_store()
    before = counts(store)
    state = FileState(
        key=f"prop:{next(_keys)}",
        source=source,
        path="/logs/fuzz",
        offset=len(data),
        line_no=data.count(b"\n"),
    )
    try:
        with store.transaction() as tally:
            store.stage(Block(state=state, data=data, first_line=1))
        after = counts(store)
    except BaseException:
        discard_store()
        raise
    rows, rejected = after[0] - before[0], after[1] - before[1]
    assert rows + rejected == non_blank_lines(data), (rows, rejected, data)
    assert (tally.rows, tally.rejected) == (rows, rejected)
    assert tally.lines == rows + rejected


def joined(lines: list[bytes]) -> bytes:
    return b"".join(ln + b"\n" for ln in lines)


def to_bytes(lines: list[str]) -> bytes:
    return joined([ln.encode("utf-8") for ln in lines])


# ------------------------------------------------------------------ strategies

# Values that have broken timestamp, number and string handling somewhere before.
NASTY = [
    "",
    "-0",
    "0",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e18",
    "-1e18",
    "9e18",
    "1.5e12",
    "0.0000001",
    "1795183200",
    "1795183200.703",
    "1795183200203",
    "1795183200203000",
    "1795183200203000000",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "1" * 40,
    "1" * 400,
    "2026-11-20T14:00:00Z",
    "2026-11-20T14:00:00.203+02:00",
    "99999-01-01",
    "294247-01-10",
    "infinity",
    "epoch",
    "20/Nov/2026:14:00:02 +0000",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\x1b]0;title\x07",
    "\u202e",
    "\u2028",
    "é",
    "😀",
    "\\",
    '"',
    "'",
    "tiktok_conversions",
    "meta_capi",
    "40100",
    "17",
    "RESOURCE_EXHAUSTED",
    "429",
    "200",
    "retrying",
]
nasty = st.sampled_from(NASTY)
small_text = st.text(max_size=12)
scalar_text = st.one_of(nasty, small_text)

json_scalar: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    scalar_text,
)
json_object = st.fixed_dictionaries(
    {},
    optional={
        "time": json_scalar,
        "dest": json_scalar,
        "code": json_scalar,
        "duration": json_scalar,
        "attempt": json_scalar,
        "outcome": json_scalar,
        "messageId": json_scalar,
        "event": json_scalar,
        "err": st.one_of(
            json_scalar,
            st.fixed_dictionaries({}, optional={"code": json_scalar, "message": json_scalar}),
            st.lists(json_scalar, max_size=3),
        ),
    },
)
# allow_nan writes NaN/Infinity, which is not JSON: those lines must be rejects, not errors.
json_dumped = json_object.map(lambda o: json.dumps(o, allow_nan=True))
json_dumped_ascii = json_object.map(lambda o: json.dumps(o, ensure_ascii=False, allow_nan=True))
# Raw number tokens that json.dumps never writes.
json_template = st.builds(
    lambda ts, dest, code: f'{{"time":{ts},"dest":{dest},"code":{code}}}',
    nasty,
    st.sampled_from(['"a"', '"tiktok_conversions"', "1", "null", '"\\u0000"', '"\\ud800"']),
    nasty,
)
JSON_TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    '"',
    "\\",
    '"time"',
    '"dest"',
    '"code"',
    '"err"',
    '"message"',
    "null",
    "true",
    '"\\u0000"',
    '"\\ud800"',
    '"\\"',
    '{"time":1795183200203,"dest":"a"}',
    " ",
    "\t",
    "\r",
]
json_soup = st.lists(st.one_of(st.sampled_from(JSON_TOKENS), nasty, small_text), max_size=30).map(
    "".join
)
jsonl_line = st.one_of(json_dumped, json_dumped_ascii, json_template, json_soup)

LOGFMT_KEYS = ["ts", "dest", "status", "dur_ms", "code", "error", "attempt", "outcome", "level"]
logfmt_value = st.one_of(
    nasty,
    small_text,
    st.sampled_from(
        ['""', '"a b"', '"a \\" b"', '"unterminated', '"\\\\"', '"a\\', "=", "==", '"\\u0000"']
    ),
    scalar_text.map(lambda v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'),
)
logfmt_pair = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(LOGFMT_KEYS), logfmt_value),
    st.builds(lambda k, v: f"{k}={v}", small_text, logfmt_value),
    st.sampled_from(LOGFMT_KEYS),  # a bare key
    small_text,
)
logfmt_line = st.builds(
    lambda pairs, sep: sep.join(pairs),
    st.lists(logfmt_pair, max_size=12),
    st.sampled_from([" ", "  ", "\t", " \x00 "]),
)

token = st.one_of(nasty, small_text).map(lambda s: s.replace(" ", "") or "x")
regex_line = st.one_of(
    st.builds(lambda a, b, c: f"{a} {b} {c}", token, token, token),
    st.builds(
        lambda a, b, c, d, e: f'{a} {b} {c} {d} "{e}"',
        token,
        token,
        token,
        token,
        scalar_text.map(lambda s: s.replace('"', "")),
    ),
    st.lists(token, max_size=8).map(" ".join),
)
nginx_line = st.builds(
    lambda when, status, host, rt, urt: (
        f'10.0.3.7 - - [{when}] "POST /open_api/v1.3/event/track/ HTTP/1.1" {status} 96 '
        f'"-" "forwarder/2.3" "{host}" rt={rt} urt={urt}'
    ),
    st.one_of(
        st.sampled_from(
            [
                "20/Nov/2026:14:00:02 +0000",
                "20/Nov/2026:16:00:02 +0200",
                "31/Feb/2026:25:61:61 +9999",
                "00/Xyz/0000:00:00:00 +0000",
            ]
        ),
        scalar_text.map(lambda s: s.replace("]", "")),
    ),
    st.sampled_from(["200", "429", "503", "000", "999"]),
    st.one_of(st.sampled_from(["business-api.tiktok.com", "graph.facebook.com", ""]), nasty),
    st.sampled_from(["0.1", "-", ".", "1.2.3", "9" * 30]),
    st.sampled_from(["0.1", "-", ".", "1.2.3", "9" * 30, "0.000"]),
)

binary_block = st.binary(max_size=3000).map(lambda b: b + b"\n")
binary_lines = st.lists(st.binary(max_size=200), max_size=25).map(joined)

# ------------------------------------------------------------------ split_lines alone


@settings(max_examples=300, deadline=None)
@given(st.one_of(binary_lines, binary_block, st.just(b"")))
def test_split_lines_accounts_for_every_line(data: bytes) -> None:
    batch = split_lines(data)
    assert batch.count == data.count(b"\n")
    assert batch.table.num_rows + len(batch.rejects) == batch.count
    assert sorted(batch.table.column("n").to_pylist() + [r.index for r in batch.rejects]) == list(
        range(batch.count)
    )


# ------------------------------------------------------------------ arbitrary bytes


@SETTINGS
@given(st.sampled_from([s.name for s in SOURCES]), st.one_of(binary_lines, binary_block))
def test_arbitrary_bytes_never_raise(source: str, data: bytes) -> None:
    check_pipeline(source, data)


@SETTINGS
@given(st.sampled_from([s.name for s in SOURCES]), st.lists(st.text(max_size=80), max_size=20))
def test_arbitrary_text_never_raises(source: str, lines: list[str]) -> None:
    check_pipeline(source, to_bytes(lines))


# ------------------------------------------------------------------ biased to each format


@SETTINGS
@given(st.lists(jsonl_line, min_size=1, max_size=20))
@example(['{"time":-9223372036854775808,"dest":"a"}'])
@example(['{"time":1e400,"dest":"a"}', '{"time":"NaN","dest":"a"}', '{"time":-0,"dest":"a"}'])
def test_jsonl_never_raises(lines: list[str]) -> None:
    check_pipeline("jsonl", to_bytes(lines))


@SETTINGS
@given(st.lists(logfmt_line, min_size=1, max_size=20))
@example(["ts=-9223372036854775808 dest=a"])
@example(['ts=1e400 dest="a \\" b" error= bare', 'dest="\\\\" ts=NaN', 'a\x00=b ts="-0'])
def test_logfmt_never_raises(lines: list[str]) -> None:
    check_pipeline("logfmt", to_bytes(lines))


@SETTINGS
@given(st.lists(regex_line, min_size=1, max_size=20))
@example(["-9223372036854775808 a 200"])
@example(['1e400 a 200 NaN "x"', "NaN \x1b[31m -0 1e400", "no match"])
def test_regex_never_raises(lines: list[str]) -> None:
    check_pipeline("regex", to_bytes(lines))


@SETTINGS
@given(st.lists(nginx_line, min_size=1, max_size=20))
def test_nginx_preset_never_raises(lines: list[str]) -> None:
    check_pipeline("nginx", to_bytes(lines))


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["jsonl", "logfmt", "regex"]), st.one_of(jsonl_line, logfmt_line)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_several_sources_in_one_transaction(blocks: list[tuple[str, str]]) -> None:
    """Blocks of different sources staged together commit with the right totals."""
    store = get_store()
    before = counts(store)
    expected = 0
    try:
        with store.transaction() as tally:
            for source, text in blocks:
                data = to_bytes([text])
                expected += non_blank_lines(data)
                state = FileState(
                    key=f"prop:{next(_keys)}",
                    source=source,
                    path=f"/logs/{source}",
                    offset=len(data),
                    line_no=1,
                )
                store.stage(Block(state=state, data=data, first_line=1))
        after = counts(store)
    except BaseException:
        discard_store()
        raise
    assert (after[0] - before[0]) + (after[1] - before[1]) == expected
    assert tally.rows + tally.rejected == expected


# ------------------------------------------------------------------ whole files, read by DuckDB

_both: tuple[Store, Store] | None = None


def both_stores() -> tuple[Store, Store]:
    """Two in-memory Stores with every source: one reads files whole, one in blocks."""
    global _both
    if _both is None:
        pair = (Store(":memory:"), Store(":memory:"))
        for s in pair:
            for src in SOURCES:
                s.add_source(src, VENDORS)
        _both = pair
    return _both


def stored(store: Store) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(events, rejects) without their ingestion times, sorted."""
    return (
        store.con.execute("SELECT * EXCLUDE (ingested_at) FROM events ORDER BY ALL").fetchall(),
        store.con.execute("SELECT * EXCLUDE (ingested_at) FROM rejects ORDER BY ALL").fetchall(),
    )


@SETTINGS
@given(
    st.sampled_from([s.name for s in SOURCES]),
    st.lists(
        st.one_of(
            jsonl_line, logfmt_line, regex_line, nginx_line, st.text(max_size=40), st.just("")
        ),
        max_size=25,
    ),
    st.one_of(st.none(), st.binary(max_size=60)),
)
def test_a_file_read_whole_gives_what_blocks_give(
    source: str, lines: list[str], raw: bytes | None
) -> None:
    """DuckDB reading a complete file itself (wholefile.py) stores exactly the rows,
    rejects and position the block path does, whatever the lines; where its reader cannot
    be trusted with them (a CR, a BOM, bytes that are not UTF-8...) the file goes in blocks."""
    from observatory.ingest.backfill import ingest_files

    data = to_bytes(lines) + (raw.replace(b"\n", b"") + b"\n" if raw is not None else b"")
    src = next(s for s in SOURCES if s.name == source)
    whole, blocks = both_stores()
    try:
        for s in (whole, blocks):
            for table in ("events", "rejects", "ingest_offsets"):
                s.con.execute(f"DELETE FROM {table}")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "app.log")
            with open(path, "wb") as fh:
                fh.write(data)
            a = ingest_files(whole, [(path, src)], whole_file_min=0)
            b = ingest_files(blocks, [(path, src)], whole_file_min=1 << 62)
        event("read whole" if a.whole else "read in blocks")
        assert b.whole == 0
        assert stored(whole) == stored(blocks)
        assert a.summary() | {"seconds": 0, "rows_per_s": 0} == b.summary() | {
            "seconds": 0,
            "rows_per_s": 0,
        }
        offsets = "SELECT * EXCLUDE (updated_at) FROM ingest_offsets"
        assert whole.con.execute(offsets).fetchall() == blocks.con.execute(offsets).fetchall()
    except BaseException:
        global _both
        for s in whole, blocks:
            s.close()
        _both = None
        raise
