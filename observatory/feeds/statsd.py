"""The statsd feed: rudder-server's default metrics (UDP, ``localhost:8125``) as live counts.

One line is ``name:value|type[|@rate][|#tag:v,...]``; tags are InfluxDB-style in the name
(``name,tag=v,...:1|c``, rudder-go-kit's format) or DogStatsD-style after ``|#``. Types:
``c`` counter, ``g`` gauge, ``ms``/``h``/``d`` timers and distributions, ``s`` sets; a value
may repeat (``name:1:2|ms``). A sampled counter counts ``value / rate``.

statsd lines carry no time: a line counts in the second it arrives. At the end of each second
the feed reports that second for every destination it has seen (zeros included: a metrics
stream that stops is a flow that stopped), so the engine judges it like a log line's second.
Malformed lines are counted (and a few kept) as rejects, never raised.
"""

from __future__ import annotations

import math
import socket
from typing import NamedTuple

from observatory.config.feeds import FeedConfig
from observatory.config.fields import split_host_port
from observatory.feeds.base import (
    MAX_REJECT_SAMPLES,
    Feed,
    FeedReport,
    MetricMap,
    SecondTally,
    sample,
)

RECV_BUFFER = 8 * 1024 * 1024  # asked of the kernel (it may cap it at net.core.rmem_max)
MAX_DATAGRAM = 65535
TYPES = frozenset({"c", "g", "ms", "h", "d", "s", "t"})


class Metric(NamedTuple):
    name: str
    values: list[float]
    kind: str
    rate: float
    tags: dict[str, str]


def parse_line(line: str) -> Metric | None:
    """One statsd line, or None when it is malformed."""
    head, sep, rest = line.partition(":")
    if not sep or not head:
        return None
    values_text, sep, meta = rest.partition("|")
    if not sep:
        return None
    sections = meta.split("|")
    kind = sections[0]
    if kind not in TYPES:
        return None
    try:
        values = [float(v) for v in values_text.split(":")]
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    rate = 1.0
    tags: dict[str, str] = {}
    name = head
    if "," in head:
        name, _, tag_text = head.partition(",")
        for pair in tag_text.split(","):
            k, eq, v = pair.partition("=")
            if not eq or not k:
                return None
            tags[k] = v
    for section in sections[1:]:
        if section.startswith("@"):
            try:
                rate = float(section[1:])
            except ValueError:
                return None
            if not 0.0 < rate <= 1.0:
                return None
        elif section.startswith("#"):
            for pair in section[1:].split(","):
                if pair:
                    k, _, v = pair.partition(":")
                    tags[k] = v
        # other DogStatsD sections (|c:container, |T<ts>) are allowed and ignored
    if not name:
        return None
    return Metric(name, values, kind, rate, tags)


class StatsdIntake:
    """Parses lines into a :class:`SecondTally` through a :class:`MetricMap` (no I/O: the
    listener and the benchmark both drive it)."""

    def __init__(self, config: FeedConfig) -> None:
        self.map = MetricMap(config)
        self.tally = SecondTally()
        self.destinations: set[str] = set()
        self.lines = 0
        self.rejected = 0
        self.samples: list[str] = []

    def datagram(self, data: bytes, sec: int) -> None:
        text = data.decode("utf-8", "replace")
        for line in text.splitlines():
            if line:
                self.line(line, sec)

    def line(self, line: str, sec: int) -> None:
        self.lines += 1
        metric = parse_line(line.strip())
        if metric is None:
            self._reject(line)
            return
        role = self.map.role(metric.name)
        if role is None:
            return  # a metric we do not count: not an error
        dest = self.map.destination(metric.tags)
        if dest is None:
            return
        self.destinations.add(dest)
        if role == "latency":
            if metric.kind in ("ms", "h", "d"):
                weight = max(1, round(1.0 / metric.rate))
                for v in metric.values:
                    self.tally.latency(dest, sec, v, weight)
            return
        column = self.map.column(role, metric.tags, dest)
        if column is None or metric.kind != "c":
            return
        n = round(sum(metric.values) / metric.rate)
        if n > 0:
            self.tally.add(dest, sec, column, n)

    def _reject(self, line: str) -> None:
        self.rejected += 1
        if len(self.samples) < MAX_REJECT_SAMPLES:
            self.samples.append(sample(line))

    def report(self, feed: str, before: int) -> FeedReport:
        """Every second before ``before``: its counts, reported for every known destination."""
        report = FeedReport(
            feed,
            counts=self.tally.take(before),
            reported=dict.fromkeys(self.destinations, before),
            rejected=self.rejected,
            samples=self.samples,
        )
        self.rejected = 0
        self.samples = []
        return report


class StatsdFeed(Feed):
    """Listens on ``listen`` (UDP) and reports each second as it ends."""

    def setup(self) -> None:
        self.intake = StatsdIntake(self.config)
        host, port = split_host_port(self.config.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(0.05)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]

    def run(self) -> None:
        sock = self.sock
        intake = self.intake
        current = math.floor(self.clock())
        try:
            while not self.stopping.is_set():
                try:
                    data = sock.recv(MAX_DATAGRAM)
                except TimeoutError:
                    data = b""
                now = math.floor(self.clock())
                if now > current:  # the seconds before `now` are over: report them
                    self.send(intake.report(self.name, now))
                    current = now
                if data:
                    intake.datagram(data, now)
        finally:
            sock.close()

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        self.sock.close()  # (also when it never ran; closing twice is harmless)
