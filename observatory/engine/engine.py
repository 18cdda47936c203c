"""The detection engine: per-destination one-second buckets, six sequential detectors, incidents.

The runtime feeds it :class:`SecondCounts` (and probe results) in event time and moves it on
with a watermark; every whole second that can no longer change is evaluated once, for every
known destination, in time order. Each detector is a one-sided CUSUM on 1 s ticks (DESIGN
"Detection") with one threshold ``h = ln(N·D·T/Δ)`` from the false-alarm budget; detectors of a
destination merge into one incident whose severity only escalates.

Pure Python and deterministic: no clock, no I/O; the same input gives the same incidents, ids
included.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from observatory.config import DetectionConfig
from observatory.engine.counts import SecondCounts
from observatory.engine.destination import (
    MIN_POOL_RATE,
    RECENT_SECONDS,
    SPARKLINE_SECONDS,
    STATUS_SECONDS,
    Destination,
    ProbeState,
    Second,
)
from observatory.engine.stats import (
    ReverseTest,
    decay,
    threshold_h,
    wilson,
)
from observatory.engine.status import DestinationState, DestinationStatus, destination_status
from observatory.engine.wording import clock, iso_s, pct, per_s, sig
from observatory.incidents import DETECTORS, SEVERITY_RANK, Change, ChangeKind, Incident, Severity

__all__ = ["DestinationState", "DestinationStatus", "Engine"]

LATENESS = 1  # seconds: the current and the previous second may still be filling
FAST_TAU = 120.0  # recent rate, for the silence test's lower rate estimate (s)
REOPEN_WINDOW = 900.0  # a re-fire this soon after resolution reopens the incident (a flap)
GUARD_SECONDS = 60  # baselines learn from a second once it is this old and not in an incident
MIN_TRIALS = 10  # the reverse test needs this many trials in its window
REVERSE_MARGIN = 6.0  # nats: the reverse test's least evidence for normal traffic
REVERSE_SHARE = 0.3  # ... and this share of what normal traffic typically gives
VOLUME_REVERSE_SHARE = 0.5  # (a halved flow is close to normal: volume_drop asks for more)
SILENCE_REVERSE = 0.1  # silence's reverse test: normal delivered rate against this share of it
QUIET = 60  # seconds without an alarm before resolving
MIN_WINDOW = 60  # the reverse test's window: where normal traffic typically gives h nats
MAX_WINDOW = 110  # against the fault, within these bounds (recovery judged within 2 minutes)
POOL_WINDOW_EVENTS = 30.0  # the pool ratio looks at about this many expected events
POOL_BAND = 2.0  # pool members are within this factor of the median count/baseline ratio
MIN_EVENTS = 5  # at least this many bad events before a Bernoulli detector alarms
SECOND_CAP = (0.4, 0.6)  # shares of h one second's LLR may add to a CUSUM (persistence)
THROUGHPUT_CUT = 0.5  # delivered below this share of expected = throughput cut (critical)
OPERATIONAL = frozenset({"", "operational", "ok", "up", "healthy", "none", "normal", "green"})
MAJOR = frozenset({"major_outage", "major", "down", "outage", "critical", "red"})
_EVIDENCE_KEYS = ("retry", "ratelimit", "rate-limit", "rate_limit", "quota", "reset", "status")

BASE_SEVERITY: dict[str, Severity] = {
    "silence": "critical",
    "volume_drop": "error",
    "error_rate": "error",
    "rate_limit": "warning",
    "latency": "warning",
    "probe": "warning",
}

_ProbeResult = tuple[str, str, float, bool, str | None, dict[str, Any]]


@dataclass
class _Firing:
    """A detector that fired in the destination's current incident."""

    detector: str
    onset: int
    fired_at: float
    statistic: float
    limit: float  # h, or the silence limit in seconds
    severity: Severity
    last_abnormal: int
    reverse: ReverseTest
    p0: float = 0.0
    p1: float = 0.0
    k: int = 0  # detector's bad events since onset (failures, 429s, slow; own count for volume)
    n: int = 0  # trials since onset (attempts, latency events; own + pool for volume)
    expected: float = 0.0  # volume: own events expected since onset
    fault: float = 0.0  # the fault as observed: bad share (Bernoulli) or volume ratio
    extra: dict[str, Any] = field(default_factory=dict)

    def observe_fault(self, k: int, n: int) -> None:
        """Track how bad the fault looked, for the reverse test's alternative: half the worst
        share of bad events seen (an alarm picks a bad-looking stretch), at least p1. For a
        volume drop, twice the lowest ratio to its expected count seen, within [0.1, 0.5]: a
        flow that stopped is told from normal by a few events, a halved one needs more."""
        if self.detector == "volume_drop":
            expected = _volume_expected(self.p0, n - k)
            ratio = min(0.5, max(SILENCE_REVERSE, 2.0 * k / expected)) if expected > 0.0 else 0.5
            self.fault = min(self.fault or 1.0, ratio)
        elif n > 0:
            self.fault = min(max(self.fault, self.p1, 0.5 * k / n), 0.99)


@dataclass
class _Impact:
    first_sec: int  # seconds [first_sec, last_sec] are counted
    last_sec: int
    not_delivered: float = 0.0
    failed: int = 0
    rate_limited: int = 0
    rejected: int = 0
    attempts: int = 0
    delivered: int = 0


def _bernoulli(p0: float, p1: float) -> tuple[float, float]:
    """Log-likelihood ratio coefficients (bad event, good event) of p1 against p0."""
    return math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))


_LN2 = math.log(2.0)


def _logaddexp(x: float, y: float) -> float:
    """ln(e^x + e^y) without overflow."""
    hi, lo = (x, y) if x >= y else (y, x)
    return hi + math.log1p(math.exp(lo - hi))


