"""The status and metrics APIs watched beside delivery: status page, Prometheus, Segment.

* ``GET /api/v2/summary.json``, ``/api/v2/status.json``, ``/api/v2/components.json``,
  ``/api/v2/incidents/unresolved.json`` (and ``/api/v2/incidents.json``) -- an Atlassian status
  page whose components the scenario degrades and restores;
* ``GET /metrics`` -- rudder-server style Prometheus counters of what was really accepted
  (counting from the last ``reset_metrics``, a simulated exporter restart);
* ``GET /destinations/<id>/delivery-metrics`` -- the Segment Public API delivery metrics, with
  its per-minute rate limit and rate-limit headers (`segment_budget`, shared with the Delivery
  Overview in `delivery_overview`).

Every function reads `SimState` under its lock and answers with a `Reply`.
"""

from __future__ import annotations

import email.utils
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from observatory.sim.platforms import (
    COMPONENTS,
    DEST_IDS,
    DEST_NAMES,
    DEST_TYPES,
    platform_name,
)
from observatory.sim.state import LATENCY_BUCKETS, PlatformStats, Reply, SimState
from observatory.util.isotime import iso, parse_iso

__all__ = ["metrics_reply", "segment_budget", "segment_reply", "statuspage_reply"]

_COMPONENT_IDS = {p: f"cmp{i}{p[:4]}" for i, p in enumerate(COMPONENTS, 1)}
_PAGE = {
    "id": "simpage01",
    "name": "Observatory Simulator",
    "url": "http://127.0.0.1",
    "time_zone": "Etc/UTC",
}


def _parse_time(text: str | None, default: float) -> float:
    if not text:
        return default
    try:
        return parse_iso(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"bad time {text!r}") from None


# ------------------------------------------------------------------ status page


def _component_docs(state: SimState) -> list[dict[str, Any]]:
    out = []
    for position, (p, name) in enumerate(COMPONENTS.items(), 1):
        status, changed = state.components[name]
        out.append(
            {
                "id": _COMPONENT_IDS[p],
                "name": name,
                "status": status,
                "created_at": iso(state.started_wall),
                "updated_at": iso(changed),
                "position": position,
                "description": None,
                "showcase": True,
                "start_date": None,
                "group_id": None,
                "page_id": _PAGE["id"],
                "group": False,
                "only_show_if_degraded": False,
            }
        )
    return out


def _page_status(components: Iterable[dict[str, Any]]) -> dict[str, str]:
    statuses = {c["status"] for c in components}
    if "major_outage" in statuses:
        return {"indicator": "major", "description": "Major System Outage"}
    if statuses & {"partial_outage", "degraded_performance"}:
        indicator = "minor"
        desc = "Partial System Outage" if "partial_outage" in statuses else "Minor Service Outage"
        return {"indicator": indicator, "description": desc}
    if "under_maintenance" in statuses:
        return {"indicator": "none", "description": "Service Under Maintenance"}
    return {"indicator": "none", "description": "All Systems Operational"}


