"""Server-side Google Tag Manager logs, as two jsonl presets (wire-formats.md "Server-side GTM").

`gtm_cloud_logging` reads Cloud Logging LogEntry exports of Cloud Run request logs. Those
record the requests *into* the tagging server (from browsers and gtag), not what its tags
send on to vendors, so a row is one incoming request and its destination is the sGTM
service: `resource.labels.service_name` (bounded: unlike the URL's host, no client picks
it), else the host of `httpRequest.requestUrl` (logs without Cloud Run's resource labels).
Rename it with `[sources.map.destination]`. Entries of other logs (stdout, system logs) are
LogEntries without `httpRequest`; they are skipped, not rejected.

`stape_gtms3` reads the GTMS-3 convention Stape's tag templates log by: one JSON object per
line, `Type` Request, Response or Message. Only a Response is a delivery (it carries
`ResponseStatusCode` and `ResponseBody`); Request and Message lines are skipped. The
destination is the host of `RequestUrl`, but Stape's own templates log that on the
Request line only, so a Response without one falls back to the tag's `Name` ("TikTok").
The convention has no timestamp: a log shipper adds one (Cloud Logging's `timestamp`, an
ELK `@timestamp`, `time`), and a line with none is rejected like any jsonl line without
its time, since stamping it with the time it was read would put a backfill's whole
history at one instant. A line Cloud Logging wrapped in a LogEntry (`jsonPayload.Type`) is
read the same way. The body is data from the vendor: only its code and message are taken
(TikTok answers HTTP 200 with `code` 40100 when it throttles, so the code matters), at
most 1 KiB of it, and it is never evaluated.
"""

from __future__ import annotations

from observatory.ingest.classify import SUCCESS_CODES
from observatory.ingest.formats.jsonl import Derive, Value
from observatory.util.sqltext import sql_list, sql_str

# A URL's host: after the scheme and any user info, up to a port, path, query or fragment;
# an IPv6 literal keeps its brackets. Lower-cased, as hosts compare.
_URL_HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]/?#]*\]|[^:/?#\[\]]+)"
_URL_PATH = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)"
# GA4's event name in a /g/collect query string.
_GA4_EVENT = r"[?&]en=([^&#]*)"
# A protobuf Duration in JSON ("0.123s", "1.5s", "0s"); a bare number is read as seconds too.
_SECONDS = r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)s?\s*$"
# Error bodies keep their code at `error.status` (Google's RPC status), `error.code`
# (Meta) or `code` (TikTok), and their message beside it.
_BODY_PATHS = ("$.error.status", "$.error.code", "$.code", "$.error.message", "$.message")
BODY_MAX = 1024  # as much of a body as a row keeps, like a reject's line


def url_host(url: str) -> str:
    """SQL: the host of URL expression `url`, lower-case; NULL when it is not a URL."""
    return f"nullif(lower(regexp_extract({url}, {sql_str(_URL_HOST)}, 1)), '')"


def seconds_to_ms(duration: str) -> str:
    """SQL: a Duration text ("0.123s") in milliseconds, as text; NULL when unreadable."""
    secs = f"TRY_CAST(regexp_extract({duration}, {sql_str(_SECONDS)}, 1) AS DOUBLE)"
    return f"CAST({secs} * 1000 AS VARCHAR)"


# ------------------------------------------------------------------ gtm_cloud_logging

_REQUEST_URL = "httpRequest.requestUrl"

CLOUD_LOGGING_FIELDS: dict[str, str] = {
    "ts": "timestamp",
    "destination": "resource.labels.service_name",
    "event_name": _REQUEST_URL,
    "message_id": "trace",
    "http_status": "httpRequest.status",
    "latency_ms": "httpRequest.latency",
}


def _request_event(v: Value) -> str:
    """GA4's event name (`en`) when the URL has one, else the method and path
    ("POST /g/collect"): which endpoint of the tagging server was called."""
    url = v(_REQUEST_URL)
    en = f"nullif(try(url_decode(regexp_extract({url}, {sql_str(_GA4_EVENT)}, 1))), '')"
    path = f"nullif(regexp_extract({url}, {sql_str(_URL_PATH)}, 1), '')"
    return f"coalesce({en}, nullif(concat_ws(' ', {v('httpRequest.requestMethod')}, {path}), ''))"


