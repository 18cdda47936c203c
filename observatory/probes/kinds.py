"""The probe kinds: Atlassian Statuspage, Segment delivery metrics, Prometheus text, plain HTTP."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from observatory.config import ProbeConfig
from observatory.feeds.exposition import parse_exposition
from observatory.probes.base import HttpProbeBase, _BodyError
from observatory.probes.promtext import Selector, parse_selectors
from observatory.util.retry_after import ms_before_next

OPERATIONAL_COMPONENT = "operational"
UNRESOLVED = frozenset({"investigating", "identified", "monitoring"})


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise _BodyError(f"body is not JSON ({exc.msg})") from None


class StatuspageProbe(HttpProbeBase):
    """GET an Atlassian Statuspage ``summary.json``. Not ok when the configured component is
    not ``operational`` or, with no component configured, the page indicator is not ``none``."""

    kind = "statuspage"

    def evaluate(
        self, response: httpx.Response, now: float
    ) -> tuple[bool, str | None, dict[str, Any]]:
        if not 200 <= response.status_code < 300:
            return False, f"http {response.status_code}", {}
        body = _json(response)
        if not isinstance(body, dict):
            raise _BodyError("summary is not a JSON object")
        details: dict[str, Any] = {}
        status = body.get("status")
        if isinstance(status, dict):
            if isinstance(status.get("indicator"), str):
                details["page_indicator"] = status["indicator"]
            if isinstance(status.get("description"), str):
                details["page_description"] = status["description"]
        page = body.get("page")
        if isinstance(page, dict) and isinstance(page.get("name"), str):
            details["page"] = page["name"]
        incidents = body.get("incidents")
        if isinstance(incidents, list):
            names = [
                str(i.get("name"))
                for i in incidents
                if isinstance(i, dict)
                and str(i.get("status", "")).lower() not in ("resolved", "postmortem")
            ]
            details["incidents"] = names
        components = body.get("components")
        want = self.config.component
        if want is not None:
            if not isinstance(components, list):
                raise _BodyError("summary has no components list")
            details["component"] = want
            match = next(
                (
                    c
                    for c in components
                    if isinstance(c, dict)
                    and str(c.get("name", "")).strip().lower() == want.strip().lower()
                ),
                None,
            )
            if match is None:
                details["component_status"] = "not_found"
                return False, "component not found", details
            comp_status = str(match.get("status", "")) or "unknown"
            details["component_status"] = comp_status
            return comp_status == OPERATIONAL_COMPONENT, comp_status, details
        if "page_indicator" not in details:
            raise _BodyError("summary has no status.indicator")
        indicator = details["page_indicator"]
        return indicator == "none", indicator, details


def _iso_minute(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SegmentDeliveryProbe(HttpProbeBase):
    """GET Segment's ``delivery-metrics`` for the last few minutes at MINUTE granularity."""

    kind = "segment_delivery"
    window_minutes = 5

    def request_params(self, now: float) -> dict[str, str] | None:
        end = math.floor(now / 60.0) * 60.0
        start = end - self.window_minutes * 60.0
        return {
            "startTime": _iso_minute(start),
            "endTime": _iso_minute(end),
            "granularity": "MINUTE",
        }

    def evaluate(
        self, response: httpx.Response, now: float
    ) -> tuple[bool, str | None, dict[str, Any]]:
        if not 200 <= response.status_code < 300:
            details: dict[str, Any] = {}
            if response.status_code == 429:
                ms = ms_before_next(response.content)
                if ms is not None:
                    details["ms_before_next"] = ms
            return False, f"http {response.status_code}", details
        body = _json(response)
        try:
            summary = body["data"]["deliveryMetricsSummary"]
            metrics = summary["metrics"]
            if not isinstance(metrics, list):
                raise TypeError
        except (KeyError, TypeError):
            raise _BodyError("no data.deliveryMetricsSummary.metrics list") from None
        totals: dict[str, float] = {}
        for m in metrics:
            if not isinstance(m, dict):
                continue
            name = str(m.get("metricName", ""))
            total = m.get("total")
            if isinstance(total, int | float) and not isinstance(total, bool):
                totals[name] = totals.get(name, 0) + total
        return True, "ok", {"metrics": totals, "window_minutes": self.window_minutes}

    def body_retry_at(self, response: httpx.Response, now: float) -> float | None:
        ms = ms_before_next(response.content)
        return None if ms is None else now + ms / 1000.0


# Without a selector, a Prometheus probe reports rudder-server's delivery metrics.
DEFAULT_SELECTORS = "event_delivery, router_aborted_events, router_throttled"


class PrometheusProbe(HttpProbeBase):
    """Scrape a Prometheus text endpoint; sum the series each selector matches; deltas are
    against the previous successful scrape."""

    kind = "prometheus"

    def __init__(self, destination: str, config: ProbeConfig, name: str | None = None) -> None:
        super().__init__(destination, config, name)
        self.selectors: list[Selector] = parse_selectors(config.selector or DEFAULT_SELECTORS)
        self._previous: dict[str, float] | None = None

    def evaluate(
        self, response: httpx.Response, now: float
    ) -> tuple[bool, str | None, dict[str, Any]]:
        if not 200 <= response.status_code < 300:
            return False, f"http {response.status_code}", {}
        try:
            text = response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise _BodyError("body is not UTF-8") from None
        samples, bad_lines = parse_exposition(text)
        bad = len(bad_lines)
        if not samples and bad:
            raise _BodyError(f"no sample parsed ({bad} bad lines)")
        sums: dict[str, float] = {}
        matched: dict[str, int] = {}
        for sel in self.selectors:
            total = 0.0
            n = 0
            for s in samples:
                if sel.matches(s.name, s.labels) and not math.isnan(s.value):
                    total += s.value
                    n += 1
            sums[sel.text] = total
            matched[sel.text] = n
        deltas: dict[str, float | None] = {}
        for key, value in sums.items():
            before = None if self._previous is None else self._previous.get(key)
            if before is None:
                deltas[key] = None
            elif value >= before:
                deltas[key] = value - before
            else:  # counter reset: everything since the restart is new
                deltas[key] = value
        self._previous = sums
        details: dict[str, Any] = {
            "sums": sums,
            "deltas": deltas,
            "series_matched": matched,
            "samples": len(samples),
        }
        if bad:
            details["bad_lines"] = bad
        return True, "ok", details


class HttpProbe(HttpProbeBase):
    """GET/HEAD a URL; ok when the status is ``expect_status``. Latency and every rate-limit
    header are recorded by the base."""

    kind = "http"

    def evaluate(
        self, response: httpx.Response, now: float
    ) -> tuple[bool, str | None, dict[str, Any]]:
        ok = response.status_code == self.config.expect_status
        return (
            ok,
            "ok" if ok else f"http {response.status_code}",
            {"expect_status": self.config.expect_status},
        )