def _poisson(count: int, expected: float, rho: float) -> tuple[float, float]:
    """Log-likelihood ratio of a rate cut to `rho` of normal against normal, for `count`
    events where `expected` were due; and what normal traffic typically gives (negative)."""
    a = math.log(rho)
    return count * a + expected * (1.0 - rho), expected * (a + 1.0 - rho)


class Engine:
    """Sequential change detection over per-destination, per-second counts.

    ``h`` is fixed at construction from ``n_destinations`` (the number of destinations the
    false-alarm budget is shared by); destinations discovered later do not change it, so a
    replay and a live run use the same threshold. Detected incidents come back from
    :meth:`advance` as :class:`Change` objects holding a snapshot of the incident at that moment;
    :meth:`incidents` returns the live ones (their evidence, impact and summary are refreshed
    every evaluated second without a Change).
    """

    def __init__(self, detection: DetectionConfig, n_destinations: int = 5) -> None:
        self.config = detection
        self.tick = float(detection.tick)
        self.h = threshold_h(
            n_destinations, len(DETECTORS), detection.false_alarm_budget, self.tick
        )
        self.n_destinations = n_destinations
        self.late_events = 0  # events fed for seconds already evaluated (dropped)
        self._dests: dict[str, Destination] = {}
        self._order: list[Destination] = []
        self._pending: dict[int, dict[str, SecondCounts]] = {}
        self._probe_queue: dict[int, list[_ProbeResult]] = {}
        self._next_sec: int | None = None
        self._last_data_sec: int | None = None  # the last evaluated second with any data
        self._live = False
        self._open: dict[str, Incident] = {}
        self._firings: dict[str, dict[str, _Firing]] = {}
        self._impact: dict[str, _Impact] = {}
        self._resolved: dict[str, Incident] = {}
        self._all: deque[Incident] = deque(maxlen=1000)
        self._ids: set[str] = set()
        self._fast_keep = decay(FAST_TAU)

    # ----------------------------------------------------------------------------------------
    # Input
    # ----------------------------------------------------------------------------------------

    def _destination(self, name: str, sec: int) -> Destination:
        dest = self._dests.get(name)
        if dest is None:
            first = sec if self._next_sec is None else max(sec, self._next_sec)
            dest = Destination(name, first, self.h)
            self._dests[name] = dest
            self._order = sorted(self._dests.values(), key=lambda d: d.name)
        elif self._next_sec is None and sec < dest.first_sec:
            dest.first_sec = sec
        return dest

    def feed(self, counts: Iterable[SecondCounts]) -> None:
        """Add counts; a (destination, second) may come in several pieces."""
        for c in counts:
            sec = int(c.sec)
            dest = self._destination(c.destination, sec)
            total = c.total
            if total > 0 and (dest.last_event_sec is None or sec > dest.last_event_sec):
                dest.last_event_sec = sec
            if self._next_sec is not None and sec < self._next_sec:
                self.late_events += total
                continue
            bucket = self._pending.setdefault(sec, {})
            mine = bucket.get(c.destination)
            if mine is None:
                mine = bucket[c.destination] = SecondCounts(c.destination, sec)
            mine.add(c)

    def feed_probe(
        self,
        destination: str,
        probe: str,
        ts: float,
        ok: bool,
        status: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add a probe result; it is judged with the second it falls in (or the next evaluated)."""
        sec = math.floor(ts)
        self._destination(destination, sec)
        if self._next_sec is not None and sec < self._next_sec:
            sec = self._next_sec
        self._probe_queue.setdefault(sec, []).append(
            (destination, probe, ts, ok, status, dict(details or {}))
        )

    # ----------------------------------------------------------------------------------------
    # Time
    # ----------------------------------------------------------------------------------------

    def advance(self, watermark: float) -> list[Change]:
        """Evaluate every second ``s <= floor(watermark) - 2`` not yet evaluated, in order."""
        last = math.floor(watermark) - 1 - LATENESS
        if self._next_sec is None:
            starts = list(self._pending) + list(self._probe_queue)
            if not starts:
                return []
            self._next_sec = min(starts)
        changes: list[Change] = []
        sec = self._next_sec
        while sec <= last:
            if not self._pending.get(sec) and not self._probe_queue.get(sec):
                skip_to = self._idle_until(sec, last)
                if skip_to > sec:
                    self._skip(sec, skip_to)
                    sec = skip_to
                    continue
            self._evaluate(sec, changes)
            sec += 1
        self._next_sec = max(self._next_sec, last + 1)
        return changes

    def _idle_until(self, sec: int, last: int) -> int:
        """Where an empty stretch can be skipped to (``sec`` if it cannot).

        With every destination stale, empty seconds change nothing. When no destination has
        had data for ``staleness`` (their silence incidents have fired by then), they all
        become stale too, so a long gap in the data (or one bogus early timestamp) costs no
        more than that.
        """
        if not self._order:
            return sec
        if not all(d.stale for d in self._order):
            if self._last_data_sec is None or sec - self._last_data_sec <= self.config.staleness:
                return sec
            for dest in self._order:
                if not dest.stale:
                    dest.mark_stale(self._last_data_sec)
        upcoming = [s for s in self._pending if s > sec] + [s for s in self._probe_queue if s > sec]
        return min([last + 1, *upcoming])

    def _skip(self, start: int, stop: int) -> None:
        for dest in self._order:
            for s in range(max(start, stop - SPARKLINE_SECONDS), stop):
                dest.history.append(Second(s, 0, 0, 0, 0, 0, 0.0, 0, 0.0))

    def go_live(self, now: float) -> None:
        """The backlog is read: incidents opened from now on are live (``historical=False``).

        Destinations whose last event is older than ``detection.staleness`` become stale: no
        silence or volume alarms for them until they produce data again.
        """
        self._live = True
        for dest in self._order:
            last = dest.last_event_sec
            if last is None or now - (last + 1) > self.config.staleness:
                dest.mark_stale(last if last is not None else math.floor(now))

    # ----------------------------------------------------------------------------------------
    # One second
    # ----------------------------------------------------------------------------------------

    def _evaluate(self, sec: int, changes: list[Change]) -> None:
        bucket = self._pending.pop(sec, {})
        probes = self._probe_queue.pop(sec, [])
        if probes or any(c.total for c in bucket.values()):
            self._last_data_sec = sec
        dests = [d for d in self._order if d.first_sec <= sec]
        counts: dict[str, SecondCounts] = {}
        for dest in dests:
            c = bucket.get(dest.name)
            if c is None:
                c = SecondCounts(dest.name, sec)
            elif c.hist:
                c.slow = dest.latency.slow(c.hist)
            counts[dest.name] = c
        self._pool_context(dests, counts)

        touched: dict[str, ChangeKind] = {}
        for dest in dests:
            c = counts[dest.name]
            if dest.stale and c.total > 0 and sec > dest.stale_after:
                dest.stale = False  # data again, newer than what made it stale
            expected = dest.expected_delivered()
            dest.history.append(
                Second(
                    sec,
                    c.total,
                    c.delivered,
                    c.failed,
                    c.rejected,
                    c.rate_limited,
                    expected,
                    c.latency_n,
                    c.latency_sum,
                    c.slow,
                )
            )
            for name in self._detect(dest, sec, c):
                self._fire(dest, name, sec, touched)
        for destination, probe, ts, ok, status, details in probes:
            dest = self._dests[destination]
            if self._probe(dest, probe, ts, ok, status, details):
                self._fire(dest, "probe", sec, touched)

        self._update_baselines(sec, dests, counts)

        for dest in dests:
            incident = self._open.get(dest.name)
            if incident is None:
                continue
            self._follow(dest, incident, sec, counts[dest.name], touched)
            kind = touched.get(dest.name)
            if kind is None and self._recovered(dest, sec):
                self._resolve(dest, incident, sec)
                changes.append(Change("resolved", incident.snapshot()))
                continue
            if kind is not None:
                changes.append(Change(kind, incident.snapshot()))

    def _pool_context(self, dests: list[Destination], counts: dict[str, SecondCounts]) -> None:
        """Per destination: the healthy pool its share is tested against (DESIGN volume_drop)."""
        ratios: dict[str, float] = {}
        for dest in dests:
            total = counts[dest.name].total
            base = dest.rate.rate
            if base > 0.0:
                span = min(60.0, max(1.0, POOL_WINDOW_EVENTS / base))
                dest.short += (total - dest.short) / span
            else:
                dest.short = float(total)
            if dest.armed and not dest.stale and dest.name not in self._open and base > 0.0:
                ratios[dest.name] = dest.short / base
        pool_rate = 0.0
        pool_count = 0
        members: set[str] = set()
        if ratios:
            median = statistics.median(ratios.values())
            for name, ratio in ratios.items():
                if median / POOL_BAND <= ratio <= median * POOL_BAND:
                    members.add(name)
                    pool_rate += self._dests[name].rate.rate
                    pool_count += counts[name].total
        for dest in dests:
            if dest.name in members:
                dest.pool_rate = pool_rate - dest.rate.rate
                dest.pool_count = pool_count - counts[dest.name].total
            else:
                dest.pool_rate = pool_rate
                dest.pool_count = pool_count
            base = dest.rate.rate
            dest.pi0 = base / (base + dest.pool_rate) if base > 0 and dest.pool_rate > 0 else 0.0
            if dest.pool_rate >= MIN_POOL_RATE:
                span = min(60.0, max(1.0, POOL_WINDOW_EVENTS / dest.pool_rate))
                dest.pool_mult += (dest.pool_count / dest.pool_rate - dest.pool_mult) / span
            else:
                dest.pool_mult = 1.0

    # ----------------------------------------------------------------------------------------
    # Detectors
    # ----------------------------------------------------------------------------------------

    def _detect(self, dest: Destination, sec: int, c: SecondCounts) -> list[str]:
        """Step every armed detector of the destination; the names of those in alarm."""
        out: list[str] = []
        if not dest.armed:
            return out
        total = c.total
        if not dest.stale:  # a stale destination's silence is history, not an outage
            if self._silence(dest, sec, c):
                out.append("silence")
            if dest.pi0 > 0.0 and dest.rate.settled:
                # binomial on its share of (itself + pool), against half its baseline share
                pi0 = dest.pi0
                y = dest.pool_count
                llr = y * math.log(2.0) - (total + y) * math.log(2.0 - pi0)
                dest.params["volume_drop"] = (pi0, pi0 / (2.0 - pi0))
                full = dest.pool_rate * math.log(2.0 / (2.0 - pi0))
                if self._cusum(dest, "volume_drop", sec, llr, total, total + y, 0, full):
                    out.append("volume_drop")

        if total > 0:
            p0 = min(max(dest.errors.p, 0.002), 0.5)
            if self._bernoulli_step(dest, "error_rate", sec, c.failed + c.rejected, total, p0):
                out.append("error_rate")
            p0 = min(max(dest.limited.p, 0.001), 0.5)
            if self._bernoulli_step(dest, "rate_limit", sec, c.rate_limited, total, p0):
                out.append("rate_limit")

        if c.hist and dest.latency.armed:
            p0 = min(max(dest.slow.p, 0.01), 0.5)
            p1 = min(max(10.0 * p0, 0.1), 0.99)
            dest.params["latency"] = (p0, p1)
            llr, k, n, _ = self._latency_llr(dest, c, p0, p1)
            full = dest.rate.rate * _bernoulli(p0, p1)[0]
            if self._cusum(dest, "latency", sec, llr, k, n, MIN_EVENTS, full):
                out.append("latency")
        return out

    @staticmethod
    def _latency_llr(
        dest: Destination, c: SecondCounts, p0: float, p1: float
    ) -> tuple[float, int, int, float]:
        """The latency test of one second: (LLR, events speaking for a slowdown, events, what
        normal traffic typically gives).

        The alternative is an even mixture of two faults, each against the baseline: a tail
        fault (a share p1 of events above the usual p99, a Bernoulli test) and a bulk slowdown
        (every latency about 3x, the histogram shifted). A mixture of two likelihood ratios is
        a likelihood ratio, so the CUSUM's false-alarm bound (h) holds as for one test, while
        either fault is caught at close to the speed of its own test.
        """
        latency = dest.latency
        n = sum(c.hist.values())
        slow = min(c.slow, n)
        a, b = _bernoulli(p0, p1)
        tail = slow * a + (n - slow) * b
        bulk, k_bulk = latency.shift(c.hist)
        llr = _logaddexp(tail, bulk) - _LN2
        typical = _logaddexp(n * (p0 * a + (1.0 - p0) * b), n * latency.shift_typical) - _LN2
        return llr, (k_bulk if bulk > tail else slow), n, typical

    def _bernoulli_step(
        self,
        dest: Destination,
        name: str,
        sec: int,
        bad: int,
        n: int,
        p0: float,
        floor: float = 0.05,
    ) -> bool:
        """Step a Bernoulli detector: `bad` of `n` trials, normal share p0 against
        p1 = max(10 p0, floor); True in alarm."""
        p1 = min(max(10.0 * p0, floor), 0.99)
        a, b = _bernoulli(p0, p1)
        dest.params[name] = (p0, p1)
        llr = bad * a + (n - bad) * b
        return self._cusum(dest, name, sec, llr, bad, n, MIN_EVENTS, dest.rate.rate * a)

    def _cusum(
        self,
        dest: Destination,
        name: str,
        sec: int,
        llr: float,
        k: int,
        n: int,
        min_k: int,
        full: float,
    ) -> bool:
        """Step a CUSUM with one second's LLR, capped for persistence; True in alarm.

        Forwarders send batches (50-200 events a request), so one failed, throttled or slow
        request lands all its events in one second: they are one observation, not 200
        independent trials. No second may add more than ``SECOND_CAP`` of h, so an alarm needs
        evidence from at least two seconds with bad events (a positive LLR needs a bad event):
        a real fault persists, a lone batch drains. Within that band the cap is ``full``, what
        one second of the destination's normal traffic gives when it is all bad: a fast
        destination's fault passes h in two seconds, and a slow destination (whose real faults
        give a few nats a second) cannot be lifted high by a burst and stay there for minutes.
        """
        cusum = dest.cusums[name]
        lo, hi = SECOND_CAP
        llr = min(llr, min(max(full, lo * self.h), hi * self.h))
        cusum.step(sec, llr, k, n)
        return cusum.s >= self.h and cusum.k >= min_k

    def _silence_limit(self, dest: Destination) -> tuple[float, float]:
        """Seconds without a delivered event that alarm, and the rate they were judged at."""
        rate = min(dest.rate.rate, dest.fast) * dest.delivered.p
        if dest.pool_rate >= MIN_POOL_RATE:
            # judged at the upstream's current level: a campaign's end is not a silence
            rate = min(rate, dest.rate.rate * dest.pool_mult * dest.delivered.p)
        if rate <= 0.0:
            return math.inf, 0.0
        limit = max(
            (self.h + math.log(rate)) / rate,
            3.0 * dest.gaps.p999(),
            float(self.config.silence_floor),
        )
        return limit, rate

    def _silence(self, dest: Destination, sec: int, c: SecondCounts) -> bool:
        """Count seconds without a delivered event (with or without attempts); True at the
        limit. The run length is the CUSUM against "rate 0": any delivery resets it."""
        sil = dest.silence
        if c.delivered > 0:
            sil.reset()
            return False
        if sil.run == 0:
            sil.start = sec
            sil.limit, sil.rate = self._silence_limit(dest)
        sil.run += 1
        sil.attempts += c.total
        sil.failed += c.failed
        sil.rate_limited += c.rate_limited
        sil.rejected += c.rejected
        return sil.run >= sil.limit

    def _probe(
        self,
        dest: Destination,
        probe: str,
        ts: float,
        ok: bool,
        status: str | None,
        details: dict[str, Any],
    ) -> bool:
        """Judge one probe result; True when the probe is (still) abnormal enough to alarm."""
        state = dest.probes.setdefault(probe, ProbeState())
        operational = status is None or status.strip().lower() in OPERATIONAL
        state.status = status
        state.ok = ok
        state.ts = ts
        state.details = {
            k: v for k, v in details.items() if any(key in k.lower() for key in _EVIDENCE_KEYS)
        }
        if ok and operational:
            state.successes += 1
            state.failures = 0
            if state.successes >= 3:
                state.bad_since = None
            return False
        state.successes = 0
        state.failures += 1
        if state.bad_since is None:
            state.bad_since = ts
        return not operational or state.failures >= 3

    def _probe_severity(self, dest: Destination) -> Severity:
        worst: Severity = "warning"
        for state in dest.probes.values():
            status = (state.status or "").strip().lower()
            if status in MAJOR or (not state.ok and state.failures >= 3):
                worst = "error"
        return worst

    # ----------------------------------------------------------------------------------------
    # Baselines
    # ----------------------------------------------------------------------------------------

    def _update_baselines(
        self, sec: int, dests: list[Destination], counts: dict[str, SecondCounts]
    ) -> None:
        """Learn from seconds once they are GUARD_SECONDS old and outside any incident.

        The guard band keeps the first seconds of a fault, before it is detected, out of the
        baselines (a slow destination's ratios would otherwise learn its first few failures).
        During warm-up the baselines learn at once. A destination that learns nothing in a
        second (in an incident, or just out of one) follows the upstream traffic: its baseline
        rate moves with the total baseline of those that did, so it keeps its share.
        """
        before = 0.0
        after = 0.0
        idle: list[Destination] = []
        warmup = float(self.config.warmup)
        for dest in dests:
            c = counts[dest.name]
            if not dest.armed:
                self._learn(dest, c)
                age = c.sec - dest.first_sec + 1
                if age >= warmup and dest.rate.events >= self.config.warmup_events:
                    dest.armed = True
                    dest.fast = dest.rate.rate
                continue
            if dest.name not in self._open and not (dest.stale and c.total == 0):
                dest.guard.append(c)
            learned = False
            while dest.guard and dest.guard[0].sec <= sec - GUARD_SECONDS:
                before += dest.rate.rate
                self._learn(dest, dest.guard.popleft())
                after += dest.rate.rate
                learned = True
            if not learned:
                idle.append(dest)
        if idle and before > 0.0 and after > 0.0:
            factor = after / before
            for dest in idle:
                dest.rate.scale(factor)
                dest.fast *= factor

    def _learn(self, dest: Destination, c: SecondCounts) -> None:
        total = c.total
        half = self.h / 2.0
        if dest.armed:
            dest.rate.update(total)
        else:
            dest.rate.learn(total)
        dest.fast = dest.fast * self._fast_keep + total * (1.0 - self._fast_keep)
        if dest.cusums["error_rate"].s < half:
            dest.errors.update(c.failed + c.rejected, total)
        if dest.cusums["rate_limit"].s < half:
            dest.limited.update(c.rate_limited, total)
        dest.delivered.update(c.delivered, total)
        if c.hist and dest.cusums["latency"].s < half:
            if dest.latency.first_slow_bin is not None:
                dest.slow.update(min(c.slow, c.latency_n), c.latency_n)
            dest.latency.learn(c.hist, c.latency_sum)
            dest.latency.refresh()
        dest.gaps.add_events(c.delivered)
        if c.delivered > 0:
            if dest.gap_run > 0:
                dest.gaps.add_run(dest.gap_run)
            dest.gap_run = 0
        else:
            dest.gap_run += 1

    # ----------------------------------------------------------------------------------------
    # Incidents
    # ----------------------------------------------------------------------------------------

    def _new_id(self, destination: str, onset: int, detector: str) -> str:
        key = f"{destination}|{int(onset)}|{detector}"
        ident = hashlib.sha1(key.encode()).hexdigest()[:8]
        n = 1
        while ident in self._ids:
            n += 1
            ident = hashlib.sha1(f"{key}|{n}".encode()).hexdigest()[:8]
        self._ids.add(ident)
        return ident

    def _make_firing(self, dest: Destination, name: str, sec: int) -> _Firing:
        end = float(sec + 1)
        extra: dict[str, Any] = {}
        p0 = p1 = 0.0
        k = n = 0
        if name == "silence":
            sil = dest.silence
            onset = sil.start
            statistic, limit = float(sil.run), sil.limit
            severity: Severity = "critical"
            extra.update(
                rate=sil.rate,
                start=sil.start,
                run=sil.run,
                attempts=sil.attempts,
                failed=sil.failed,
                rate_limited=sil.rate_limited,
                rejected=sil.rejected,
                ended=None,
            )
        elif name == "probe":
            bad = [s.bad_since for s in dest.probes.values() if s.bad_since is not None]
            onset = math.floor(min(bad)) if bad else sec
            statistic, limit = 0.0, 3.0
            severity = self._probe_severity(dest)
        else:
            cusum = dest.cusums[name]
            refined, k, n = cusum.refined()
            onset = refined if refined is not None else sec
            statistic, limit = cusum.s, self.h
            p0, p1 = dest.params.get(name, (0.0, 0.0))
            severity = BASE_SEVERITY[name]
            cusum.reset()
        firing = _Firing(
            detector=name,
            onset=onset,
            fired_at=end,
            statistic=statistic,
            limit=limit,
            severity=severity,
            last_abnormal=sec,
            reverse=ReverseTest(MIN_WINDOW, MAX_WINDOW),
            p0=p0,
            p1=p1,
            k=k,
            n=n,
            extra=extra,
        )
        if name == "volume_drop":
            firing.expected = _volume_expected(p0, n - k)
        if name in dest.cusums:
            firing.observe_fault(k, n)
        return firing

    def _fire(self, dest: Destination, name: str, sec: int, touched: dict[str, ChangeKind]) -> None:
        firings = self._firings.setdefault(dest.name, {})
        incident = self._open.get(dest.name)
        if incident is not None and name in firings:
            firing = firings[name]
            firing.last_abnormal = sec  # still abnormal: resolution waits
            if name in dest.cusums:
                cusum = dest.cusums[name]
                _, k, n = cusum.refined()
                firing.observe_fault(k, n)
                cusum.reset()
            return
        firing = self._make_firing(dest, name, sec)
        end = float(sec + 1)
        what = self._fragment(dest, firing)
        if incident is not None:
            firings[name] = firing
            incident.detectors.append(name)
            incident.note(end, "detector", f"{name} fired: {what}")
            self._escalate(incident, firing.severity, end, f"{name} fired")
            touched.setdefault(dest.name, "update")
            return
        last = self._resolved.get(dest.name)
        if (
            last is not None
            and last.resolved_at is not None
            and end - last.resolved_at <= REOPEN_WINDOW
        ):
            incident = last
            del self._resolved[dest.name]
            incident.state = "open"
            incident.resolved_at = None
            incident.acknowledged_at = None
            incident.flaps += 1
            if self._live:
                incident.historical = False  # the re-fire is live: it alerts
            if name not in incident.detectors:
                incident.detectors.append(name)
            incident.note(end, "reopened", f"{name} fired again within 15 min: {what}")
            self._escalate(incident, firing.severity, end, f"{name} fired")
            impact = self._impact.get(dest.name) or _Impact(firing.onset, firing.onset - 1)
            impact.last_sec = max(impact.last_sec, firing.onset - 1)
            self._impact_from_history(dest, impact, firing.onset, sec)
        else:
            incident = Incident(
                id=self._new_id(dest.name, firing.onset, name),
                destination=dest.name,
                detector=name,
                severity=firing.severity,
                onset=float(firing.onset),
                detected_at=end,
                detectors=[name],
                historical=not self._live,
            )
            incident.note(end, "opened", f"{name} fired: {what}")
            self._all.append(incident)
            impact = _Impact(first_sec=sec + 1, last_sec=sec)
            self._impact_from_history(dest, impact, firing.onset, sec)
        self._impact[dest.name] = impact
        while dest.guard and dest.guard[-1].sec >= firing.onset:
            dest.guard.pop()  # the fault's first seconds are not normal traffic
        dest.gap_run = 0
        self._firings[dest.name] = {name: firing}
        self._open[dest.name] = incident
        touched[dest.name] = "open"
        self._refresh(dest, incident, sec)

    def _escalate(self, incident: Incident, severity: Severity, ts: float, why: str) -> bool:
        if SEVERITY_RANK[severity] <= SEVERITY_RANK[incident.severity]:
            return False
        incident.note(ts, "escalated", f"{incident.severity} -> {severity}: {why}")
        incident.severity = severity
        return True

    def _impact_from_history(
        self, dest: Destination, impact: _Impact, onset: int, sec: int
    ) -> None:
        """Count the seconds of [onset, sec] that the impact has not counted yet."""
        for row in dest.history:
            if onset <= row.sec < impact.first_sec or impact.last_sec < row.sec <= sec:
                self._add_impact(impact, row)
        impact.first_sec = min(impact.first_sec, onset)
        impact.last_sec = max(impact.last_sec, sec)

    @staticmethod
    def _add_impact(impact: _Impact, row: Second) -> None:
        impact.not_delivered += row.expected - row.delivered
        impact.failed += row.failed
        impact.rate_limited += row.rate_limited
        impact.rejected += row.rejected
        impact.attempts += row.total
        impact.delivered += row.delivered

    def _follow(
        self,
        dest: Destination,
        incident: Incident,
        sec: int,
        c: SecondCounts,
        touched: dict[str, ChangeKind],
    ) -> None:
        """Per second while open: feed the reverse tests, escalate, refresh impact and evidence."""
        impact = self._impact[dest.name]
        if impact.last_sec < sec:
            self._add_impact(impact, dest.history[-1])
            impact.last_sec = sec
        end = float(sec + 1)
        for name, firing in self._firings[dest.name].items():
            if firing.fired_at > sec:  # fired this very second
                continue
            total = c.total
            if name == "silence":
                # The reverse test on delivered events (Poisson): normal traffic against a
                # trickle of it. A flow back at half its rate is volume_drop's to judge.
                expected = dest.expected_delivered()
                firing.reverse.push(*_poisson(c.delivered, expected, SILENCE_REVERSE), expected)
                sil = dest.silence
                extra = firing.extra
                if sil.run > 0 and sil.start == extra["start"]:
                    extra.update(
                        run=sil.run,
                        attempts=sil.attempts,
                        failed=sil.failed,
                        rate_limited=sil.rate_limited,
                        rejected=sil.rejected,
                    )
                elif extra["ended"] is None:
                    extra["ended"] = extra["start"] + extra["run"]
                if sil.run > 0 and sil.run >= sil.limit:
                    firing.last_abnormal = sec
            elif name == "probe":
                if any(s.bad_since is not None for s in dest.probes.values()):
                    firing.last_abnormal = sec
                severity = self._probe_severity(dest)
                if SEVERITY_RANK[severity] > SEVERITY_RANK[firing.severity]:
                    firing.severity = severity
            else:
                # The reverse test: normal traffic against the fault as observed.
                pi0 = dest.pi0
                if name == "volume_drop" and not 0.0 < pi0 < 1.0:
                    # no pool: its own count against its baseline rate (Poisson)
                    trials = dest.rate.rate
                    llr, typical = _poisson(total, trials, firing.fault)
                elif name == "volume_drop":
                    y = dest.pool_count
                    expected = _volume_expected(pi0, y)
                    pi1 = firing.fault * pi0 / (firing.fault * pi0 + 1.0 - pi0)
                    a, b = _bernoulli(pi0, pi1)
                    llr = total * a + y * b
                    typical = expected * a + y * b
                    trials = expected
                    firing.k += total
                    firing.n += total + y
                    firing.expected += expected
                elif name == "latency":
                    p1 = max(firing.fault, firing.p1)
                    llr, k, n, typical = self._latency_llr(dest, c, firing.p0, p1)
                    trials = float(n)
                    firing.k += k
                    firing.n += n
                else:
                    if name == "rate_limit":
                        n, k = total, c.rate_limited
                    else:
                        n, k = total, c.failed + c.rejected
                    p0 = firing.p0
                    a, b = _bernoulli(p0, max(firing.fault, firing.p1))
                    llr = k * a + (n - k) * b
                    typical = n * (p0 * a + (1.0 - p0) * b)
                    trials = float(n)
                    firing.k += k
                    firing.n += n
                firing.reverse.push(llr, typical, trials)
            if name in ("error_rate", "rate_limit") and self._throughput_cut(dest, firing, sec):
                firing.severity = "critical"
            if self._escalate(incident, firing.severity, end, f"{name}: throughput cut"):
                touched.setdefault(dest.name, "update")
        self._refresh(dest, incident, sec)

    def _throughput_cut(self, dest: Destination, firing: _Firing, sec: int) -> bool:
        """Delivered significantly below half of expected since the fault began (<= 60 s)."""
        rows = dest.recent(min(STATUS_SECONDS, sec - firing.onset + 1))
        half = THROUGHPUT_CUT * sum(r.expected for r in rows)
        delivered = sum(r.delivered for r in rows)
        return half > 0 and (half - delivered) / math.sqrt(half) >= 2.0

    def _recovered(self, dest: Destination, sec: int) -> bool:
        firings = self._firings.get(dest.name, {})
        if not firings:
            return False
        for name, cusum in dest.cusums.items():
            if name not in firings and cusum.s >= self.h / 2.0:
                return False  # another detector is gathering evidence: not quiet yet
        for name, firing in firings.items():
            if name == "probe":
                if any(s.bad_since is not None for s in dest.probes.values()):
                    return False
                continue
            if sec - firing.last_abnormal < QUIET:
                return False
            share = VOLUME_REVERSE_SHARE if name == "volume_drop" else REVERSE_SHARE
            if not firing.reverse.passes(self.h, REVERSE_MARGIN, share, MIN_TRIALS):
                return False
        return True

    def _resolve(self, dest: Destination, incident: Incident, sec: int) -> None:
        end = float(sec + 1)
        self._refresh(dest, incident, sec, until=end)
        incident.state = "resolved"
        incident.resolved_at = end
        quiet = sec - max(f.last_abnormal for f in self._firings[dest.name].values())
        incident.note(end, "resolved", f"back to normal for {quiet} s")
        for name in self._firings.pop(dest.name):
            if name in dest.cusums:
                dest.cusums[name].reset()
        dest.silence.reset()
        del self._open[dest.name]
        self._resolved[dest.name] = incident

    # ----------------------------------------------------------------------------------------
    # Summary and evidence
    # ----------------------------------------------------------------------------------------

    def _fragment(self, dest: Destination, firing: _Firing, until: float | None = None) -> str:
        """The detector's finding, in words (used in summaries and the timeline)."""
        name = firing.detector
        since = clock(firing.onset)
        when = f"since {since}" if until is None else f"from {since} to {clock(until)}"
        base = dest.expected_delivered_rate()
        if name == "silence":
            extra = firing.extra
            ended = extra.get("ended")
            if ended is not None:
                when = f"from {since} to {clock(ended)}"
            if extra["attempts"] == 0:
                return f"no events {when} (expected {per_s(base)}/s)"
            return (
                f"nothing delivered {when} although {extra['attempts']} attempts were made "
                f"({extra['failed']} failed, {extra['rate_limited']} rate-limited, "
                f"{extra['rejected']} rejected); {per_s(base)}/s delivered normally"
            )
        if name == "probe":
            parts = []
            for probe, state in sorted(dest.probes.items()):
                if state.bad_since is None:
                    continue
                what = state.status or ("failing" if not state.ok else "not operational")
                parts.append(f"probe {probe} {what} since {clock(state.bad_since)}")
            return "; ".join(parts) or "probe failing"
        rows = dest.recent(RECENT_SECONDS)
        if until is not None:  # resolved: what was delivered over the whole incident
            rows = [r for r in dest.history if firing.onset <= r.sec < until]
        secs = max(len(rows), 1)
        delivered = sum(r.delivered for r in rows) / secs
        if name == "volume_drop":
            ratio = firing.k / firing.expected if firing.expected > 0 else 0.0
            return (
                f"volume at {pct(ratio)} of its usual share {when} "
                f"({firing.k} events vs {firing.expected:.0f} expected)"
            )
        share = firing.k / firing.n if firing.n else 0.0
        if name == "error_rate":
            return (
                f"{pct(share)} of attempts failed or rejected {when} "
                f"({firing.k}/{firing.n}, normally {pct(firing.p0)}); delivered "
                f"{per_s(delivered)}/s vs {per_s(base)}/s baseline"
            )
        if name == "rate_limit":
            return (
                f"{pct(share)} of attempts rate-limited {when} ({firing.k}/{firing.n}); "
                f"delivered {per_s(delivered)}/s vs {per_s(base)}/s baseline"
            )
        threshold = dest.latency.threshold or 0.0
        timed = sum(r.latency_n for r in rows)
        slow = sum(r.slow for r in rows) / timed if timed else 0.0
        mean = sum(r.latency_sum for r in rows) / timed if timed else 0.0
        usual = dest.latency.mean or 0.0
        return (
            f"latency up {when}: mean {mean:.0f} ms vs {usual:.0f} ms usually; {pct(slow)} of "
            f"events slower than {threshold:.0f} ms (above its usual p99, normally "
            f"{pct(firing.p0)} or fewer)"
        )

    @staticmethod
    def _primary(firings: dict[str, _Firing]) -> _Firing:
        """The finding that tells the story: the cause (429s, failures) over the symptom
        (nothing delivered); a silence without attempts over a volume drop."""
        silence = firings.get("silence")
        if silence is None or silence.extra.get("attempts", 0) > 0:
            causes = [f for n, f in firings.items() if n in ("error_rate", "rate_limit")]
            if causes:
                return max(causes, key=lambda f: f.k / f.n if f.n else 0.0)
        for name in ("silence", "volume_drop", "error_rate", "rate_limit", "latency", "probe"):
            if name in firings:
                return firings[name]
        return next(iter(firings.values()))

    def _refresh(
        self, dest: Destination, incident: Incident, sec: int, until: float | None = None
    ) -> None:
        firings = self._firings[dest.name]
        primary = self._primary(firings)
        incident.summary = f"{dest.name}: {self._fragment(dest, primary, until)}"
        impact = self._impact[dest.name]
        incident.impact = {
            "not_delivered_est": round(max(0.0, impact.not_delivered)),
            "failed": impact.failed,
            "rate_limited": impact.rate_limited,
            "rejected": impact.rejected,
            "attempts": impact.attempts,
            "delivered": impact.delivered,
        }
        rows = dest.recent(RECENT_SECONDS)
        secs = max(len(rows), 1)
        attempts = impact.attempts
        evidence: dict[str, Any] = {
            "window": {"start": iso_s(incident.onset), "end": iso_s(sec + 1.0)},
            "baseline_rate_per_s": sig(dest.rate.rate),
            "current_rate_per_s": sig(sum(r.total for r in rows) / secs),
            "delivered_per_s": sig(sum(r.delivered for r in rows) / secs),
            "expected_delivered_per_s": sig(sum(r.expected for r in rows) / secs),
            "rate_limited_share": sig(impact.rate_limited / attempts) if attempts else 0.0,
            "h": sig(self.h),
            # resolving needs QUIET seconds without an alarm and a reverse test passed
            "quiet_s": QUIET,
            "detectors": {name: self._detector_evidence(dest, f) for name, f in firings.items()},
        }
        if attempts:
            bad = impact.failed + impact.rejected
            lo, hi = wilson(bad, attempts)
            evidence["error_ratio"] = {
                "failed_or_rejected": bad,
                "attempts": attempts,
                "ratio": sig(bad / attempts),
                "wilson95": [sig(lo), sig(hi)],
            }
        headers = {}
        for state in dest.probes.values():
            headers.update(state.details)
        if headers:
            evidence["probe_headers"] = headers
        # in place: keys others add (the runtime's status-page facts) stay
        incident.evidence.update(evidence)

    def _detector_evidence(self, dest: Destination, firing: _Firing) -> dict[str, Any]:
        out: dict[str, Any] = {
            "onset": iso_s(firing.onset),
            "detected_at": iso_s(firing.fired_at),
            "time_to_detect_s": sig(firing.fired_at - firing.onset),
            "severity": firing.severity,
        }
        name = firing.detector
        if name == "silence":
            extra = firing.extra
            out.update(
                {
                    "silent_for_s": extra["run"],
                    "ended": iso_s(extra["ended"]) if extra["ended"] is not None else None,
                    "limit_s": sig(firing.limit),
                    "expected_delivered_per_s": sig(extra["rate"]),
                    "attempts_during_silence": extra["attempts"],
                    "failed": extra["failed"],
                    "rate_limited": extra["rate_limited"],
                    "rejected": extra["rejected"],
                    "kind": "no_attempts" if extra["attempts"] == 0 else "attempts_not_delivered",
                }
            )
            return out
        if name == "probe":
            out["probes"] = {
                probe: {
                    "ok": s.ok,
                    "status": s.status,
                    "consecutive_failures": s.failures,
                    "consecutive_successes": s.successes,
                    "details": s.details,
                }
                for probe, s in sorted(dest.probes.items())
            }
            return out
        out.update({"statistic": sig(firing.statistic), "h": sig(self.h)})
        if name == "volume_drop":
            pi0 = firing.p0
            out.update(
                {
                    "events": firing.k,
                    "expected_events": sig(firing.expected),
                    "ratio": sig(firing.k / firing.expected) if firing.expected else 0.0,
                    "share": sig(firing.k / firing.n) if firing.n else 0.0,
                    "baseline_share": sig(pi0),
                    "tested_share": sig(pi0 / (2.0 - pi0)),
                }
            )
            return out
        lo, hi = wilson(firing.k, firing.n)
        out.update(
            {
                "events": firing.k,
                "trials": firing.n,
                "ratio": sig(firing.k / firing.n) if firing.n else 0.0,
                "wilson95": [sig(lo), sig(hi)],
                "p0": sig(firing.p0),
                "p1": sig(firing.p1),
            }
        )
        if name == "latency":
            out["threshold_ms"] = sig(dest.latency.threshold or 0.0)
            out["usual_mean_ms"] = sig(dest.latency.mean or 0.0)
        return out

    # ----------------------------------------------------------------------------------------
    # Queries
    # ----------------------------------------------------------------------------------------

    def acknowledge(self, incident_id: str, ts: float) -> Change | None:
        """open -> acknowledged (a timeline entry); None if no open incident has that id."""
        for incident in self._open.values():
            if incident.id == incident_id and incident.state == "open":
                incident.state = "acknowledged"
                incident.acknowledged_at = ts
                incident.note(ts, "acknowledged", "acknowledged")
                return Change("update", incident.snapshot())
        return None

    def incidents(self) -> list[Incident]:
        """Open and acknowledged incidents (live objects), oldest first."""
        return sorted(self._open.values(), key=lambda i: (i.detected_at, i.id))

    def all_incidents(self) -> list[Incident]:
        """Every incident opened (the last 1000), resolved ones included, oldest first."""
        return list(self._all)

    def latency_thresholds(self) -> dict[str, float]:
        """Per destination, the latency (ms) above which an event counts as ``slow``."""
        out: dict[str, float] = {}
        for dest in self._order:
            threshold = dest.latency.threshold
            if threshold is not None:
                out[dest.name] = threshold
        return out

    def status(self) -> dict[str, DestinationStatus]:
        """Per destination, what the dashboard shows."""
        return {d.name: destination_status(d, self._open.get(d.name)) for d in self._order}


def _volume_expected(pi0: float, others: float) -> float:
    """A destination's own count expected beside `others` pool events, at its share pi0."""
    return pi0 / (1.0 - pi0) * others if 0.0 < pi0 < 1.0 else 0.0
