"""JSON lines (pino, bunyan, zap JSON, ...): fields are dotted paths into the object.

A preset (`presets.py`) may also compute a column from several values of the line
(`derived`, e.g. the host of a URL) and name the lines that are valid but not deliveries
(`skip`, e.g. a tag's log of the request it is about to send). Both are SQL built from the
values the line holds at dotted paths; the line is still parsed once for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from observatory.ingest.formats import Extraction
from observatory.util.sqltext import sql_list

Value = Callable[[str], str]
"""SQL for the value at a dotted path of the line: VARCHAR (objects and arrays as JSON
text), NULL where the line has no such key or is not valid JSON."""

Derive = Callable[[Value], str]
"""SQL computing one column (VARCHAR) or condition (BOOLEAN) from values of the line."""


def json_path(dotted: str) -> str:
    """`err.code` -> `$."err"."code"` (every segment quoted, so any key name works)."""
    return "$." + ".".join('"' + seg.replace('"', '\\"') + '"' for seg in dotted.split("."))


class _Paths:
    """A `Value` that numbers the paths it is asked for, so one `json_extract_string`
    reads them all."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, dotted: str) -> str:
        return f"j[{self.index.setdefault(dotted, len(self.index) + 1)}]"


class JsonLines:
    """`format = "jsonl"`: one JSON object per line."""

    name = "jsonl"

    def __init__(
        self, derived: Mapping[str, Derive] | None = None, skip: Derive | None = None
    ) -> None:
        self.derived = dict(derived or {})
        self.skip = skip

    def extraction(self, fields: dict[str, str]) -> Extraction:
        value = _Paths()
        cols = "".join(
            f", {self.derived[f](value) if f in self.derived else value(path)} AS f_{f}"
            for f, path in fields.items()
        )
        skip = f"j IS NOT NULL AND coalesce({self.skip(value)}, false)" if self.skip else None
        if value.index:
            # One parse per line: json_extract_string raises on invalid JSON and try() makes
            # that NULL for that line alone (yyjson decides, as it does for json_valid).
            # Valid JSON that is not an object ("5", "[1]") gives a list of NULL fields;
            # its reject says so (shape_reason).
            paths = sql_list(json_path(p) for p in value.index)
            skipped = f", {skip} AS skipped" if skip else ""
            select = (
                f"SELECT n, line, j IS NOT NULL AS parsed{cols}{skipped} FROM ("
                f"SELECT n, line, try(json_extract_string(line, [{paths}])) AS j FROM batch)"
            )
        else:
            select = "SELECT n, line, json_valid(line) AS parsed FROM batch"
        return Extraction(
            select=select,
            unparsed_reason="invalid JSON",
            shape_reason="CASE WHEN json_type(line) <> 'OBJECT' THEN "
            "'invalid JSON: not an object' END",
            skipped="skipped" if skip and value.index else "false",
        )
