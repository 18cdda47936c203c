"""logfmt reads every line as go-logfmt (github.com/go-logfmt/logfmt) does, whichever tier reads it.

`Logfmt(tiers=(t,))` forces one tier. For each case and each tier the forced tier either reads
the line to exactly the expected fields or declines it (the line then goes to the next tier);
which tiers read a case is part of the case, so a tier that starts declining typical lines
shows up too. `reference` is go-logfmt's decoder written out plainly in Python (plus this
project's two choices: a bare key reads as "true", `x=` as ""); a property test checks every
tier against it on generated lines. The SQL runs on a real DuckDB connection, and one test
goes through `ingest_files` into a DuckDB file.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from observatory.config import load_config
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.ingest.formats.logfmt import TIERS, Logfmt
from observatory.store.db import Store
from observatory.util.sqltext import sql_str

# ------------------------------------------------------------------ the reference decoder


class LogfmtError(ValueError):
    """A syntax error, with go-logfmt's message."""


_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "'": "'", "b": "\b", "f": "\f"}
_SIMPLE_ESCAPES |= {"n": "\n", "r": "\r", "t": "\t"}


def _hex4(s: str, i: int) -> int | None:
    digits = s[i : i + 4]
    if len(digits) == 4 and all(c in string.hexdigits for c in digits):
        return int(digits, 16)
    return None


def unquote(s: str) -> str:
    """The inside of a quoted value that holds a backslash, unquoted like a JSON string."""
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c < " ":
            raise LogfmtError("invalid quoted value")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = s[i + 1]  # a quoted value never ends in an unpaired backslash
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
            continue
        r = _hex4(s, i + 2) if e == "u" else None
        if r is None:
            raise LogfmtError("invalid quoted value")
        i += 6
        if 0xD800 <= r < 0xE000:  # UTF-16 surrogates: a high one and a low one make a pair
            low = _hex4(s, i + 2) if s[i : i + 2] == "\\u" else None
            if r < 0xDC00 and low is not None and 0xDC00 <= low < 0xE000:
                r = 0x10000 + (r - 0xD800) * 0x400 + (low - 0xDC00)
                i += 6
            else:
                r = 0xFFFD
        out.append(chr(r))
    return "".join(out)


def reference(line: str) -> dict[str, str] | None:
    """The pairs of a line (the first value of each key), None when it is not logfmt at all
    (no `=`); raises LogfmtError at the first syntax error."""
    if "=" not in line:
        return None
    out: dict[str, str] = {}
    i, n = 0, len(line)
    while True:
        while i < n and line[i] <= " ":
            i += 1
        if i == n:
            return out
        start = i
        while i < n and line[i] > " " and line[i] not in '="':
            i += 1
        key = line[start:i]
        if i < n and line[i] == '"':
            raise LogfmtError("unexpected '\"'")
        if not key:
            raise LogfmtError("unexpected '='")
        if "\ufffd" in key:
            raise LogfmtError("invalid key")
        if i == n or line[i] != "=":
            out.setdefault(key, "true")
            continue
        i += 1
        if i == n or line[i] <= " ":
            out.setdefault(key, "")
        elif line[i] == '"':
            j, escaped = i + 1, False
            while j < n and (escaped or line[j] != '"'):
                escaped = not escaped and line[j] == "\\"
                j += 1
            if j == n:
                raise LogfmtError("unterminated quoted value")
            inner = line[i + 1 : j]
            out.setdefault(key, unquote(inner) if "\\" in inner else inner)
            i = j + 1
        else:
            start = i
            while i < n and line[i] > " ":
                if line[i] in '="':
                    raise LogfmtError(f"unexpected '{line[i]}'")
                i += 1
            out.setdefault(key, line[start:i])


# ------------------------------------------------------------------ running the SQL


@dataclass
class Decoded:
    """What the extraction made of one line: its fields, or why it was not read."""

    fields: dict[str, str | None] | None
    reason: str | None


