"""The detection engine: the clock, the destinations' baselines, and the detectors run on them.

The runtime feeds it :class:`SecondCounts` (and probe results) in event time and moves it on
with a watermark; every whole second that can no longer change is evaluated once, for every
known destination, in time order:

1. the second's counts, the pool each destination's share is tested against, its history;
2. each armed destination's detectors (one instance of every registered detector,
   ``detect/detectors/``) step; those in alarm open or join its incident in the ledger
   (``observatory.incidents.ledger``);
3. baselines learn from seconds old enough to be normal traffic (DESIGN "Detection");
4. open incidents follow the traffic and resolve once recovered.

The same seconds feed the rate-limit drift tracker (``drift.py``), moved on with the same
watermark; each drift it flags goes to ``on_drift`` and, through the ledger's
:class:`~observatory.incidents.providers.DriftEvidence`, into the destination's incident.

Every detector alarms at one threshold ``h = ln(N·D·T/Δ)`` from the false-alarm budget (D: the
number of detectors). Pure Python and deterministic: no clock, no I/O; the same input gives
the same incidents, ids included.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from observatory.config import DetectionConfig
from observatory.detect.counts import SecondCounts
from observatory.detect.destination import (
    MIN_POOL_RATE,
    SPARKLINE_SECONDS,
    Destination,
)
from observatory.detect.detectors import DEFAULT_DETECTORS, Detector
from observatory.detect.drift import DriftEvent, DriftTracker
from observatory.detect.stats import decay, threshold_h
from observatory.detect.status import DestinationState, DestinationStatus, destination_status
from observatory.detect.trend import WINDOWS
from observatory.incidents.ledger import Ledger
from observatory.incidents.model import Change, ChangeKind, Incident
from observatory.incidents.providers import DriftEvidence

__all__ = ["DestinationState", "DestinationStatus", "Engine"]

LATENESS = 1  # seconds: the current and the previous second may still be filling
FAST_TAU = 120.0  # recent rate, for the silence test's lower rate estimate (s)
GUARD_SECONDS = 60  # baselines learn from a second once it is this old and not in an incident
POOL_WINDOW_EVENTS = 30.0  # the pool ratio looks at about this many expected events
POOL_BAND = 2.0  # pool members are within this factor of the median count/baseline ratio

TREND_SECONDS = max(WINDOWS)

_ProbeResult = tuple[str, str, float, bool, str | None, dict[str, Any]]


class Engine:
    """Sequential change detection over per-destination, per-second counts.

    ``detectors`` are the detector classes to run (the registry's by default), in order.
    ``h`` is fixed at construction from ``n_destinations`` (the number of destinations the
    false-alarm budget is shared by); destinations discovered later do not change it, so a
    replay and a live run use the same threshold. Detected incidents come back from
    :meth:`advance` as :class:`Change` objects holding a snapshot of the incident at that moment;
    :meth:`incidents` returns the live ones (their evidence, impact and summary are refreshed
    every evaluated second without a Change).
    """

    def __init__(
        self,
        detection: DetectionConfig,
        n_destinations: int = 5,
        detectors: Sequence[type[Detector[Any]]] = DEFAULT_DETECTORS,
        ledger: Ledger | None = None,
        on_drift: Callable[[DriftEvent], None] | None = None,
    ) -> None:
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique: {names}")
        self.detectors = tuple(detectors)
        self.config = detection
        self.tick = float(detection.tick)
        # the false-alarm budget is shared by N destinations x D detectors
        self.h = threshold_h(
            n_destinations, len(self.detectors), detection.false_alarm_budget, self.tick
        )
        self.n_destinations = n_destinations
        self.late_events = 0  # events fed for seconds already evaluated (dropped)
        self._dests: dict[str, Destination] = {}
        self._order: list[Destination] = []
        self._pending: dict[int, dict[str, SecondCounts]] = {}
        self._probe_queue: dict[int, list[_ProbeResult]] = {}
        self._next_sec: int | None = None
        self._last_data_sec: int | None = None  # the last evaluated second with any data
        self._incidents = ledger if ledger is not None else Ledger()
        self._incidents.h = self.h
        self.drift = DriftTracker()
        self.on_drift = on_drift
        self._drift_evidence = DriftEvidence()
        self._incidents.providers.append(self._drift_evidence)
        self._fast_keep = decay(FAST_TAU)

    # ----------------------------------------------------------------------------------------
    # Input
    # ----------------------------------------------------------------------------------------

    def set_delay(self, destination: str, seconds: int) -> None:
        """Judge ``destination`` ``seconds`` behind the clock: the input it comes from reports
        that late (a scrape every 15 s, minute buckets a minute and a half after they end).

        Its seconds keep their event time (incidents, history and charts read true times);
        only when they are judged moves, so a second is complete before it is judged. It is
        pooled only with destinations of the same delay (the pool compares same-time traffic).
        Set it before the destination's first counts; it never shrinks (data already queued
        under the longer delay would be judged late).
        """
        seconds = max(0, int(seconds))
        delays = self.drift.delays  # one map, the drift tracker's: it judges on the same clock
        if seconds <= delays.get(destination, 0):
            return
        delays[destination] = seconds
        dest = self._dests.get(destination)
        if dest is not None:
            dest.delay = seconds

    def reported(self, destination: str, until: int) -> None:
        """``destination``'s input (a scrape, a poll) has reported every second before
        ``until``. Once a destination gets such reports, a second of it not yet reported when
        the clock judges it is unknown, not zero: it is skipped (no detector steps, nothing
        learned), so a failed scrape or a late poll never looks like a silent flow."""
        dest = self._destination(destination, until - 1)
        if dest.reported_until is None or until > dest.reported_until:
            dest.reported_until = until

    def _destination(self, name: str, sec: int) -> Destination:
        dest = self._dests.get(name)
        if dest is None:
            delay = self.drift.delays.get(name, 0)
            first = sec if self._next_sec is None else max(sec, self._next_sec - delay)
            dest = Destination(name, first)
            dest.delay = delay
            dest.detectors = {d.name: d(dest, self.h, self.config) for d in self.detectors}
            self._dests[name] = dest
            self._order = sorted(self._dests.values(), key=lambda d: d.name)
        elif self._next_sec is None and sec < dest.first_sec:
            dest.first_sec = sec
        return dest

    def feed(self, counts: Iterable[SecondCounts]) -> None:
        """Add counts; a (destination, second) may come in several pieces."""
        counts = list(counts)
        self.drift.feed(counts)
        for c in counts:
            sec = int(c.sec)
            dest = self._destination(c.destination, sec)
            total = c.total
            if total > 0 and (dest.last_event_sec is None or sec > dest.last_event_sec):
                dest.last_event_sec = sec
            key = sec + dest.delay  # the second it is judged with
            if self._next_sec is not None and key < self._next_sec:
                self.late_events += total
                continue
            bucket = self._pending.setdefault(key, {})
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
        key = sec + self._destination(destination, sec).delay
        if self._next_sec is not None and key < self._next_sec:
            key = self._next_sec
        self._probe_queue.setdefault(key, []).append(
            (destination, probe, ts, ok, status, dict(details or {}))
        )

    # ----------------------------------------------------------------------------------------
    # Time
    # ----------------------------------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        """The incidents' one writer."""
        return self._incidents

    def advance(self, watermark: float, wall: float | None = None) -> list[Change]:
        """Evaluate every second ``s <= floor(watermark) - 2`` not yet evaluated, in order,
        then move the drift tracker on. ``wall``: live, the wall clock now (an incident opened
        live is detected at that time)."""
        self._incidents.wall = wall
        changes = self._advance(watermark)
        for event in self.drift.advance(watermark):
            self._drift_evidence.record(event)
            self._incidents.refresh(event.destination)
            if self.on_drift is not None:
                self.on_drift(event)
        return changes

    def _advance(self, watermark: float) -> list[Change]:
        last = math.floor(watermark) - 1 - LATENESS
        if self._next_sec is None:
            starts = list(self._pending) + list(self._probe_queue)
            if not starts:
                return []
            # the clock starts with the data, but never ahead of the watermark: a lagging
            # feed's destination queues its first probe far ahead of its counts
            self._next_sec = min(min(starts), last + 1)
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
                    dest.mark_stale(self._last_data_sec - dest.delay)
        upcoming = [s for s in self._pending if s > sec] + [s for s in self._probe_queue if s > sec]
        return min([last + 1, *upcoming])

    def _skip(self, start: int, stop: int) -> None:
        # nothing happened (in the destination's own time): the history keeps the
        # sparkline's seconds of it, the trends their longest window's
        for dest in self._order:
            for s in range(max(start, stop - TREND_SECONDS), stop):
                dest.record_idle(s - dest.delay, history=s >= stop - SPARKLINE_SECONDS)

    def go_live(self, now: float) -> None:
        """The backlog is read: incidents opened from now on are live (``historical=False``).

        Destinations whose last event is older than ``detection.staleness`` become stale: no
        silence or volume alarms for them until they produce data again.
        """
        self._incidents.live = True
        for dest in self._order:
            last = dest.last_event_sec
            if last is None or now - (last + 1 + dest.delay) > self.config.staleness:
                dest.mark_stale(last if last is not None else math.floor(now) - dest.delay)

    # ----------------------------------------------------------------------------------------
    # One second
    # ----------------------------------------------------------------------------------------

    def _evaluate(self, sec: int, changes: list[Change]) -> None:
        """Judge second ``sec`` of the clock: for each destination, its own second
        ``sec - delay`` (the same one unless it comes from a lagging feed)."""
        bucket = self._pending.pop(sec, {})
        probes = self._probe_queue.pop(sec, [])
        if probes or any(c.total for c in bucket.values()):
            self._last_data_sec = sec
        dests = [
            d
            for d in self._order
            if d.first_sec + d.delay <= sec
            and (d.reported_until is None or sec - d.delay < d.reported_until)
        ]
        counts: dict[str, SecondCounts] = {}
        for dest in dests:
            c = bucket.get(dest.name)
            if c is None:
                c = SecondCounts(dest.name, sec - dest.delay)
            elif c.hist:
                c.slow = dest.latency.slow(c.hist)
            counts[dest.name] = c
        if any(d.delay for d in dests):
            for group in _by_delay(dests):
                self._pool_context(group, counts)
        else:
            self._pool_context(dests, counts)

        touched: dict[str, ChangeKind] = {}
        for dest in dests:
            c = counts[dest.name]
            own = c.sec
            if dest.stale and c.total > 0 and own > dest.stale_after:
                dest.stale = False  # data again, newer than what made it stale
            dest.record(own, c)
            for detector in self._alarms(dest, own, c):
                self._incidents.fire(dest, detector, own, touched)
        for destination, probe, ts, ok, status, details in probes:
            dest = self._dests[destination]
            for detector in dest.detectors.values():
                if detector.judge_probe(probe, ts, ok, status, details):
                    self._incidents.fire(dest, detector, sec - dest.delay, touched)

        self._update_baselines(dests, counts)

        for dest in dests:
            c = counts[dest.name]
            change = self._incidents.end_second(dest, c.sec, c, touched)
            if change is not None:
                changes.append(change)

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
            if (
                dest.armed
                and not dest.stale
                and not self._incidents.is_open(dest.name)
                and base > 0.0
            ):
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

    def _alarms(self, dest: Destination, sec: int, c: SecondCounts) -> list[Detector[Any]]:
        """Step every detector of an armed destination; those in alarm, in registry order."""
        if not dest.armed:
            return []
        return [
            detector
            for detector in dest.detectors.values()
            # a stale destination's quiet is history, not an outage
            if not (detector.judges_flow and dest.stale) and detector.step(sec, c)
        ]

    # ----------------------------------------------------------------------------------------
    # Baselines
    # ----------------------------------------------------------------------------------------

    def _update_baselines(self, dests: list[Destination], counts: dict[str, SecondCounts]) -> None:
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
            if not self._incidents.is_open(dest.name) and not (dest.stale and c.total == 0):
                dest.guard.append(c)
            learned = False
            while dest.guard and dest.guard[0].sec <= c.sec - GUARD_SECONDS:
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
        if dest.armed:
            dest.rate.update(total)
        else:
            dest.rate.learn(total)
        dest.fast = dest.fast * self._fast_keep + total * (1.0 - self._fast_keep)
        for detector in dest.detectors.values():
            detector.learn(c)
        dest.delivered.update(c.delivered, total)
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

    def acknowledge(self, incident_id: str, ts: float) -> Change | None:
        """open -> acknowledged (a timeline entry); None if no open incident has that id."""
        return self._incidents.acknowledge(incident_id, ts)

    def resolve_now(self, destination: str, sec: int, why: str) -> Change | None:
        """Resolve ``destination``'s open incident at ``sec`` (a drill ending its fault)."""
        dest = self._dests.get(destination)
        return None if dest is None else self._incidents.resolve_now(dest, sec, why)

    def incidents(self) -> list[Incident]:
        """Open and acknowledged incidents (live objects), oldest first."""
        return self._incidents.incidents()

    def all_incidents(self) -> list[Incident]:
        """Every incident opened (the last 1000), resolved ones included, oldest first."""
        return self._incidents.all_incidents()

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
        return {
            d.name: destination_status(d, self._incidents.open_incident(d.name))
            for d in self._order
        }


def _by_delay(dests: list[Destination]) -> list[list[Destination]]:
    """``dests`` in groups of equal delay (each keeps the engine's order)."""
    groups: dict[int, list[Destination]] = {}
    for dest in dests:
        groups.setdefault(dest.delay, []).append(dest)
    return list(groups.values())