CLOUD_LOGGING_DERIVED: dict[str, Derive] = {
    "destination": lambda v: (
        f"coalesce(nullif({v('resource.labels.service_name')}, ''), {url_host(v(_REQUEST_URL))})"
    ),
    "event_name": _request_event,
    # The trace ties the request to its container's log lines in Logs Explorer.
    "message_id": lambda v: f"coalesce({v('trace')}, {v('insertId')})",
    "latency_ms": lambda v: seconds_to_ms(v("httpRequest.latency")),
}


def cloud_logging_skip(v: Value) -> str:
    """A LogEntry of another log than the request log (no `httpRequest`)."""
    return f"{v('httpRequest')} IS NULL AND coalesce({v('logName')}, {v('insertId')}) IS NOT NULL"


# ------------------------------------------------------------------ stape_gtms3

GTMS3_FIELDS: dict[str, str] = {
    "ts": "timestamp",
    "destination": "RequestUrl",
    "event_name": "EventName",
    "message_id": "TraceId",
    "http_status": "ResponseStatusCode",
    "error_code": "ResponseBody",
    "error_message": "ResponseBody",
    "outcome": "ResponseStatusCode",
}
# Where shippers put the time they read the line at.
_TS_KEYS = ("timestamp", "time", "@timestamp", "Timestamp")


def _key(v: Value, key: str) -> str:
    """A GTMS-3 key, at the top of the line or inside a Cloud Logging `jsonPayload`."""
    return f"coalesce({v(key)}, {v('jsonPayload.' + key)})"


def _body(v: Value) -> str:
    """SQL list of the body's _BODY_PATHS values; NULL when the body is not a JSON object
    (an HTML error page, "1"), checked first so such bodies cost no parse error."""
    body = _key(v, "ResponseBody")
    return (
        f"CASE WHEN starts_with(ltrim({body}), '{{') THEN "
        f"try(json_extract_string({body}, [{sql_list(_BODY_PATHS)}])) END"
    )


def _body_code(v: Value) -> str:
    """The vendor's code in the body, unless it says success (TikTok's 0) or only repeats
    the HTTP status: a 2xx with any other code is classified as rejected."""
    b = _body(v)
    code = f"coalesce({b}[1], {b}[2], {b}[3])"
    return (
        f"CASE WHEN upper(trim({code})) IN ({sql_list(SUCCESS_CODES)}) "
        f"OR {code} = {_key(v, 'ResponseStatusCode')} THEN NULL ELSE {code} END"
    )


def _body_message(v: Value) -> str:
    """For a response that failed (not a 2xx, or a vendor code): the body's message, else
    the body itself; at most BODY_MAX characters."""
    b = _body(v)
    status = f"TRY_CAST({_key(v, 'ResponseStatusCode')} AS DOUBLE)"
    return (
        f"CASE WHEN NOT coalesce({status} BETWEEN 200 AND 299, false) "
        f"OR ({_body_code(v)}) IS NOT NULL THEN "
        f"left(coalesce({b}[4], {b}[5], nullif(trim({_key(v, 'ResponseBody')}), '')), "
        f"{BODY_MAX}) END"
    )


GTMS3_DERIVED: dict[str, Derive] = {
    "ts": lambda v: f"coalesce({', '.join(v(k) for k in _TS_KEYS)})",
    "destination": lambda v: (
        f"coalesce({url_host(_key(v, 'RequestUrl'))}, nullif(trim({_key(v, 'Name')}), ''))"
    ),
    "event_name": lambda v: _key(v, "EventName"),
    "message_id": lambda v: _key(v, "TraceId"),
    "http_status": lambda v: _key(v, "ResponseStatusCode"),
    "error_code": _body_code,
    "error_message": _body_message,
    # A Response without a status code: the request never got an answer (a timeout).
    "outcome": lambda v: f"CASE WHEN {_key(v, 'ResponseStatusCode')} IS NULL THEN 'failed' END",
}


def gtms3_skip(v: Value) -> str:
    """A tag's log of the request it is about to send, or a free message: not a delivery.
    Any other line (a Response, or one without `Type`) must read as a delivery or is
    rejected."""
    return f"lower({_key(v, 'Type')}) IN ('request', 'message')"