def decode(
    con: duckdb.DuckDBPyConnection,
    lines: Sequence[str],
    keys: Sequence[str],
    tiers: Sequence[int] = TIERS,
) -> list[Decoded]:
    """Run the logfmt extraction (only `tiers`) over `lines`, as one batch like the store's."""
    fields = {f"k{i}": key for i, key in enumerate(keys)}
    extraction = Logfmt(tiers).extraction(fields)
    con.execute("CREATE OR REPLACE TEMP TABLE batch (n BIGINT, line VARCHAR)")
    con.executemany(
        "INSERT INTO batch VALUES (?, ?)", [(i, ln + "\n") for i, ln in enumerate(lines)]
    )
    cols = "".join(f", f_{f}" for f in fields)
    reason = f"coalesce({extraction.unparsed_detail}, {sql_str(extraction.unparsed_reason)})"
    rows = con.execute(
        f"SELECT parsed, CASE WHEN NOT parsed THEN {reason} END{cols} "
        f"FROM ({extraction.select}) ORDER BY n"
    ).fetchall()
    return [
        Decoded(dict(zip(keys, row[2:], strict=True)) if row[0] else None, row[1]) for row in rows
    ]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


# ------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Case:
    """A line, the fields go-logfmt reads from it, and the tiers that read it."""

    line: str
    fields: dict[str, str | None]
    reads: frozenset[int] = field(default=frozenset(TIERS))


ALL, JSON_REWRITE, TOKENIZER = frozenset(TIERS), frozenset({2, 3}), frozenset({3})
ESCAPES = r'tab="a\tb" nl="a\nb" cr="a\rb" q="say \"hi\"" bs="C:\\dir" sl="a\/b" bf="\b\f"'

CASES = {
    "plain": Case("a=1 b=two", {"a": "1", "b": "two", "absent": None}),
    "quoted, no escapes": Case('a="x y" b="=" c=2', {"a": "x y", "b": "=", "c": "2"}, JSON_REWRITE),
    "escapes": Case(
        ESCAPES,
        {"tab": "a\tb", "nl": "a\nb", "cr": "a\rb", "q": 'say "hi"', "bs": "C:\\dir"}
        | {"sl": "a/b", "bf": "\b\f"},
        JSON_REWRITE,
    ),
    "unicode escapes": Case(
        r'u="caf\u00e9 \u2603" pair="\ud83d\ude00" nul="\u0000"',
        {"u": "café ☃", "pair": "😀", "nul": "\x00"},
        JSON_REWRITE,
    ),
    # the line: with a bare key the escapes came out as `t`, `n`, `uXXXX`
    "escapes after a bare key": Case(
        r'd err="esc\t" nl="\n" u="\u00e9"',
        {"d": "true", "err": "esc\t", "nl": "\n", "u": "é"},
        JSON_REWRITE,
    ),
    "escapes before a bare key": Case(
        r'err="esc\t" d', {"d": "true", "err": "esc\t"}, JSON_REWRITE
    ),
    "escaped apostrophe": Case(r'a="it\'s"', {"a": "it's"}, TOKENIZER),
    "lone surrogates": Case(
        r'hi="\ud800x" lo="\udc00" hi_then_other="\ud83d\u0041"',
        {"hi": "\ufffdx", "lo": "\ufffd", "hi_then_other": "\ufffdA"},
        TOKENIZER,
    ),
    "bare keys": Case(
        "verbose a=1 retry", {"verbose": "true", "a": "1", "retry": "true"}, JSON_REWRITE
    ),
    "empty values": Case("x= z=1 y=", {"x": "", "y": "", "z": "1"}),
    "empty quoted value": Case('x="" z=1', {"x": "", "z": "1"}, JSON_REWRITE),
    "utf-8 keys": Case(
        "ƒ=2h3s ключ=значение 名前=値", {"ƒ": "2h3s", "ключ": "значение", "名前": "値"}
    ),
    "utf-8 keys, quoted": Case(
        'ƒ="2h 3s" 名前="値 です"', {"ƒ": "2h 3s", "名前": "値 です"}, JSON_REWRITE
    ),
    "a tab between pairs": Case("a=1\tb=2", {"a": "1", "b": "2"}, JSON_REWRITE),
    "tabs and runs of spaces": Case(
        'a=1\t\tb=2   c="x  y"\t d=4', {"a": "1", "b": "2", "c": "x  y", "d": "4"}, JSON_REWRITE
    ),
    "other separators": Case(
        "a=1\x00b=2\x1ec=3\x0bd", {"a": "1", "b": "2", "c": "3", "d": "true"}, JSON_REWRITE
    ),
    "trailing spaces": Case("a=1 b=2   ", {"a": "1", "b": "2"}, JSON_REWRITE),
    "trailing spaces after a quote": Case('a="x" \t ', {"a": "x"}, JSON_REWRITE),
    "trailing CR": Case("a=1 b=2\r", {"a": "1", "b": "2"}),
    "leading spaces": Case("  a=1", {"a": "1"}, JSON_REWRITE),
    "a pair right after a quoted value": Case(r'y="f\n"z=g', {"y": "f\n", "z": "g"}, JSON_REWRITE),
    "first value wins": Case("a=1 a=2", {"a": "1"}),
    "a bare key first wins": Case("a a=2", {"a": "true"}, JSON_REWRITE),
    "apostrophes are ordinary": Case("a='x' b=it's", {"a": "'x'", "b": "it's"}),
    "dots in keys": Case("err.code=E1 err.message=x", {"err.code": "E1", "err.message": "x"}),
    "raw tab inside quotes, no escapes": Case('a="x\ty" b=2', {"a": "x\ty", "b": "2"}, TOKENIZER),
    "backslashes outside quotes": Case(
        r"path=C:\dir k\x=1", {"path": "C:\\dir", "k\\x": "1"}, TOKENIZER
    ),
}

