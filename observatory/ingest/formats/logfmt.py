"""logfmt: `key=value key="quoted value" bare_key` pairs (heroku/go-kit/logrus style).

The semantics are go-logfmt's (github.com/go-logfmt/logfmt), the reference decoder:
* pairs are separated by runs of any bytes up to and including space (tabs, CR, NUL...);
  leading and trailing ones are ignored;
* a key runs up to `=` or a separator; it may hold any other character (UTF-8 included)
  except `"` and U+FFFD;
* an unquoted value runs up to a separator and may not hold `=` or `"`; `x=` is empty;
* a quoted value ends at the first unescaped `"` (the next pair may follow at once).
  Without a backslash it is taken as it is; with one it is unquoted like a JSON string:
  `\\" \\\\ \\/ \\' \\b \\f \\n \\r \\t \\uXXXX` (UTF-16 surrogate pairs joined, a lone
  surrogate becomes U+FFFD), and any other escape or a raw control character is an error;
* any syntax error rejects the whole line, with go-logfmt's reason ("unterminated quoted
  value", "unexpected '='"...); it is never half parsed.
Two choices are this project's: a bare key reads as `true` (go-logfmt gives no value), and
`x=` and `x=""` read as the empty string (no value in go-logfmt; both end up NULL). When a
key repeats, its first value wins. A line without any `=` is not logfmt at all.

Parsing runs in three tiers, each only for the lines the one before did not read; every tier
reads a line exactly or declines it (NULL), so which one reads it never changes the fields:
1. a line of key=value pairs with single spaces between them and no quote or backslash
   becomes JSON by plain string replacement;
2. one regular-expression replacement rewrites the pairs (bare keys and quoted values
   included) as JSON members; a quoted value's escapes are JSON's own;
3. the rest (`\\'`, lone surrogates, raw control characters in quotes, backslashes outside
   quotes, U+FFFD) is checked against the grammar and split pair by pair; quoted values with
   escapes are decoded escape by escape. A line this tier cannot read has a syntax error, and
   `error_sql` says which.
Tier 1 reads a typical line about ten times, tier 2 about twice as fast as the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

from observatory.ingest.formats import Extraction
from observatory.util.sqltext import sql_list, sql_str

# RE2 building blocks for the grammar (go-logfmt's decode.go).
SEP = r"[\x00-\x20]"
KEY = r'[^\x00-\x20="\x{FFFD}]+'
UNQUOTED = r'[^\x00-\x20="]'
HEX4 = r"[0-9a-fA-F]{4}"
ESCAPE = rf"""\\(?:["\\/'bfnrt]|u{HEX4})"""
# A quoted value: anything but `"` and `\` when it has no escape at all; otherwise valid
# escapes and no raw control characters (go-logfmt only unquotes values with a backslash).
QUOTED = rf'"(?:[^"\\]*|(?:[^"\\\x00-\x1f]|{ESCAPE})*)"'
# A valid line: a pair ends at a separator or the end of the line, except that the next
# pair may follow a quoted value at once.
VALID = rf"^{SEP}*(?:{KEY}(?:={UNQUOTED}*)?(?:{SEP}+|$)|{KEY}={QUOTED}{SEP}*)*$"
# How far go-logfmt's scanner gets: the same pairs, each as long as it can be (the greedy
# match is the scanner's), without asking what follows; the first error is right after.
SCANNED = rf"^{SEP}*(?:{KEY}(?:=(?:{QUOTED}|{UNQUOTED}*))?{SEP}*)*"
# For the reasons: a quoted value that is terminated, and one whose escapes are all valid.
TERMINATED = r'^"(?:[^"\\]|\\.)*"'
ESCAPES_OK = rf'^"(?:[^"\\]|{ESCAPE})*"'
KEY_QUOTE = r'^[^\x00-\x20="]*"'

# Tier 2: every pair becomes `"key":"=value",` (a bare key `"key":"",`), so one template
# serves all pairs. Keys and unquoted values hold no backslash; a quoted value is copied as
# it is and JSON reads its escapes, refusing (so the line goes to tier 3) what it does not
# read as go-logfmt does: `\'`, lone surrogates, raw control characters. A character that
# cannot start a pair (`=`, `"`, `\`) is matched alone and becomes `"":"",`, a member with
# an empty key, which no real pair has: the line goes to tier 3 when the JSON pointer `/`
# (the member named "") finds one.
# At most four groups: RE2 reads the groups of a match several times faster then.
_J_CHAR = r'[^\x00-\x20="\\]'
MEMBER = rf'({_J_CHAR}+)(?:(=)(?:"((?:[^"\\]|\\.)*)"|({_J_CHAR}*)))?{SEP}*|["=\\]'
MEMBER_AS_JSON = r'"\1":"\2\3\4",'

# Tier 3, on lines VALID accepts: group 1 the key, group 2 `=value` (NULL for a bare key).
PAIR = r'([^\x00-\x20="]+)(="(?:[^"\\]|\\.)*"|=[^\x00-\x20]*)?'
# The tokens of a quoted value with escapes: a surrogate pair, one escape, or plain text.
TOKEN = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.|[^\\]+"

TIERS = (1, 2, 3)
_EOL = "chr(10) || chr(13)"


def _json_key(key: str) -> str:
    return "$." + '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hex(s: str) -> str:
    return f"('0x' || {s})::INTEGER"


def _unescape(s: str) -> str:
    """SQL decoding the escapes of a quoted value's inside `s` (already known to be valid)."""
    escape = (
        "CASE WHEN NOT starts_with(t, '\\') THEN t "
        "WHEN t = '\\n' THEN chr(10) WHEN t = '\\t' THEN chr(9) WHEN t = '\\r' THEN chr(13) "
        "WHEN t = '\\b' THEN chr(8) WHEN t = '\\f' THEN chr(12) "
        "WHEN length(t) = 2 THEN t[2] "
        f"WHEN length(t) = 12 THEN chr(65536 + ({_hex('t[3:6]')} - 55296) * 1024 "
        f"+ {_hex('t[9:12]')} - 56320) "
        f"WHEN {_hex('t[3:6]')} BETWEEN 55296 AND 57343 THEN chr(65533) "
        f"ELSE chr({_hex('t[3:6]')}) END"
    )
    return (
        f"array_to_string(list_transform(regexp_extract_all({s}, {sql_str(TOKEN)}), "
        f"lambda t: {escape}), '')"
    )


def _value(v: str) -> str:
    """SQL turning PAIR's group 2 (`=value`, NULL for a bare key) into the value."""
    inner = f"{v}[3:-2]"
    return (
        f"CASE WHEN {v} IS NULL THEN 'true' "
        f"WHEN NOT starts_with({v}, '=\"') THEN {v}[2:] "
        f"WHEN NOT contains({v}, '\\') THEN {inner} "
        f"ELSE {_unescape(inner)} END"
    )


def tier_sql(keys: Sequence[str], tier: int) -> str:
    """SQL over the line `l` (without its line break): the list of the values of `keys` as
    tier `tier` reads them, or NULL when this tier does not read the line."""
    paths = [_json_key(k) for k in keys]
    if tier == 1:
        fast = "'{\"' || replace(replace(l, '=', '\":\"'), ' ', '\",\"') || '\"}'"
        # No quote or backslash: JSON by replacement is valid exactly when every word is
        # key=value, except that `=value` would pass as an empty key.
        return (
            "CASE WHEN NOT contains(l, '\"') AND NOT contains(l, '\\') "
            "AND NOT starts_with(l, '=') AND NOT contains(l, ' =') "
            "AND NOT contains(l, chr(65533)) "
            f"THEN try(json_extract_string({fast}, [{sql_list(paths)}])) END"
        )
    if tier == 2:
        rewritten = (
            f"'{{' || rtrim(regexp_replace(l, {sql_str(MEMBER)}, {sql_str(MEMBER_AS_JSON)}, "
            "'g'), ',') || '}'"
        )
        return (
            "CASE WHEN NOT contains(l, chr(65533)) THEN list_transform("
            f"[try(json_extract_string({rewritten}, [{sql_list([*paths, '/'])}]))], "
            "lambda r: CASE WHEN r[-1] IS NULL THEN list_transform(r[:-2], "
            "lambda x: CASE WHEN x = '' THEN 'true' ELSE x[2:] END) END)[1] END"
        )
    if tier == 3:
        pat = sql_str(PAIR)
        # The key and value lists are bound once through lambdas.
        per_key = ", ".join(f"v[list_position(k, {sql_str(key)})]" for key in keys)
        return (
            f"CASE WHEN regexp_full_match(l, {sql_str(VALID)}) THEN "
            f"list_transform([regexp_extract_all(l, {pat}, 1)], lambda k: "
            f"list_transform([list_transform(regexp_extract_all(l, {pat}, 2), "
            f"lambda w: {_value('w')})], lambda v: [{per_key}])[1])[1] END"
        )
    raise ValueError(f"no logfmt tier {tier}")


def error_sql(l: str) -> str:  # noqa: E741 - `l` is the line, as in every SQL here
    """SQL giving why the logfmt line `l` does not parse: go-logfmt's reason for its first
    syntax error, or NULL when it is not logfmt at all (no `=`)."""
    reason = (
        "CASE WHEN r[1] = '=' THEN 'unexpected ''='' at column ' || c "
        "WHEN r[1] = '\"' AND ends_with(p, '=') THEN "
        f"CASE WHEN NOT regexp_matches(r, {sql_str(TERMINATED)}) "
        "THEN 'unterminated quoted value at column ' || c "
        f"WHEN regexp_matches(r, {sql_str(ESCAPES_OK)}) "
        "THEN 'invalid quoted value at column ' || c || ': control character with escapes' "
        "ELSE 'invalid quoted value at column ' || c || ': invalid escape' END "
        "WHEN r[1] = '\"' THEN 'unexpected ''\"'' at column ' || c "
        # go-logfmt checks a key once it has ended, so a quote later in it comes first.
        f"WHEN r[1] = chr(65533) AND regexp_matches(r, {sql_str(KEY_QUOTE)}) "
        "THEN 'unexpected ''\"'' at column ' || (c + strpos(r, '\"') - 1) "
        "WHEN r[1] = chr(65533) THEN 'invalid key at column ' || c || ': U+FFFD' "
        "ELSE 'syntax error at column ' || c END"
    )
    # p: the longest prefix that is valid logfmt, r: the rest, from the first error on.
    return (
        f"CASE WHEN contains({l}, '=') THEN list_transform([regexp_extract({l}, "
        f"{sql_str(SCANNED)})], lambda p: list_transform([substr({l}, length(p) + 1)], "
        f"lambda r: 'invalid logfmt: ' || list_transform([length(p) + 1], "
        f"lambda c: {reason})[1])[1])[1] END"
    )


class Logfmt:
    """`format = "logfmt"`: fields name logfmt keys literally (dots are part of the key).

    `tiers` is for tests: which tiers may read a line (see the module docstring).
    """

    name = "logfmt"

    def __init__(self, tiers: Sequence[int] = TIERS) -> None:
        self.tiers = tuple(tiers)

    def extraction(self, fields: dict[str, str]) -> Extraction:
        keys = list(fields.values())
        values = ", ".join(tier_sql(keys, t) for t in self.tiers)
        cols = "".join(f", j[{i + 1}] AS f_{f}" for i, f in enumerate(fields))
        select = (
            f"SELECT n, line, j IS NOT NULL AS parsed{cols} FROM ("
            f"SELECT n, line, CASE WHEN contains(l, '=') THEN coalesce({values}) END AS j "
            f"FROM (SELECT n, line, rtrim(line, {_EOL}) AS l FROM batch))"
        )
        return Extraction(
            select=select,
            unparsed_reason="no key=value pairs (not logfmt)",
            unparsed_detail=error_sql(f"rtrim(line, {_EOL})"),
        )
