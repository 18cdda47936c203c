"""rudder-server's statsd metrics for what the simulated platforms really did, over UDP.

rudder-server sends its metrics to statsd by default (``localhost:8125``, InfluxDB-style tags:
``name,tag=v,tag2=v2:VALUE|c``). `StatsdEmitter` plays that part beside a `SimState`: every
`interval` seconds it sends, per platform, the increments since its last send --

* ``router_response_counts{destType,destId,workspaceId,respStatusCode,errorAt,retry}`` per HTTP
  status the destination answered (200 for delivered events), in events;
* ``event_delivery{destType,destId,destination,workspaceId,source,module}`` delivered events;
* ``router_aborted_events{destType,destId,respStatusCode}`` events refused for good (a 4xx
  other than 408 and 429, which rudder-server retries);
* ``event_delivery_time{destType,destId}`` timers in ms, sampled at `sample_rate` (about one
  line per ten delivered events at ``@0.1``), drawn from the latencies the platform observed.

Several lines go in one datagram, newline-separated, at most `MAX_DATAGRAM` bytes (the usual
statsd client limit for a 1500-byte MTU). ``dogstatsd=True`` writes DogStatsD tags instead
(``name:VALUE|c|@0.1|#tag:v,tag2:v2``).

The emitter reads `PlatformStats.events` (per second and status) under `SimState.lock` and
remembers what it has sent of each recent second, so a second still being written is sent in
parts and nothing is sent twice or skipped. It sends what happened from its construction on;
seconds more than `SETTLE` seconds old are final (nothing records into the past).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter

from observatory.config.fields import split_host_port
from observatory.sim.platforms import DEST_IDS, DEST_NAMES, DEST_TYPES
from observatory.sim.state import LATENCY_BUCKETS, SimState

__all__ = [
    "MAX_DATAGRAM",
    "SETTLE",
    "StatsdEmitter",
    "format_line",
    "pack_datagrams",
    "parse_address",
]

MAX_DATAGRAM = 1432
SETTLE = 5
"""Seconds after which a second's counts no longer change (and are forgotten)."""
_MAX_TIMERS = 100  # timer lines per platform per send, whatever the traffic
_DEFAULT_MS = 50.0  # a delivery time when the platform has observed none yet
_WORKSPACE = "ws_sim"


def parse_address(text: str) -> tuple[str, int]:
    """Where to send: ``HOST:PORT`` (``[::1]:8125`` for IPv6) as (host, port); port 0 is
    nowhere to send to."""
    host, port = split_host_port(text)
    if port == 0:
        raise ValueError(f"expected HOST:PORT with a port, got {text!r}")
    return host, port


def format_line(
    name: str,
    tags: dict[str, str],
    value: float | int,
    kind: str = "c",
    rate: float = 1.0,
    *,
    dogstatsd: bool = False,
) -> str:
    """One statsd line: InfluxDB-style tags (rudder-server's default) or DogStatsD tags."""
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    sampled = f"|@{rate:g}" if rate < 1.0 else ""
    if dogstatsd:
        tail = "|#" + ",".join(f"{k}:{v}" for k, v in tags.items()) if tags else ""
        return f"{name}:{text}|{kind}{sampled}{tail}"
    head = "".join(f",{k}={v}" for k, v in tags.items())
    return f"{name}{head}:{text}|{kind}{sampled}"


def pack_datagrams(lines: list[str], limit: int = MAX_DATAGRAM) -> list[bytes]:
    """Newline-joined datagrams of at most `limit` bytes (a longer line goes alone)."""
    out: list[bytes] = []
    current = bytearray()
    for line in lines:
        raw = line.encode()
        if current and len(current) + 1 + len(raw) > limit:
            out.append(bytes(current))
            current = bytearray()
        if current:
            current += b"\n"
        current += raw
    if current:
        out.append(bytes(current))
    return out


