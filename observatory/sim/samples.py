"""Deterministic generator of the small, realistic delivery logs shipped in ``sample_logs/``.

One story runs through all three files. An upstream stream of conversion events (a smooth wave
plus a 3x "campaign minute" burst around minute 12) is fanned out to four destinations:
``tiktok_conversions``, ``meta_capi``, ``google_ads`` and ``crm_webhook``. Every delivery is
handled by one of three writers:

* ``forwarder.jsonl`` -- a pino-style JSON log of a server-side forwarder (~75 % of attempts);
* ``relay.logfmt`` -- a logfmt log of a second relay that only serves ``meta_capi`` and
  ``crm_webhook`` (~15 %);
* ``egress.log`` -- the nginx access log of an egress proxy in front of a third set of workers,
  one line per HTTP request to a platform host (~10 %).

From 14:22:00Z to 14:28:00Z TikTok lowers its effective QPS limit: an increasing share of TikTok
requests get HTTP 200 with body code 40100 "Too many requests" (sometimes 40016), retries fail
too, and delivered TikTok throughput collapses to about 10 % before recovering. Elsewhere there is
only ordinary noise: Meta code 100 rejections, rare Google ``UNPARSEABLE_GCLID`` partial failures
and rare 5xx responses and timeouts.

Everything derives from ``random.Random(seed)`` and a fixed start time, so the same seed always
produces byte-identical files. Regenerate with
``python -m observatory.sim.samples OUT_DIR [--seed N]``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

__all__ = [
    "DESTINATIONS",
    "DURATION",
    "FILE_NAMES",
    "OUTAGE_END",
    "OUTAGE_START",
    "START",
    "main",
    "write_samples",
]

START = datetime(2026, 11, 20, 14, 0, 0, tzinfo=UTC)
"""First instant of the generated traffic."""
DURATION = timedelta(minutes=40)
"""Length of the generated upstream traffic (retries may end a few seconds later)."""
OUTAGE_START = START + timedelta(minutes=22)
"""TikTok lowers its effective QPS limit here."""
OUTAGE_END = START + timedelta(minutes=28)
"""TikTok is fully recovered here."""

FILE_NAMES = ("forwarder.jsonl", "relay.logfmt", "egress.log")
DESTINATIONS = ("tiktok_conversions", "meta_capi", "google_ads", "crm_webhook")

_START_MS = int(START.timestamp()) * 1000
_SPAN_S = DURATION.total_seconds()
_OUT_S = (OUTAGE_START - START).total_seconds()
_OUT_END_S = (OUTAGE_END - START).total_seconds()

# Upstream conversion stream: mean rate (events/s) and event-name mix.
_UPSTREAM_RATE = 2.6
_EVENTS: tuple[tuple[str, float], ...] = (
    ("AddToCart", 0.34),
    ("CompletePayment", 0.30),
    ("PlaceAnOrder", 0.16),
    ("Lead", 0.12),
    ("InitiateCheckout", 0.08),
)
_EVENT_NAMES = tuple(name for name, _ in _EVENTS)
_EVENT_WEIGHTS = tuple(weight for _, weight in _EVENTS)

# Which writer handles a delivery to each destination: (source, cumulative probability).
_ROUTES: dict[str, tuple[tuple[str, float], ...]] = {
    "tiktok_conversions": (("forwarder", 0.88), ("egress", 1.0)),
    "meta_capi": (("forwarder", 0.47), ("relay", 0.89), ("egress", 1.0)),
    "google_ads": (("forwarder", 0.88), ("egress", 1.0)),
    "crm_webhook": (("forwarder", 0.60), ("relay", 1.0)),
}
# Median latency (ms) of a healthy request, and the client timeout (ms).
_MEDIAN_MS = {
    "tiktok_conversions": 115.0,
    "meta_capi": 85.0,
    "google_ads": 165.0,
    "crm_webhook": 55.0,
}
_TIMEOUT_MS = {
    "tiktok_conversions": 10000,
    "meta_capi": 10000,
    "google_ads": 10000,
    "crm_webhook": 5000,
}
# Background noise, per attempt.
_P_5XX = {
    "tiktok_conversions": 0.0012,
    "meta_capi": 0.001,
    "google_ads": 0.0012,
    "crm_webhook": 0.003,
}
_P_TIMEOUT = {
    "tiktok_conversions": 0.0005,
    "meta_capi": 0.0005,
    "google_ads": 0.0006,
    "crm_webhook": 0.0015,
}
_P_META_OLD = 0.005  # Meta code 100 / subcode 2804003, first attempts only
_P_GCLID = 0.004  # Google UNPARSEABLE_GCLID partial failure, first attempts only
_P_40016 = 0.08  # share of TikTok throttles answered with 40016 instead of 40100
_P_EGRESS_429 = 0.2  # share of TikTok throttles the egress proxy sees as HTTP 429
_THROTTLE_PEAK = 0.965  # share of TikTok attempts throttled at the bottom of the outage
_MAX_ATTEMPTS = 3
_SERVER_ERRORS = (
    (500, "Internal Server Error"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EGRESS_CLIENTS = ("10.0.3.7", "10.0.3.8", "10.0.3.12")
_HOSTS = {
    "tiktok_conversions": "business-api.tiktok.com",
    "meta_capi": "graph.facebook.com",
    "google_ads": "googleads.googleapis.com",
}
_META_PIXELS = ("1234567890123456", "2345678901234567")


@dataclass(slots=True)
class _Attempt:
    """One HTTP delivery attempt, as every writer would log it."""

    end_ms: int  # completion time, milliseconds after START (lines are logged on completion)
    seq: int  # generation order; tie-breaker for equal timestamps
    source: str  # forwarder | relay | egress
    dest: str
    event: str
    message_id: str
    attempt: int
    kind: str  # ok | throttle | meta_old | gclid | server_error | timeout
    status: int | None  # HTTP status seen by this writer; None on a timeout
    duration_ms: float
    final: bool  # no further attempt follows
    variant: int  # small per-attempt choice used by the renderers (error wording, pixel, ...)


def _smoothstep(x: float) -> float:
    """Cubic ease from 0 (x <= 0) to 1 (x >= 1)."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _upstream_rate(t: float) -> float:
    """Upstream conversions per second at ``t`` seconds after START: wave times campaign burst."""
    wave = 1.0 + 0.22 * math.sin(2.0 * math.pi * t / 1500.0) + 0.06 * math.sin(t / 97.0)
    # Campaign minute 14:12:00-14:13:00 at 3x, with 10 s raised-cosine edges.
    burst = _smoothstep((t - 715.0) / 10.0) * (1.0 - _smoothstep((t - 775.0) / 10.0))
    return _UPSTREAM_RATE * wave * (1.0 + 2.0 * burst)


