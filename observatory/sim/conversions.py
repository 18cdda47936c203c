"""What the simulated forwarder sends and how it reads the answers.

The seeded upstream conversions (`Event`, `EventStream`), the four destinations with their API
paths and batch sizes, each destination's request body in its real API shape (`_payload`), and
what a response means for the batch and each of its events (`_Outcome`, `_classify`, honouring
``Retry-After`` and Google's ``retryDelay``).
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from observatory.ingest.classify import RATE_LIMIT_CODES
from observatory.sim.platforms import DEST_NAMES
from observatory.util.retry_after import parse_retry_after

DESTINATIONS = tuple(DEST_NAMES.values())
_PATHS = {
    "tiktok_conversions": "/open_api/v1.3/event/track/",
    "meta_capi": "/v21.0/1234567890123456/events",
    "google_ads": "/v17/customers/1234567890:uploadClickConversions",
    "crm_webhook": "/webhook/crm",
}
_BATCH = {"tiktok_conversions": 50, "meta_capi": 100, "google_ads": 200, "crm_webhook": 25}
_EVENTS = ("AddToCart", "CompletePayment", "PlaceAnOrder", "Lead", "InitiateCheckout")
_EVENT_WEIGHTS = (0.34, 0.30, 0.16, 0.12, 0.08)
_META_NAMES = {
    "AddToCart": "AddToCart",
    "CompletePayment": "Purchase",
    "PlaceAnOrder": "Purchase",
    "Lead": "Lead",
    "InitiateCheckout": "InitiateCheckout",
}
# The vendors' throttling codes, as the observatory classifies them.
_TIKTOK_THROTTLE = frozenset(int(c) for c in RATE_LIMIT_CODES["tiktok"])
_META_THROTTLE = frozenset(int(c) for c in RATE_LIMIT_CODES["meta"])


@dataclass(slots=True)
class Event:
    """One upstream conversion."""

    message_id: str
    name: str
    time: float  # epoch seconds
    value: float
    email_hash: str
    gclid: str


class EventStream:
    """The seeded sequence of upstream conversions: the same seed gives the same events."""

    def __init__(self, seed: int = 0, p_bad_gclid: float = 0.003) -> None:
        self._rng = random.Random(seed)
        self.p_bad_gclid = p_bad_gclid

    def next(self, now: float) -> Event:
        rng = self._rng
        mid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        name = rng.choices(_EVENTS, _EVENT_WEIGHTS)[0]
        bits = rng.getrandbits(64)
        bad = rng.random() < self.p_bad_gclid
        gclid = ("bad" if bad else "Cj0K") + f"{bits:016x}"
        email_hash = hashlib.sha256(f"user{bits % 50000}@example.com".encode()).hexdigest()
        value = round(rng.lognormvariate(3.2, 0.8), 2)
        return Event(mid, name, now, value, email_hash, gclid)


def _payload(dest: str, batch: list[Event]) -> dict[str, Any]:
    """The request body of a batch, in the destination's real API shape."""
    if dest == "tiktok_conversions":
        return {
            "event_source": "web",
            "event_source_id": "CSIM0PIXEL7",
            "data": [
                {
                    "event": e.name,
                    "event_time": int(e.time),
                    "event_id": e.message_id,
                    "user": {"email": e.email_hash},
                    "properties": {"currency": "USD", "value": e.value},
                }
                for e in batch
            ],
        }
    if dest == "meta_capi":
        return {
            "data": [
                {
                    "event_name": _META_NAMES[e.name],
                    "event_time": int(e.time),
                    "event_id": e.message_id,
                    "action_source": "website",
                    "user_data": {"em": [e.email_hash]},
                    "custom_data": {"currency": "USD", "value": e.value},
                }
                for e in batch
            ]
        }
    if dest == "google_ads":
        return {
            "conversions": [
                {
                    "gclid": e.gclid,
                    "conversionAction": "customers/1234567890/conversionActions/987654",
                    "conversionDateTime": time.strftime(
                        "%Y-%m-%d %H:%M:%S+00:00", time.gmtime(e.time)
                    ),
                    "conversionValue": e.value,
                    "currencyCode": "USD",
                    "orderId": e.message_id,
                }
                for e in batch
            ],
            "partialFailure": True,
        }
    return {
        "batch": [
            {
                "type": "track",
                "messageId": e.message_id,
                "event": e.name,
                "properties": {"value": e.value, "currency": "USD"},
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.time)),
            }
            for e in batch
        ]
    }


