"""What every feed shares: its reports, its thread, and turning metrics into counts.

A feed runs on its own thread and hands the runtime :class:`FeedReport` objects through a
queue: per-destination, per-second counts (the same :class:`SecondCounts` log lines give),
and, per destination, the second up to which everything has been reported. The runtime
stores the counts (``feed_seconds``), feeds them to the engine, judges each destination
``delay`` seconds behind the clock, and tells the engine what was reported: a second a feed
has not reported by then (a failed scrape, a late poll) is unknown, never zero.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from observatory.config.feeds import FeedConfig, MetricRole
from observatory.detect.counts import SecondCounts, latency_bin

log = logging.getLogger(__name__)

# Rejected lines or bodies kept per report, as examples (each cut to this many characters).
MAX_REJECT_SAMPLES = 20
REJECT_SAMPLE_CHARS = 300


@dataclass
class FeedReport:
    """What a feed learned since its last report."""

    feed: str
    counts: list[SecondCounts] = field(default_factory=list)
    reported: dict[str, int] = field(default_factory=dict)  # destination -> seconds before it
    rejected: int = 0  # malformed lines, samples or bodies
    samples: list[str] = field(default_factory=list)  # a few of them, cut short
    error: str | None = None  # why the last scrape or poll failed (no secrets)


class Feed:
    """Base of the feed kinds: a daemon thread running :meth:`run` until :meth:`stop`.

    ``delay`` is how far behind the clock its destinations are judged (s); ``cadence`` how
    often it reports (s), for the panes.
    """

    def __init__(
        self,
        config: FeedConfig,
        emit: Callable[[FeedReport], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.label
        self.emit = emit
        self.clock = clock
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.setup()

    def setup(self) -> None:
        """A kind's own state, made at construction (a statsd feed binds its port here)."""

    @property
    def delay(self) -> int:
        return 0

    @property
    def cadence(self) -> float:
        return self.config.interval

    def describe(self) -> str:
        """For a pane: where the numbers come from, how often, how late (``statsd 1s``)."""
        text = f"{self.name} {self.cadence:g}s"
        if self.delay:
            text += f", {self.delay}s behind"
        return text

    def backfill(self) -> FeedReport | None:
        """Before going live: the recent past the platform still holds (None: nothing)."""
        return None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._main, name=f"observatory-feed-{self.name}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _main(self) -> None:
        try:
            self.run()
        except Exception:  # a feed never takes the owner down; it says why it stopped
            log.exception("feed %s stopped", self.name)
            self.send(FeedReport(self.name, error="the feed stopped (see the log)"))

    def run(self) -> None:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def send(self, report: FeedReport) -> None:
        self.last_error = report.error  # a good report clears the last failure
        self.emit(report)


class MetricMap:
    """A metric sample to counts: its destination (a tag, renamed) and what it counts.

    ``responses`` splits by the status tag: 2xx delivered, 429 rate limited, other 4xx
    rejected, anything else failed. ``delivered`` metrics (rudder's ``event_delivery``) count
    only for a destination without ``responses`` ones, which count the same successes.
    """

    def __init__(self, config: FeedConfig) -> None:
        self.roles: dict[str, MetricRole] = config.metric_roles()
        self.dest_tag = config.destination_tag
        self.status_tag = config.status_tag
        self.rename = dict(config.rename)
        self.with_responses: set[str] = set()

    def role(self, name: str) -> MetricRole | None:
        role = self.roles.get(name)
        if role is None and name.endswith("_total"):  # OpenMetrics counters
            role = self.roles.get(name[:-6])
        return None if role == "ignore" else role

    def destination(self, tags: Mapping[str, str]) -> str | None:
        raw = tags.get(self.dest_tag)
        if not raw:
            return None
        return self.rename.get(raw, raw)

    def column(self, role: MetricRole, tags: Mapping[str, str], destination: str) -> str | None:
        """The SecondCounts field a count goes to (None: not counted)."""
        if role == "responses":
            self.with_responses.add(destination)
            return status_column(tags.get(self.status_tag))
        if role == "delivered" and destination in self.with_responses:
            return None
        return role


def status_column(code: str | None) -> str:
    """An HTTP status as a counts field: 2xx delivered, 429 rate limited, 4xx rejected."""
    try:
        status = int(float(code)) if code else 0
    except ValueError:
        status = 0
    if 200 <= status < 300:
        return "delivered"
    if status == 429:
        return "rate_limited"
    if 400 <= status < 500:
        return "rejected"
    return "failed"


class SecondTally:
    """Counts being gathered, by (destination, second)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], SecondCounts] = {}

    def get(self, destination: str, sec: int) -> SecondCounts:
        key = (destination, sec)
        c = self.counts.get(key)
        if c is None:
            c = self.counts[key] = SecondCounts(destination, sec)
        return c

    def add(self, destination: str, sec: int, column: str, n: int) -> None:
        c = self.get(destination, sec)
        setattr(c, column, getattr(c, column) + n)

    def latency(self, destination: str, sec: int, ms: float, weight: int = 1) -> None:
        c = self.get(destination, sec)
        c.latency_n += weight
        c.latency_sum += ms * weight
        c.latency_max = max(c.latency_max, ms)
        b = latency_bin(ms)
        c.hist[b] = c.hist.get(b, 0) + weight

    def take(self, before: int) -> list[SecondCounts]:
        """Remove and return the counts of seconds before ``before``."""
        done = [k for k in self.counts if k[1] < before]
        return [self.counts.pop(k) for k in done]


def spread(total: int, seconds: Iterable[int]) -> list[tuple[int, int]]:
    """``total`` events over ``seconds`` as evenly as integers allow, the odd ones evenly
    spaced (not bunched at the start, which would read as a burst of 429s or errors): a
    scrape's increase or a minute bucket, as per-second counts."""
    secs = list(seconds)
    n = len(secs)
    if not n or total <= 0:
        return []
    out = []
    for i, s in enumerate(secs):
        k = (i + 1) * total // n - i * total // n
        if k:
            out.append((s, k))
    return out


def sample(text: str) -> str:
    """A rejected line as kept: cut short (it is data, shown as plain text only)."""
    return text[:REJECT_SAMPLE_CHARS]
