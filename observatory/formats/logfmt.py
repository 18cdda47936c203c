"""logfmt: `key=value key="quoted value" bare_key` pairs (heroku/go-kit/logrus style)."""

from __future__ import annotations

from observatory.formats import Extraction
from observatory.sqltext import sql_str

# A key, then optionally `=` and a quoted value (with \" escapes) or a bare token.
PAIR = r'([^\s="]+)(=("(?:[^"\\]|\\.)*"?|[^\s]*))?'


def _value(v: str) -> str:
    """SQL turning the captured `=value` (or NULL for a bare key) into the value string."""
    inner = f"substr({v}, 2)"
    unquoted = f"regexp_replace(substr({inner}, 2, length({inner}) - 2), '\\\\(.)', '\\1', 'g')"
    return (
        f"CASE WHEN {v} IS NULL THEN 'true' "
        f"WHEN starts_with({inner}, '\"') AND length({inner}) >= 2 AND ends_with({inner}, '\"') "
        f"THEN {unquoted} ELSE nullif({inner}, '') END"
    )


class Logfmt:
    """`format = "logfmt"`: fields name logfmt keys literally (dots are part of the key)."""

    name = "logfmt"

    def extraction(self, fields: dict[str, str]) -> Extraction:
        pat = sql_str(PAIR)
        # A key the line lacks gives list_position NULL, v[NULL] NULL, and 'true' would be
        # wrong, so only keys that are present are read.
        cols = "".join(
            f", CASE WHEN list_contains(k, {sql_str(key)}) THEN "
            f"{_value(f'v[list_position(k, {sql_str(key)})]')} END AS f_{f}"
            for f, key in fields.items()
        )
        select = (
            f"SELECT n, line, len(k) > 0 AS parsed{cols} FROM ("
            f"SELECT n, line, regexp_extract_all(l, {pat}, 1) AS k, "
            f"regexp_extract_all(l, {pat}, 2) AS v FROM ("
            "SELECT n, line, rtrim(line, chr(10) || chr(13)) AS l FROM batch))"
        )
        return Extraction(select=select, unparsed_reason="no key=value pairs (not logfmt)")
