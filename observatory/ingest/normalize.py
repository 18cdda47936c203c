"""Compile a source's config into the two SQL statements that ingest a batch of its lines.

`insert_events` types, maps and classifies what the format extracted and appends the good
rows to `events`; `insert_rejects` writes every other non-blank line to `rejects` with the
reason. Both read lines from a query giving `(n, line)`: by default the source's staged
lines, registered as `stage(n, line)` with their blocks as `stage_blocks(first_n, end_n,
file, first_line)` (see `store.py`), or DuckDB's own reader over whole files (`wholefile.py`);
the formats see the lines as `batch(n, line)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from observatory.ingest.classify import outcome_sql, vendor_sql
from observatory.ingest.formats import get_format
from observatory.ingest.formats.presets import PRESETS
from observatory.util.sqltext import sql_str

if TYPE_CHECKING:
    from observatory.config import SourceConfig
    from observatory.ingest.formats.jsonl import Derive

from observatory.config import CANONICAL_COLUMNS as CANONICAL_FIELDS

LATENCY_FACTOR = {"ms": 1.0, "s": 1000.0, "us": 0.001}
# Timestamps outside this range are typos or mis-detected numbers, not events.
TS_MIN, TS_MAX = "2000-01-01", "2100-01-01"


# The staged lines and their blocks (store.py registers both).
STAGE = "SELECT n, line FROM stage"
STAGE_BLOCKS = "SELECT first_n, end_n, file, first_line FROM stage_blocks"
# Run a streaming `insert_events` with this optimizer off: pushing its WHERE down through
# the unmaterialised x would inline the parse and the timestamp into the filter and compute
# them twice per line. The setting is global to the database, so only where no reader runs
# beside the statement (a backfill), never in the live path.
STREAMING_DISABLED_OPTIMIZERS = "filter_pushdown"
# Named, not positional: a column added later sits wherever its migration put it.
_EVENT_COLUMNS = ", ".join(["ts", "ingested_at", "source", *CANONICAL_FIELDS[1:]])
_MATERIALIZED = "x AS MATERIALIZED "


@dataclass(frozen=True)
class SourceSQL:
    """The statements that ingest the lines of one source, over any query giving (n, line)."""

    source: str
    events_body: str
    rejects_body: str

    def insert_events(self, lines: str = STAGE, streaming: bool = False) -> str:
        """INSERT INTO events of the good rows among `lines` (`n` is not used). Their
        parsed fields are materialised first (memory in proportion to the lines); with
        `streaming` they are not, and the statement is to run with
        STREAMING_DISABLED_OPTIMIZERS."""
        body = self.events_body
        if streaming:
            assert body.startswith(_MATERIALIZED)
            body = "x AS NOT MATERIALIZED " + body.removeprefix(_MATERIALIZED)
        return f"WITH batch AS ({lines}), {body}"

    def insert_rejects(self, lines: str = STAGE, blocks: str = STAGE_BLOCKS) -> str:
        """INSERT INTO rejects of every other non-blank line; `blocks` (first_n, end_n,
        file, first_line) maps each `n` to its file and line number."""
        return f"WITH batch AS ({lines}), b AS ({blocks}), {self.rejects_body}"


@dataclass(frozen=True)
class FormatOptions:
    """A source's format settings after its preset is applied; `derived` and `skip` are a
    jsonl preset's (its computed columns, less those the user maps, and the lines it skips)."""

    pattern: str | None
    ts_format: str | None
    latency_unit: str
    derived: dict[str, Derive] = field(default_factory=dict)
    skip: Derive | None = None


