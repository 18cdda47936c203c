"""Probe results, the probe protocol, rate-limit header parsing and secret hygiene.

A probe never raises: every failure (timeout, refused connection, 5xx, a body that does not
parse) is a :class:`ProbeResult` with ``ok=False``. Results carry no secrets: no request
headers, no query string, and every string that reaches ``status``/``details`` is scrubbed of
the probe's secret values (a server may echo a token back in an error body).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from observatory.config import ProbeConfig
from observatory.util.retry_after import parse_reset, parse_retry_after

REDACTED = "***"
# How much of the details a probe keeps: strings are cut, lists shortened.
MAX_STRING = 300
MAX_LIST = 50


@dataclass
class ProbeResult:
    """One probe run. ``ts`` is epoch seconds (when the request started); ``retry_at`` is the
    epoch second before which the server asked not to be called again (None: no such ask)."""

    destination: str
    probe: str
    ts: float
    ok: bool
    http_status: int | None = None
    latency_ms: float | None = None
    status: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    retry_at: float | None = None


@runtime_checkable
class Probe(Protocol):
    """An active check of one destination. ``run`` never raises."""

    name: str
    destination: str
    every: float
    timeout: float

    async def run(self, client: httpx.AsyncClient) -> ProbeResult: ...


def reported_status(result: ProbeResult) -> str | None:
    """The status a status API reported (component status, else page indicator), for the
    engine's "non-operational status" rule; None for every other probe result, so transport
    failures count towards "3 consecutive failures" instead of alarming at once."""
    for key in ("component_status", "page_indicator"):
        value = result.details.get(key)
        if isinstance(value, str) and value:
            return value
    return None


# --------------------------------------------------------------------------------------------
# Secrets


def redact_url(url: str) -> str:
    """scheme://host[:port]/path with userinfo dropped and the query string redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def secret_values(config: ProbeConfig) -> list[str]:
    """The strings of a probe's config that must never be stored: header values (and their
    bearer tokens), the URL's query values, userinfo, and the full URL itself."""
    out: set[str] = set()
    url = config.url_value()
    out.add(url)
    try:
        parts = urlsplit(url)
        for _, value in parse_qsl(parts.query, keep_blank_values=False):
            out.add(value)
        if parts.query:
            out.add(parts.query)
        if parts.password:
            out.add(parts.password)
        if parts.username:
            out.add(parts.username)
    except ValueError:
        pass
    for value in config.header_values().values():
        out.add(value)
        for word in value.split():
            out.add(word)
    # Short strings ("1", "Bearer") would mangle everything; a real secret is longer.
    return sorted((s for s in out if len(s) >= 6 and s.lower() != "bearer"), key=len, reverse=True)


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """`value` (JSON-like) with every secret substring replaced, strings cut to MAX_STRING,
    lists to MAX_LIST items, and non-finite floats as strings (JSON has no NaN)."""
    secrets = list(secrets)
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return value if len(value) <= MAX_STRING else value[: MAX_STRING - 1] + "…"
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return value
    if isinstance(value, Mapping):
        return {scrub(str(k), secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in list(value)[:MAX_LIST]]
    return scrub(str(value), secrets)


class _RedactLogs(logging.Filter):
    """httpx logs each request's full URL at INFO: redact query strings and every registered
    probe secret from records of the httpx/httpcore loggers."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self._lock = threading.Lock()

    def register(self, secrets: Iterable[str]) -> None:
        with self._lock:
            merged = set(self._secrets) | set(secrets)
            self._secrets = sorted(merged, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in args)
        try:
            message = str(record.msg) % args if args else str(record.msg)
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = scrub(message, self._secrets) if self._secrets else message
        record.args = ()
        return True


LOG_FILTER = _RedactLogs()
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)
for _name in _LOGGERS:
    logging.getLogger(_name).addFilter(LOG_FILTER)


# --------------------------------------------------------------------------------------------
# Rate-limit headers

# Names of headers recorded verbatim (lowercase substrings).
_RATE_HEADER_MARKS = ("ratelimit", "rate-limit", "retry-after", "x-app-usage", "usage")


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value.strip().split(",")[0]))
    except ValueError:
        return None


def _sf_params(item: str) -> tuple[str | None, dict[str, str]]:
    """One structured-field list member: `"name";k=v;k2=v2` or `100;w=60`."""
    pieces = [p.strip() for p in item.split(";")]
    head = pieces[0].strip('"') if pieces and "=" not in pieces[0] else None
    params: dict[str, str] = {}
    for p in pieces[1:] if head is not None else pieces:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    return head, params


def parse_rate_limit_headers(
    headers: Mapping[str, str] | httpx.Headers, now: float
) -> tuple[dict[str, Any], float | None]:
    """Rate-limit facts from response headers, and when the server said to come back.

    Handles ``Retry-After`` (delay seconds or HTTP-date), ``X-RateLimit-Limit/Remaining/Reset``
    (reset as epoch seconds, epoch ms, delta seconds or an RFC 5322 date), the older draft
    ``RateLimit-Limit/Remaining/Reset`` (delta seconds) with ``RateLimit-Policy: 100;w=60``, and
    the newer ``RateLimit-Policy: "default";q=100;w=60`` / ``RateLimit: "default";r=50;t=30``.
    ``retry_at`` comes from Retry-After, or from a reset when the remaining quota is 0.
    mParticle's ``X-mp-rate-limit-percentage-used`` (on 2xx, an early warning) and
    ``X-mp-rate-limit-exceeded`` (the scope throttled, on a 429) go to ``rate_limit.mparticle``
    as ``percentage_used`` (a float, percent) and ``exceeded`` (the scope, lowercase).
    Returns ``({}, None)`` when there is nothing rate-limit related.
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    raw = {k: v for k, v in lower.items() if any(m in k for m in _RATE_HEADER_MARKS)}
    details: dict[str, Any] = {}
    if raw:
        details["rate_limit_headers"] = dict(sorted(raw.items()))
    parsed: dict[str, Any] = {}
    candidates: list[float] = []  # when the server may be asked again

    delay = parse_retry_after(lower.get("retry-after"), now)
    if delay is not None:
        parsed["retry_after_s"] = delay
        candidates.append(now + delay)
    for prefix, key, delta_only in (
        ("x-ratelimit-", "x_ratelimit", False),
        ("ratelimit-", "ratelimit_fields", True),
    ):
        entry = _limit_fields(lower, prefix, delta_only, now, candidates)
        if entry is not None:
            parsed[key] = entry
    policy = lower.get("ratelimit-policy")
    if policy is not None:
        parsed["ratelimit_policy"] = [_policy(item) for item in _sf_items(policy)]
    structured = lower.get("ratelimit")
    if structured is not None:
        parsed["ratelimit"] = [_quota(item, now, candidates) for item in _sf_items(structured)]

    mp = _mparticle(lower)
    if mp:
        parsed["mparticle"] = mp

    if parsed:
        details["rate_limit"] = parsed
    retry_at = max(candidates) if candidates else None
    return details, retry_at


# X-mp-rate-limit-exceeded names a scope (org, account, app, feed, workspace, acceleration);
# whatever word it holds is kept, cut to this length.
_SCOPE_MAX = 40
_SCOPE_JUNK = re.compile(r"[^a-z0-9_.-]+")


def _mparticle(lower: dict[str, str]) -> dict[str, Any]:
    """``X-mp-rate-limit-percentage-used`` / ``-exceeded``; ``{}`` when neither parses."""
    out: dict[str, Any] = {}
    used = lower.get("x-mp-rate-limit-percentage-used")
    if used is not None:
        try:
            pct = float(used.strip().rstrip("%").strip())
        except ValueError:
            pct = math.nan
        if math.isfinite(pct) and pct >= 0:
            out["percentage_used"] = pct
    # a header is untrusted text: a scope is a word, and nothing else of it is kept
    scope = _SCOPE_JUNK.sub("", (lower.get("x-mp-rate-limit-exceeded") or "").lower())
    if scope:
        out["exceeded"] = scope[:_SCOPE_MAX]
    return out


def mparticle_usage(details: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """(percentage used, exceeded scope) a probe result's details carry, each None if absent."""
    rl = details.get("rate_limit")
    mp = rl.get("mparticle") if isinstance(rl, Mapping) else None
    if not isinstance(mp, Mapping):
        return None, None
    pct = mp.get("percentage_used")
    scope = mp.get("exceeded")
    return (
        float(pct) if isinstance(pct, int | float) and not isinstance(pct, bool) else None,
        scope if isinstance(scope, str) and scope else None,
    )


def probe_retry_after(details: Mapping[str, Any]) -> float | None:
    """The Retry-After (s) a probe result's details carry: parsed from the headers
    (``rate_limit.retry_after_s``), or set by the probe itself at the top level."""
    rl = details.get("rate_limit")
    for value in (
        details.get("retry_after_s"),
        rl.get("retry_after_s") if isinstance(rl, Mapping) else None,
    ):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _limit_fields(
    lower: dict[str, str], prefix: str, delta_only: bool, now: float, candidates: list[float]
) -> dict[str, Any] | None:
    """``<prefix>limit/remaining/reset`` (None when none is there); a reset with nothing
    remaining is a time to come back (added to ``candidates``)."""
    limit = _int(lower.get(prefix + "limit"))
    remaining = _int(lower.get(prefix + "remaining"))
    reset_raw = lower.get(prefix + "reset")
    reset = parse_reset(reset_raw, now, delta_only) if reset_raw is not None else None
    if limit is None and remaining is None and reset is None:
        return None
    entry: dict[str, Any] = {}
    if limit is not None:
        entry["limit"] = limit
    if remaining is not None:
        entry["remaining"] = remaining
    if reset is not None:
        entry["reset_at"] = round(reset, 3)
        entry["reset_in_s"] = round(max(0.0, reset - now), 3)
        if remaining == 0:
            candidates.append(max(now, reset))
    return entry


def _sf_items(value: str) -> list[str]:
    """The non-empty members of a structured-field list."""
    return [item for item in value.split(",") if item.strip()]


def _policy(item: str) -> dict[str, Any]:
    """One ``RateLimit-Policy`` member: ``100;w=60`` (draft) or ``"default";q=100;w=60``."""
    head, params = _sf_params(item)
    p: dict[str, Any] = {}
    if head is not None:
        number = _int(head)
        if number is not None:
            p["quota"] = number
        else:
            p["name"] = head
    if "q" in params:
        p["quota"] = _int(params["q"])
    if "w" in params:
        p["window_s"] = _int(params["w"])
    return p


def _quota(item: str, now: float, candidates: list[float]) -> dict[str, Any]:
    """One ``RateLimit`` member: ``"default";r=50;t=30``; none remaining until ``t`` is a
    time to come back (added to ``candidates``)."""
    head, params = _sf_params(item)
    s: dict[str, Any] = {"name": head}
    r = _int(params.get("r"))
    t = _int(params.get("t"))
    if r is not None:
        s["remaining"] = r
    if t is not None:
        s["reset_in_s"] = t
        s["reset_at"] = round(now + t, 3)
        if r == 0:
            candidates.append(now + t)
    return s


# --------------------------------------------------------------------------------------------
# The common HTTP run


class _BodyError(Exception):
    """The response did not parse: status "malformed"."""


class HttpProbeBase:
    """The shared request/response handling; subclasses interpret a response in ``evaluate``."""

    kind = "http"

    def __init__(self, destination: str, config: ProbeConfig, name: str | None = None) -> None:
        self.destination = destination
        self.config = config
        self.name = name or self.kind
        self.every = float(config.every)
        self.timeout = float(config.timeout)
        self._secrets = secret_values(config)
        LOG_FILTER.register(self._secrets)

    # Subclass hooks -------------------------------------------------------------------------

    def request_params(self, now: float) -> dict[str, str] | None:
        return None

    def evaluate(
        self, response: httpx.Response, now: float
    ) -> tuple[bool, str | None, dict[str, Any]]:
        """(ok, status, details) from a response; raise `_BodyError` when it does not parse."""
        ok = 200 <= response.status_code < 300
        return ok, "ok" if ok else f"http {response.status_code}", {}

    # The run ----------------------------------------------------------------------------------

    async def run(self, client: httpx.AsyncClient) -> ProbeResult:
        started = time.time()
        t0 = time.perf_counter()
        details: dict[str, Any] = {
            "kind": self.kind,
            "endpoint": redact_url(self.config.url_value()),
        }
        http_status: int | None = None
        latency: float | None = None
        retry_at: float | None = None
        try:
            async with asyncio.timeout(self.timeout):
                response = await client.request(
                    self.config.method if self.kind == "http" else "GET",
                    self.config.url_value(),
                    params=self.request_params(started),
                    headers=self.config.header_values(),
                    timeout=self.timeout,
                )
                await response.aread()
            latency = round((time.perf_counter() - t0) * 1000.0, 3)
            http_status = response.status_code
            now = time.time()
            rl_details, retry_at = parse_rate_limit_headers(response.headers, now)
            details.update(rl_details)
            try:
                ok, status, more = self.evaluate(response, now)
            except _BodyError as exc:
                ok, status, more = False, "malformed", {"error": str(exc)}
            details.update(more)
            if response.status_code == 429 and retry_at is None:
                retry_at = self.body_retry_at(response, now)
        except (TimeoutError, httpx.TimeoutException):
            ok, status = False, "timeout"
            details["error"] = f"no response within {self.timeout:g} s"
        except httpx.ConnectError as exc:
            ok, status = False, _connect_status(exc)
            details["error"] = type(exc).__name__
        except httpx.HTTPError as exc:
            ok, status = False, "http error"
            details["error"] = type(exc).__name__
        except Exception as exc:  # a probe records failures, never raises
            ok, status = False, "error"
            details["error"] = type(exc).__name__
        return ProbeResult(
            destination=self.destination,
            probe=self.name,
            ts=started,
            ok=ok,
            http_status=http_status,
            latency_ms=latency,
            status=scrub(status, self._secrets) if status is not None else None,
            details=scrub(details, self._secrets),
            retry_at=retry_at,
        )

    def body_retry_at(self, response: httpx.Response, now: float) -> float | None:
        return None


def _connect_status(exc: httpx.ConnectError) -> str:
    text = str(exc).lower()
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    if "refused" in text or "all connection attempts failed" in text:
        return "connection refused"
    if "name" in text and ("resolution" in text or "not known" in text):
        return "dns error"
    return "connection error"