# Lines go-logfmt refuses: a reject with this reason, in every tier.
ERRORS = {
    "unterminated quote": (
        'ts=1 dest=a error="never closed msg_id=m1',
        "unterminated quoted value at column 19",
    ),
    "unterminated after an escaped quote": (r'a="x\"', "unterminated quoted value at column 3"),
    "invalid escape": (r'a=1 b="\q"', "invalid quoted value at column 7: invalid escape"),
    "short unicode escape": (r'a="\u12"', "invalid quoted value at column 3: invalid escape"),
    "control character with escapes": (
        'a="x\t\\n"',
        "invalid quoted value at column 3: control character",
    ),
    "equals in an unquoted value": ("a=b=c", "unexpected '=' at column 4"),
    "empty key": ("a=1 =b", "unexpected '=' at column 5"),
    "double equals": ("a==", "unexpected '=' at column 3"),
    "quoted key": ('"k"=v', "unexpected '\"' at column 1"),
    "quote in a key": ('k"ey=v', "unexpected '\"' at column 2"),
    "quote in an unquoted value": ('k=b"ar', "unexpected '\"' at column 4"),
    "quote right after a quoted value": ('a="x""y"', "unexpected '\"' at column 6"),
    "quote right after a bare key": ('d"x"=1', "unexpected '\"' at column 2"),
    "U+FFFD in a key": ("a\ufffd=1", "invalid key at column 2"),
    "JSON injected between pairs": ('a=1 "b":"c",', "unexpected '\"' at column 5"),
}


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_tier_reads_a_case_exactly_or_declines_it(
    con: duckdb.DuckDBPyConnection, case: Case, tier: int
) -> None:
    pairs = reference(case.line)
    assert pairs is not None and {k: pairs.get(k) for k in case.fields} == case.fields
    (got,) = decode(con, [case.line], list(case.fields), (tier,))
    if tier in case.reads:
        assert got.fields == case.fields
    else:
        assert got.fields is None


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_all_tiers_together_read_every_case(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    (got,) = decode(con, [case.line], list(case.fields))
    assert got.fields == case.fields


@pytest.mark.parametrize("tier", [*TIERS, None])
@pytest.mark.parametrize(("line", "reason"), ERRORS.values(), ids=ERRORS.keys())
def test_syntax_errors_are_rejected_with_a_reason_in_every_tier(
    con: duckdb.DuckDBPyConnection, line: str, reason: str, tier: int | None
) -> None:
    with pytest.raises(LogfmtError) as error:
        reference(line)
    assert str(error.value) in reason
    (got,) = decode(
        con, [line], ["a", "b", "k", "dest", "msg_id"], TIERS if tier is None else (tier,)
    )
    assert got.fields is None
    assert got.reason is not None and got.reason.startswith("invalid logfmt: " + reason)


def test_lines_without_pairs_are_not_logfmt(con: duckdb.DuckDBPyConnection) -> None:
    got = decode(con, ["plain words", '"just a quoted string"', "verbose"], ["verbose"])
    assert [(d.fields, d.reason) for d in got] == [(None, "no key=value pairs (not logfmt)")] * 3


# ------------------------------------------------------------------ against the reference

KEYS = ["a", "b", "ƒ", "k.x", "it's", "k\\x", "a\ufffd", "q\x7f"]
SEPARATORS = [" "] * 6 + ["  ", "\t", " \t ", "\x00", "\x1e", "\r", ""]
# Parts of quoted and unquoted values: mostly what go-logfmt reads, some of what it refuses.
QUOTED_PARTS = ["a", " ", "=", "é", "'", '\\"', "\\\\", "\\/", "\\n", "\\t", "\\r", "\\b"]
QUOTED_PARTS += ["\\f", "\\u00e9", "\\u0000", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\ud800"]
QUOTED_PARTS += ["\\udc00", "\\ud83d", "\\'", "\t"]
BAD_QUOTED_PARTS = ["\\q", "\\u12", '"', "\\"]
UNQUOTED_PARTS = ["a", "1", "é", "'", ".", "-"]
BAD_UNQUOTED_PARTS = ["\\", "=", '"', "\ufffd"]


def sometimes(
    strategy: st.SearchStrategy[str], odd: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    """`strategy` nine times in ten, else `odd`."""
    return st.sampled_from([strategy] * 9 + [odd]).flatmap(lambda chosen: chosen)


key = sometimes(st.sampled_from(KEYS[:6]), st.sampled_from(KEYS[6:]))
unquoted = st.lists(st.sampled_from(UNQUOTED_PARTS), max_size=4).map("".join)
quoted_inside = st.lists(st.sampled_from(QUOTED_PARTS), max_size=6).map("".join)
quoted = st.builds(lambda inside: f'"{inside}"', quoted_inside)
bad_value = st.one_of(
    st.builds(lambda v, b: v + b, unquoted, st.sampled_from(BAD_UNQUOTED_PARTS)),
    st.builds(lambda v, b: f'"{v}{b}"', quoted_inside, st.sampled_from(BAD_QUOTED_PARTS)),
    st.builds(lambda v: f'"{v}', quoted_inside),  # unterminated
)
pair = sometimes(
    st.sampled_from(
        [st.builds(lambda k, v: f"{k}={v}", key, st.one_of(unquoted, quoted))] * 3 + [key]
    ).flatmap(lambda chosen: chosen),
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", key, bad_value),
        st.sampled_from(["=", '"', "==", "=x", '"a"=1']),
    ),
)
logfmt_line = st.builds(
    lambda lead, pairs, seps, trail: (
        lead + "".join(p + s for p, s in zip(pairs, seps, strict=False)) + trail
    ),
    st.sampled_from(["", "", "", " ", "\t"]),
    st.lists(pair, min_size=1, max_size=6),
    st.lists(st.sampled_from(SEPARATORS), min_size=6, max_size=6),
    st.sampled_from(["", "", "", " ", "  \t"]),
)


def expected(line: str) -> tuple[dict[str, str | None] | None, str | None]:
    """The fields of KEYS in `line` and the error go-logfmt reports, from the reference."""
    try:
        pairs = reference(line)
    except LogfmtError as error:
        return None, str(error)
    if pairs is None:
        return None, None
    return {k: pairs.get(k) for k in KEYS}, None


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(logfmt_line, min_size=1, max_size=25))
@example([r'd err="esc\t" x="\ud800" y="\'" z="\u00e9"', 'a="b\\"', 'a\ufffd"=1'])
def test_every_tier_agrees_with_the_reference(
    con: duckdb.DuckDBPyConnection, lines: list[str]
) -> None:
    want = [expected(line) for line in lines]
    together = decode(con, lines, KEYS)
    for line, (fields, error), got in zip(lines, want, together, strict=True):
        assert got.fields == fields, line
        if error is not None:
            assert got.reason is not None and got.reason.startswith(f"invalid logfmt: {error}"), (
                line
            )
    for tier in TIERS:
        for line, (fields, _), got in zip(
            lines, want, decode(con, lines, KEYS, (tier,)), strict=True
        ):
            assert got.fields is None or got.fields == fields, (tier, line)


# ------------------------------------------------------------------ through ingest


RELAY = """
[storage]
db = "{db}"

[[sources]]
name = "relay"
path = "{logs}/*.logfmt"
format = "logfmt"
[sources.fields]
ts = "ts"
destination = "dest"
http_status = "status"
event_name = "event"
message_id = "msg_id"
error_code = "code"
error_message = "error"
"""

TS = "ts=2026-11-20T14:00:00.203Z"
RELAY_LINES = [
    # read by tier 1, 2 and 3 respectively
    f"{TS} dest=meta_capi status=200 event=Lead msg_id=m1",
    f'{TS} dest=meta_capi status=503 msg_id=m2 error="said \\"no\\"\\tthen\\u00e9 left"',
    f'{TS} dest=meta_capi status=503 msg_id=m3 retry error="it\\\'s \\ud83d\\ude00 \\ud800"',
    # the line: a bare key before escapes
    f'{TS}   dest=crm_webhook\tstatus=500 msg_id=m4 verbose error="esc\\t\\n\\u00e9"   ',
    f"{TS} dest=crm_webhook status=200 ключ=значение event=ƒ msg_id=m5 code=",
    # rejects
    f'{TS} dest=meta_capi msg_id=m6 error="never closed',
    f'{TS} dest=meta_capi msg_id=m7 error="bad \\q escape"',
    f"{TS} dest=meta_capi msg_id=m8 url=/x?a=b",
    "not logfmt at all",
]


def test_ingest_reads_every_tier_alike_and_rejects_syntax_errors(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "relay.logfmt"
    log.write_text("\n".join(RELAY_LINES) + "\n", encoding="utf-8")
    config_path = tmp_path / "config.toml"
    config_path.write_text(RELAY.format(db=tmp_path / "obs.duckdb", logs=logs), encoding="utf-8")
    config = load_config(config_path)
    store = Store.for_config(config)
    try:
        result = ingest_files(store, plan_files(config, []))
        assert (result.tally.rows, result.tally.rejected) == (5, 4)
        rows = store.con.execute(
            "SELECT message_id, destination, http_status, event_name, error_code, error_message "
            "FROM events ORDER BY message_id"
        ).fetchall()
        rejects = store.con.execute(
            "SELECT line_no, reason FROM rejects ORDER BY line_no"
        ).fetchall()
    finally:
        store.close()
    assert rows == [
        ("m1", "meta_capi", 200, "Lead", None, None),
        ("m2", "meta_capi", 503, None, None, 'said "no"\tthené left'),
        ("m3", "meta_capi", 503, None, None, "it's 😀 \ufffd"),
        ("m4", "crm_webhook", 500, None, None, "esc\t\né"),
        ("m5", "crm_webhook", 200, "ƒ", None, None),
    ]
    assert rejects == [
        (6, "invalid logfmt: unterminated quoted value at column 60"),
        (7, "invalid logfmt: invalid quoted value at column 60: invalid escape"),
        (8, "invalid logfmt: unexpected '=' at column 62"),
        (9, "no key=value pairs (not logfmt)"),
    ]