@dataclass(slots=True)
class _Outcome:
    kind: str  # ok | throttle | server_error | timeout | conn | rejected | bad_response
    status: int | None
    err_code: str | None = None
    err_message: str | None = None
    retry_after: float | None = None
    per_event: dict[int, tuple[str, str]] | None = None  # index -> (code, message) rejected

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttle", "server_error", "timeout", "conn", "bad_response")


def _classify(dest: str, resp: httpx.Response) -> _Outcome:
    """What a destination's response means for the whole batch (and per event, for Google)."""
    status = resp.status_code
    retry = parse_retry_after(resp.headers.get("retry-after"), time.time())
    try:
        doc: Any = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        if status >= 500:
            return _Outcome(
                "server_error",
                status,
                "ERR_BAD_RESPONSE",
                f"Request failed with status code {status}",
            )
        return _Outcome("bad_response", status, "EBADRESPONSE", "Unexpected end of JSON input")
    if not isinstance(doc, dict):
        doc = {}
    if dest == "tiktok_conversions" and status == 200:
        code = doc.get("code")
        msg = str(doc.get("message", ""))
        if code in (0, 20001):
            return _Outcome("ok", status)
        if code in _TIKTOK_THROTTLE:
            return _Outcome("throttle", status, str(code), msg, retry)
        return _Outcome("rejected", status, str(code), msg)
    if status == 429:
        err = doc.get("error")
        code = "429"
        msg = "Too Many Requests"
        if isinstance(err, dict):
            code = str(err.get("status", code))
            msg = str(err.get("message", msg))
            if retry is None:
                retry = _google_retry_delay(err)
        return _Outcome("throttle", status, code, msg, retry)
    if status >= 500:
        return _Outcome(
            "server_error", status, "ERR_BAD_RESPONSE", f"Request failed with status code {status}"
        )
    if status >= 400:
        err = doc.get("error")
        if isinstance(err, dict):
            code_v = err.get("code")
            msg = str(err.get("message", ""))
            if dest == "meta_capi" and isinstance(code_v, int) and code_v in _META_THROTTLE:
                return _Outcome("throttle", status, str(code_v), msg, retry)
            return _Outcome("rejected", status, str(err.get("status") or code_v), msg)
        return _Outcome(
            "rejected", status, str(status), f"Request failed with status code {status}"
        )
    if dest == "google_ads" and isinstance(doc.get("partialFailureError"), dict):
        per_event: dict[int, tuple[str, str]] = {}
        for detail in doc["partialFailureError"].get("details", []):
            for e in detail.get("errors", []):
                try:
                    idx = e["location"]["fieldPathElements"][0]["index"]
                    code = next(iter(e["errorCode"].values()))
                except (KeyError, IndexError, TypeError, StopIteration):
                    continue
                per_event[int(idx)] = (str(code), str(e.get("message", "")))
        return _Outcome("ok", status, per_event=per_event)
    return _Outcome("ok", status)


def _google_retry_delay(err: dict[str, Any]) -> float | None:
    for detail in err.get("details", []) or []:
        for e in detail.get("errors", []) if isinstance(detail, dict) else []:
            delay = (e.get("details") or {}).get("quotaErrorDetails", {}).get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return float(delay[:-1])
                except ValueError:
                    return None
    return None
