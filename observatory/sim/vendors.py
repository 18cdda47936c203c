"""The ad platforms' delivery APIs: what each one answers a batch, in its own words.

* TikTok Events API 2.0 answers HTTP 200 and lets the body ``code`` decide: 0 ok, 40100
  throttled, 40105 bad token, 40002 bad body;
* Meta Conversions API errors are HTTP 400 with ``error.code`` 17 throttled, 190 token,
  100 bad body;
* Google Ads throttles with 429 ``RESOURCE_EXHAUSTED`` and a ``retryDelay``, and reports gclids
  starting with ``bad`` in a ``partialFailureError``;
* a CRM webhook takes ``{"batch":[...]}`` or one event.

`platform_reply` also applies an injected fault and records every event's outcome (and its
event name) in the platform's `PlatformStats`, which the status APIs and feeds report.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson

from observatory.sim.state import REASONS, Fault, PlatformStats, Reply, SimState

__all__ = ["platform_reply"]

_GADS_FAILURE = "type.googleapis.com/google.ads.googleads.v17.errors.GoogleAdsFailure"
# The field that names an event in each platform's request (Google's is the conversion action).
_NAME_FIELDS = {"tiktok": "event", "meta": "event_name", "google": "conversionAction"}


def _names(p: str, items: list[Any]) -> Counter[str]:
    """Events per event name in a batch ("" when an event has none)."""
    key = _NAME_FIELDS.get(p, "event")
    out: Counter[str] = Counter()
    for item in items:
        name = item.get(key) if isinstance(item, dict) else None
        out[name if isinstance(name, str) else ""] += 1
    return out


def platform_reply(state: SimState, p: str, body: bytes, fault: Fault | None, now: float) -> Reply:
    """Platform `p`'s answer to a delivery request that arrived at monotonic `now`."""
    items: list[Any] | None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if p in ("tiktok", "meta"):
        items = doc.get("data") if isinstance(doc, dict) else None
    elif p == "google":
        items = doc.get("conversions") if isinstance(doc, dict) else None
    elif isinstance(doc, dict) and isinstance(doc.get("batch"), list):
        items = doc["batch"]
    else:
        items = [doc] if isinstance(doc, dict) else None
    n = len(items) if isinstance(items, list) else 0
    names = _names(p, items) if isinstance(items, list) else None
    wall = time.time()
    with state.lock:
        stats = state.platform_stats[p]
        stats.requests += 1
        reply: Reply | None = None
        delay = 0.0
        if fault is not None:
            if fault.kind == "timeout":
                delay = fault.delay
            else:
                reply = fault.reply()
                if reply is not None and fault.kind != "malformed":
                    stats.record(wall, 0, n, reply.status, names)
        if reply is None:
            reply = _answer(state, p, items, n, now, wall, stats, names)
        if delay <= 0:
            stats.observe_latency(time.monotonic() - now)
    reply.delay = delay
    return reply


def _answer(
    state: SimState,
    p: str,
    items: list[Any] | None,
    n: int,
    now: float,
    wall: float,
    stats: PlatformStats,
    names: Counter[str] | None,
) -> Reply:
    """Called with the lock held: the platform's own answer, recorded in `stats`."""
    rid = state.request_id()
    if not isinstance(items, list):
        stats.record(wall, 0, max(n, 1), 400)
        return _bad_body(p, rid)
    if not state.token_valid[p]:
        status = 200 if p == "tiktok" else 401 if p in ("google", "webhook") else 400
        stats.record(wall, 0, n, 401 if p == "tiktok" else status, names)
        return _bad_token(p, rid)
    bucket = state.buckets.get(p)
    if bucket is not None and not bucket.take(now):
        stats.record(wall, 0, n, 429, names)
        return _throttled(p, rid)
    rate = state.error_rates[p]
    if rate > 0 and state.rng.random() < rate:
        status = (500, 502, 503)[state.rng.randrange(3)]
        stats.record(wall, 0, n, status, names)
        if p == "tiktok":
            return Reply(status, {"code": 50000, "message": "System error", "request_id": rid})
        return Reply(status, {"error": {"code": status, "message": REASONS[status]}})
    if p == "tiktok":
        stats.record(wall, n, 0, 200, names)
        return Reply(200, {"code": 0, "message": "OK", "request_id": rid, "data": {}})
    if p == "meta":
        stats.record(wall, n, 0, 200, names)
        return Reply(200, {"events_received": n, "messages": [], "fbtrace_id": "A" + rid})
    if p == "google":
        return _google_ok(items, n, wall, stats)
    stats.record(wall, n, 0, 200, names)
    return Reply(200, {"ok": True, "received": n})


