"""A loopback HTTP/1.1 server imitating the platform and status APIs the observatory watches.

One asyncio event loop in a background thread serves keep-alive connections with a small,
cheap request parser (thousands of requests per second on one core). Endpoints, with the
shapes of the real APIs (see ``wire-formats.md``):

* ``POST /open_api/v1.3/event/track/`` -- TikTok Events API 2.0 (HTTP 200; ``code`` decides:
  0 ok, 40100 throttled, 40105 bad token, 40002 bad body);
* ``POST /v21.0/<pixel>/events`` -- Meta Conversions API (any ``/vN.M/``; errors are HTTP 400
  with ``error.code`` 17 throttled, 190 token, 100 bad body);
* ``POST /v17/customers/<id>:uploadClickConversions`` -- Google Ads (429 ``RESOURCE_EXHAUSTED``
  with ``retryDelay``; ``partialFailureError`` for gclids starting with ``bad``);
* ``POST /webhook/<name>`` -- a CRM webhook (``{"batch":[...]}`` or one event);
* ``GET /api/v2/summary.json``, ``/api/v2/status.json``, ``/api/v2/components.json``,
  ``/api/v2/incidents/unresolved.json`` -- an Atlassian status page;
* ``GET /metrics`` -- rudder-server style Prometheus counters of what was really accepted;
* ``GET /destinations/<id>/delivery-metrics`` -- the Segment Public API delivery metrics;
* ``GET /health``, ``GET /_stats`` and ``POST /_control`` (``{"op": ..., **kwargs}``).

Control methods (`set_component`, `set_fault`, `set_qps_limit`, `set_token_valid`,
`set_error_rate`) are thread-safe and may be called from any thread.
"""

from __future__ import annotations

import asyncio
import bisect
import email.utils
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from observatory.incidents import iso
from observatory.retry_after import parse_retry_after

__all__ = [
    "COMPONENTS",
    "COMPONENT_STATUSES",
    "DEST_IDS",
    "FAULT_KINDS",
    "SimServer",
    "platform_name",
]

COMPONENTS: dict[str, str] = {
    "tiktok": "TikTok Conversions",
    "meta": "Meta Conversions API",
    "google": "Google Ads",
    "webhook": "Webhooks",
}
"""Status page component of each platform."""
COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
FAULT_KINDS = ("http_error", "timeout", "malformed", "rate_limit")
DEST_TYPES = {
    "tiktok": "TIKTOK_ADS",
    "meta": "FACEBOOK_CONVERSIONS",
    "google": "GOOGLE_ADWORDS_OFFLINE_CONVERSIONS",
    "webhook": "WEBHOOK",
}
DEST_IDS = {
    "tiktok": "dst_tiktok",
    "meta": "dst_meta",
    "google": "dst_google",
    "webhook": "dst_webhook",
}
"""Destination ids used in /metrics labels and accepted by /destinations/<id>/delivery-metrics."""
DEST_NAMES = {
    "tiktok": "tiktok_conversions",
    "meta": "meta_capi",
    "google": "google_ads",
    "webhook": "crm_webhook",
}
_ALIASES: dict[str, str] = {}
for _p in COMPONENTS:
    for _alias in (_p, DEST_IDS[_p], DEST_NAMES[_p], DEST_TYPES[_p].lower()):
        _ALIASES[_alias.lower()] = _p
_ALIASES["google_ads"] = "google"
_ALIASES["crm"] = "webhook"

_GADS_FAILURE = "type.googleapis.com/google.ads.googleads.v17.errors.GoogleAdsFailure"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMPONENT_IDS = {p: f"cmp{i}{p[:4]}" for i, p in enumerate(COMPONENTS, 1)}
_PAGE = {
    "id": "simpage01",
    "name": "Observatory Simulator",
    "url": "http://127.0.0.1",
    "time_zone": "Etc/UTC",
}
_SEGMENT_LIMIT = 1000  # requests per minute to the Segment-like API
_TIMES_KEPT = 200_000  # arrival times kept per path

Headers = list[tuple[str, str]]


# The control operations (``POST /_control``, scenario steps): SimServer methods by name.
SERVER_OPS = ("set_component", "set_fault", "set_qps_limit", "set_token_valid", "set_error_rate")


