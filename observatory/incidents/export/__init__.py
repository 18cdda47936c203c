"""Incident export for the postmortem: Markdown, JSON, CSV (the timeline) and HTML.

`export_incident(con, incident, fmt)` is what both `observatory export` and the UI call.
Markdown and HTML are rendered from one document model, so they carry the same content; the
HTML adds an inline SVG chart of delivered / failed / rate-limited events per second around
the incident, read from `events` on `con`.

Exports carry the incident and aggregates of events only, no event payloads; of the
configuration only the destination's response plan (owner, runbook, fallback, retry window,
its chain), when the caller passes one (`export_incident(..., plan)`), read from the config
at export time and never stored with the incident. Values that look like credentials (an
`Authorization` key, a `Bearer ...` value, a URL's query string or user info) are redacted
even from evidence. Text from logs and APIs
is untrusted: HTML-escaped in HTML; in Markdown, ANSI escapes and control characters are
removed and the characters that make markup (`<`, `[`, `|`, ...) backslash-escaped.

Where things live: `formats` (`export_incident`, JSON, CSV), `document` (the document model
and `build_document`), `markdown`, `html_page`, `chart` (the SVG chart), `impact` (window and
impact numbers), `listing` (`observatory incidents`), `formatting` and `sanitize` (shared).
"""

from observatory.incidents.export.chart import MAX_POINTS, chart_data
from observatory.incidents.export.formats import FORMATS, Format, export_incident
from observatory.incidents.export.listing import (
    incident_list_line,
    incidents_output,
    incidents_table,
)
from observatory.incidents.export.sanitize import md_escape

__all__ = [
    "FORMATS",
    "MAX_POINTS",
    "Format",
    "chart_data",
    "export_incident",
    "incident_list_line",
    "incidents_output",
    "incidents_table",
    "md_escape",
]
