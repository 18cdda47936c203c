"""logfmt: `key=value key="quoted value" bare_key` pairs (heroku/go-kit/logrus style).

Parsing runs in three tiers, each only for the lines the one before could not read:
1. a line with no quote or backslash becomes JSON by plain string replacement;
2. otherwise one regular-expression replacement rewrites the pairs as JSON members
   (quoted values keep their escapes, which are JSON's: `\\"`, `\\\\`, `\\n`);
3. whatever is still not valid JSON (bare keys, stray quotes, control characters) is
   split pair by pair, exactly, with the full tokenizer.
Tiers 1 and 2 read typical lines several times faster than the tokenizer does.
"""

from __future__ import annotations

from observatory.formats import Extraction
from observatory.sqltext import sql_list, sql_str

# Tier 3: a key, then optionally `=` and a quoted value (with \" escapes) or a bare token.
PAIR = r'([^\s="]+)(=("(?:[^"\\]|\\.)*"?|[^\s]*))?'
# Tier 2: key=value pairs rewritten as "key":"value", members.
MEMBER = r'([^\s="\\]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"\\]*))\s*'
MEMBER_AS_JSON = r'"\1":"\2\3",'


def _json_key(key: str) -> str:
    return "$." + '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v: str) -> str:
    """SQL turning the captured `=value` (or NULL for a bare key) into the value string."""
    inner = f"substr({v}, 2)"
    unquoted = f"regexp_replace(substr({inner}, 2, length({inner}) - 2), '\\\\(.)', '\\1', 'g')"
    return (
        f"CASE WHEN {v} IS NULL THEN 'true' "
        f"WHEN starts_with({inner}, '\"') AND length({inner}) >= 2 AND ends_with({inner}, '\"') "
        f"THEN {unquoted} ELSE {inner} END"
    )


class Logfmt:
    """`format = "logfmt"`: fields name logfmt keys literally (dots are part of the key)."""

    name = "logfmt"

    def extraction(self, fields: dict[str, str]) -> Extraction:
        keys = list(fields.values())
        paths = f"[{sql_list(_json_key(k) for k in keys)}]"
        fast = "'{\"' || replace(replace(l, '=', '\":\"'), ' ', '\",\"') || '\"}'"
        rewritten = (
            f"'{{' || rtrim(regexp_replace(l, {sql_str(MEMBER)}, {sql_str(MEMBER_AS_JSON)}, "
            "'g'), ', ') || '}'"
        )
        pat = sql_str(PAIR)
        # Tier 3 binds the key and value lists once through lambdas.
        per_key = ", ".join(
            f"CASE WHEN list_contains(k, {sql_str(key)}) THEN "
            f"{_value(f'v[list_position(k, {sql_str(key)})]')} END"
            for key in keys
        )
        tokenized = (
            f"list_transform([regexp_extract_all(l, {pat}, 1)], lambda k: "
            f"list_transform([regexp_extract_all(l, {pat}, 2)], lambda v: [{per_key}])[1])[1]"
        )
        values = (
            "coalesce("
            f"CASE WHEN NOT contains(l, '\"') AND NOT contains(l, '\\') "
            f"THEN try(json_extract_string({fast}, {paths})) END, "
            f"try(json_extract_string({rewritten}, {paths})), {tokenized})"
        )
        cols = "".join(f", j[{i + 1}] AS f_{f}" for i, f in enumerate(fields))
        select = (
            f"SELECT n, line, parsed{cols} FROM ("
            f"SELECT n, line, parsed, CASE WHEN parsed THEN {values} END AS j FROM ("
            "SELECT n, line, l, contains(l, '=') AS parsed FROM ("
            "SELECT n, line, rtrim(line, chr(10) || chr(13)) AS l FROM batch)))"
        )
        return Extraction(select=select, unparsed_reason="no key=value pairs (not logfmt)")