def effective_fields(src: SourceConfig) -> tuple[dict[str, str], FormatOptions]:
    """(field mapping, format options) after presets; canonical names map to themselves.
    A column the user maps in `fields` or sets in `static` is theirs, not the preset's."""
    fields = {f: f for f in CANONICAL_FIELDS}
    opts = FormatOptions(src.pattern, src.ts_format, src.latency_unit)
    if src.preset:
        preset = PRESETS[src.preset]
        fields.update(preset.fields)
        derived = {
            f: derive
            for f, derive in preset.derived.items()
            if f not in src.fields and f not in src.static
        }
        # A latency the preset computes comes in its own unit; the user's latency_unit is
        # for a latency field they map themselves.
        unit_set = "latency_unit" in src.model_fields_set and "latency_ms" not in derived
        opts = FormatOptions(
            src.pattern or preset.pattern,
            src.ts_format or preset.ts_format,
            src.latency_unit if unit_set else preset.latency_unit,
            derived,
            preset.skip,
        )
    fields.update({str(k): v for k, v in src.fields.items()})
    for name in src.static:
        fields.pop(name, None)
    return fields, opts


def _ts_sql(ts_format: str | None) -> str:
    """Event time from the columns ts_txt and ts_int: explicit format, epoch s/ms/us/ns
    told apart by magnitude, or ISO-8601 / RFC 3339. Decimal epochs are rare, so their
    DOUBLE is cast where needed rather than for every row, and not at all for a text with
    a colon (no number has one; an ISO time does, and a failing cast costs more than the
    ISO cast)."""
    num = "TRY_CAST(ts_txt AS DOUBLE)"
    # Epochs before 1970 are out of range anyway; comparing ranges (not abs()) cannot
    # overflow on -2^63.
    epoch = (
        "CASE WHEN ts_int IS NOT NULL THEN CASE "
        "WHEN ts_int <= 0 THEN NULL "
        "WHEN ts_int < 100000000000 THEN make_timestamptz(ts_int * 1000000) "
        "WHEN ts_int < 100000000000000 THEN make_timestamptz(ts_int * 1000) "
        "WHEN ts_int < 100000000000000000 THEN make_timestamptz(ts_int) "
        "ELSE make_timestamptz(ts_int // 1000) END "
        f"WHEN NOT contains(ts_txt, ':') AND {num} > 0 AND {num} < 1e19 THEN CASE "
        f"WHEN {num} < 1e11 THEN make_timestamptz(CAST({num} * 1e6 AS BIGINT)) "
        f"WHEN {num} < 1e14 THEN make_timestamptz(CAST({num} * 1e3 AS BIGINT)) "
        f"WHEN {num} < 1e17 THEN make_timestamptz(CAST({num} AS BIGINT)) "
        f"ELSE make_timestamptz(CAST({num} / 1e3 AS BIGINT)) END "
        "ELSE TRY_CAST(ts_txt AS TIMESTAMPTZ) END"
    )
    if ts_format:
        return f"coalesce(try_strptime(ts_txt, {sql_str(ts_format)})::TIMESTAMPTZ, {epoch})"
    return epoch


def _small_int(raw: str) -> str:
    """ "200" and "200.0" alike; the second cast only runs where the first failed."""
    return f"coalesce(TRY_CAST({raw} AS SMALLINT), TRY_CAST(TRY_CAST({raw} AS DOUBLE) AS SMALLINT))"


def _mapped(field: str, raw: str, src: SourceConfig) -> str:
    static = {str(k): v for k, v in src.static.items()}
    if field in static:
        return sql_str(static[field])
    expr = f"nullif({raw}, '')"
    mapping = {str(k): v for k, v in src.map.items()}.get(field)
    if mapping:
        arms = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in mapping.items())
        expr = f"(CASE {expr} {arms} ELSE {expr} END)"
    return expr