def _throttle_share(t: float) -> float:
    """Share of TikTok requests answered with a rate-limit code at ``t`` seconds after START.

    The limit drops at 22:00 (30 % throttled at once), the share climbs to its peak by 23:20,
    holds until 27:20 and falls back to zero by 28:00.
    """
    if t < _OUT_S or t >= _OUT_END_S:
        return 0.0
    rise = 0.3 + (_THROTTLE_PEAK - 0.3) * _smoothstep((t - _OUT_S) / 80.0)
    fall = 1.0 - _smoothstep((t - (_OUT_END_S - 40.0)) / 40.0)
    return rise * fall


def _message_id(rng: random.Random) -> str:
    """A deterministic UUID4-shaped message id."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _route(rng: random.Random, dest: str) -> str:
    """Pick the writer that handles one delivery to ``dest``."""
    u = rng.random()
    for source, cumulative in _ROUTES[dest]:
        if u < cumulative:
            return source
    return _ROUTES[dest][-1][0]


def _deliver(
    rng: random.Random,
    out: list[_Attempt],
    start_s: float,
    source: str,
    dest: str,
    event: str,
    message_id: str,
) -> None:
    """Simulate every attempt of one delivery starting ``start_s`` seconds after START."""
    t = start_s
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        throttle = _throttle_share(t) if dest == "tiktok_conversions" else 0.0
        median = _MEDIAN_MS[dest] * (1.0 + 2.2 * throttle)
        duration = max(6.0, median * math.exp(0.45 * rng.gauss(0.0, 1.0)))
        variant = rng.randrange(1000)
        u = rng.random()
        kind = "ok"
        status: int | None = 200
        if u < throttle:
            kind = "throttle"
            if source == "egress" and rng.random() < _P_EGRESS_429:
                status = 429
        else:
            u = rng.random()
            if u < _P_TIMEOUT[dest]:
                kind, status = "timeout", None
                duration = _TIMEOUT_MS[dest] + rng.uniform(0.5, 15.0)
            elif u < _P_TIMEOUT[dest] + _P_5XX[dest]:
                kind, status = "server_error", _SERVER_ERRORS[variant % 3][0]
            elif attempt == 1 and dest == "meta_capi" and rng.random() < _P_META_OLD:
                kind, status = "meta_old", 400
            elif attempt == 1 and dest == "google_ads" and rng.random() < _P_GCLID:
                kind = "gclid"
        retryable = kind in ("throttle", "server_error", "timeout")
        final = not retryable or attempt == _MAX_ATTEMPTS
        end = t + duration / 1000.0
        out.append(
            _Attempt(
                end_ms=int(end * 1000.0),
                seq=len(out),
                source=source,
                dest=dest,
                event=event,
                message_id=message_id,
                attempt=attempt,
                kind=kind,
                status=status,
                duration_ms=round(duration, 1),
                final=final,
                variant=variant,
            )
        )
        if final:
            return
        # Exponential backoff with jitter: about 1 s, then 3 s.
        t = end + (3.0 ** (attempt - 1)) * rng.uniform(0.8, 1.2)


def _simulate(seed: int) -> list[_Attempt]:
    """Generate every delivery attempt of the 40-minute story, in generation order."""
    rng = random.Random(seed)
    attempts: list[_Attempt] = []
    peak = _UPSTREAM_RATE * 1.3 * 3.0  # bounds _upstream_rate, for thinning
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= _SPAN_S:
            break
        if rng.random() * peak >= _upstream_rate(t):
            continue
        event = rng.choices(_EVENT_NAMES, weights=_EVENT_WEIGHTS)[0]
        message_id = _message_id(rng)
        targets: list[str] = []
        if rng.random() < 0.95:
            targets.append("tiktok_conversions")
        if rng.random() < 0.75:
            targets.append("meta_capi")
        if event in ("CompletePayment", "PlaceAnOrder") and rng.random() < 0.58:
            targets.append("google_ads")
        if event == "Lead":
            targets.append("crm_webhook")
        for dest in targets:
            queued = rng.lognormvariate(math.log(0.04), 0.6)  # time in the forwarder's queue
            _deliver(rng, attempts, t + queued, _route(rng, dest), dest, event, message_id)
    return attempts


# ---------------------------------------------------------------------------------------------
# Renderers


def _forwarder_line(a: _Attempt) -> bytes:
    """Render one attempt as a pino-style JSON line (without the newline)."""
    if a.kind == "ok":
        level, msg = 30, "delivery ok"
    elif a.final:
        level, msg = 50, "delivery failed"
    else:
        level, msg = 40, "delivery retrying"
    record: dict[str, object] = {
        "level": level,
        "time": _START_MS + a.end_ms,
        "pid": 4242,
        "hostname": "fwd-1",
        "msg": msg,
        "dest": a.dest,
        "event": a.event,
        "messageId": a.message_id,
    }
    if a.status is not None:
        record["code"] = a.status
    record["duration"] = a.duration_ms
    record["attempt"] = a.attempt
    err: dict[str, object] | None = None
    if a.kind == "throttle":
        if a.variant < _P_40016 * 1000:
            err = {"code": "40016", "message": "Request frequency exceeds the QPS limit"}
        else:
            err = {"code": "40100", "message": "Too many requests"}
    elif a.kind == "meta_old":
        err = {"code": "100", "message": "Event Timestamp Too Old", "error_subcode": 2804003}
    elif a.kind == "gclid":
        err = {"code": "UNPARSEABLE_GCLID", "message": "The GCLID could not be decoded."}
    elif a.kind == "server_error":
        err = {"code": "ERR_BAD_RESPONSE", "message": f"Request failed with status code {a.status}"}
    elif a.kind == "timeout":
        err = {"code": "ETIMEDOUT", "message": f"timeout of {_TIMEOUT_MS[a.dest]}ms exceeded"}
    if err is not None:
        record["err"] = err
    return orjson.dumps(record)


def _iso_ms(end_ms: int) -> str:
    """RFC 3339 UTC timestamp with milliseconds for an offset from START."""
    stamp = START + timedelta(milliseconds=end_ms)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{end_ms % 1000:03d}Z"


def _logfmt_quote(value: str) -> str:
    """Quote a logfmt value when it needs it, escaping backslashes and double quotes."""
    if value and not any(c in value for c in ' "=\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _relay_line(a: _Attempt, failure_no: int) -> str:
    """Render one attempt as a logfmt line; ``failure_no`` counts failures for wording variety."""
    if a.kind == "ok":
        level = "info"
    elif a.final:
        level = "error"
    else:
        level = "warn"
    parts = [
        f"ts={_iso_ms(a.end_ms)}",
        f"level={level}",
        f"dest={a.dest}",
        f"event={a.event}",
        f"msg_id={a.message_id}",
    ]
    if a.status is not None:
        parts.append(f"status={a.status}")
    parts.append(f"dur_ms={round(a.duration_ms)}")
    parts.append(f"attempt={a.attempt}")
    code: str | None = None
    error: str | None = None
    if a.kind == "meta_old":
        code = "100"
        if failure_no % 2:
            error = 'Invalid parameter: "event_time" too old (error_subcode=2804003)'
        else:
            error = "Invalid parameter: event_time too old"
    elif a.kind == "server_error":
        code = f"http_{a.status}"
        reason = dict(_SERVER_ERRORS)[a.status or 500]
        error = f'unexpected response status "{a.status} {reason}"'
    elif a.kind == "timeout":
        code = "ETIMEDOUT"
        error = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    elif a.kind != "ok":  # not expected on this relay; keep the line well-formed anyway
        code, error = a.kind, a.kind
    if code is not None and error is not None:
        parts.append(f"code={_logfmt_quote(code)}")
        parts.append(f"error={_logfmt_quote(error)}")
    return " ".join(parts)


def _egress_line(a: _Attempt) -> str:
    """Render one attempt as an nginx access-log line (combined + host and upstream time)."""
    stamp = START + timedelta(milliseconds=a.end_ms)
    time_local = f"{stamp.day:02d}/{_MONTHS[stamp.month - 1]}/{stamp.year}:{stamp:%H:%M:%S} +0000"
    host = _HOSTS[a.dest]
    if a.dest == "tiktok_conversions":
        path = "/open_api/v1.3/event/track/"
    elif a.dest == "meta_capi":
        path = f"/v21.0/{_META_PIXELS[a.variant % 2]}/events"
    else:
        path = "/v17/customers/1234567890:uploadClickConversions"
    jitter = a.variant % 7
    if a.kind == "timeout":
        status, size = 504, 167
        upstream = a.duration_ms / 1000.0
    else:
        status = a.status or 200
        upstream = a.duration_ms / 1000.0
        if a.kind == "throttle":
            size = 118 + jitter if status == 429 else 104 + jitter
        elif a.kind == "meta_old":
            size = 318 + jitter
        elif a.kind == "gclid":
            size = 603 + jitter
        elif a.kind == "server_error":
            size = (150, 157, 190)[a.variant % 3]
        elif a.dest == "tiktok_conversions":
            size = 92 + jitter
        elif a.dest == "meta_capi":
            size = 74 + jitter
        else:
            size = 212 + 3 * jitter
    total = upstream + (1 + a.variant % 4) / 1000.0
    client = _EGRESS_CLIENTS[a.variant % len(_EGRESS_CLIENTS)]
    return (
        f'{client} - - [{time_local}] "POST {path} HTTP/1.1" {status} {size} "-" '
        f'"forwarder/2.3" "{host}" rt={total:.3f} urt={upstream:.3f}'
    )


def _render(attempts: list[_Attempt]) -> dict[str, bytes]:
    """Render the attempts into the three files' contents, each sorted by time."""
    by_source: dict[str, list[_Attempt]] = {"forwarder": [], "relay": [], "egress": []}
    for a in attempts:
        by_source[a.source].append(a)
    for rows in by_source.values():
        rows.sort(key=lambda a: (a.end_ms, a.seq))

    forwarder = [_forwarder_line(a) for a in by_source["forwarder"]]
    # Two deliberately bad lines in the middle: a write cut short, and a line without `time`.
    cut_at = next(i for i, a in enumerate(by_source["forwarder"]) if a.end_ms >= 15 * 60_000)
    forwarder[cut_at] = forwarder[cut_at][: len(forwarder[cut_at]) * 3 // 5]
    no_time = next(i for i, a in enumerate(by_source["forwarder"]) if a.end_ms >= 19 * 60_000)
    record = orjson.loads(forwarder[no_time])
    del record["time"]
    forwarder[no_time] = orjson.dumps(record)

    relay: list[str] = []
    failures = 0
    for a in by_source["relay"]:
        if a.kind != "ok":
            failures += 1
        relay.append(_relay_line(a, failures))

    egress = [_egress_line(a) for a in by_source["egress"]]
    return {
        "forwarder.jsonl": b"\n".join(forwarder) + b"\n",
        "relay.logfmt": ("\n".join(relay) + "\n").encode(),
        "egress.log": ("\n".join(egress) + "\n").encode(),
    }


def write_samples(out_dir: Path, seed: int = 7) -> list[Path]:
    """Write ``forwarder.jsonl``, ``relay.logfmt`` and ``egress.log`` into ``out_dir``.

    The directory is created if needed and existing files are overwritten. The same seed always
    yields byte-identical files. Returns the written paths in that order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = _render(_simulate(seed))
    paths: list[Path] = []
    for name in FILE_NAMES:
        path = out_dir / name
        path.write_bytes(contents[name])
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m observatory.sim.samples OUT_DIR [--seed N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m observatory.sim.samples",
        description="Regenerate the deterministic sample delivery logs.",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the sample logs into")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    args = parser.parse_args(argv)
    for path in write_samples(args.out_dir, seed=args.seed):
        size = path.stat().st_size
        with path.open("rb") as fh:
            lines = sum(1 for _ in fh)
        print(f"{path}: {lines} lines, {size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
