"""What the simulator remembers and is told: faults, QPS limits, outcomes, the status page.

`SimState` is the simulator without its HTTP front. Control operations (`set_component`,
`set_fault`, `set_qps_limit`, `set_token_valid`, `set_error_rate`, `reset_metrics`,
`set_mparticle_limit`, or `control` by name) and
observations (`request_count`, `request_times`, `stats`) are thread-safe: one lock guards every
field, so a scenario may steer the simulator from any thread while the server's thread answers
requests. The endpoint modules (`vendors`, `status_apis`) read and update these fields under
`lock` and answer with a `Reply`, which the server turns into an HTTP response.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from observatory.sim.platforms import COMPONENT_STATUSES, COMPONENTS, platform_name
from observatory.util.retry_after import parse_retry_after

__all__ = [
    "FAULT_KINDS",
    "LATENCY_BUCKETS",
    "MPARTICLE_QPS",
    "REASONS",
    "SEGMENT_LIMIT",
    "SERVER_OPS",
    "Fault",
    "PlatformStats",
    "Reply",
    "SimState",
    "TokenBucket",
]

FAULT_KINDS = ("http_error", "timeout", "malformed", "rate_limit")
# The control operations (``POST /_control``, scenario steps): SimState methods by name.
SERVER_OPS = (
    "set_component",
    "set_fault",
    "set_qps_limit",
    "set_token_valid",
    "set_error_rate",
    "reset_metrics",
    "set_mparticle_limit",
)
REASONS = {
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
"""The words error bodies use for a status."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TIMES_KEPT = 200_000  # arrival times kept per path
MPARTICLE_QPS = 270.0
"""mParticle's documented default Events API limit, in batches per second."""
SEGMENT_LIMIT = 1000
"""Requests per minute the Segment-like API answers before 429 (`SimState.segment_limit`)."""


class Reply:
    """An endpoint's answer: a status, a body (JSON-encoded unless given as bytes), extra
    headers, and a delay in seconds before it is sent (an injected timeout)."""

    __slots__ = ("status", "body", "headers", "delay", "content_type")

    def __init__(
        self,
        status: int,
        body: Any,
        headers: list[tuple[str, str]] | None = None,
        delay: float = 0.0,
        content_type: str = "application/json",
    ) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else orjson.dumps(body)
        self.headers = headers or []
        self.delay = delay
        self.content_type = content_type