def compile_source(src: SourceConfig, vendors: dict[str, str]) -> SourceSQL:
    """Both statements for `src`; `vendors` maps configured destination -> vendor."""
    fields, opts = effective_fields(src)
    fmt = get_format(src.format, opts.pattern, opts.derived, opts.skip)
    extraction = fmt.extraction(fields)
    factor = LATENCY_FACTOR[opts.latency_unit]
    name = sql_str(src.name)
    m = {f: _mapped(f, f"f_{f}" if f in fields else "NULL::VARCHAR", src) for f in CANONICAL_FIELDS}

    # Two layers: `x` extracts and casts (materialised, because DuckDB would otherwise
    # inline it into the filters it pushes down and parse every line, or cast every value,
    # again; see SourceSQL.insert_events for the other way); the outer layer only combines
    # the columns x computed, so nothing is computed twice (a column named in the same
    # SELECT would be its whole expression again). Events need neither `n` nor `line`.
    def layers(keep: str) -> str:
        return (
            f"{_MATERIALIZED}(SELECT {keep}parsed, {extraction.skipped} AS skipped, ts_txt, "
            f"{_ts_sql(opts.ts_format)} AS ts0, "
            "destination, event_name, message_id, outcome_raw, http_status, error_code, "
            "code_u, error_message, latency_num, attempt, rate_used FROM ("
            "SELECT *, "
            "CASE WHEN NOT contains(ts_txt, '.') AND NOT contains(ts_txt, ':') "
            "THEN TRY_CAST(ts_txt AS BIGINT) END AS ts_int, "
            f"{m['destination']} AS destination, {m['event_name']} AS event_name, "
            f"{m['message_id']} AS message_id, {m['outcome']} AS outcome_raw, "
            f"{_small_int(m['http_status'])} AS http_status, "
            f"{m['error_code']} AS error_code, upper({m['error_code']}) AS code_u, "
            f"{m['error_message']} AS error_message, "
            f"TRY_CAST({m['latency_ms']} AS DOUBLE) AS latency_num, "
            f"{_small_int(m['attempt'])} AS attempt, "
            f"TRY_CAST({m['rate_limit_used']} AS DOUBLE) AS rate_used "
            f"FROM (SELECT *, {m['ts']} AS ts_txt FROM ({extraction.select})))) "
        )

    typed = (
        "SELECT *, "
        f"CASE WHEN ts0 >= TIMESTAMPTZ '{TS_MIN}' AND ts0 < TIMESTAMPTZ '{TS_MAX}' "
        "THEN ts0 END AS ts, "
        f"CASE WHEN isfinite(latency_num) THEN latency_num * {factor} END AS latency_ms, "
        "CASE WHEN isfinite(rate_used) AND rate_used >= 0 THEN rate_used END "
        "AS rate_limit_used "
        "FROM x"
    )
    # The vendor is only looked at for rows that carry a code.
    vendor = vendor_sql("destination", vendors)
    outcome = outcome_sql("outcome_raw", "http_status", "code_u", "error_message", vendor)
    events = (
        f"{layers('')}INSERT INTO events ({_EVENT_COLUMNS}) SELECT ts, now(), {name}, "
        f"destination, event_name, message_id, {outcome}, http_status, error_code, "
        f"error_message, latency_ms, attempt, rate_limit_used "
        f"FROM ({typed}) "
        "WHERE parsed AND NOT skipped AND ts IS NOT NULL AND destination IS NOT NULL"
    )
    ts_key = sql_str(fields.get("ts", "ts"))
    dest_key = sql_str(fields.get("destination", "destination"))
    reason = (
        "CASE WHEN NOT parsed THEN "
        f"coalesce({extraction.unparsed_detail}, {sql_str(extraction.unparsed_reason)}) "
        "WHEN skipped THEN NULL "
        f"WHEN ({extraction.shape_reason}) IS NOT NULL THEN {extraction.shape_reason} "
        f"WHEN ts_txt IS NULL THEN 'missing field ts (' || {ts_key} || ')' "
        "WHEN ts IS NULL THEN 'unparseable or implausible timestamp: ' || left(ts_txt, 64) "
        f"WHEN destination IS NULL THEN 'missing field destination (' || {dest_key} || ')' END"
    )
    rejects = (
        f"{layers('n, line, ')}INSERT INTO rejects "
        f"SELECT now(), {name}, b.file, b.first_line + r.n - b.first_n, "
        "r.reason, left(rtrim(r.line, chr(10) || chr(13)), 1024) "
        f"FROM (SELECT n, line, {reason} AS reason FROM ({typed})) r "
        "JOIN b ON r.n >= b.first_n AND r.n < b.end_n "
        "WHERE r.reason IS NOT NULL AND trim(r.line, ' ' || chr(9) || chr(10) || chr(13)) <> ''"
    )
    return SourceSQL(src.name, events, rejects)
