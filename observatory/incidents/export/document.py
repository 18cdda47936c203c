"""The postmortem document: its blocks (headings, paragraphs, key/value lists, tables,
bullets, checklists, the chart) and `build_document`, which fills them from an incident.
Markdown and HTML are both rendered from it, so they carry the same content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from observatory.incidents.export.formatting import _detectors, fmt_time, fmt_value, label, title
from observatory.incidents.export.impact import Window, impact_rows, incident_window
from observatory.incidents.export.sanitize import clean_text, redact
from observatory.incidents.model import Incident
from observatory.util.durations import format_duration

if TYPE_CHECKING:
    from observatory.config import ResponsePlan


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


# Evidence keys shown in the appendix (statistics), not among the plain facts.
STATISTICS_KEYS = ("h", "quiet_s", "detectors", "error_ratio")
# The engine's frozen measurements, in the order shown, with their headings.
SNAPSHOTS = (
    ("at_detection", "At detection"),
    ("at_worst", "At the worst point (least delivered of what was expected)"),
)
SECTION_NAMES = {
    "status_page": "Status page (as during the outage)",
    "rate_limit_drift": "Rate-limit drift",
    "window": "Outage",
}


def _kv_blocks(evidence: dict[str, Any], keys: list[str]) -> list[Block]:
    """Scalar values as one key/value list, then each nested value under its heading;
    empty values are left out."""
    blocks: list[Block] = []
    present = [k for k in keys if evidence.get(k) not in (None, "", [], {})]
    flat = [
        (k, evidence[k]) for k in present if _is_scalar(evidence[k]) or _short_list(evidence[k])
    ]
    if flat:
        blocks.append(KeyValues([(label(k), fmt_value(v, k)) for k, v in flat]))
    for k in present:
        v = evidence[k]
        if not (_is_scalar(v) or _short_list(v)):
            blocks.append(Heading(SECTION_NAMES.get(k, label(k)), 3))
            blocks += value_blocks(v, k)
    return blocks


def evidence_blocks(evidence: dict[str, Any]) -> list[Block]:
    """The Evidence section in plain words: what was measured at detection and at the worst
    point of the outage, over the outage, and what others said (status page, drift). The
    statistics are left for :func:`statistics_blocks`."""
    if not evidence:
        return [Para("No evidence was recorded.")]
    blocks: list[Block] = []
    if any(k in evidence for k, _ in SNAPSHOTS):
        blocks.append(
            Para(
                "Measured during the outage only (each figure over the seconds just before the "
                "time given); nothing measured after the outage ended is included."
            )
        )
    for key, heading in SNAPSHOTS:
        snap = evidence.get(key)
        if isinstance(snap, dict) and snap:
            blocks.append(Heading(heading, 3))
            blocks += _kv_blocks(snap, list(snap))
    over = [
        k
        for k in evidence
        if k not in STATISTICS_KEYS
        and k not in dict(SNAPSHOTS)
        and k != "window"
        and (_is_scalar(evidence[k]) or _short_list(evidence[k]))
    ]
    ratio = evidence.get("error_ratio")
    plain: list[tuple[str, str]] = [(label(k), fmt_value(evidence[k], k)) for k in over]
    if isinstance(ratio, dict) and "attempts" in ratio:
        plain.append(
            (
                "Failed or rejected attempts",
                f"{fmt_value(ratio.get('failed_or_rejected'))} of "
                f"{fmt_value(ratio.get('attempts'))} ({fmt_value(ratio.get('ratio'), 'ratio')})",
            )
        )
    if plain:
        blocks.append(Heading("Over the whole outage", 3))
        blocks.append(KeyValues(plain))
    nested = [
        k
        for k in evidence
        if k not in STATISTICS_KEYS
        and k not in dict(SNAPSHOTS)
        and k != "window"
        and not (_is_scalar(evidence[k]) or _short_list(evidence[k]))
    ]
    blocks += _kv_blocks(evidence, nested)
    return blocks


def statistics_blocks(evidence: dict[str, Any]) -> list[Block]:
    """The appendix: the detectors' statistics (thresholds, CUSUMs, p0/p1, Wilson intervals)."""
    keys = [k for k in STATISTICS_KEYS if k in evidence]
    if not keys:
        return [Para("No detection statistics were recorded.")]
    return [
        Para(
            "For engineers: the sequential tests behind the detection. h is the alarm "
            "threshold of each CUSUM (in nats); p0 is the normal share of bad attempts, p1 the "
            "share tested for; the Wilson interval is a 95 % confidence interval."
        ),
        *_kv_blocks(evidence, keys),
    ]


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


_WHAT = {
    "rate_limit": 'the platform answered {share} of delivery attempts with "too many requests" '
    "(HTTP 429)",
    "error_rate": "{fail} of delivery attempts failed or were rejected",
    "silence": "conversions stopped being delivered",
    "volume_drop": "far fewer conversions than usual reached it",
    "latency": "deliveries were much slower than usual",
    "probe": "the platform's status page or health check reported a problem",
}


def _clock(ts: float) -> str:
    return (fmt_time(ts)[11:19] or "?") + " UTC"


