"""`observatory incidents`: the plain-text table and the JSON line per incident."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from observatory.incidents.export.formatting import _detectors
from observatory.incidents.export.sanitize import redact, scrub_urls
from observatory.incidents.model import Incident
from observatory.util.durations import format_duration
from observatory.util.isotime import iso


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


def incidents_output(incidents: list[Incident], fmt: str) -> str:
    """What `observatory incidents --format FMT` prints (json: one line per incident)."""
    import orjson

    if fmt == "json":
        return "".join(orjson.dumps(incident_list_line(inc)).decode() + "\n" for inc in incidents)
    return incidents_table(incidents) + "\n"
