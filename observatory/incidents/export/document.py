"""Incident export for the postmortem: Markdown, JSON, CSV (the timeline) and HTML.

`export_incident(con, incident, fmt)` is what both `observatory export` and the UI call.
Markdown and HTML are rendered from one document model, so they carry the same content; the
HTML adds an inline SVG chart of delivered / failed / rate-limited events per second around
the incident, read from `events` on `con`.

Exports carry the incident and aggregates of events only: no configuration, no event
payloads. Values that look like credentials (an `Authorization` key, a `Bearer ...` value,
a URL's query string or user info) are redacted even from evidence. Text from logs and APIs
is untrusted: HTML-escaped in HTML; in Markdown, ANSI escapes and control characters are
removed and the characters that make markup (`<`, `[`, `|`, ...) backslash-escaped.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import orjson

from observatory.incidents.model import Incident, iso
from observatory.util.durations import format_duration

Format = Literal["md", "json", "csv", "html"]
FORMATS: tuple[str, ...] = ("md", "json", "csv", "html")

# Impact keys the engine fills in, each with the names it may have (others are shown too,
# after these).
IMPACT_LABELS: dict[str, str] = {
    "not_delivered": "Events not delivered (estimate)",
    "failed": "Failed",
    "rate_limited": "Rate-limited (429)",
    "rejected": "Rejected",
}
IMPACT_ALIASES: dict[str, tuple[str, ...]] = {
    "not_delivered": ("not_delivered", "not_delivered_est", "not_delivered_estimate"),
}
PRE_ONSET_S = 300.0  # chart margin, and the baseline window for the not-delivered estimate
MAX_POINTS = 600  # x positions of the chart at most
SHORT_CELL = 40  # characters: HTML table columns up to this long shrink to fit

# --------------------------------------------------------------------------- sanitizing

# CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_SPACES = re.compile(r"[\t\n\r\v\f]+")
# Other C0/C1 controls, and bidirectional overrides that reorder what a reader sees.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SECRET_KEY = re.compile(
    r"(?:^|[_\-. ])(?:authorization|cookie|set[_-]cookie|password|passwd|secret|token|"
    r"api[_-]?key|apikey|access[_-]?key|private[_-]?key|signature|credentials?)$",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"^\s*(?:bearer|basic|token|digest)\s+\S+", re.IGNORECASE)
_URL = re.compile(r"\b(https?://)(?:[^\s/@]+@)?([^\s?#]*)(\?[^\s#]*)?", re.IGNORECASE)
REDACTED = "[redacted]"


def clean_text(text: Any) -> str:
    """One line of plain text: ANSI escapes and control characters out, whitespace runs
    (newlines too) become one space, URLs lose their user info and query string."""
    s = _ANSI.sub("", str(text))
    s = _CONTROLS.sub("", _SPACES.sub(" ", s))
    return scrub_urls(s).strip()


def scrub_urls(text: str) -> str:
    """URLs without user info or query strings (where tokens travel)."""
    return _URL.sub(
        lambda m: m.group(1) + m.group(2) + ("?" + REDACTED if m.group(3) else ""), text
    )


def redact(value: Any, key: str = "") -> Any:
    """`value` (evidence, impact) with credential-looking keys and values replaced."""
    if key and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return REDACTED if _SECRET_VALUE.match(value) else scrub_urls(value)
    return value


def md_escape(text: Any, line_start: bool = False) -> str:
    """Untrusted text for inline Markdown: one line, no controls, no markup. With
    `line_start`, text that would begin a heading, list or rule is escaped too."""
    s = re.sub(r"([\\`*<>\[\]|])", r"\\\1", clean_text(text))
    if line_start:
        s = re.sub(r"^(\d+)([.)])", r"\1\\\2", s)
        s = re.sub(r"^([#+\-=])", r"\\\1", s)
    return s


def html_escape(text: Any) -> str:
    """Untrusted text for HTML (text or a quoted attribute); `://` as an entity so nothing
    in the file reads as a URL reference."""
    return html.escape(clean_text(text), quote=True).replace("://", "&#58;//")


def _csv_cell(text: Any) -> str:
    s = clean_text(text)
    # A spreadsheet would run a cell starting like a formula.
    return "'" + s if s[:1] in ("=", "+", "-", "@") else s


# --------------------------------------------------------------------------- formatting


def fmt_time(ts: float | None) -> str:
    return iso(ts) or "n/a"


def _fmt_number(value: float, key: str = "") -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    k = key.lower()
    if any(w in k for w in ("ratio", "share", "fraction", "wilson")) and 0 <= value <= 1:
        return f"{value * 100:.2f} %"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.4g}"


def fmt_value(value: Any, key: str = "") -> str:
    """A scalar (or a short list of scalars) as text."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | int | float):
        return _fmt_number(value, key)
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v, key) for v in value)
    return str(value)


