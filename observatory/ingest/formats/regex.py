"""Regular expressions with named groups (access logs of an egress proxy, zap console...)."""

from __future__ import annotations

import re

from observatory.ingest.formats import Extraction
from observatory.util.sqltext import sql_ident, sql_list, sql_str

# nginx `combined` plus the upstream host and timings, as an egress proxy would log it:
# log_format egress '$remote_addr - $remote_user [$time_local] "$request" $status '
#                   '$body_bytes_sent "$http_referer" "$http_user_agent" "$host" '
#                   'rt=$request_time urt=$upstream_response_time';
NGINX_UPSTREAM = (
    r"^(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<path>[^ "]*)[^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)" "(?P<host>[^"]*)" '
    r"rt=(?P<request_time>[\d.]+|-) urt=(?P<upstream_time>[\d.]+|-)"
)


def group_names(pattern: str) -> list[str]:
    """Named groups of a pattern, in order."""
    return list(re.compile(pattern).groupindex)


class RegexFormat:
    """`format = "regex"`: fields name the pattern's groups (RE2 syntax, run by DuckDB)."""

    name = "regex"

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def extraction(self, fields: dict[str, str]) -> Extraction:
        groups = group_names(self.pattern)
        pat = sql_str(self.pattern)
        used = [(f, g) for f, g in fields.items() if g in groups]
        cols = "".join(
            f", CASE WHEN parsed THEN nullif(m.{sql_ident(g)}, '') END AS f_{f}" for f, g in used
        )
        missing = "".join(f", NULL::VARCHAR AS f_{f}" for f, g in fields.items() if g not in groups)
        extract = f"regexp_extract(l, {pat}, [{sql_list(groups)}])" if groups else "NULL"
        select = (
            f"SELECT n, line, parsed{cols}{missing} FROM ("
            f"SELECT n, line, parsed, CASE WHEN parsed THEN {extract} END AS m FROM ("
            f"SELECT n, line, l, regexp_matches(l, {pat}) AS parsed FROM ("
            "SELECT n, line, rtrim(line, chr(10) || chr(13)) AS l FROM batch)))"
        )
        return Extraction(select=select, unparsed_reason="line does not match the pattern")