def _incidents(state: SimState, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for comp in components:
        status = comp["status"]
        if status in ("operational", "under_maintenance"):
            continue
        started = state.incident_started.get(comp["name"], state.started_wall)
        impact = {"degraded_performance": "minor", "partial_outage": "major"}.get(
            status, "critical"
        )
        words = status.replace("_", " ")
        iid = "inc" + comp["id"]
        out.append(
            {
                "id": iid,
                "name": f"{words.capitalize()} for {comp['name']}",
                "status": "investigating",
                "impact": impact,
                "created_at": iso(started),
                "updated_at": iso(started),
                "started_at": iso(started),
                "monitoring_at": None,
                "resolved_at": None,
                "shortlink": f"{state.url}/incidents/{iid}",
                "page_id": _PAGE["id"],
                "incident_updates": [
                    {
                        "id": iid + "u1",
                        "incident_id": iid,
                        "status": "investigating",
                        "body": f"We are investigating {words} affecting {comp['name']}.",
                        "created_at": iso(started),
                        "updated_at": iso(started),
                        "display_at": iso(started),
                        "affected_components": [
                            {
                                "code": comp["id"],
                                "name": comp["name"],
                                "old_status": "operational",
                                "new_status": status,
                            }
                        ],
                    }
                ],
                "components": [comp],
            }
        )
    return out


def statuspage_reply(state: SimState, path: str) -> Reply:
    """An Atlassian status page document (``/api/v2/<doc>.json``), or 404."""
    with state.lock:
        components = _component_docs(state)
        incidents = _incidents(state, components)
    page = dict(_PAGE, url=state.url, updated_at=iso(time.time()))
    status = _page_status(components)
    if path == "/api/v2/summary.json":
        return Reply(
            200,
            {
                "page": page,
                "status": status,
                "components": components,
                "incidents": incidents,
                "scheduled_maintenances": [],
            },
        )
    if path == "/api/v2/status.json":
        return Reply(200, {"page": page, "status": status})
    if path == "/api/v2/components.json":
        return Reply(200, {"page": page, "components": components})
    if path in ("/api/v2/incidents/unresolved.json", "/api/v2/incidents.json"):
        return Reply(200, {"page": page, "incidents": incidents})
    return Reply(404, {"error": "Not found"})


# ------------------------------------------------------------------ prometheus


def metrics_reply(state: SimState) -> Reply:
    """rudder-server style Prometheus counters of what the platforms really accepted."""
    with state.lock:
        snap = {p: (s.totals(), state.metrics_base[p]) for p, s in state.platform_stats.items()}
        started = state.metrics_started
    out = [
        "# HELP process_start_time_seconds When the exporter (re)started, in epoch seconds.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {started:.3f}",
        "# HELP event_delivery Events delivered to the destination.",
        "# TYPE event_delivery counter",
    ]
    for p, (now, base) in snap.items():
        out.append(
            f'event_delivery{{destType="{DEST_TYPES[p]}",destID="{DEST_IDS[p]}",'
            f'destination="{DEST_NAMES[p]}",workspaceId="ws_sim",source="simulator",'
            f'module="router"}} {now.delivered - base.delivered}'
        )
    out += [
        "# HELP router_response_counts Events per HTTP status the destination answered.",
        "# TYPE router_response_counts counter",
    ]
    for p, (now, base) in snap.items():
        codes = _codes(now) - _codes(base)
        for code in sorted(_codes(now)):
            out.append(
                f'router_response_counts{{destType="{DEST_TYPES[p]}",destId="{DEST_IDS[p]}",'
                f'workspaceId="ws_sim",respStatusCode="{code}"}} {codes[code]}'
            )
    # As rudder-server means them: aborted events are the terminal refusals (4xx other than
    # 408 and 429, which it retries); router_throttled counts its own throttler, which the
    # simulator does not have (0). A destination's 429s are in router_response_counts.
    out += [
        "# HELP router_aborted_events Events the destination refused for good (terminal 4xx).",
        "# TYPE router_aborted_events counter",
    ]
    for p, (now, base) in snap.items():
        for code in sorted(now.aborted):
            if not (400 <= int(code) < 500 and int(code) not in (408, 429)):
                continue
            n = now.aborted[code] - base.aborted.get(code, 0)
            out.append(
                f'router_aborted_events{{destType="{DEST_TYPES[p]}",respStatusCode="{code}",'
                f'destId="{DEST_IDS[p]}",destination="{DEST_NAMES[p]}"}} {n}'
            )
    out += [
        "# HELP router_throttled Events held back by rudder-server's own throttler.",
        "# TYPE router_throttled counter",
    ]
    for p in snap:
        out.append(
            f'router_throttled{{destType="{DEST_TYPES[p]}",destId="{DEST_IDS[p]}",'
            f'destination="{DEST_NAMES[p]}"}} 0'
        )
    out += [
        "# HELP router_delivery_latency Time to answer a delivery request, in seconds.",
        "# TYPE router_delivery_latency histogram",
    ]
    for p, (now, base) in snap.items():
        labels = f'destType="{DEST_TYPES[p]}"'
        count = now.latency_count - base.latency_count
        cumulative = 0
        for le, n, n0 in zip(
            LATENCY_BUCKETS, now.latency_buckets, base.latency_buckets, strict=True
        ):
            cumulative += n - n0
            out.append(f'router_delivery_latency_bucket{{{labels},le="{le}"}} {cumulative}')
        out.append(f'router_delivery_latency_bucket{{{labels},le="+Inf"}} {count}')
        out.append(
            f"router_delivery_latency_sum{{{labels}}} {now.latency_sum - base.latency_sum:.6f}"
        )
        out.append(f"router_delivery_latency_count{{{labels}}} {count}")
    text = "\n".join(out) + "\n"
    return Reply(200, text.encode(), content_type="text/plain; version=0.0.4; charset=utf-8")


def _codes(stats: PlatformStats) -> Counter[str]:
    """Events per HTTP status answered (200: delivered)."""
    out = Counter(stats.aborted)
    out["200"] += stats.delivered
    return out


# ------------------------------------------------------------------ segment


def segment_budget(state: SimState, wall: float) -> tuple[list[tuple[str, str]], Reply | None]:
    """Spend one request of the Segment-like APIs' per-minute budget at wall time `wall`.

    Returns the rate-limit headers every answer carries and, once the minute's budget is
    spent, the 429 to answer instead (``Retry-After`` and ``errors[].data.msBeforeNext``).
    """
    minute = int(wall // 60)
    with state.lock:
        win_minute, used = state.segment_window
        used = used + 1 if win_minute == minute else 1
        state.segment_window = (minute, used)
        limit = state.segment_limit
    reset = email.utils.format_datetime(datetime.fromtimestamp((minute + 1) * 60, UTC), usegmt=True)
    headers = [
        ("X-RateLimit-Limit", str(limit)),
        ("X-RateLimit-Consumed", str(min(used, limit))),
        ("X-RateLimit-Remaining", str(max(0, limit - used))),
        ("X-RateLimit-Reset", reset),
    ]
    if used <= limit:
        return headers, None
    wait_ms = int(((minute + 1) * 60 - wall) * 1000)
    body = {
        "errors": [
            {
                "type": "RequestError",
                "message": "Too many requests",
                "data": {"msBeforeNext": wait_ms},
            }
        ]
    }
    return headers, Reply(429, body, [*headers, ("Retry-After", str(wait_ms // 1000 + 1))])


def segment_reply(state: SimState, dest_id: str, query: str) -> Reply:
    """Segment Public API delivery metrics of one destination (query: its raw query string)."""
    wall = time.time()
    headers, refused = segment_budget(state, wall)
    if refused is not None:
        return refused
    try:
        p = platform_name(dest_id)
    except ValueError:
        return Reply(
            404,
            {"errors": [{"type": "resource-not-found", "message": f"No destination {dest_id}"}]},
            headers,
        )
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    granularity = params.get("granularity", "MINUTE")
    try:
        if granularity not in ("MINUTE", "HOUR", "DAY"):
            raise ValueError(f"bad granularity {granularity!r}")
        end = _parse_time(params.get("endTime"), wall)
        start = _parse_time(params.get("startTime"), end - 3600)
        if start > end:
            raise ValueError("startTime is after endTime")
    except ValueError as exc:
        return Reply(400, {"errors": [{"type": "ValidationError", "message": str(exc)}]}, headers)
    totals = [0, 0, 0, 0]
    with state.lock:
        for sec, counts in state.platform_stats[p].seconds.items():
            if start <= sec < end:
                for i in range(4):
                    totals[i] += counts[i]
    delivered, limited, rejected, failed = totals
    metrics: list[dict[str, Any]] = [
        {"metricName": "successes", "total": delivered, "breakdown": []},
        {
            "metricName": "failures",
            "total": limited + rejected + failed,
            "breakdown": [
                {"metricName": "rate_limited", "value": limited},
                {"metricName": "rejected", "value": rejected},
                {"metricName": "server_error", "value": failed},
            ],
        },
    ]
    summary: dict[str, Any] = {
        "data": {
            "deliveryMetricsSummary": {
                "sourceId": params.get("sourceId", "src_simulator"),
                "destinationMetadataId": f"dmeta_{p}",
                "metrics": metrics,
            }
        }
    }
    return Reply(200, summary, headers)