_LABELS = {
    "retry_after": "Retry-After",
    "retry_after_s": "Retry-After (s)",
    "p50": "p50",
    "p95": "p95",
    "p99": "p99",
    "top_errors": "Top errors",
    "wilson": "Wilson interval",
    "wilson95": "Wilson 95 % interval",
    "h": "CUSUM threshold h",
    "statistic": "CUSUM statistic",
    "p0": "p0 (baseline)",
    "p1": "p1 (tested)",
    "http_status": "HTTP status",
}


def label(key: str) -> str:
    """`error_ratio` -> `Error ratio`, `p95_ms` -> `p95 (ms)`."""
    if key in _LABELS:
        return _LABELS[key]
    if "-" in key and "_" not in key:
        return key  # a header name: x-ratelimit-remaining
    unit = ""
    for suffix, name in (("_per_s", "per s"), ("_ms", "ms"), ("_s", "s"), ("_pct", "%")):
        if key.endswith(suffix) and len(key) > len(suffix):
            key, unit = key[: -len(suffix)], f" ({name})"
            break
    text = _LABELS.get(key, key.replace("_", " ").replace("-", " ").strip())
    return (text[:1].upper() + text[1:] if not re.match(r"p\d", text) else text) + unit


# --------------------------------------------------------------------------- document model


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class KeyValues:
    rows: list[tuple[str, str]]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)
    wide: int | None = None  # the column that takes the page's width (HTML)


@dataclass
class Bullets:
    items: list[tuple[str, Bullets | None]]


@dataclass
class Checklist:
    items: list[str]


@dataclass
class ChartBlock:
    svg: str  # trusted: built here from numbers, with untrusted text escaped


Block = Heading | Para | KeyValues | Table | Bullets | Checklist | ChartBlock


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _short_list(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) <= 8 and all(_is_scalar(x) for x in v)


def _flat_dict(v: Any) -> bool:
    return isinstance(v, dict) and all(_is_scalar(x) or _short_list(x) for x in v.values())


