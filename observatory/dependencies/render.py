"""The dependency document as text: a terminal table, Markdown for a team's wiki, and JSON.

Names, owners, fallbacks and probe statuses are untrusted text (the config may be shared,
statuses come from vendors' APIs): the table and Markdown go through the exports' cleaning
(no control characters, no URL query strings or user info), Markdown through its escaping;
links are built from the configured http(s) URLs, their query strings left out like the
exports leave them out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from observatory.dependencies.document import (
    FALLBACK_USE_UNKNOWN,
    DepsDocument,
    DestinationEntry,
    Node,
    window_text,
)
from observatory.dependencies.observed import DrillRef, IncidentRef
from observatory.incidents.export.sanitize import clean_text, md_escape, redact, scrub_urls
from observatory.util.durations import format_age, format_duration
from observatory.util.isotime import iso
from observatory.util.jsontext import json_bytes

TITLE = "Dependencies and fallbacks"


def _time(ts: float | None) -> str:
    if ts is None:
        return "n/a"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def flow_text(entry: DestinationEntry, doc: DepsDocument, now: float) -> str:
    flow = entry.flow
    if flow is None or flow.last_seen is None:
        return "no traffic seen"
    if flow.events > 0:
        return (
            f"yes: {flow.events:,} events in the last {window_text(doc.window)} "
            f"({flow.delivered:,} delivered)"
        )
    age = format_age(now, flow.last_seen)
    return f"no traffic seen in the last {window_text(doc.window)} (last seen {age})"


def incident_text(ref: IncidentRef | None) -> str:
    if ref is None:
        return "none recorded"
    end = "open" if ref.open else f"resolved {_time(ref.resolved_at)}"
    return f"{ref.id} ({ref.detector}, {ref.severity}), onset {_time(ref.onset)}, {end}"


def drill_text(ref: DrillRef | None) -> str:
    if ref is None:
        return "never"
    verdict = "passed" if ref.passed else "FAILED"
    detect = "" if ref.detect_s is None else f", detected in {format_duration(ref.detect_s)}"
    return f"{verdict} {_time(ref.started_at)} ({ref.kind}{detect})"


def node_detail(node: Node, now: float) -> str:
    if node.checked_at is None:
        return node.detail
    return f"{node.detail} (checked {format_age(now, node.checked_at)})"


def _chain(entry: DestinationEntry) -> str:
    return " → ".join(n.name for n in entry.chain)


# -- table --------------------------------------------------------------------------------------


def render_table(doc: DepsDocument) -> str:
    from observatory.store.query import render_table as table

    now = doc.generated_at
    out = [f"{TITLE} at {_time(now)}", ""]
    for dep in doc.failing_shared():
        out.append(
            f"FAILING NOW: {clean_text(dep.node.name)} ({dep.node.kind}): "
            f"{', '.join(clean_text(d) for d in dep.used_by)} hang on it"
        )
    if doc.failing_shared():
        out.append("")
    for entry in doc.destinations:
        chain = _chain(entry) if len(entry.chain) > 1 else "no dependencies configured"
        out.append(f"{clean_text(entry.name)}  ({clean_text(chain)})")
        rows = [
            (clean_text(n.name), n.kind, n.state, clean_text(node_detail(n, now)))
            for n in entry.chain
        ]
        nodes = table(["node", "kind", "state", "detail"], rows)
        out += ["  " + line for line in nodes.splitlines()]
        facts = [
            ("flows", flow_text(entry, doc, now)),
            ("owner", entry.owner or "not documented"),
            ("runbook", entry.runbook or "not documented"),
            ("fallback", entry.fallback or "not documented"),
            ("retry window", _retry(entry.retry_window)),
            ("last incident", incident_text(entry.last_incident)),
            ("last drill", drill_text(entry.last_drill)),
            ("fallback used", "unknown"),
        ]
        out += [f"  {k}: {clean_text(v)}" for k, v in facts]
        out.append("")
    if doc.unconfigured:
        out.append(
            "Flowing but not configured: " + ", ".join(clean_text(d) for d in doc.unconfigured)
        )
    if not doc.destinations:
        out.append("No [[destinations]] are configured: nothing to document.")
    out.append(FALLBACK_USE_UNKNOWN)
    return "\n".join(out) + "\n"


def _retry(seconds: float | None) -> str:
    return "not documented" if seconds is None else format_duration(seconds, coarse=True)


# -- markdown -----------------------------------------------------------------------------------


def md_link(text: str, url: str | None) -> str:
    """A Markdown link to a configured URL (its user info and query string left out), or
    the escaped text alone when there is no URL."""
    if not url:
        return md_escape(text)
    target = quote(scrub_urls(url.strip()).split("?")[0], safe=":/#@!$&'*+,;=%-._~")
    return f"[{md_escape(text)}]({target})"


def _md_cell(text: str) -> str:
    return md_escape(text) or " "


def _md_node_row(node: Node, now: float) -> str:
    state = f"**{md_escape(node.state)}**" if node.bad else md_escape(node.state)
    name = md_link(node.name, node.docs) if node.docs else md_escape(node.name)
    owner = md_escape(node.owner) if node.owner else "–"
    runbook = md_link("runbook", node.runbook) if node.runbook else "–"
    cells = [name, md_escape(node.kind), state, _md_cell(node_detail(node, now)), owner, runbook]
    return "| " + " | ".join(cells) + " |"


def render_markdown(doc: DepsDocument) -> str:
    """The document a team pastes into its wiki: a heading per destination, its chain as a
    table of nodes, its facts, and the fallback as a quote."""
    now = doc.generated_at
    parts = [
        f"# {TITLE}",
        f"Generated by Observatory at {_time(now)} from the configuration and what it observed "
        f"(traffic in the last {window_text(doc.window)}, probes, incidents, drills). "
        f"{FALLBACK_USE_UNKNOWN}",
    ]
    failing = doc.failing_shared()
    if failing:
        parts.append(
            "\n".join(
                f"- **Failing now:** {md_escape(d.node.name)} ({md_escape(d.node.kind)}); "
                f"{', '.join(md_escape(n) for n in d.used_by)} hang on it"
                for d in failing
            )
        )
    for entry in doc.destinations:
        parts.append(f"## {md_escape(entry.name)}")
        parts.append(" → ".join(md_escape(n.name) for n in entry.chain))
        table = [
            "| Node | Kind | State now | Detail | Owner | Runbook |",
            "| --- | --- | --- | --- | --- | --- |",
            *(_md_node_row(n, now) for n in entry.chain),
        ]
        parts.append("\n".join(table))
        facts = [
            ("Flows", md_escape(flow_text(entry, doc, now))),
            ("Owner", md_escape(entry.owner) if entry.owner else "not documented"),
            (
                "Runbook",
                md_link(entry.runbook, entry.runbook) if entry.runbook else "not documented",
            ),
            ("Retry window", md_escape(_retry(entry.retry_window))),
            ("Last incident", md_escape(incident_text(entry.last_incident))),
            ("Last drill", md_escape(drill_text(entry.last_drill))),
            ("Fallback ever used", "unknown"),
        ]
        parts.append("\n".join(f"- **{k}:** {v}" for k, v in facts))
        if entry.fallback:
            parts.append("**Fallback**\n\n> " + md_escape(entry.fallback, line_start=True))
        else:
            parts.append("**Fallback:** not documented.")
    if doc.dependencies:
        parts.append("## Dependencies")
        rows = [
            "| Dependency | Kind | State now | Used by | Owner | Fallback |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for dep in doc.dependencies:
            n = dep.node
            state = f"**{md_escape(n.state)}**" if n.bad else md_escape(n.state)
            cells = [
                md_link(n.name, n.docs),
                md_escape(n.kind),
                state,
                ", ".join(md_escape(d) for d in dep.used_by) or "–",
                md_escape(n.owner) if n.owner else "–",
                md_escape(n.fallback) if n.fallback else "–",
            ]
            rows.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(rows))
    if doc.unconfigured:
        parts.append(
            "Flowing but not in the configuration: "
            + ", ".join(md_escape(d) for d in doc.unconfigured)
            + "."
        )
    if not doc.destinations:
        parts.append("No destinations are configured: nothing to document.")
    return "\n\n".join(parts) + "\n"


# -- json ---------------------------------------------------------------------------------------


def _node_json(node: Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "role": node.role,
        "kind": node.kind,
        "state": node.state,
        "detail": node.detail,
        "checked_at": iso(node.checked_at),
        "owner": node.owner,
        "runbook": node.runbook,
        "fallback": node.fallback,
        "docs": node.docs,
    }


def _incident_json(ref: IncidentRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {
        "id": ref.id,
        "detector": ref.detector,
        "severity": ref.severity,
        "state": ref.state,
        "onset": iso(ref.onset),
        "resolved_at": iso(ref.resolved_at),
        "open": ref.open,
    }


def _drill_json(ref: DrillRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {
        "started_at": iso(ref.started_at),
        "kind": ref.kind,
        "passed": ref.passed,
        "detect_s": ref.detect_s,
    }


def document_json(doc: DepsDocument) -> dict[str, Any]:
    return {
        "generated_at": iso(doc.generated_at),
        "window_s": doc.window,
        "fallback_used": "unknown",
        "note": FALLBACK_USE_UNKNOWN,
        "failing_shared": [
            {"dependency": d.node.name, "destinations": d.used_by} for d in doc.failing_shared()
        ],
        "destinations": [
            {
                "name": e.name,
                "vendor": e.vendor,
                "chain": [n.name for n in e.chain],
                "nodes": [_node_json(n) for n in e.chain],
                "flowing": e.flowing,
                "events_in_window": e.flow.events if e.flow else 0,
                "delivered_in_window": e.flow.delivered if e.flow else 0,
                "last_seen": iso(e.flow.last_seen) if e.flow else None,
                "last_incident": _incident_json(e.last_incident),
                "last_drill": _drill_json(e.last_drill),
                "drills_recorded": doc.drills_table,
                "owner": e.owner,
                "runbook": e.runbook,
                "fallback": e.fallback,
                "retry_window_s": e.retry_window,
                "fallback_used": "unknown",
            }
            for e in doc.destinations
        ],
        "dependencies": [{**_node_json(d.node), "used_by": d.used_by} for d in doc.dependencies],
        "unconfigured_flowing": doc.unconfigured,
    }


def render(doc: DepsDocument, fmt: str) -> str:
    """``doc`` in ``fmt``: table, md or json."""
    if fmt == "md":
        return render_markdown(doc)
    if fmt == "json":  # URLs without query strings, as everywhere else
        return json_bytes(redact(document_json(doc)), indent=True).decode() + "\n"
    return render_table(doc)