class StatsdEmitter:
    """Sends rudder-server's statsd metrics for `state`'s platforms to ``host:port`` over UDP.

    `start()` runs a daemon thread calling `flush()` every `interval` seconds; `stop()` ends it
    after a last flush. `lines_sent`, `datagrams_sent` and `send_errors` count what went out
    (a refused datagram is dropped, as statsd clients do).
    """

    def __init__(
        self,
        state: SimState,
        host: str,
        port: int,
        *,
        interval: float = 1.0,
        dogstatsd: bool = False,
        sample_rate: float = 0.1,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError("sample_rate must be within (0, 1]")
        self.state = state
        self.host = host
        self.port = port
        self.interval = interval
        self.dogstatsd = dogstatsd
        self.sample_rate = sample_rate
        self.lines_sent = 0
        self.datagrams_sent = 0
        self.send_errors = 0
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM
        )[0]
        self._address = address
        self._sock = socket.socket(family, kind, proto)
        self._rng = random.Random(state.seed)
        self._lock = threading.Lock()  # one flush at a time (thread, stop, tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = time.time()
        with state.lock:
            # platform -> second -> status -> events already sent (or there before us)
            self._sent = {
                p: {
                    sec: self._by_status(s.events[sec])
                    for sec in range(int(now) - SETTLE, int(now) + 2)
                    if sec in s.events
                }
                for p, s in state.platform_stats.items()
            }
            self._latency = {
                p: (list(s.latency_buckets), s.latency_sum, s.latency_count)
                for p, s in state.platform_stats.items()
            }
        self._cursor = dict.fromkeys(self._sent, int(now) - SETTLE)
        self._carry = dict.fromkeys(self._sent, 0.0)
        self._mean_ms = dict.fromkeys(self._sent, _DEFAULT_MS)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> StatsdEmitter:
        """Send every `interval` seconds from a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sim-statsd", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, send what is left, close the socket (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        if self._sock.fileno() >= 0:
            self.flush()
            self._sock.close()

    def __enter__(self) -> StatsdEmitter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    # ------------------------------------------------------------------ sending

    def flush(self, now: float | None = None) -> int:
        """Send the increments since the last flush; the number of lines sent."""
        with self._lock:
            lines = self.lines(time.time() if now is None else now)
            for datagram in pack_datagrams(lines):
                try:
                    self._sock.sendto(datagram, self._address)
                except OSError:
                    self.send_errors += 1
                    continue
                self.datagrams_sent += 1
                self.lines_sent += datagram.count(b"\n") + 1
            return len(lines)

    @staticmethod
    def _by_status(per: dict[tuple[str, int], int]) -> Counter[int]:
        out: Counter[int] = Counter()
        for (_name, code), n in per.items():
            out[code] += n
        return out

    def lines(self, now: float) -> list[str]:
        """The lines for what happened since the last call (and mark it sent)."""
        deltas: dict[str, Counter[int]] = {}
        latencies: dict[str, tuple[list[int], float, int]] = {}
        with self.state.lock:
            for p, stats in self.state.platform_stats.items():
                sent = self._sent[p]
                delta: Counter[int] = Counter()
                for sec in range(self._cursor[p], int(now) + 2):
                    per = stats.events.get(sec)
                    if per is None:
                        continue
                    have = self._by_status(per)
                    done = sent.setdefault(sec, Counter())
                    for code, n in have.items():
                        if n > done[code]:
                            delta[code] += n - done[code]
                            done[code] = n
                deltas[p] = delta
                latencies[p] = (list(stats.latency_buckets), stats.latency_sum, stats.latency_count)
        out: list[str] = []
        for p, delta in deltas.items():
            final = int(now) - SETTLE
            for sec in [s for s in self._sent[p] if s < final]:
                del self._sent[p][sec]
            self._cursor[p] = max(self._cursor[p], final)
            out += self._platform_lines(p, delta, latencies[p])
        return out

    def _platform_lines(
        self, p: str, delta: Counter[int], latency: tuple[list[int], float, int]
    ) -> list[str]:
        dest = {"destType": DEST_TYPES[p], "destId": DEST_IDS[p]}
        dog = self.dogstatsd
        out = []
        for code in sorted(delta):
            tags = dict(
                dest,
                workspaceId=_WORKSPACE,
                respStatusCode=str(code),
                errorAt="router",
                retry="false",
            )
            out.append(format_line("router_response_counts", tags, delta[code], dogstatsd=dog))
        delivered = delta.get(200, 0)
        if delivered:
            tags = dict(
                dest,
                destination=DEST_NAMES[p],
                workspaceId=_WORKSPACE,
                source="simulator",
                module="router",
            )
            out.append(format_line("event_delivery", tags, delivered, dogstatsd=dog))
        for code in sorted(delta):
            if 400 <= code < 500 and code not in (408, 429):
                tags = dict(dest, respStatusCode=str(code))
                out.append(format_line("router_aborted_events", tags, delta[code], dogstatsd=dog))
        for ms in self._timer_values(p, delivered, latency):
            out.append(
                format_line("event_delivery_time", dest, ms, "ms", self.sample_rate, dogstatsd=dog)
            )
        return out

    def _timer_values(
        self, p: str, delivered: int, latency: tuple[list[int], float, int]
    ) -> list[float]:
        """Sampled delivery times (ms) for `delivered` events, from the latencies observed
        since the last send (their histogram), else the last mean seen."""
        buckets, total, count = latency
        old_buckets, old_total, old_count = self._latency[p]
        self._latency[p] = latency
        if count > old_count:
            self._mean_ms[p] = (total - old_total) / (count - old_count) * 1000
        self._carry[p] += delivered * self.sample_rate
        k = int(self._carry[p])
        self._carry[p] -= k
        weights = [n - n0 for n, n0 in zip(buckets, old_buckets, strict=True)]
        values = []
        for _ in range(min(k, _MAX_TIMERS)):
            if sum(weights) > 0:
                i = self._rng.choices(range(len(weights)), weights)[0]
                low = LATENCY_BUCKETS[i - 1] if i else 0.0
                values.append(self._rng.uniform(low, LATENCY_BUCKETS[i]) * 1000)
            else:
                values.append(self._mean_ms[p])
        return values
