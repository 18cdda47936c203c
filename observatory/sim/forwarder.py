"""A server-side conversion forwarder that really POSTs batches to the simulator.

Upstream conversions (a deterministic, seeded stream: `EventStream`) fan out to four
destinations. Each destination has a queue flushed every `flush_interval` seconds in batches
(TikTok 50 events per request, Meta 100, Google 200, webhook 25) by up to `concurrency`
requests in flight over one shared keep-alive `httpx.AsyncClient`. Throttling, 5xx, timeouts and
connection errors are retried (attempts 2 and 3) with exponential backoff, honouring
``Retry-After`` and Google's ``retryDelay``. Every attempt's outcome is written as one pino-style
line per event to ``forwarder.jsonl`` -- the shape of `observatory.sim.samples` forwarder lines.

`Simulation` wires a `SimServer`, a `Forwarder` and a `Scenario` timeline together, and
optionally a `StatsdEmitter` sending rudder-server's statsd metrics of what the server did.

This module holds the run: `Simulation` and `watch_config`, the `observatory watch` config it
writes. The `Forwarder` lives in `delivery`, and the conversions it sends and how it reads the
answers in `conversions`; their public names are re-exported here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from observatory.sim.conversions import DESTINATIONS, Event, EventStream
from observatory.sim.delivery import Forwarder
from observatory.sim.platforms import DEST_IDS, DEST_NAMES, DEST_TYPES
from observatory.sim.scenario import FORWARDER_OPS, Scenario
from observatory.sim.server import SimServer
from observatory.sim.statsd_emitter import StatsdEmitter

__all__ = [
    "DESTINATIONS",
    "Event",
    "EventStream",
    "Forwarder",
    "Simulation",
    "watch_config",
]


def watch_config(
    url: str,
    logs: Path,
    warmup: str = "15s",
    db: str | None = None,
    platform: str = "logs",
    statsd_port: int | None = None,
) -> str:
    """A ready `observatory watch` config for a simulator at `url` writing into `logs`.

    `platform` says what the observatory reads: the forwarder's delivery logs (``logs``),
    rudder-server's statsd metrics on `statsd_port` (``rudderstack``), or Segment's Delivery
    Overview API on the simulator (``segment``)."""
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
    ]
    if platform == "rudderstack":
        parts += [
            "[[feeds]]",
            'kind = "statsd"',
            f'listen = "127.0.0.1:{statsd_port}"',
            "[feeds.rename]",
            *(f"{DEST_TYPES[p]} = {_toml_str(DEST_NAMES[p])}" for p in DEST_TYPES),
        ]
    elif platform == "segment":
        parts += [
            "[[feeds]]",
            'kind = "segment_delivery_overview"',
            f"url = {_toml_str(url)}",
            'token = "simulator-token-not-a-secret"',
            'source_id = "src_simulator"',
            'every = "10s"',
            'lag = "35s"  # the simulator answers 30 s behind, as Segment does',
            "[feeds.destinations]",
            *(f"{DEST_IDS[p]} = {_toml_str(DEST_NAMES[p])}" for p in DEST_IDS),
        ]
    else:
        parts += _log_source(logs)
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


def _log_source(logs: Path) -> list[str]:
    """The forwarder's delivery log as a jsonl source."""
    return [
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


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Simulation:
    """A `SimServer` + a `Forwarder` + a scenario's timeline, run in real time.

    With `statsd` (host, port) a `StatsdEmitter` sends the server's outcomes there every second
    (DogStatsD tags with `dogstatsd`), from `start()` to `stop()`.
    """

    def __init__(
        self,
        scenario: Scenario,
        logs: str | Path,
        *,
        port: int = 0,
        speed: float = 1.0,
        rate: float | None = None,
        statsd: tuple[str, int] | None = None,
        dogstatsd: bool = False,
        platform: str = "logs",
    ) -> None:
        self.scenario = scenario.scaled(speed) if speed != 1.0 else scenario
        self.logs = Path(logs)
        self.server = SimServer(port=port, seed=scenario.seed)
        self.rate = scenario.rate if rate is None else rate
        self.forwarder: Forwarder | None = None
        self.statsd_target = statsd
        self.platform = platform
        self.dogstatsd = dogstatsd
        self.statsd: StatsdEmitter | None = None
        self._pending = self.scenario.timeline()
        self._t0 = 0.0
        self.applied: list[tuple[float, str]] = []

    @property
    def config_path(self) -> Path:
        return self.logs / "config.toml"

    def start(self) -> Simulation:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.server.start()
        if self.statsd_target is not None:
            host, port = self.statsd_target
            self.statsd = StatsdEmitter(self.server, host, port, dogstatsd=self.dogstatsd).start()
        for platform, qps in self.scenario.limits.items():
            self.server.set_qps_limit(platform, qps)
        for platform, share in self.scenario.error_rate.items():
            self.server.set_error_rate(platform, share)
        self.config_path.write_text(
            watch_config(
                self.server.url,
                self.logs,
                platform=self.platform,
                statsd_port=self.statsd_target[1] if self.statsd_target else None,
            ),
            encoding="utf-8",
        )
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
        if self.statsd is not None:
            self.statsd.stop()  # after the forwarder: its last answers are sent too
        self.server.stop()
