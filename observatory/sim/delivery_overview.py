"""Segment's Delivery Overview (Public API): ``GET /delivery-overview/<step>``.

The steps ``successful-delivery`` and ``failed-delivery`` count what a destination really did
(`PlatformStats.events`, per second and event name); the other documented steps
(``filtered-at-destination``, ``filtered-at-source``, ``failed-on-ingest``,
``successfully-received``) answer empty datasets. Like the real API:

* ``Authorization: Bearer <token>`` is required (any token; 401 without one);
* ``sourceId``, ``startTime``, ``endTime`` (ISO 8601) and ``granularity`` (MINUTE, HOUR, DAY)
  are required, and ``destinationConfigId`` too for a destination's steps (any alias of a
  platform; 404 for an unknown one); MINUTE covers at most 4 h and reaches back at most 48 h,
  HOUR 14 days, DAY 30 days (400 ``ValidationError`` otherwise);
* ``groupBy`` (comma list of eventName, eventType, discardReason, appVersion) splits the
  dataset; ``discardReason`` is the reason phrase of the status the destination answered
  (``Too Many Requests`` for 429, ``Bad Request`` for 400, ``Internal Server Error`` for 500);
* a second counts only once it is `LAG` seconds old, so the last minute buckets are partial;
* every answer spends the per-minute budget shared with the delivery metrics
  (`status_apis.segment_budget`) and carries ``X-RateLimit-Consumed/Remaining/Reset``.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import parse_qs

from observatory.sim.platforms import platform_name
from observatory.sim.state import REASONS, Reply, SimState
from observatory.sim.status_apis import segment_budget
from observatory.util.isotime import iso, parse_iso

__all__ = ["GRANULARITIES", "GROUP_BYS", "LAG", "STEPS", "delivery_overview_reply"]

STEPS = (
    "successful-delivery",
    "failed-delivery",
    "filtered-at-destination",
    "filtered-at-source",
    "failed-on-ingest",
    "successfully-received",
)
_DESTINATION_STEPS = ("successful-delivery", "failed-delivery", "filtered-at-destination")
GROUP_BYS = ("eventName", "eventType", "discardReason", "appVersion")
# granularity -> (bucket seconds, widest range, oldest start back from now; None: no bound)
GRANULARITIES: dict[str, tuple[int, int, int | None]] = {
    "MINUTE": (60, 4 * 3600, 48 * 3600),
    "HOUR": (3600, 14 * 86400, None),
    "DAY": (86400, 30 * 86400, None),
}
LAG = 30.0
"""Seconds before a second's deliveries show in the API (Segment documents about 30 s)."""


def _errors(status: int, kind: str, message: str, headers: list[tuple[str, str]]) -> Reply:
    return Reply(status, {"errors": [{"type": kind, "message": message}]}, headers)


def _required_time(name: str, text: str | None) -> float:
    if not text:
        raise ValueError(f"{name} is required (ISO 8601)")
    try:
        return parse_iso(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an ISO 8601 date-time") from None


def _reason(code: int) -> str:
    return REASONS.get(code, f"HTTP {code}")


def delivery_overview_reply(
    state: SimState,
    step: str,
    query: str,
    authorization: str | None,
    now: float | None = None,
) -> Reply:
    """The Delivery Overview answer for `step` (query: the raw query string) at wall `now`."""
    wall = time.time() if now is None else now
    if (
        not authorization
        or not authorization.lower().startswith("bearer ")
        or not (authorization[7:].strip())
    ):
        return _errors(401, "unauthorized", "A Bearer token is required.", [])
    headers, refused = segment_budget(state, wall)
    if refused is not None:
        return refused
    if step not in STEPS:
        return _errors(404, "resource-not-found", f"No such step: {step}", headers)
    params: dict[str, list[str]] = parse_qs(query)

    def one(name: str) -> str | None:
        values = params.get(name)
        return values[-1] if values else None

    try:
        if not one("sourceId"):
            raise ValueError("sourceId is required")
        dest = one("destinationConfigId")
        if step in _DESTINATION_STEPS and not dest:
            raise ValueError(f"destinationConfigId is required for {step}")
        granularity = one("granularity") or ""
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of MINUTE, HOUR, DAY (got {granularity!r})")
        start = _required_time("startTime", one("startTime"))
        end = _required_time("endTime", one("endTime"))
        if start >= end:
            raise ValueError("startTime must be before endTime")
        step_s, widest, oldest = GRANULARITIES[granularity]
        if end - start > widest:
            raise ValueError(f"{granularity} granularity covers at most {widest // 3600} hours")
        if oldest is not None and start < wall - oldest:
            raise ValueError(
                f"{granularity} granularity reaches back at most {oldest // 3600} hours"
            )
        group_by = [g for v in params.get("groupBy", []) for g in v.split(",") if g.strip()]
        group_by = [g.strip() for g in group_by]
        for g in group_by:
            if g not in GROUP_BYS:
                raise ValueError(f"groupBy {g!r} is not one of {', '.join(GROUP_BYS)}")
    except ValueError as exc:
        return _errors(400, "ValidationError", str(exc), headers)
    platform = None
    if dest:
        try:
            platform = platform_name(dest)
        except ValueError:
            return _errors(404, "resource-not-found", f"No destination {dest}", headers)
    first = int(start // step_s) * step_s
    buckets = range(first, math.ceil(end), step_s)  # bucket starts t < end
    # group key -> bucket index -> events
    counts: dict[tuple[Any, ...], dict[int, int]] = {}
    if platform is not None and step in ("successful-delivery", "failed-delivery"):
        success = step == "successful-delivery"
        visible = wall - LAG  # a second s counts once wall >= s + LAG
        with state.lock:
            seconds = [
                (sec, dict(per))
                for sec, per in state.platform_stats[platform].events.items()
                if start <= sec < end and sec <= visible
            ]
        for sec, per in seconds:
            index = int((sec - first) // step_s)
            for (name, code), n in per.items():
                if (code == 200) != success:
                    continue
                fields = {
                    "eventName": name or None,
                    "eventType": "track",
                    "discardReason": None if success else _reason(code),
                    "appVersion": None,
                }
                key = tuple(fields[g] for g in group_by)
                row = counts.setdefault(key, {})
                row[index] = row.get(index, 0) + n
    if not group_by:
        counts.setdefault((), {})
    dataset = []
    for key in sorted(counts, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        row = counts[key]
        entry: dict[str, Any] = dict(zip(group_by, key, strict=True))
        entry["total"] = sum(row.values())
        entry["series"] = [{"time": iso(t), "count": row.get(i, 0)} for i, t in enumerate(buckets)]
        entry["totalRetryCount"] = 0
        dataset.append(entry)
    data = {
        "total": sum(e["total"] for e in dataset),
        "dataset": dataset,
        "pagination": {"current": "MA==", "next": None},
    }
    return Reply(200, {"data": data}, headers)