def _tree(value: Any, key: str = "") -> Bullets:
    """Any nested value as a bullet tree."""
    items: list[tuple[str, Bullets | None]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if _is_scalar(v) or _short_list(v):
                items.append((f"{label(str(k))}: {fmt_value(v, str(k))}", None))
            else:
                items.append((label(str(k)), _tree(v, str(k))))
    elif isinstance(value, list | tuple):
        for v in value:
            if _is_scalar(v) or _short_list(v):
                items.append((fmt_value(v, key), None))
            else:
                items.append(("-", _tree(v, key)))
    else:
        items.append((fmt_value(value, key), None))
    return Bullets(items)


def value_blocks(value: Any, key: str = "") -> list[Block]:
    """A nested evidence value: flat dicts as key/value tables, lists of flat dicts as
    tables, anything deeper as bullet lists."""
    if isinstance(value, dict):
        if all(_is_scalar(v) or _short_list(v) for v in value.values()):
            return [KeyValues([(label(str(k)), fmt_value(v, str(k))) for k, v in value.items()])]
        if value and all(_flat_dict(v) for v in value.values()):
            # {detector: {field: value}}: one column per entry, one row per field.
            names = [str(k) for k in value]
            fields: list[str] = []
            for v in value.values():
                fields += [str(f) for f in v if str(f) not in fields]
            rows = [
                [label(f), *(fmt_value(v[f], f) if f in v else "" for v in value.values())]
                for f in fields
            ]
            return [Table(["", *(label(n) for n in names)], rows)]
        return [_tree(value, key)]
    if isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
        rows_in: list[dict[str, Any]] = list(value)
        if all(_is_scalar(x) or _short_list(x) for r in rows_in for x in r.values()):
            cols: list[str] = []
            for r in rows_in:
                cols += [str(k) for k in r if str(k) not in cols]
            rows = [[fmt_value(r.get(c), c) if c in r else "" for c in cols] for r in rows_in]
            numeric = [
                all(isinstance(r.get(c), int | float) or c not in r for r in rows_in) for c in cols
            ]
            return [Table([label(c) for c in cols], rows, numeric)]
    if isinstance(value, list | tuple) and not _short_list(value):
        return [_tree(value, key)]
    return [Para(fmt_value(value, key))]


def evidence_blocks(evidence: dict[str, Any]) -> list[Block]:
    if not evidence:
        return [Para("No evidence was recorded.")]
    flat = [(k, v) for k, v in evidence.items() if _is_scalar(v) or _short_list(v)]
    blocks: list[Block] = []
    if flat:
        blocks.append(KeyValues([(label(k), fmt_value(v, k)) for k, v in flat]))
    for k, v in evidence.items():
        if not (_is_scalar(v) or _short_list(v)):
            blocks.append(Heading(label(k), 3))
            blocks += value_blocks(v, k)
    return blocks


# --------------------------------------------------------------------------- numbers


@dataclass
class Window:
    """The incident's span for impact numbers: onset to resolved (or the last event)."""

    start: float
    end: float
    ongoing: bool


def _q(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[Any]:
    try:
        return con.execute(sql, params).fetchall()
    except duckdb.CatalogException:  # a database without an events table
        return []


def last_event(con: duckdb.DuckDBPyConnection) -> float | None:
    """The newest event time in the database: as far as anything is known."""
    rows = _q(con, "SELECT epoch_us(max(ts)) FROM events", [])
    return rows[0][0] / 1e6 if rows and rows[0][0] is not None else None


def incident_window(con: duckdb.DuckDBPyConnection, incident: Incident) -> Window:
    """Onset to resolution; while unresolved, onset to the newest event of any destination
    (a silent destination has no events of its own to say how long the silence lasted)."""
    if incident.resolved_at is not None:
        return Window(incident.onset, incident.resolved_at, False)
    last = last_event(con)
    end = max(incident.detected_at, incident.onset, last or incident.onset)
    return Window(incident.onset, end, True)


def outcome_counts(
    con: duckdb.DuckDBPyConnection, destination: str, start: float, end: float
) -> dict[str, int]:
    rows = _q(
        con,
        "SELECT outcome::VARCHAR, count(*) FROM events WHERE destination = ? "
        "AND ts >= to_timestamp(?) AND ts < to_timestamp(?) GROUP BY 1",
        [destination, start, end],
    )
    return {str(o): int(n) for o, n in rows}


def impact_rows(
    con: duckdb.DuckDBPyConnection, incident: Incident, window: Window
) -> list[tuple[str, str]]:
    """The incident's impact numbers; what the engine did not record is counted from
    `events` over the incident's window (and said so)."""
    impact = redact(incident.impact)
    counted: dict[str, int] | None = None
    rows: list[tuple[str, str]] = []
    shown: set[str] = set()
    for key, name in IMPACT_LABELS.items():
        found = next((k for k in IMPACT_ALIASES.get(key, (key,)) if k in impact), None)
        if found is not None:
            rows.append((name, fmt_value(impact[found], found)))
            shown.add(found)
            continue
        if counted is None:
            counted = outcome_counts(con, incident.destination, window.start, window.end)
        if key == "not_delivered":
            rows.append((name, _not_delivered_estimate(con, incident, window, counted)))
        else:
            rows.append((name, f"{counted.get(key, 0):,} (counted from captured events)"))
    duration = window.end - window.start
    rows.append(
        (
            "Duration",
            format_duration(duration, long=True) + (" so far (ongoing)" if window.ongoing else ""),
        )
    )
    rows += [(label(k), fmt_value(v, k)) for k, v in impact.items() if k not in shown]
    return rows


def _not_delivered_estimate(
    con: duckdb.DuckDBPyConnection, incident: Incident, window: Window, counted: dict[str, int]
) -> str:
    before = outcome_counts(
        con, incident.destination, window.start - PRE_ONSET_S, window.start
    ).get("delivered", 0)
    if not before:
        return "unknown (no deliveries captured before the onset)"
    expected = before / PRE_ONSET_S * (window.end - window.start)
    lost = max(0, round(expected - counted.get("delivered", 0)))
    baseline = format_duration(PRE_ONSET_S, long=True, coarse=True)
    return f"≈ {lost:,} (from captured events; baseline: the {baseline} before the onset)"


# --------------------------------------------------------------------------- the document


def _detectors(incident: Incident) -> list[str]:
    return [d for d in dict.fromkeys([incident.detector, *incident.detectors]) if d]


def title(incident: Incident) -> str:
    return f"Incident {incident.id}: {incident.destination} ({', '.join(_detectors(incident))})"


def _find_scalar(value: Any, word: str) -> Any:
    """The first scalar under a key containing `word`, searching nested dicts."""
    if isinstance(value, dict):
        for k, v in value.items():
            if word in str(k).lower() and _is_scalar(v):
                return v
        for v in value.values():
            found = _find_scalar(v, word)
            if found is not None:
                return found
    return None


def action_items(incident: Incident, evidence: dict[str, Any], ttd: float) -> list[str]:
    """Prompts for the postmortem's action items, by what was detected."""
    dest = clean_text(incident.destination)
    found = set(_detectors(incident))
    items = [f"Confirm the root cause of the interruption at {dest} and record it here."]
    if "rate_limit" in found:
        retry = _find_scalar(evidence, "retry")
        seen = f" (Retry-After seen: {fmt_value(retry)})" if retry not in (None, "") else ""
        items.append(
            f"Check the current rate limits and quota of {dest}{seen}; size the forwarder's "
            "concurrency and batching to them, and make it back off on 429 and honour "
            "Retry-After."
        )
    if "error_rate" in found:
        items.append(
            "Take the top error codes above to the vendor's documentation or support; fix "
            "requests that are rejected, retry only what can succeed."
        )
    if found & {"silence", "volume_drop"}:
        items.append(
            "Find where events stopped (upstream source, forwarder, credentials, deploys) and "
            "add a heartbeat or health check at that point."
        )
    if "latency" in found:
        items.append("Find what slowed deliveries down and set timeouts that match it.")
    if "probe" in found:
        items.append("Link the vendor's status incident and subscribe to its status updates.")
    items += [
        "Re-send the conversions that were not delivered (observatory reconcile) within the "
        "platform's attribution window.",
        f"Time to detect was {format_duration(ttd, long=True)}: check the alert reached the "
        "on-call person and that the runbook step was clear.",
        "Tell the advertisers and campaign owners whose optimisation ran without conversions.",
    ]
    return items


def build_document(
    con: duckdb.DuckDBPyConnection, incident: Incident, chart: str | None = None
) -> list[Block]:
    """The postmortem: Summary, Impact, (chart), Detection, Timeline, Evidence, Actions."""
    evidence = redact(incident.evidence)
    window = incident_window(con, incident)
    ttd = incident.detected_at - incident.onset
    ttr = None if incident.resolved_at is None else incident.resolved_at - incident.detected_at
    detectors = _detectors(incident)
    others = ", ".join(detectors[1:])
    doc: list[Block] = [Heading(title(incident), 1), Heading("Summary")]
    doc.append(Para(incident.summary or "No summary was recorded."))
    doc.append(
        KeyValues(
            [
                ("Incident", incident.id),
                ("Destination", incident.destination),
                ("State", incident.state),
                ("Severity", incident.severity),
                ("Onset", fmt_time(incident.onset)),
                (
                    "Duration",
                    format_duration(window.end - window.start, long=True)
                    + (" so far" if window.ongoing else ""),
                ),
            ]
        )
    )
    if incident.historical:
        doc.append(Para("Detected while reading history: no live alert was sent."))
    doc += [Heading("Impact"), KeyValues(impact_rows(con, incident, window))]
    if chart is not None:
        doc += [Heading("Delivery around the incident"), ChartBlock(chart)]
    doc += [
        Heading("Detection"),
        KeyValues(
            [
                ("Detector", f"{detectors[0]}" + (f" (then also {others})" if others else "")),
                ("Onset (estimated)", fmt_time(incident.onset)),
                ("Detected at", fmt_time(incident.detected_at)),
                ("Time to detect", format_duration(ttd, long=True)),
                (
                    "Acknowledged at",
                    fmt_time(incident.acknowledged_at)
                    if incident.acknowledged_at is not None
                    else "not acknowledged",
                ),
                (
                    "Resolved at",
                    fmt_time(incident.resolved_at)
                    if incident.resolved_at is not None
                    else "not resolved",
                ),
                (
                    "Time to resolve (detected to resolved)",
                    format_duration(ttr, long=True) if ttr is not None else "n/a (not resolved)",
                ),
                ("Flaps (re-fired within 15 min)", f"{incident.flaps:,}"),
            ]
        ),
        Heading("Timeline"),
    ]
    if incident.timeline:
        rows = [
            [fmt_time(e.ts), e.kind, e.detail]
            for e in sorted(incident.timeline, key=lambda e: e.ts)
        ]
        doc.append(Table(["Time (UTC)", "Kind", "Detail"], rows, [False, False, False], wide=2))
    else:
        doc.append(Para("No timeline entries."))
    doc += [Heading("Evidence"), *evidence_blocks(evidence)]
    doc += [Heading("Action items"), Checklist(action_items(incident, evidence, ttd))]
    doc.append(Para(f"Exported by Observatory from incident {incident.id}. Times are UTC."))
    return doc


# --------------------------------------------------------------------------- Markdown


def _md_table(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    def cell(t: str) -> str:
        return md_escape(t) or " "

    aligns = [
        ("---:" if numeric[i] else "---") if i < len(numeric) else "---"
        for i in range(len(headers))
    ]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(aligns) + " |"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def _md_bullets(b: Bullets, depth: int = 0) -> list[str]:
    out: list[str] = []
    for text, children in b.items:
        out.append("  " * depth + "- " + md_escape(text))
        if children is not None:
            out += _md_bullets(children, depth + 1)
    return out


def render_markdown(doc: Iterable[Block]) -> str:
    parts: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + md_escape(block.text))
        elif isinstance(block, Para):
            parts.append(md_escape(block.text, line_start=True))
        elif isinstance(block, KeyValues):
            parts.append("\n".join(f"- **{md_escape(k)}:** {md_escape(v)}" for k, v in block.rows))
        elif isinstance(block, Table):
            parts.append("\n".join(_md_table(block.headers, block.rows, block.numeric)))
        elif isinstance(block, Bullets):
            parts.append("\n".join(_md_bullets(block)))
        elif isinstance(block, Checklist):
            parts.append("\n".join(f"- [ ] {md_escape(t)}" for t in block.items))
        # ChartBlock: HTML only
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- HTML

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 16px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 8px 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 8px 0; background: #fff; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; }
table.kv th { min-width: 220px; white-space: nowrap; }
table.full { width: 100%; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.fit, th.fit { width: 1%; white-space: nowrap; }
ul { margin: 6px 0; padding-left: 24px; }
ul.checklist { list-style: none; padding-left: 4px; }
ul.checklist li { margin: 4px 0; }
ul.checklist label { display: flex; gap: 8px; align-items: baseline; }
figure { margin: 8px 0; background: #fff; border: 1px solid #d0d7de; padding: 8px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { font-size: 13px; color: #57606a; margin-top: 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px;
  font-weight: 600; color: #fff; background: #57606a; margin-right: 6px; vertical-align: 2px; }
.sev-critical { background: #b91c1c; } .sev-error { background: #c2410c; }
.sev-warning { background: #a16207; } .st-resolved { background: #15803d; }
.st-open { background: #b91c1c; } .st-acknowledged { background: #1d4ed8; }
footer, .footer { color: #57606a; font-size: 13px; }
@media print { body { background: #fff; } figure { break-inside: avoid; } }
"""


def _html_bullets(b: Bullets) -> str:
    out = ["<ul>"]
    for text, children in b.items:
        inner = _html_bullets(children) if children is not None else ""
        out.append(f"<li>{html_escape(text)}{inner}</li>")
    out.append("</ul>")
    return "".join(out)


def _html_table(block: Table) -> str:
    # A table with long text spans the page, that column taking the width and short
    # columns shrinking to fit; a table of short values stays as narrow as they are.
    n = len(block.headers)
    longest = [max((len(r[i]) for r in block.rows if i < len(r)), default=0) for i in range(n)]
    wide = block.wide
    if wide is None and n and max(longest) > SHORT_CELL:
        wide = max(range(n), key=lambda i: longest[i])
    classes = []
    for i in range(n):
        names = ["num"] if i < len(block.numeric) and block.numeric[i] else []
        if wide is not None and i != wide and longest[i] <= SHORT_CELL:
            names.append("fit")
        classes.append(f' class="{" ".join(names)}"' if names else "")
    head = "".join(f"<th{classes[i]}>{html_escape(h)}</th>" for i, h in enumerate(block.headers))
    body = []
    for row in block.rows:
        cells = "".join(f"<td{classes[i]}>{html_escape(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table class="data{" full" if wide is not None else ""}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def render_html(doc: list[Block], incident: Incident) -> str:
    parts: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            lvl = block.level
            if lvl == 1:
                badges = (
                    f'<span class="badge sev-{html_escape(incident.severity)}">'
                    f"{html_escape(incident.severity)}</span>"
                    f'<span class="badge st-{html_escape(incident.state)}">'
                    f"{html_escape(incident.state)}</span>"
                )
                parts.append(f"<h1>{badges}{html_escape(block.text)}</h1>")
            else:
                parts.append(f"<h{lvl}>{html_escape(block.text)}</h{lvl}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{html_escape(block.text)}</p>")
        elif isinstance(block, KeyValues):
            rows = "".join(
                f"<tr><th>{html_escape(k)}</th><td>{html_escape(v)}</td></tr>"
                for k, v in block.rows
            )
            parts.append(f'<table class="kv">{rows}</table>')
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Bullets):
            parts.append(_html_bullets(block))
        elif isinstance(block, Checklist):
            items = "".join(
                f'<li><label><input type="checkbox">{html_escape(t)}</label></li>'
                for t in block.items
            )
            parts.append(f'<ul class="checklist">{items}</ul>')
        elif isinstance(block, ChartBlock):
            parts.append(block.svg)
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        # Nothing in this file may load or run anything: it is opened from mail and wikis.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html_escape(title(incident))}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- the chart

# Bucket widths and time-axis tick spacings, seconds.
# fmt: off
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
              43200, 86400)
# fmt: on
SERIES = (
    ("delivered", "delivered", "#2563eb"),
    ("failed", "failed + rejected", "#dc2626"),
    ("rate_limited", "rate-limited (429)", "#f59e0b"),
)


@dataclass
class ChartData:
    """Events per second of one destination, in buckets of `step` seconds from `start`."""

    destination: str
    start: int  # epoch seconds of the first bucket
    step: int  # bucket width, seconds
    delivered: list[float]
    failed: list[float]  # failed + rejected
    rate_limited: list[float]

    @property
    def end(self) -> int:
        return self.start + self.step * len(self.delivered)


def chart_data(
    con: duckdb.DuckDBPyConnection, destination: str, start: float, end: float
) -> ChartData:
    """Per-second rates of `destination` over [start, end): one GROUP BY over `events`,
    in buckets wide enough for at most MAX_POINTS of them; empty buckets are zeros."""
    span = max(end - start, 1.0)
    step = next((s for s in NICE_STEPS if span / s <= MAX_POINTS), NICE_STEPS[-1])
    first = int(math.floor(start / step) * step)
    n = max(1, math.ceil((end - first) / step))
    series: dict[str, list[float]] = {k: [0.0] * n for k, _, _ in SERIES}
    rows = _q(
        con,
        "SELECT epoch_us(ts) // ? AS b, "
        "count(*) FILTER (WHERE outcome = 'delivered'), "
        "count(*) FILTER (WHERE outcome IN ('failed', 'rejected')), "
        "count(*) FILTER (WHERE outcome = 'rate_limited') "
        "FROM events WHERE destination = ? AND ts >= to_timestamp(?) AND ts < to_timestamp(?) "
        "GROUP BY 1",
        [step * 1_000_000, destination, float(first), float(first + n * step)],
    )
    for b, delivered, failed, limited in rows:
        i = int(b) - first // step
        if 0 <= i < n:
            series["delivered"][i] = delivered / step
            series["failed"][i] = failed / step
            series["rate_limited"][i] = limited / step
    return ChartData(
        destination, first, step, series["delivered"], series["failed"], series["rate_limited"]
    )


def chart_for(con: duckdb.DuckDBPyConnection, incident: Incident, window: Window) -> ChartData:
    """The chart's data: 5 min before the onset to 5 min after the resolution (or the last
    event, or the detection when the destination went silent)."""
    end = max(window.end, incident.detected_at)
    return chart_data(con, incident.destination, window.start - PRE_ONSET_S, end + PRE_ONSET_S)


def _nice_ceiling(value: float) -> tuple[float, float]:
    """An axis top >= value and its tick step (4 to 7 ticks)."""
    if value <= 0:
        return 1.0, 0.2
    raw = value / 6
    mag = 10 ** math.floor(math.log10(raw))
    # 1-2-5 steps only: a 2.5 step would put 7.5 on an axis of whole events.
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return math.ceil(value / step - 1e-9) * step, step


def _anchor(xx: float, left: float, right: float, width: float) -> str:
    """Text anchor for a label at `xx` about `width` wide, kept inside [left, right]."""
    if xx - left < width / 2:
        return "start"
    return "end" if right - xx < width / 2 else "middle"


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _num(v: float, step: float) -> str:
    """A tick value with as many decimals as a 1-2-5 `step` needs."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{v:,.{decimals}f}"


def render_chart(data: ChartData, incident: Incident, window: Window) -> str:
    """An inline SVG: three lines with a legend, time and count axes, the incident shaded
    over `window` (onset to resolution, or to the last event while ongoing) and a marker at
    the detection."""
    W, H = 1120, 440
    left, right, top, bottom = 76, W - 28, 78, H - 58
    pw, ph = right - left, bottom - top
    t0, t1 = float(data.start), float(data.end)
    bucket = format_duration(data.step, long=True, coarse=True)  # "2 s", "1 min"

    def x(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / (t1 - t0) * pw

    peak = max([*data.delivered, *data.failed, *data.rate_limited, 0.0])
    ymax, ystep = _nice_ceiling(peak)

    def y(v: float) -> float:
        return bottom - v / ymax * ph

    out: list[str] = []
    dest = html_escape(data.destination)
    out.append(
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="Events per second at {dest} around the incident" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif" '
        'font-size="13">'
    )
    out.append(f"<title>Events per second at {dest} around the incident</title>")
    out.append(f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>')

    # The incident span, behind everything else.
    xa, xb = x(window.start), x(window.end)
    out.append(
        f'<rect x="{xa:.1f}" y="{top}" width="{max(xb - xa, 1.5):.1f}" height="{ph}" '
        'fill="#fecaca" fill-opacity="0.45"/>'
    )

    # Grid and y axis.
    for i in range(round(ymax / ystep) + 1):
        v = i * ystep
        yy = y(v)
        out.append(
            f'<line x1="{left}" x2="{right}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{"#8c959f" if v == 0 else "#e5e7eb"}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 8}" y="{yy + 4:.1f}" text-anchor="end" fill="#424a53">'
            f"{_num(v, ystep)}</text>"
        )
    unit = "events/s" if data.step == 1 else f"events/s (mean per {bucket})"
    out.append(
        f'<text transform="translate(18 {top + ph / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#424a53">{html_escape(unit)}</text>'
    )

    # Time axis: ticks on round times, at most 10 of them.
    span = t1 - t0
    tick = next((s for s in NICE_STEPS if span / s <= 10), NICE_STEPS[-1])
    t = math.ceil(t0 / tick) * tick
    out.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8c959f"/>')
    while t <= t1:
        xx = x(t)
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{bottom + 5}" '
            'stroke="#e5e7eb" stroke-width="1"/>'
        )
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{bottom}" y2="{bottom + 5}" stroke="#8c959f"/>'
        )
        out.append(
            f'<text x="{xx:.1f}" y="{bottom + 20}" text-anchor="middle" fill="#424a53">'
            f"{_hms(t)}</text>"
        )
        t += tick
    d0 = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d")
    d1 = datetime.fromtimestamp(t1, UTC).strftime("%Y-%m-%d")
    days = d0 if d0 == d1 else f"{d0} to {d1}"
    out.append(
        f'<text x="{left + pw / 2:.0f}" y="{H - 12}" text-anchor="middle" fill="#424a53">'
        f"time (UTC), {days}</text>"
    )

    # The series; delivered last, on top: where it falls to zero, that is what shows.
    for key, name, colour in reversed(SERIES):
        values: list[float] = getattr(data, key)
        pts = " ".join(
            f"{x(data.start + (i + 0.5) * data.step):.1f},{y(val):.1f}"
            for i, val in enumerate(values)
        )
        out.append(
            f'<polyline class="series" data-series="{key}" points="{pts}" fill="none" '
            f'stroke="{colour}" stroke-width="2" stroke-linejoin="round">'
            f"<title>{html_escape(name)}</title></polyline>"
        )

    # Onset and resolution labelled above the plot at the span's edges (so they never
    # collide with the detection label inside it), the detection marker and its label.
    onset_label = f"onset {_hms(window.start)}"
    out.append(
        f'<text x="{xa:.1f}" y="{top - 8}" text-anchor="{_anchor(xa, left, right, 110)}" '
        f'fill="#991b1b" font-weight="600">{onset_label}</text>'
    )
    if xb - xa > 230:
        end_label = "last data" if window.ongoing else "resolved"
        out.append(
            f'<text x="{xb:.1f}" y="{top - 8}" text-anchor="{_anchor(xb, left, right, 130)}" '
            f'fill="#991b1b" font-weight="600">{end_label} {_hms(window.end)}</text>'
        )
    xd = x(incident.detected_at)
    ttd = format_duration(incident.detected_at - incident.onset, long=True)
    out.append(
        f'<line x1="{xd:.1f}" x2="{xd:.1f}" y1="{top}" y2="{bottom}" stroke="#6d28d9" '
        'stroke-width="2" stroke-dasharray="6 4"/>'
    )
    far_right = right - xd < 240
    out.append(
        f'<text x="{xd - 6 if far_right else xd + 6:.1f}" y="{top + 18}" '
        f'text-anchor="{"end" if far_right else "start"}" fill="#6d28d9" font-weight="600">'
        f"detected {_hms(incident.detected_at)} (+{html_escape(ttd)})</text>"
    )
    if peak == 0:
        out.append(
            f'<text x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}" text-anchor="middle" '
            'fill="#57606a">no events captured for this destination in this window</text>'
        )

    # Legend, one row above the plot (text widths estimated: no layout engine here).
    lx = float(left)
    span_name = "incident (ongoing)" if window.ongoing else "incident (onset to resolved)"
    legend = [
        *((name, f'stroke="{colour}" stroke-width="3"') for _, name, colour in SERIES),
        (span_name, ""),
        ("detected", 'stroke="#6d28d9" stroke-width="2" stroke-dasharray="6 4"'),
    ]
    for name, stroke in legend:
        if stroke:
            out.append(f'<line x1="{lx:.0f}" x2="{lx + 26:.0f}" y1="24" y2="24" {stroke}/>')
        else:
            out.append(
                f'<rect x="{lx:.0f}" y="15" width="26" height="18" fill="#fecaca" '
                'fill-opacity="0.8" stroke="#f87171" stroke-width="1"/>'
            )
        out.append(
            f'<text x="{lx + 33:.0f}" y="29" font-size="14" fill="#1f2328">'
            f"{html_escape(name)}</text>"
        )
        lx += 33 + len(name) * 7.6 + 28
    out.append("</svg>")
    caption = (
        f"Events per second at {dest}, {_hms(t0)} to {_hms(t1)} UTC"
        + ("" if data.step == 1 else f", mean over {bucket} buckets")
        + ". Failed includes rejected."
    )
    return f"<figure>{''.join(out)}<figcaption>{caption}</figcaption></figure>"


# --------------------------------------------------------------------------- listing


def incident_list_line(incident: Incident) -> dict[str, Any]:
    """One line of `observatory incidents --format json`: the incident JSON line with the
    incident's own state (not a change kind) and its acknowledgement, flaps and detectors."""
    line = incident.json_line("open")
    line["state"] = incident.state
    line["summary"] = scrub_urls(incident.summary)
    line["evidence"] = redact(incident.evidence)
    line["detectors"] = _detectors(incident)
    line["acknowledged_at"] = iso(incident.acknowledged_at)
    line["flaps"] = incident.flaps
    line["historical"] = incident.historical
    line["time_to_detect_s"] = round(incident.detected_at - incident.onset, 6)
    return line


def _short_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def incidents_table(incidents: list[Incident]) -> str:
    """`observatory incidents`: a plain-text table, times in UTC, and a count."""
    from observatory.store.query import render_table

    columns = [
        "id",
        "destination",
        "state",
        "severity",
        "detectors",
        "onset (UTC)",
        "detected (UTC)",
        "time to detect",
        "resolved (UTC)",
    ]
    rows = [
        (
            inc.id,
            inc.destination,
            inc.state,
            inc.severity,
            ",".join(_detectors(inc)),
            _short_time(inc.onset),
            _short_time(inc.detected_at),
            format_duration(inc.detected_at - inc.onset, long=True),
            _short_time(inc.resolved_at),
        )
        for inc in incidents
    ]
    n = len(incidents)
    return render_table(columns, rows) + f"\n({n} incident{'' if n == 1 else 's'})"


# --------------------------------------------------------------------------- entry point


def incident_json(incident: Incident) -> dict[str, Any]:
    """The incident as a JSON object: every field, times as ISO-8601 and epoch seconds."""
    resolved = incident.resolved_at
    out: dict[str, Any] = {
        "id": incident.id,
        "destination": incident.destination,
        "detector": incident.detector,
        "detectors": _detectors(incident),
        "severity": incident.severity,
        "state": incident.state,
        "summary": scrub_urls(incident.summary),
        "historical": incident.historical,
        "flaps": incident.flaps,
    }
    for name in ("onset", "detected_at", "acknowledged_at", "resolved_at"):
        ts = getattr(incident, name)
        out[name] = iso(ts)
        out[f"{name}_epoch"] = ts
    # Rounded to the microsecond the store keeps: no float noise in the differences.
    out["time_to_detect_s"] = round(incident.detected_at - incident.onset, 6)
    out["time_to_resolve_s"] = (
        None if resolved is None else round(resolved - incident.detected_at, 6)
    )
    out["impact"] = redact(incident.impact)
    out["evidence"] = redact(incident.evidence)
    out["timeline"] = [
        {"ts": iso(e.ts), "ts_epoch": e.ts, "kind": e.kind, "detail": scrub_urls(e.detail)}
        for e in sorted(incident.timeline, key=lambda e: e.ts)
    ]
    return out


def export_incident(con: duckdb.DuckDBPyConnection, incident: Incident, fmt: Format) -> str:
    """`incident` as a Markdown postmortem, JSON, CSV (its timeline) or a self-contained
    HTML page with a chart from `events` on `con`."""
    if fmt == "json":
        opts = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        return orjson.dumps(incident_json(incident), option=opts, default=str).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["ts", "kind", "detail"])
        for e in sorted(incident.timeline, key=lambda e: e.ts):
            writer.writerow([iso(e.ts), _csv_cell(e.kind), _csv_cell(e.detail)])
        return buf.getvalue()
    if fmt == "md":
        return render_markdown(build_document(con, incident))
    if fmt == "html":
        window = incident_window(con, incident)
        chart = render_chart(chart_for(con, incident, window), incident, window)
        return render_html(build_document(con, incident, chart), incident)
    raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