def _google_ok(items: list[Any], n: int, wall: float, stats: PlatformStats) -> Reply:
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    first_bad = -1
    bad_items: list[Any] = []
    for i, conv in enumerate(items):
        gclid = conv.get("gclid", "") if isinstance(conv, dict) else ""
        if isinstance(gclid, str) and gclid.startswith("bad"):
            results.append({})
            bad_items.append(conv)
            if first_bad < 0:
                first_bad = i
            errors.append(
                {
                    "errorCode": {"conversionUploadError": "UNPARSEABLE_GCLID"},
                    "message": "The GCLID could not be decoded.",
                    "location": {"fieldPathElements": [{"fieldName": "conversions", "index": i}]},
                }
            )
        else:
            assert isinstance(conv, dict)
            results.append(
                {
                    "gclid": gclid,
                    "conversionAction": conv.get("conversionAction", ""),
                    "conversionDateTime": conv.get("conversionDateTime", ""),
                }
            )
    bad_names = _names("google", bad_items)
    stats.record(wall, n - len(errors), 0, 200, _names("google", items) - bad_names)
    if errors:
        stats.record(wall, 0, len(errors), 400, bad_names)
    out: dict[str, Any] = {"results": results}
    if errors:
        out["partialFailureError"] = {
            "code": 3,
            "message": f"The GCLID could not be decoded., at conversions[{first_bad}]",
            "details": [{"@type": _GADS_FAILURE, "errors": errors}],
        }
    return Reply(200, out)


def _bad_body(p: str, rid: str) -> Reply:
    if p == "tiktok":
        return _tiktok_error(40002, "Invalid parameter: data", rid)
    if p == "meta":
        return _meta_error(100, "(#100) The parameter data is required", rid)
    return _google_error(400, "Invalid JSON payload.", "INVALID_ARGUMENT")


def _bad_token(p: str, rid: str) -> Reply:
    if p == "tiktok":
        return _tiktok_error(40105, "Access token is incorrect or has been revoked.", rid)
    if p == "meta":
        msg = "Error validating access token: Session has expired."
        return _meta_error(190, msg, rid, subcode=463)
    return _google_error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")


def _throttled(p: str, rid: str) -> Reply:
    if p == "tiktok":
        return _tiktok_error(40100, "Too many requests", rid)
    if p == "meta":
        return _meta_error(17, "(#17) User request limit reached", rid, subcode=2446079)
    if p == "google":
        body = {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": _GADS_FAILURE,
                        "errors": [
                            {
                                "errorCode": {"quotaError": "RESOURCE_EXHAUSTED"},
                                "message": "Too many requests. Retry in 1 seconds.",
                                "details": {
                                    "quotaErrorDetails": {
                                        "rateScope": "DEVELOPER",
                                        "rateName": "Requests per developer per second",
                                        "retryDelay": "1s",
                                    }
                                },
                            }
                        ],
                    }
                ],
            }
        }
        return Reply(429, body)
    return Reply(429, {"error": "Too Many Requests"}, [("Retry-After", "1")])


def _tiktok_error(code: int, message: str, rid: str) -> Reply:
    """TikTok answers HTTP 200 and lets the body `code` say what went wrong."""
    return Reply(200, {"code": code, "message": message, "request_id": rid})


def _meta_error(code: int, message: str, rid: str, subcode: int | None = None) -> Reply:
    """A Graph API error body (HTTP 400)."""
    err: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        err["error_subcode"] = subcode
    err["fbtrace_id"] = "A" + rid
    return Reply(400, {"error": err})


def _google_error(http: int, message: str, status: str) -> Reply:
    """A google.rpc Status error body."""
    return Reply(http, {"error": {"code": http, "message": message, "status": status}})
