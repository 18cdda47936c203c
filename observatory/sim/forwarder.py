"""A server-side conversion forwarder that really POSTs batches to the simulator.

Upstream conversions (a deterministic, seeded stream: `EventStream`) fan out to four
destinations. Each destination has a queue flushed every `flush_interval` seconds in batches
(TikTok 50 events per request, Meta 100, Google 200, webhook 25) by up to `concurrency`
requests in flight over one shared keep-alive `httpx.AsyncClient`. Throttling, 5xx, timeouts and
connection errors are retried (attempts 2 and 3) with exponential backoff, honouring
``Retry-After`` and Google's ``retryDelay``. Every attempt's outcome is written as one pino-style
line per event to ``forwarder.jsonl`` -- the shape of `observatory.sim.samples` forwarder lines.

`Simulation` wires a `SimServer`, a `Forwarder` and a `Scenario` timeline together.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from observatory.ingest.classify import RATE_LIMIT_CODES
from observatory.sim.platforms import DEST_NAMES
from observatory.sim.scenario import FORWARDER_OPS, Scenario
from observatory.sim.server import SimServer
from observatory.util.retry_after import parse_retry_after

__all__ = [
    "DESTINATIONS",
    "Event",
    "EventStream",
    "Forwarder",
    "Simulation",
    "watch_config",
]

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


class Forwarder:
    """Delivers a seeded conversion stream to the simulator and logs every outcome."""

    def __init__(
        self,
        base_url: str,
        log_path: str | Path,
        *,
        seed: int = 0,
        rate: float = 100.0,
        destinations: tuple[str, ...] = DESTINATIONS,
        flush_interval: float = 0.2,
        concurrency: int = 8,
        timeout: float = 5.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        batch: dict[str, int] | None = None,
        p_bad_gclid: float = 0.003,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.log_path = Path(log_path)
        self.rate = rate
        self.destinations = destinations
        self.flush_interval = flush_interval
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.batch = dict(_BATCH, **(batch or {}))
        self.stream = EventStream(seed, p_bad_gclid)
        self._jitter = random.Random(seed + 1)
        self._queues: dict[str, deque[Event]] = {d: deque() for d in destinations}
        self._buf: list[bytes] = []
        self._paused = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.lines = 0
        self.counts: dict[str, dict[str, int]] = {
            d: {"delivered": 0, "rate_limited": 0, "rejected": 0, "failed": 0, "retrying": 0}
            for d in destinations
        }

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        """Stop generating, sending and writing (a hung forwarder)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def set_rate(self, rate: float) -> None:
        self.rate = float(rate)

    def start(self) -> Forwarder:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._main(started))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="sim-forwarder", daemon=True)
        self._thread.start()
        started.wait(5)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop, cancel in-flight work and flush the log (idempotent)."""
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------------ the loop

    async def _main(self, started: threading.Event) -> None:
        limits = httpx.Limits(
            max_connections=self.concurrency * len(self.destinations) + 4,
            max_keepalive_connections=self.concurrency * len(self.destinations) + 4,
        )
        fh = open(self.log_path, "ab")  # noqa: SIM115 - closed below
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self.timeout,
                limits=limits,
                headers={"Access-Token": "sim-token", "Content-Type": "application/json"},
            ) as client:
                tasks = [asyncio.create_task(self._generate())]
                inflight: set[asyncio.Task[None]] = set()
                for dest in self.destinations:
                    tasks.append(asyncio.create_task(self._flusher(client, dest, inflight)))
                started.set()
                while not self._stopping:
                    await asyncio.sleep(0.1)
                    self._write(fh)
                for t in tasks + list(inflight):
                    t.cancel()
                await asyncio.gather(*tasks, *inflight, return_exceptions=True)
        finally:
            self._write(fh)
            fh.close()

    def _write(self, fh: Any) -> None:
        if self._buf:
            buf, self._buf = self._buf, []
            fh.write(b"".join(buf))
            fh.flush()

    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        owed = 0.0
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            dt, last = now - last, now
            if self._paused:
                owed = 0.0
                continue
            owed += self.rate * dt
            n = int(owed)
            owed -= n
            wall = time.time()
            for _ in range(n):
                ev = self.stream.next(wall)
                for q in self._queues.values():
                    q.append(ev)

    async def _flusher(
        self, client: httpx.AsyncClient, dest: str, inflight: set[asyncio.Task[None]]
    ) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        q = self._queues[dest]
        size = self.batch[dest]
        while True:
            await asyncio.sleep(self.flush_interval)
            while q and not self._paused:
                await sem.acquire()
                batch = [q.popleft() for _ in range(min(size, len(q)))]
                task = asyncio.create_task(self._send(client, dest, batch, sem))
                inflight.add(task)
                task.add_done_callback(inflight.discard)

    async def _send(
        self, client: httpx.AsyncClient, dest: str, batch: list[Event], sem: asyncio.Semaphore
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            body = orjson.dumps(_payload(dest, batch))
            attempt = 1
            while True:
                while self._paused:
                    await asyncio.sleep(0.1)
                t0 = loop.time()
                try:
                    resp = await client.post(_PATHS[dest], content=body)
                    outcome = _classify(dest, resp)
                except httpx.TimeoutException:
                    outcome = _Outcome(
                        "timeout",
                        None,
                        "ETIMEDOUT",
                        f"timeout of {int(self.timeout * 1000)}ms exceeded",
                    )
                except httpx.TransportError as exc:
                    outcome = _Outcome("conn", None, "ECONNRESET", str(exc) or type(exc).__name__)
                duration = round((loop.time() - t0) * 1000, 1)
                final = not outcome.retryable or attempt >= self.max_attempts
                self._log(dest, batch, attempt, outcome, duration, final)
                if final:
                    return
                delay = outcome.retry_after
                if delay is None:
                    delay = self.backoff * 2 ** (attempt - 1) * (0.75 + 0.5 * self._jitter.random())
                await asyncio.sleep(min(delay, self.max_backoff))
                attempt += 1
        finally:
            sem.release()

    def _log(
        self,
        dest: str,
        batch: list[Event],
        attempt: int,
        outcome: _Outcome,
        duration: float,
        final: bool,
    ) -> None:
        ms = int(time.time() * 1000)
        counts = self.counts[dest]
        per_event = outcome.per_event or {}
        out = self._buf
        for i, ev in enumerate(batch):
            rec: dict[str, Any] = {
                "level": 30,
                "time": ms,
                "pid": 4242,
                "hostname": "fwd-sim",
                "msg": "delivery ok",
                "dest": dest,
                "event": ev.name,
                "messageId": ev.message_id,
            }
            if outcome.status is not None:
                rec["code"] = outcome.status
            rec["duration"] = duration
            rec["attempt"] = attempt
            if outcome.kind == "ok" and i not in per_event:
                counts["delivered"] += 1
            else:
                if outcome.kind == "ok":
                    code, message = per_event[i]
                    failed_final = True
                else:
                    code, message = outcome.err_code or "", outcome.err_message or ""
                    failed_final = final
                if failed_final:
                    rec["level"], rec["msg"] = 50, "delivery failed"
                    key = {"throttle": "rate_limited", "rejected": "rejected", "ok": "rejected"}
                    counts[key.get(outcome.kind, "failed")] += 1
                else:
                    rec["level"], rec["msg"] = 40, "delivery retrying"
                    counts["retrying"] += 1
                rec["err"] = {"code": code, "message": message}
            out.append(orjson.dumps(rec) + b"\n")
        self.lines += len(batch)


def watch_config(url: str, logs: Path, warmup: str = "15s", db: str | None = None) -> str:
    """A ready `observatory watch` config for a simulator at `url` writing into `logs`."""
    logs = logs.resolve()
    db_path = db or str(logs / "observatory.duckdb")
    probes = {
        "tiktok_conversions": ("tiktok", "TikTok Conversions"),
        "meta_capi": ("meta", "Meta Conversions API"),
        "google_ads": ("google_ads", "Google Ads"),
        "crm_webhook": ("webhook", "Webhooks"),
    }
    parts = [
        "# Written by `observatory simulate`: watch the simulator's forwarder and status page.",
        "[storage]",
        f"db = {_toml_str(db_path)}",
        "",
        "[[sources]]",
        'name = "forwarder"',
        f"path = {_toml_str(str(logs / 'forwarder*.jsonl'))}",
        'format = "jsonl"',
        "[sources.fields]",
        'ts = "time"',
        'destination = "dest"',
        'http_status = "code"',
        'latency_ms = "duration"',
        'event_name = "event"',
        'message_id = "messageId"',
        'error_code = "err.code"',
        'error_message = "err.message"',
        'attempt = "attempt"',
    ]
    for name, (vendor, component) in probes.items():
        parts += ["", "[[destinations]]", f'name = "{name}"', f'vendor = "{vendor}"']
        parts += [
            "[[destinations.probes]]",
            'kind = "statuspage"',
            f"url = {_toml_str(url + '/api/v2/summary.json')}",
            f'component = "{component}"',
            'every = "2s"',
            'timeout = "2s"',
        ]
    parts += [
        "",
        "[detection]",
        'tick = "1s"',
        'false_alarm_budget = "1/week"',
        'silence_floor = "5s"',
        f'warmup = "{warmup}"',
        "",
    ]
    return "\n".join(parts)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Simulation:
    """A `SimServer` + a `Forwarder` + a scenario's timeline, run in real time."""

    def __init__(
        self,
        scenario: Scenario,
        logs: str | Path,
        *,
        port: int = 0,
        speed: float = 1.0,
        rate: float | None = None,
    ) -> None:
        self.scenario = scenario.scaled(speed) if speed != 1.0 else scenario
        self.logs = Path(logs)
        self.server = SimServer(port=port, seed=scenario.seed)
        self.rate = scenario.rate if rate is None else rate
        self.forwarder: Forwarder | None = None
        self._pending = self.scenario.timeline()
        self._t0 = 0.0
        self.applied: list[tuple[float, str]] = []

    @property
    def config_path(self) -> Path:
        return self.logs / "config.toml"

    def start(self) -> Simulation:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.server.start()
        for platform, qps in self.scenario.limits.items():
            self.server.set_qps_limit(platform, qps)
        for platform, share in self.scenario.error_rate.items():
            self.server.set_error_rate(platform, share)
        self.config_path.write_text(watch_config(self.server.url, self.logs), encoding="utf-8")
        knobs = {
            k: v
            for k, v in self.scenario.forwarder.items()
            if k in ("flush_interval", "concurrency", "timeout", "max_attempts", "backoff", "batch")
        }
        self.forwarder = Forwarder(
            self.server.url,
            self.logs / "forwarder.jsonl",
            seed=self.scenario.seed,
            rate=self.rate,
            **knobs,
        )
        self._t0 = time.monotonic()
        self.forwarder.start()
        self.poll()
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def poll(self) -> None:
        """Apply the timeline's actions that are due."""
        now = self.elapsed()
        while self._pending and self._pending[0].at <= now:
            action = self._pending.pop(0)
            self.apply(action.op, action.args)
            self.applied.append((now, action.op))

    def apply(self, op: str, args: dict[str, Any]) -> None:
        fwd = self.forwarder
        if op in FORWARDER_OPS:
            assert fwd is not None
            if op == "pause_forwarder":
                fwd.pause()
            elif op == "resume_forwarder":
                fwd.resume()
            else:
                fwd.set_rate(float(args["rate"]))
        else:
            self.server.control(op, **args)

    def run(self, duration: float | None = None, on_second: Any = None) -> None:
        """Run until `duration` (default: the scenario's) has passed, polling the timeline."""
        end = self.scenario.duration if duration is None else duration
        next_report = 1.0
        while True:
            now = self.elapsed()
            if now >= end:
                break
            self.poll()
            if on_second is not None and now >= next_report:
                on_second(self)
                next_report += 1.0
            time.sleep(min(0.05, max(0.0, end - now)))

    def stop(self) -> None:
        if self.forwarder is not None:
            self.forwarder.stop()
        self.server.stop()
