"""Incident export for the postmortem: Markdown, JSON, CSV (the timeline) and HTML."""

from observatory.incidents.export.document import (
    FORMATS,
    MAX_POINTS,
    Format,
    chart_data,
    export_incident,
    incident_list_line,
    incidents_table,
    md_escape,
)

__all__ = [
    "FORMATS",
    "MAX_POINTS",
    "Format",
    "chart_data",
    "export_incident",
    "incident_list_line",
    "incidents_table",
    "md_escape",
]