def platform_name(name: str) -> str:
    """The canonical platform (tiktok | meta | google | webhook) for a name or alias."""
    try:
        return _ALIASES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown platform {name!r} (expected one of {', '.join(COMPONENTS)})"
        ) from None


def _parse_time(text: str | None, default: float) -> float:
    if not text:
        return default
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"bad time {text!r}") from None


@dataclass(slots=True)
class _Fault:
    kind: str
    status: int = 503
    delay: float = 30.0
    retry_after: str = "2"
    reset: str | None = None


@dataclass(slots=True)
class _Bucket:
    """A token bucket: `qps` tokens per second, burst max(1, qps)."""

    qps: float
    tokens: float = 0.0
    last: float = 0.0

    def take(self, now: float) -> bool:
        burst = max(1.0, self.qps)
        self.tokens = min(burst, self.tokens + (now - self.last) * self.qps)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _PlatformStats:
    """What the server really did for one platform (events, not requests, unless named)."""

    requests: int = 0
    delivered: int = 0
    aborted: dict[str, int] = field(default_factory=dict)  # respStatusCode -> events
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(_LATENCY_BUCKETS))
    latency_sum: float = 0.0
    latency_count: int = 0
    # epoch second -> [delivered, rate_limited, rejected, failed]
    seconds: dict[int, list[int]] = field(default_factory=dict)

    def record(self, now_wall: float, delivered: int, refused: int, status: int) -> None:
        self.delivered += delivered
        sec = self.seconds.get(int(now_wall))
        if sec is None:
            sec = self.seconds[int(now_wall)] = [0, 0, 0, 0]
        sec[0] += delivered
        if refused:
            key = str(status)
            self.aborted[key] = self.aborted.get(key, 0) + refused
            if status == 429:
                sec[1] += refused
            elif status >= 500:
                sec[3] += refused
            else:
                sec[2] += refused

    def throttled(self) -> int:
        """Events refused with 429."""
        return self.aborted.get("429", 0)

    def observe_latency(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_count += 1
        i = bisect.bisect_left(_LATENCY_BUCKETS, seconds)
        if i < len(self.latency_buckets):
            self.latency_buckets[i] += 1


class _Response:
    __slots__ = ("status", "body", "headers", "delay", "content_type")

    def __init__(
        self, status: int, body: Any, headers: Headers | None = None, delay: float = 0.0
    ) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else orjson.dumps(body)
        self.headers = headers or []
        self.delay = delay
        self.content_type = "application/json"


class SimServer:
    """Fake platform/status APIs on loopback, served from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.url = ""
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._times: dict[str, deque[float]] = {}
        self._faults: dict[str, _Fault] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._token_valid = dict.fromkeys(COMPONENTS, True)
        self._error_rate = dict.fromkeys(COMPONENTS, 0.0)
        self._stats = {p: _PlatformStats() for p in COMPONENTS}
        now = time.time()
        self._components: dict[str, tuple[str, float]] = {
            name: ("operational", now) for name in COMPONENTS.values()
        }
        self._incident_started: dict[str, float] = {}
        self._segment_window = (0, 0)  # (minute, requests)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.started_wall = now

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimServer:
        """Bind and serve in a daemon thread; returns self once `url` is set."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle, self.host, self.port, backlog=1024, reuse_address=True
                    )
                )
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            sock = self._server.sockets[0]
            self.port = sock.getsockname()[1]
            self.url = f"http://{self.host}:{self.port}"
            ready.set()
            try:
                loop.run_forever()
            finally:
                self._server.close()
                for w in list(self._writers):
                    w.close()
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="sim-server", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = None
        self._thread = None

    def __enter__(self) -> SimServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ observation

    def request_count(self, path_prefix: str = "/") -> int:
        """Requests received so far whose path starts with `path_prefix`."""
        with self._lock:
            return sum(n for p, n in self._counts.items() if p.startswith(path_prefix))

    def request_times(self, path_prefix: str) -> list[float]:
        """Monotonic arrival times (sorted) of requests whose path starts with the prefix."""
        with self._lock:
            out = [t for p, ts in self._times.items() if p.startswith(path_prefix) for t in ts]
        out.sort()
        return out

    def stats(self) -> dict[str, Any]:
        """Per-platform totals: requests, delivered, throttled and aborted events."""
        with self._lock:
            return {
                p: {
                    "requests": s.requests,
                    "delivered": s.delivered,
                    "throttled": s.throttled(),
                    "aborted": dict(s.aborted),
                }
                for p, s in self._stats.items()
            }

    # ------------------------------------------------------------------ control

    def set_component(self, name: str, status: str) -> None:
        """Set a status page component (by name, or by platform alias)."""
        if name not in self._components:
            try:
                name = COMPONENTS[platform_name(name)]
            except ValueError:
                raise ValueError(
                    f"unknown component {name!r} (expected one of {', '.join(COMPONENTS.values())})"
                ) from None
        if status not in COMPONENT_STATUSES:
            raise ValueError(
                f"unknown component status {status!r} (expected {', '.join(COMPONENT_STATUSES)})"
            )
        with self._lock:
            if self._components[name][0] != status:
                now = time.time()
                self._components[name] = (status, now)
                if status in ("operational", "under_maintenance"):
                    self._incident_started.pop(name, None)
                else:
                    self._incident_started.setdefault(name, now)

    def set_fault(self, path_prefix: str, kind: str | None, **kw: Any) -> None:
        """Inject a fault on every path with this prefix (kind None clears it).

        Kinds: ``http_error`` (status=503), ``timeout`` (delay=30 seconds before answering),
        ``malformed`` (200 with a broken JSON body), ``rate_limit`` (429, retry_after="2" or
        an HTTP-date, X-RateLimit-Remaining: 0, X-RateLimit-Reset: reset or epoch seconds).
        """
        if kind is None:
            with self._lock:
                self._faults.pop(path_prefix, None)
            return
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (expected {', '.join(FAULT_KINDS)})")
        unknown = set(kw) - {"status", "delay", "retry_after", "reset"}
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}")
        fault = _Fault(kind)
        if "status" in kw:
            fault.status = int(kw["status"])
        elif kind == "rate_limit":
            fault.status = 429
        if "delay" in kw:
            fault.delay = float(kw["delay"])
        if "retry_after" in kw:
            fault.retry_after = str(kw["retry_after"])
            if parse_retry_after(fault.retry_after, 0.0) is None:
                raise ValueError(
                    f"retry_after {fault.retry_after!r} is neither seconds nor an HTTP-date"
                )
        if kw.get("reset") is not None:
            fault.reset = str(kw["reset"])
        with self._lock:
            self._faults[path_prefix] = fault

    def set_qps_limit(self, platform: str, qps: float | None) -> None:
        """Throttle a platform above `qps` requests/s (None: unlimited)."""
        p = platform_name(platform)
        with self._lock:
            if qps is None:
                self._buckets.pop(p, None)
            else:
                if qps < 0:
                    raise ValueError("qps must be >= 0")
                tokens = max(1.0, float(qps)) if qps > 0 else 0.0  # qps 0 refuses everything
                self._buckets[p] = _Bucket(float(qps), tokens, time.monotonic())

    def set_token_valid(self, platform: str, valid: bool) -> None:
        """Make a platform reject its access token (Meta 190, TikTok 40105, Google/webhook 401)."""
        p = platform_name(platform)
        with self._lock:
            self._token_valid[p] = bool(valid)

    def set_error_rate(self, platform: str, rate: float) -> None:
        """Answer this share of a platform's requests with a seeded random 500/502/503."""
        p = platform_name(platform)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        with self._lock:
            self._error_rate[p] = float(rate)

    def control(self, op: str, **kwargs: Any) -> None:
        """Apply one control operation by name (what ``POST /_control`` calls)."""
        if op not in SERVER_OPS:
            raise ValueError(f"unknown op {op!r} (expected {', '.join(SERVER_OPS)})")
        try:
            getattr(self, op)(**kwargs)
        except TypeError as exc:
            raise ValueError(f"{op}: {exc}") from None

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = b""
                try:
                    if "content-length" in headers:
                        n = int(headers["content-length"])
                        if n:
                            body = await reader.readexactly(n)
                    elif headers.get("transfer-encoding", "").lower() == "chunked":
                        body = await self._read_chunked(reader)
                except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                    return
                conn = headers.get("connection", "").lower()
                keep = conn != "close" and (version != "HTTP/1.0" or conn == "keep-alive")
                started = time.monotonic()
                try:
                    resp = self._dispatch(method, target, body, started)
                except Exception as exc:  # noqa: BLE001 - a bug must not kill the connection
                    resp = _Response(500, {"error": f"simulator error: {exc}"})
                if resp.delay > 0:
                    await asyncio.sleep(resp.delay)
                    self._finish_delayed(target, started)
                reason = _REASONS.get(resp.status, "Unknown")
                out = [
                    f"HTTP/1.1 {resp.status} {reason}\r\n"
                    f"Content-Type: {resp.content_type}\r\n"
                    f"Content-Length: {len(resp.body)}\r\n"
                ]
                for k, v in resp.headers:
                    out.append(f"{k}: {v}\r\n")
                if not keep:
                    out.append("Connection: close\r\n")
                out.append("\r\n")
                writer.write(
                    "".join(out).encode("latin-1") + (b"" if method == "HEAD" else resp.body)
                )
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return  # the peer went away, or the server is stopping
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except RuntimeError:
                pass

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def _finish_delayed(self, target: str, started: float) -> None:
        p = self._platform_of(target.partition("?")[0])
        if p is not None:
            with self._lock:
                self._stats[p].observe_latency(time.monotonic() - started)

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _platform_of(path: str) -> str | None:
        if path.startswith("/open_api/"):
            return "tiktok"
        if path.startswith("/webhook/"):
            return "webhook"
        if path.startswith("/v"):
            if path.endswith("/events"):
                return "meta"
            if path.endswith(":uploadClickConversions"):
                return "google"
        return None

    def _dispatch(self, method: str, target: str, body: bytes, now: float) -> _Response:
        path, _, query = target.partition("?")
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            times = self._times.get(path)
            if times is None:
                times = self._times[path] = deque(maxlen=_TIMES_KEPT)
            times.append(now)
            fault = self._fault_for(path)
        platform = self._platform_of(path)
        if platform is not None:
            if method != "POST":
                return _Response(405, {"error": "method not allowed"})
            return self._platform(platform, path, body, fault, now)
        if fault is not None:
            resp = self._apply_fault(fault, path)
            if resp is not None:
                return resp
        resp = self._serve(method, path, query, body)
        if fault is not None and fault.kind == "timeout":
            resp.delay = fault.delay
        return resp

    def _serve(self, method: str, path: str, query: str, body: bytes) -> _Response:
        if method not in ("GET", "HEAD"):
            if path == "/_control" and method == "POST":
                return self._control_request(body)
            return _Response(405, {"error": "method not allowed"})
        if path == "/health":
            return _Response(200, {"ok": True})
        if path.startswith("/api/v2/"):
            return self._statuspage(path)
        if path == "/metrics":
            resp = _Response(200, self._metrics_text().encode())
            resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
            return resp
        if path.startswith("/destinations/") and path.endswith("/delivery-metrics"):
            return self._segment(path, query)
        if path == "/_stats":
            return _Response(200, self.stats())
        return _Response(404, {"error": f"no such endpoint: {path}"})

    def _fault_for(self, path: str) -> _Fault | None:
        best: _Fault | None = None
        best_len = -1
        for prefix, fault in self._faults.items():
            if path.startswith(prefix) and len(prefix) > best_len:
                best, best_len = fault, len(prefix)
        return best

    def _apply_fault(self, fault: _Fault, path: str) -> _Response | None:
        """The response for a fault, or None when the request proceeds (after a delay)."""
        if fault.kind == "http_error":
            return _Response(fault.status, {"error": _REASONS.get(fault.status, "error")})
        if fault.kind == "malformed":
            return _Response(200, b'{"code":0,"message":"OK","data":{"items":[{"id":')
        if fault.kind == "rate_limit":
            wall = time.time()
            wait = parse_retry_after(fault.retry_after, wall) or 0.0
            reset = fault.reset if fault.reset is not None else str(int(wall + wait) + 1)
            headers = [
                ("Retry-After", fault.retry_after),
                ("X-RateLimit-Limit", "100"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", reset),
            ]
            body = {
                "errors": [
                    {
                        "type": "RequestError",
                        "message": "Too many requests",
                        "data": {"msBeforeNext": int(wait * 1000)},
                    }
                ]
            }
            return _Response(fault.status, body, headers)
        return None  # timeout: answered normally after fault.delay

    def _control_request(self, body: bytes) -> _Response:
        try:
            req = orjson.loads(body or b"{}")
            if not isinstance(req, dict) or "op" not in req:
                raise ValueError('body must be a JSON object with "op"')
            op = req.pop("op")
            self.control(str(op), **req)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return _Response(400, {"ok": False, "error": str(exc)})
        return _Response(200, {"ok": True})

    # ------------------------------------------------------------------ platforms

    def _request_id(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    def _platform(
        self, p: str, path: str, body: bytes, fault: _Fault | None, now: float
    ) -> _Response:
        items: list[Any] | None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if p == "tiktok":
            items = doc.get("data") if isinstance(doc, dict) else None
        elif p == "meta":
            items = doc.get("data") if isinstance(doc, dict) else None
        elif p == "google":
            items = doc.get("conversions") if isinstance(doc, dict) else None
        elif isinstance(doc, dict) and isinstance(doc.get("batch"), list):
            items = doc["batch"]
        else:
            items = [doc] if isinstance(doc, dict) else None
        n = len(items) if isinstance(items, list) else 0
        wall = time.time()
        with self._lock:
            stats = self._stats[p]
            stats.requests += 1
            resp: _Response | None = None
            delay = 0.0
            if fault is not None:
                if fault.kind == "timeout":
                    delay = fault.delay
                else:
                    resp = self._apply_fault(fault, path)
                    if resp is not None and fault.kind != "malformed":
                        stats.record(wall, 0, n, resp.status)
            if resp is None:
                resp = self._platform_answer(p, items, n, now, wall, stats)
            if delay <= 0:
                stats.observe_latency(time.monotonic() - now)
        resp.delay = delay
        return resp

    def _platform_answer(
        self,
        p: str,
        items: list[Any] | None,
        n: int,
        now: float,
        wall: float,
        stats: _PlatformStats,
    ) -> _Response:
        """Called with the lock held: the platform's own answer, recorded in `stats`."""
        rid = self._request_id()
        if not isinstance(items, list):
            stats.record(wall, 0, max(n, 1), 400)
            return self._bad_body(p, rid)
        if not self._token_valid[p]:
            status = 200 if p == "tiktok" else 401 if p in ("google", "webhook") else 400
            stats.record(wall, 0, n, 401 if p == "tiktok" else status)
            return self._bad_token(p, rid)
        bucket = self._buckets.get(p)
        if bucket is not None and not bucket.take(now):
            stats.record(wall, 0, n, 429)
            return self._throttled(p, rid)
        rate = self._error_rate[p]
        if rate > 0 and self._rng.random() < rate:
            status = (500, 502, 503)[self._rng.randrange(3)]
            stats.record(wall, 0, n, status)
            if p == "tiktok":
                return _Response(
                    status, {"code": 50000, "message": "System error", "request_id": rid}
                )
            return _Response(status, {"error": {"code": status, "message": _REASONS[status]}})
        if p == "tiktok":
            stats.record(wall, n, 0, 200)
            return _Response(200, {"code": 0, "message": "OK", "request_id": rid, "data": {}})
        if p == "meta":
            stats.record(wall, n, 0, 200)
            return _Response(200, {"events_received": n, "messages": [], "fbtrace_id": "A" + rid})
        if p == "google":
            return self._google_ok(items, n, wall, stats)
        stats.record(wall, n, 0, 200)
        return _Response(200, {"ok": True, "received": n})

    def _google_ok(self, items: list[Any], n: int, wall: float, stats: _PlatformStats) -> _Response:
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        first_bad = -1
        for i, conv in enumerate(items):
            gclid = conv.get("gclid", "") if isinstance(conv, dict) else ""
            if isinstance(gclid, str) and gclid.startswith("bad"):
                results.append({})
                if first_bad < 0:
                    first_bad = i
                errors.append(
                    {
                        "errorCode": {"conversionUploadError": "UNPARSEABLE_GCLID"},
                        "message": "The GCLID could not be decoded.",
                        "location": {
                            "fieldPathElements": [{"fieldName": "conversions", "index": i}]
                        },
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
        stats.record(wall, n - len(errors), 0, 200)
        if errors:
            stats.record(wall, 0, len(errors), 400)
        out: dict[str, Any] = {"results": results}
        if errors:
            out["partialFailureError"] = {
                "code": 3,
                "message": f"The GCLID could not be decoded., at conversions[{first_bad}]",
                "details": [
                    {
                        "@type": _GADS_FAILURE,
                        "errors": errors,
                    }
                ],
            }
        return _Response(200, out)

    @staticmethod
    def _bad_body(p: str, rid: str) -> _Response:
        if p == "tiktok":
            return _tiktok_error(40002, "Invalid parameter: data", rid)
        if p == "meta":
            return _meta_error(100, "(#100) The parameter data is required", rid)
        return _google_error(400, "Invalid JSON payload.", "INVALID_ARGUMENT")

    @staticmethod
    def _bad_token(p: str, rid: str) -> _Response:
        if p == "tiktok":
            return _tiktok_error(40105, "Access token is incorrect or has been revoked.", rid)
        if p == "meta":
            msg = "Error validating access token: Session has expired."
            return _meta_error(190, msg, rid, subcode=463)
        return _google_error(
            401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
        )

    @staticmethod
    def _throttled(p: str, rid: str) -> _Response:
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
            return _Response(429, body)
        return _Response(429, {"error": "Too Many Requests"}, [("Retry-After", "1")])

    # ------------------------------------------------------------------ status page

    def _component_docs(self) -> list[dict[str, Any]]:
        out = []
        for position, (p, name) in enumerate(COMPONENTS.items(), 1):
            status, changed = self._components[name]
            out.append(
                {
                    "id": _COMPONENT_IDS[p],
                    "name": name,
                    "status": status,
                    "created_at": iso(self.started_wall),
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

    def _page_status(self, components: Iterable[dict[str, Any]]) -> dict[str, str]:
        statuses = {c["status"] for c in components}
        if "major_outage" in statuses:
            return {"indicator": "major", "description": "Major System Outage"}
        if statuses & {"partial_outage", "degraded_performance"}:
            indicator = "minor"
            desc = (
                "Partial System Outage" if "partial_outage" in statuses else "Minor Service Outage"
            )
            return {"indicator": indicator, "description": desc}
        if "under_maintenance" in statuses:
            return {"indicator": "none", "description": "Service Under Maintenance"}
        return {"indicator": "none", "description": "All Systems Operational"}

    def _incidents(self, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for comp in components:
            status = comp["status"]
            if status in ("operational", "under_maintenance"):
                continue
            started = self._incident_started.get(comp["name"], self.started_wall)
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
                    "shortlink": f"{self.url}/incidents/{iid}",
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

    def _statuspage(self, path: str) -> _Response:
        with self._lock:
            components = self._component_docs()
            incidents = self._incidents(components)
        page = dict(_PAGE, url=self.url, updated_at=iso(time.time()))
        status = self._page_status(components)
        if path == "/api/v2/summary.json":
            return _Response(
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
            return _Response(200, {"page": page, "status": status})
        if path == "/api/v2/components.json":
            return _Response(200, {"page": page, "components": components})
        if path in ("/api/v2/incidents/unresolved.json", "/api/v2/incidents.json"):
            return _Response(200, {"page": page, "incidents": incidents})
        return _Response(404, {"error": "Not found"})

    # ------------------------------------------------------------------ prometheus

    def _metrics_text(self) -> str:
        with self._lock:
            snap = {
                p: (
                    s.delivered,
                    dict(s.aborted),
                    s.throttled(),
                    list(s.latency_buckets),
                    s.latency_sum,
                    s.latency_count,
                )
                for p, s in self._stats.items()
            }
        out = [
            "# HELP event_delivery Events delivered to the destination.",
            "# TYPE event_delivery counter",
        ]
        for p, (delivered, *_rest) in snap.items():
            out.append(
                f'event_delivery{{destType="{DEST_TYPES[p]}",destID="{DEST_IDS[p]}",'
                f'destination="{DEST_NAMES[p]}",workspaceId="ws_sim",source="simulator",'
                f'module="router"}} {delivered}'
            )
        out += [
            "# HELP router_aborted_events Events the destination refused.",
            "# TYPE router_aborted_events counter",
        ]
        for p, (_d, aborted, *_rest) in snap.items():
            for code in sorted(aborted):
                out.append(
                    f'router_aborted_events{{destType="{DEST_TYPES[p]}",respStatusCode="{code}",'
                    f'destId="{DEST_IDS[p]}",destination="{DEST_NAMES[p]}"}} {aborted[code]}'
                )
        out += [
            "# HELP router_throttled Events throttled by the destination.",
            "# TYPE router_throttled counter",
        ]
        for p, (_d, _a, throttled, *_rest) in snap.items():
            out.append(
                f'router_throttled{{destType="{DEST_TYPES[p]}",destId="{DEST_IDS[p]}",'
                f'destination="{DEST_NAMES[p]}"}} {throttled}'
            )
        out += [
            "# HELP router_delivery_latency Time to answer a delivery request, in seconds.",
            "# TYPE router_delivery_latency histogram",
        ]
        for p, (_d, _a, _t, buckets, total, count) in snap.items():
            labels = f'destType="{DEST_TYPES[p]}"'
            cumulative = 0
            for le, n in zip(_LATENCY_BUCKETS, buckets, strict=True):
                cumulative += n
                out.append(f'router_delivery_latency_bucket{{{labels},le="{le}"}} {cumulative}')
            out.append(f'router_delivery_latency_bucket{{{labels},le="+Inf"}} {count}')
            out.append(f"router_delivery_latency_sum{{{labels}}} {total:.6f}")
            out.append(f"router_delivery_latency_count{{{labels}}} {count}")
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ segment

    def _segment(self, path: str, query: str) -> _Response:
        wall = time.time()
        minute = int(wall // 60)
        with self._lock:
            win_minute, used = self._segment_window
            used = used + 1 if win_minute == minute else 1
            self._segment_window = (minute, used)
        reset = email.utils.format_datetime(
            datetime.fromtimestamp((minute + 1) * 60, UTC), usegmt=True
        )
        remaining = max(0, _SEGMENT_LIMIT - used)
        headers = [
            ("X-RateLimit-Limit", str(_SEGMENT_LIMIT)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", reset),
        ]
        if used > _SEGMENT_LIMIT:
            wait_ms = int(((minute + 1) * 60 - wall) * 1000)
            headers.append(("Retry-After", str(wait_ms // 1000 + 1)))
            body = {
                "errors": [
                    {
                        "type": "RequestError",
                        "message": "Too many requests",
                        "data": {"msBeforeNext": wait_ms},
                    }
                ]
            }
            return _Response(429, body, headers)
        dest_id = path[len("/destinations/") : -len("/delivery-metrics")]
        try:
            p = platform_name(dest_id)
        except ValueError:
            return _Response(
                404,
                {
                    "errors": [
                        {"type": "resource-not-found", "message": f"No destination {dest_id}"}
                    ]
                },
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
            return _Response(
                400, {"errors": [{"type": "ValidationError", "message": str(exc)}]}, headers
            )
        totals = [0, 0, 0, 0]
        with self._lock:
            for sec, counts in self._stats[p].seconds.items():
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
        return _Response(200, summary, headers)


def _tiktok_error(code: int, message: str, rid: str) -> _Response:
    """TikTok answers HTTP 200 and lets the body `code` say what went wrong."""
    return _Response(200, {"code": code, "message": message, "request_id": rid})


def _meta_error(code: int, message: str, rid: str, subcode: int | None = None) -> _Response:
    """A Graph API error body (HTTP 400)."""
    err: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        err["error_subcode"] = subcode
    err["fbtrace_id"] = "A" + rid
    return _Response(400, {"error": err})


def _google_error(http: int, message: str, status: str) -> _Response:
    """A google.rpc Status error body."""
    return _Response(http, {"error": {"code": http, "message": message, "status": status}})