def plain_summary(incident: Incident, window: Window, evidence: dict[str, Any]) -> str:
    """The incident in plain words: what happened, when, for how long, what it cost."""
    dest = clean_text(incident.destination)
    share = evidence.get("rate_limited_share")
    ratio = evidence.get("error_ratio")
    fail = ratio.get("ratio") if isinstance(ratio, dict) else None
    what = [
        _WHAT[d].format(
            share=f"{share * 100:.0f}%" if isinstance(share, int | float) else "many",
            fail=f"{fail * 100:.0f}%" if isinstance(fail, int | float) else "many",
        )
        for d in _detectors(incident)
        if d in _WHAT
    ][:2] or ["its deliveries were interrupted"]
    date = fmt_time(window.start)[:10]
    text = (
        f"Conversions sent to {dest} were interrupted: {' and '.join(what)}. "
        f"The outage began at {_clock(window.start)} on {date}"
    )
    if window.ongoing and incident.outage_end is None:
        text += f" and was still going on at the last data ({_clock(window.end)})."
    else:
        text += (
            f" and lasted {format_duration(window.outage_s, long=True)}, until "
            f"{_clock(window.outage_until)}."
        )
    impact = incident.impact
    if impact is not None:
        text += (
            f" About {impact.not_delivered_est:,} conversions were not delivered during it "
            f"({impact.rate_limited:,} attempts rate-limited, "
            f"{impact.failed + impact.rejected:,} failed or rejected)."
        )
    if window.ongoing:
        if incident.outage_end is not None and window.end > incident.outage_end:
            text += (
                f" Deliveries have looked normal since {_clock(incident.outage_end)}; the "
                "incident resolves after a quiet period."
            )
    else:
        text += (
            f" Deliveries were back to normal from {_clock(window.outage_until)}; the incident "
            f"was closed at {_clock(window.end)} after "
            f"{format_duration(window.quiet_s, long=True)} of normal traffic."
        )
    text += (
        " What to do: re-send the conversions that were not delivered while the platform's "
        "attribution window is open, and work through the action items below."
    )
    return text


def _summary(incident: Incident, window: Window, evidence: dict[str, Any]) -> list[Block]:
    """The Summary section: the incident in plain words, its key facts, the detector's own
    summary, and a note when it was found in history (so no alert went out)."""
    so_far = " so far" if window.ongoing else ""
    rows = [
        ("Incident", incident.id),
        ("Destination", incident.destination),
        ("State", incident.state),
        ("Severity", incident.severity),
        ("Outage began (onset)", fmt_time(incident.onset)),
        (
            "Outage ended (last abnormal second)",
            fmt_time(window.outage_until)
            if not (window.ongoing and incident.outage_end is None)
            else "not yet",
        ),
        ("Outage duration", format_duration(window.outage_s, long=True) + so_far),
        (
            "Quiet period before resolving",
            format_duration(window.quiet_s, long=True) + so_far
            if window.outage_end is not None
            else "not recorded",
        ),
        (
            "Resolved at",
            fmt_time(incident.resolved_at) if incident.resolved_at is not None else "not resolved",
        ),
    ]
    if incident.impact is not None:
        rows.append(
            ("Conversions not delivered (estimate)", f"{incident.impact.not_delivered_est:,}")
        )
    blocks: list[Block] = [
        Heading("Summary"),
        Para(plain_summary(incident, window, evidence)),
        KeyValues(rows),
        Para("Detector's summary: " + (incident.summary or "none was recorded.")),
    ]
    if incident.historical:
        blocks.append(Para("Detected while reading history: no live alert was sent."))
    return blocks


def _detection_rows(incident: Incident, ttd: float) -> list[tuple[str, str]]:
    """The Detection section: which detector fired, when, and how long to detect and resolve."""
    ttr = None if incident.resolved_at is None else incident.resolved_at - incident.detected_at
    detectors = _detectors(incident)
    others = ", ".join(detectors[1:])
    return [
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
            fmt_time(incident.resolved_at) if incident.resolved_at is not None else "not resolved",
        ),
        (
            "Time to resolve (detected to resolved)",
            format_duration(ttr, long=True) if ttr is not None else "n/a (not resolved)",
        ),
        ("Flaps (re-fired within 15 min)", f"{incident.flaps:,}"),
    ]


def _timeline(incident: Incident) -> Block:
    """The Timeline section: its entries in time order, as a table."""
    if not incident.timeline:
        return Para("No timeline entries.")
    entries = sorted(incident.timeline, key=lambda e: e.ts)
    rows = [[fmt_time(e.ts), e.kind, e.detail] for e in entries]
    return Table(["Time (UTC)", "Kind", "Detail"], rows, [False, False, False], wide=2)


def build_document(
    con: duckdb.DuckDBPyConnection,
    incident: Incident,
    chart: str | None = None,
    plan: ResponsePlan | None = None,
) -> list[Block]:
    """The postmortem: Summary, (Response plan), Impact, (chart), Detection, Timeline,
    Evidence, Actions, and the detection statistics in an appendix (plain words first). The
    response plan, when the config gives one, comes right after the summary: during an outage
    it is what the reader needs first."""
    evidence = redact(incident.evidence)
    window = incident_window(con, incident)
    ttd = incident.detected_at - incident.onset
    doc: list[Block] = [
        Heading(title(incident), 1),
        Para("All times are UTC."),
        *_summary(incident, window, evidence),
    ]
    if plan is not None:
        doc += [Heading("Response plan"), KeyValues(plan.rows())]
    doc += [Heading("Impact"), KeyValues(impact_rows(con, incident, window))]
    if chart is not None:
        doc += [Heading("Delivery around the incident"), ChartBlock(chart)]
    doc += [Heading("Detection"), KeyValues(_detection_rows(incident, ttd))]
    doc += [Heading("Timeline"), _timeline(incident)]
    doc += [Heading("Evidence"), *evidence_blocks(evidence)]
    doc += [Heading("Action items"), Checklist(action_items(incident, evidence, ttd))]
    doc += [Heading("Appendix: detection statistics"), *statistics_blocks(evidence)]
    doc.append(Para(f"Exported by Observatory from incident {incident.id}. Times are UTC."))
    return doc
