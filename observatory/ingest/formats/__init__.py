"""Log formats: each turns a batch of raw lines into the raw canonical fields, in SQL.

A format is a small contract (`Format`): given the field mapping of a source it returns
one SELECT over the registered Arrow batch `batch(n, line)` that yields `n`, `line`,
`parsed` (did the line have the format's shape) and one VARCHAR column `f_<field>` per
canonical field (NULL where the line lacks it). Parsing runs inside DuckDB, vectorised
and on every core, so backfill runs near DuckDB's own reader speed; `normalize.py`
turns the raw strings into typed, classified rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from observatory.ingest.formats.jsonl import Derive


@dataclass(frozen=True)
class Extraction:
    """The SQL a format produces for one source, and why a line it cannot read is rejected."""

    select: str
    unparsed_reason: str
    # Optional SQL over `line` giving a more precise reason for a line that did not parse
    # (only evaluated for those), e.g. the syntax error in it; NULL falls back to
    # `unparsed_reason`.
    unparsed_detail: str = "NULL"
    # Optional SQL over `line` giving a more precise reason for a parsed line that still
    # has no fields (only evaluated for rejects), e.g. valid JSON that is not an object.
    shape_reason: str = "NULL"
    # Optional SQL over the select's columns: TRUE for a parsed line that is not a delivery
    # (a preset's log of a request about to be sent, say). Such a line is neither a row nor
    # a reject, as a blank line is not.
    skipped: str = "false"


class Format(Protocol):
    """Turns lines into raw canonical fields (all VARCHAR) in SQL."""

    name: str

    def extraction(self, fields: dict[str, str]) -> Extraction:
        """`fields` maps canonical field -> key/path/group in the line."""
        ...


def get_format(
    name: str,
    pattern: str | None = None,
    derived: Mapping[str, Derive] | None = None,
    skip: Derive | None = None,
) -> Format:
    """The format called `name` (jsonl, logfmt, regex); `derived` and `skip` are a jsonl
    preset's computed columns and the lines it passes over (see `jsonl.py`)."""
    from observatory.ingest.formats.jsonl import JsonLines
    from observatory.ingest.formats.logfmt import Logfmt
    from observatory.ingest.formats.regex import RegexFormat

    if name == "jsonl":
        return JsonLines(derived, skip)
    if name == "logfmt":
        return Logfmt()
    if name == "regex":
        if not pattern:
            raise ValueError("format 'regex' needs a pattern or a preset")
        return RegexFormat(pattern)
    raise ValueError(f"unknown format {name!r}")