@dataclass(slots=True)
class Fault:
    """An injected fault on a path prefix (see `SimState.set_fault`)."""

    kind: str
    status: int = 503
    delay: float = 30.0
    retry_after: str = "2"
    reset: str | None = None

    def reply(self) -> Reply | None:
        """The answer the fault forces, or None when the request proceeds (after `delay`)."""
        if self.kind == "http_error":
            return Reply(self.status, {"error": REASONS.get(self.status, "error")})
        if self.kind == "malformed":
            return Reply(200, b'{"code":0,"message":"OK","data":{"items":[{"id":')
        if self.kind == "rate_limit":
            wall = time.time()
            wait = parse_retry_after(self.retry_after, wall) or 0.0
            reset = self.reset if self.reset is not None else str(int(wall + wait) + 1)
            headers = [
                ("Retry-After", self.retry_after),
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
            return Reply(self.status, body, headers)
        return None  # timeout: answered normally after self.delay


@dataclass(slots=True)
class TokenBucket:
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
class PlatformStats:
    """What the server really did for one platform (events, not requests, unless named)."""

    requests: int = 0
    delivered: int = 0
    aborted: dict[str, int] = field(default_factory=dict)  # respStatusCode -> events
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0
    latency_count: int = 0
    # epoch second -> [delivered, rate_limited, rejected, failed]
    seconds: dict[int, list[int]] = field(default_factory=dict)
    # epoch second -> {(event name or "", HTTP status (200: delivered)): events}
    events: dict[int, dict[tuple[str, int], int]] = field(default_factory=dict)

    def record(
        self,
        now_wall: float,
        delivered: int,
        refused: int,
        status: int,
        names: Mapping[str, int] | None = None,
    ) -> None:
        """Count `delivered` and `refused` (answered `status`) events at wall time `now_wall`.

        `names` (event name -> events) tells the events apart when they all shared one fate.
        """
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
        per = self.events.setdefault(int(now_wall), {})
        for n, code in ((delivered, 200), (refused, status)):
            if n <= 0:
                continue
            left = n
            if names is not None and (delivered == 0 or refused == 0):
                for name, k in names.items():
                    per[(name, code)] = per.get((name, code), 0) + k
                    left -= k
            if left > 0:
                per[("", code)] = per.get(("", code), 0) + left

    def throttled(self) -> int:
        """Events refused with 429."""
        return self.aborted.get("429", 0)

    def observe_latency(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_count += 1
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if i < len(self.latency_buckets):
            self.latency_buckets[i] += 1

    def totals(self) -> PlatformStats:
        """A copy of the running totals alone (no per-second history)."""
        return replace(
            self,
            aborted=dict(self.aborted),
            latency_buckets=list(self.latency_buckets),
            seconds={},
            events={},
        )


class SimState:
    """The simulated platforms' state; every field is read and written under `lock`.

    `url` is where the state is served (set by the server once it is bound); `rng` (seeded)
    draws request ids and random 5xx answers, so a seed replays the same answers.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.url = ""
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.buckets: dict[str, TokenBucket] = {}
        self.token_valid = dict.fromkeys(COMPONENTS, True)
        self.error_rates = dict.fromkeys(COMPONENTS, 0.0)
        self.platform_stats = {p: PlatformStats() for p in COMPONENTS}
        now = time.time()
        self.started_wall = now
        # component name -> (status, when it last changed)
        self.components: dict[str, tuple[str, float]] = {
            name: ("operational", now) for name in COMPONENTS.values()
        }
        self.incident_started: dict[str, float] = {}
        self.segment_window = (0, 0)  # (minute, requests) for the Segment-like API's limit
        self.segment_limit = SEGMENT_LIMIT
        # The totals at the last `reset_metrics` (a rudder-server restart): /metrics counts
        # from there, so its counters drop to 0 as a restarted exporter's do.
        self.metrics_base = {p: PlatformStats() for p in COMPONENTS}
        self.metrics_started = now
        self.mparticle_bucket = TokenBucket(MPARTICLE_QPS, MPARTICLE_QPS, time.monotonic())
        self.mparticle_counts = {"accepted": 0, "rate_limited": 0}  # batches
        self._counts: dict[str, int] = {}
        self._times: dict[str, deque[float]] = {}
        self._faults: dict[str, Fault] = {}

    # ------------------------------------------------------------------ requests

    def arrived(self, path: str, now: float) -> Fault | None:
        """Record a request for `path` arriving at monotonic `now`; the fault injected on it."""
        with self.lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            times = self._times.get(path)
            if times is None:
                times = self._times[path] = deque(maxlen=_TIMES_KEPT)
            times.append(now)
            best: Fault | None = None
            best_len = -1
            for prefix, fault in self._faults.items():
                if path.startswith(prefix) and len(prefix) > best_len:
                    best, best_len = fault, len(prefix)
            return best

    def observe_latency(self, platform: str, seconds: float) -> None:
        """Record the time a (delayed) platform request took to answer."""
        with self.lock:
            self.platform_stats[platform].observe_latency(seconds)

    def request_id(self) -> str:
        """A seeded random request id (call with `lock` held)."""
        return f"{self.rng.getrandbits(64):016x}"

    # ------------------------------------------------------------------ observation

    def request_count(self, path_prefix: str = "/") -> int:
        """Requests received so far whose path starts with `path_prefix`."""
        with self.lock:
            return sum(n for p, n in self._counts.items() if p.startswith(path_prefix))

    def request_times(self, path_prefix: str) -> list[float]:
        """Monotonic arrival times (sorted) of requests whose path starts with the prefix."""
        with self.lock:
            out = [t for p, ts in self._times.items() if p.startswith(path_prefix) for t in ts]
        out.sort()
        return out

    def stats(self) -> dict[str, Any]:
        """Per-platform totals: requests, delivered, throttled and aborted events."""
        with self.lock:
            return {
                p: {
                    "requests": s.requests,
                    "delivered": s.delivered,
                    "throttled": s.throttled(),
                    "aborted": dict(s.aborted),
                }
                for p, s in self.platform_stats.items()
            }

    # ------------------------------------------------------------------ control

    def set_component(self, name: str, status: str) -> None:
        """Set a status page component (by name, or by platform alias)."""
        if name not in self.components:
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
        with self.lock:
            if self.components[name][0] != status:
                now = time.time()
                self.components[name] = (status, now)
                if status in ("operational", "under_maintenance"):
                    self.incident_started.pop(name, None)
                else:
                    self.incident_started.setdefault(name, now)

    def set_fault(self, path_prefix: str, kind: str | None, **kw: Any) -> None:
        """Inject a fault on every path with this prefix (kind None clears it).

        Kinds: ``http_error`` (status=503), ``timeout`` (delay=30 seconds before answering),
        ``malformed`` (200 with a broken JSON body), ``rate_limit`` (429, retry_after="2" or
        an HTTP-date, X-RateLimit-Remaining: 0, X-RateLimit-Reset: reset or epoch seconds).
        """
        if kind is None:
            with self.lock:
                self._faults.pop(path_prefix, None)
            return
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (expected {', '.join(FAULT_KINDS)})")
        unknown = set(kw) - {"status", "delay", "retry_after", "reset"}
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}")
        fault = Fault(kind)
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
        with self.lock:
            self._faults[path_prefix] = fault

    def set_qps_limit(self, platform: str, qps: float | None) -> None:
        """Throttle a platform above `qps` requests/s (None: unlimited)."""
        p = platform_name(platform)
        with self.lock:
            if qps is None:
                self.buckets.pop(p, None)
            else:
                if qps < 0:
                    raise ValueError("qps must be >= 0")
                tokens = max(1.0, float(qps)) if qps > 0 else 0.0  # qps 0 refuses everything
                self.buckets[p] = TokenBucket(float(qps), tokens, time.monotonic())

    def set_token_valid(self, platform: str, valid: bool) -> None:
        """Make a platform reject its access token (Meta 190, TikTok 40105, Google/webhook 401)."""
        p = platform_name(platform)
        with self.lock:
            self.token_valid[p] = bool(valid)

    def set_error_rate(self, platform: str, rate: float) -> None:
        """Answer this share of a platform's requests with a seeded random 500/502/503."""
        p = platform_name(platform)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        with self.lock:
            self.error_rates[p] = float(rate)

    def reset_metrics(self) -> None:
        """Restart the Prometheus exporter: /metrics counters start again from 0 (the
        per-second history, the Segment-like APIs and the statsd emitter are unaffected)."""
        with self.lock:
            self.metrics_base = {p: s.totals() for p, s in self.platform_stats.items()}
            self.metrics_started = time.time()

    def set_mparticle_limit(self, qps: float | None) -> None:
        """Limit the mParticle-like Events API to `qps` batches/s (None: the default 270)."""
        rate = MPARTICLE_QPS if qps is None else float(qps)
        if rate < 0:
            raise ValueError("qps must be >= 0")
        with self.lock:
            tokens = max(1.0, rate) if rate > 0 else 0.0
            self.mparticle_bucket = TokenBucket(rate, tokens, time.monotonic())

    def control(self, op: str, **kwargs: Any) -> None:
        """Apply one control operation by name (what ``POST /_control`` calls)."""
        if op not in SERVER_OPS:
            raise ValueError(f"unknown op {op!r} (expected {', '.join(SERVER_OPS)})")
        try:
            getattr(self, op)(**kwargs)
        except TypeError as exc:
            raise ValueError(f"{op}: {exc}") from None
