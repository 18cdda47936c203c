"""`export_incident`, the entry point: the formats, and the JSON and CSV exports (Markdown
and HTML are rendered from the document)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from observatory.incidents.export.chart import chart_for, render_chart
from observatory.incidents.export.document import build_document
from observatory.incidents.export.formatting import _detectors
from observatory.incidents.export.html_page import render_html
from observatory.incidents.export.impact import incident_window
from observatory.incidents.export.markdown import render_markdown
from observatory.incidents.export.sanitize import _csv_cell, redact, scrub_urls
from observatory.incidents.model import Incident
from observatory.util.isotime import iso
from observatory.util.jsontext import json_bytes

if TYPE_CHECKING:
    from observatory.config import ResponsePlan

Format = Literal["md", "json", "csv", "html"]
FORMATS: tuple[str, ...] = ("md", "json", "csv", "html")


def incident_json(incident: Incident, plan: ResponsePlan | None = None) -> dict[str, Any]:
    """The incident as a JSON object: every field, times as ISO-8601 and epoch seconds;
    with ``plan``, its destination's response plan as ``response_plan``."""
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
    out["impact"] = incident.impact.as_dict() if incident.impact is not None else {}
    out["evidence"] = redact(incident.evidence)
    out["timeline"] = [
        {"ts": iso(e.ts), "ts_epoch": e.ts, "kind": e.kind, "detail": scrub_urls(e.detail)}
        for e in sorted(incident.timeline, key=lambda e: e.ts)
    ]
    if plan is not None:
        out["response_plan"] = redact(plan.as_dict())
    return out


def export_incident(
    con: duckdb.DuckDBPyConnection,
    incident: Incident,
    fmt: Format,
    plan: ResponsePlan | None = None,
) -> str:
    """`incident` as a Markdown postmortem, JSON, CSV (its timeline) or a self-contained
    HTML page with a chart from `events` on `con`. `plan`: what the config says to do when
    its destination breaks (owner, runbook, fallback, retry window), taken from the config
    by the caller at export time; the CSV timeline leaves it out."""
    if fmt == "json":
        return json_bytes(incident_json(incident, plan), indent=True).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["ts", "kind", "detail"])
        for e in sorted(incident.timeline, key=lambda e: e.ts):
            writer.writerow([iso(e.ts), _csv_cell(e.kind), _csv_cell(e.detail)])
        return buf.getvalue()
    if fmt == "md":
        return render_markdown(build_document(con, incident, plan=plan))
    if fmt == "html":
        window = incident_window(con, incident)
        chart = render_chart(chart_for(con, incident, window), incident, window)
        return render_html(build_document(con, incident, chart, plan), incident)
    raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
