"""Evidence providers: what joins an incident from outside the detectors.

Each keeps the latest facts per destination and, asked by the ledger about an incident, says
what belongs in it (:class:`~observatory.incidents.ledger.Attachment`): its evidence under one
key, and timeline entries when the facts changed since the incident last noted them.

- :class:`StatusPageEvidence`: what a vendor's status page said (component status, indicator,
  open incidents' names), from statuspage probe results, as ``evidence["status_page"]`` and a
  "status_page" entry whenever it changes; live incidents only.
- :class:`DriftEvidence`: the destination's latest rate-limit drift (``observatory.detect.drift``)
  as ``evidence["rate_limit_drift"]`` and a "drift" entry per drop and restoration, on the
  incident open when it was flagged or opened within ``DRIFT_ATTACH_WINDOW`` after; with what
  the destination said of its limit (mParticle's usage headers), in words, as
  ``rate_limit_usage``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from observatory.incidents.ledger import Attachment, Entry, ProviderKey
from observatory.incidents.model import Incident

if TYPE_CHECKING:
    from observatory.detect.drift import DriftEvent
    from observatory.probes import ProbeResult

# A rate-limit drift joins an incident open when it is flagged or opened this soon after (s).
DRIFT_ATTACH_WINDOW = 300.0


class StatusPageEvidence:
    """The latest status-page facts per destination."""

    key: ClassVar[ProviderKey] = "status_page"

    def __init__(self) -> None:
        self.facts: dict[str, dict[str, Any]] = {}

    def record(self, result: ProbeResult) -> bool:
        """Keep what a statuspage probe result says; True when it said something."""
        facts = status_page_facts(result)
        if facts is None:
            return False
        self.facts[result.destination] = facts
        return True

    def attach(self, incident: Incident) -> Attachment | None:
        facts = self.facts.get(incident.destination)
        if facts is None or incident.historical:
            return None
        sig = (facts.get("component_status"), facts.get("page_indicator"), *facts["incidents"])
        return Attachment(
            self.key,
            facts,
            sig,
            lambda _: [(facts["checked_at"], "status_page", _status_page_detail(facts))],
        )


class DriftEvidence:
    """The latest rate-limit drift per destination."""

    key: ClassVar[ProviderKey] = "rate_limit_drift"

    def __init__(self) -> None:
        self.drifts: dict[str, dict[str, Any]] = {}
        self._times: dict[str, tuple[float, float | None]] = {}  # flagged, restored

    def record(self, event: DriftEvent) -> None:
        line = event.json_line()
        record = self.drifts.get(event.destination)
        if event.kind == "ceiling_drop" or record is None:
            record = {
                "old_ceiling_per_s": line["old_ceiling_per_s"],
                "new_ceiling_per_s": line["new_ceiling_per_s"],
                "flagged_at": line["ts"],
                "throttled_share": line["throttled_share"],
                "retry_after_s": line["retry_after_s"],
                "unit": "events/s delivered while throttled",
            }
            self._times[event.destination] = (event.ts, None)
        if event.usage is not None and event.usage.words() is not None:
            # what the destination said of its own limit, as of the latest drift event
            record["rate_limit_usage"] = event.usage.words()
        if event.kind == "ceiling_restored":
            record["restored_at"] = line["ts"]
            record["restored_ceiling_per_s"] = line["new_ceiling_per_s"]
            flagged = self._times[event.destination][0]
            self._times[event.destination] = (flagged, event.ts)
        self.drifts[event.destination] = record

    def attach(self, incident: Incident) -> Attachment | None:
        record = self.drifts.get(incident.destination)
        if record is None:
            return None
        flagged, restored = self._times[incident.destination]
        if incident.detected_at > flagged + DRIFT_ATTACH_WINDOW or (
            incident.resolved_at is not None and incident.resolved_at < flagged
        ):
            return None

        def entries(noted: tuple[Any, ...] | None) -> list[Entry]:
            out: list[Entry] = []
            if noted is None or noted[0] != flagged:
                out.append((flagged, "drift", _drift_detail(record)))
            if restored is not None:
                out.append((restored, "drift", _drift_restored_detail(record)))
            return out

        return Attachment(self.key, dict(record), (flagged, restored), entries)


def status_page_facts(result: ProbeResult) -> dict[str, Any] | None:
    """What a status page said, from a statuspage probe result that parsed; else None."""
    d = result.details
    if d.get("kind") != "statuspage" or not ("component_status" in d or "page_indicator" in d):
        return None
    facts: dict[str, Any] = {"probe": result.probe, "checked_at": result.ts}
    for key in ("component", "component_status", "page_indicator", "page_description"):
        if key in d:
            facts[key] = d[key]
    incidents = d.get("incidents")
    facts["incidents"] = [str(n) for n in incidents] if isinstance(incidents, list) else []
    return facts


def _status_page_detail(facts: dict[str, Any]) -> str:
    parts = []
    if "component" in facts:
        parts.append(f"component {facts['component']}: {facts.get('component_status')}")
    if "page_indicator" in facts:
        described = facts.get("page_description")
        parts.append(
            f"page indicator {facts['page_indicator']}" + (f" ({described})" if described else "")
        )
    names = facts["incidents"]
    parts.append("open incidents: " + ("; ".join(names) if names else "none"))
    return "status page: " + ", ".join(parts)


def _drift_detail(record: dict[str, Any]) -> str:
    detail = (
        f"rate-limit drift: accepted-rate ceiling {record['old_ceiling_per_s']:g}/s -> "
        f"{record['new_ceiling_per_s']:g}/s (delivered while throttled), "
        f"{record['throttled_share'] * 100:.1f}% of attempts throttled in the seconds that "
        "showed it"
    )
    if record.get("retry_after_s") is not None:
        detail += f", Retry-After {record['retry_after_s']:g} s"
    if record.get("rate_limit_usage"):
        detail += f"; {record['rate_limit_usage']}"
    return detail


def _drift_restored_detail(record: dict[str, Any]) -> str:
    return (
        f"rate-limit drift over: accepted-rate ceiling back to "
        f"{record['restored_ceiling_per_s']:g}/s (baseline {record['old_ceiling_per_s']:g}/s)"
    )
