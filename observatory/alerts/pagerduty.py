"""The PagerDuty sink: Events API v2 bodies (trigger / acknowledge / resolve, with a dedup key
stable across the incident's changes) and :class:`PagerDutySink`, which posts them."""

from __future__ import annotations

import hashlib
from typing import Any

from observatory.alerts.formatting import _clip, _headline, _json_bytes
from observatory.alerts.http_sink import _HttpSink
from observatory.incidents.model import Change, Incident
from observatory.util.isotime import iso


def pagerduty_action(change: Change) -> str:
    """``trigger`` for open/update, ``acknowledge`` once acknowledged, ``resolve`` when resolved."""
    if change.kind == "resolved":
        return "resolve"
    if change.incident.state == "acknowledged":
        return "acknowledge"
    return "trigger"


def pagerduty_dedup_key(incident: Incident) -> str:
    """``observatory/{destination}/{id}``; stable, and within PagerDuty's 255 characters."""
    key = f"observatory/{incident.destination}/{incident.id}"
    if len(key) > 255:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = key[:238] + "~" + digest
    return key


def pagerduty_event(change: Change, routing_key: str) -> dict[str, Any]:
    """The PagerDuty Events API v2 body for ``change``."""
    inc = change.incident
    action = pagerduty_action(change)
    ts = {"resolve": inc.resolved_at, "acknowledge": inc.acknowledged_at}.get(action)
    details: dict[str, Any] = {
        "incident_id": inc.id,
        "state": inc.state,
        "change": change.kind,
        "detector": inc.detector,
        "detectors": inc.detectors or [inc.detector],
        "onset": iso(inc.onset),
        "detected_at": iso(inc.detected_at),
        "acknowledged_at": iso(inc.acknowledged_at),
        "resolved_at": iso(inc.resolved_at),
        "time_to_detect_s": round(max(0.0, inc.detected_at - inc.onset), 3),
        "impact": inc.impact.as_dict() if inc.impact is not None else {},
        "evidence": inc.evidence,
        "flaps": inc.flaps,
    }
    return {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": pagerduty_dedup_key(inc),
        "payload": {
            "summary": _clip(_headline(change), 1024),
            "source": "observatory",
            "severity": inc.severity,
            "timestamp": iso(ts if ts is not None else inc.detected_at),
            "component": inc.destination,
            "class": inc.detector,
            "custom_details": details,
        },
    }


class PagerDutySink(_HttpSink):
    """PagerDuty Events API v2 (``url`` defaults to the public enqueue endpoint)."""

    kind = "pagerduty"

    def deliver(self, change: Change) -> None:
        routing_key = self._config.routing_key_value() or ""
        self._post(_json_bytes(pagerduty_event(change, routing_key)))
