"""JSON lines (pino, bunyan, zap JSON, ...): fields are dotted paths into the object."""

from __future__ import annotations

from observatory.ingest.formats import Extraction
from observatory.util.sqltext import sql_list


def json_path(dotted: str) -> str:
    """`err.code` -> `$."err"."code"` (every segment quoted, so any key name works)."""
    return "$." + ".".join('"' + seg.replace('"', '\\"') + '"' for seg in dotted.split("."))


class JsonLines:
    """`format = "jsonl"`: one JSON object per line."""

    name = "jsonl"

    def extraction(self, fields: dict[str, str]) -> Extraction:
        names = list(fields)
        if names:
            # One parse per line: json_extract_string raises on invalid JSON and try() makes
            # that NULL for that line alone (yyjson decides, as it does for json_valid).
            # Valid JSON that is not an object ("5", "[1]") gives a list of NULL fields;
            # its reject says so (shape_reason).
            paths = sql_list(json_path(fields[f]) for f in names)
            cols = "".join(f", j[{i + 1}] AS f_{f}" for i, f in enumerate(names))
            select = (
                f"SELECT n, line, j IS NOT NULL AS parsed{cols} FROM ("
                f"SELECT n, line, try(json_extract_string(line, [{paths}])) AS j FROM batch)"
            )
        else:
            select = "SELECT n, line, json_valid(line) AS parsed FROM batch"
        return Extraction(
            select=select,
            unparsed_reason="invalid JSON",
            shape_reason="CASE WHEN json_type(line) <> 'OBJECT' THEN "
            "'invalid JSON: not an object' END",
        )
