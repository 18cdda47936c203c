"""A drill report as a table (for a terminal), markdown (for a ticket) or JSON (for CI)."""

from __future__ import annotations

from datetime import UTC, datetime

from observatory.drills.run import DrillReport
from observatory.incidents.export.sanitize import md_escape
from observatory.util.jsontext import json_bytes

FORMATS = ("table", "json", "md")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _took(s: float | None) -> str:
    return "never" if s is None else f"{s:.2f} s"


def render(report: DrillReport, fmt: str) -> str:
    if fmt == "json":
        return json_bytes(report.as_dict()).decode() + "\n"
    verdict = "PASSED" if report.passed else "FAILED"
    if fmt == "md":
        lines = [
            f"# Fire drill {report.id}: {md_escape(report.drill_destination)} ({report.kind}): "
            f"{verdict}",
            "",
            f"- **Started:** {_when(report.started_at)}",
            f"- **Synthetic rate:** {report.rate:g} events/s",
            f"- **Drill incident:** {report.incident_id or 'none'}",
            "",
            "| Step | Took | Target | Result |",
            "| --- | --- | --- | --- |",
        ]
        for s in report.steps:
            result = "ok" if s.ok else "MISSED" + (f": {md_escape(s.detail)}" if s.detail else "")
            took = _took(s.took_s)
            lines.append(f"| {md_escape(s.name)} | {took} | {s.target_s:g} s | {result} |")
        return "\n".join(lines) + "\n"
    width = max([len(s.name) for s in report.steps] + [4])
    out = [
        f"drill {report.id}: {report.drill_destination} ({report.kind}), "
        f"{report.rate:g} ev/s, started {_when(report.started_at)}",
        f"{'step':<{width}}  {'took':>9}  {'target':>7}  result",
    ]
    for s in report.steps:
        result = "ok" if s.ok else "MISSED" + (f": {s.detail}" if s.detail else "")
        out.append(f"{s.name:<{width}}  {_took(s.took_s):>9}  {s.target_s:>5g} s  {result}")
    out.append(f"{verdict}" + ("" if report.passed else ": " + "; ".join(report.failures())))
    return "\n".join(out) + "\n"
