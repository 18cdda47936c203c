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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from observatory.config import DetectionConfig
from observatory.engine.counts import SecondCounts
from observatory.engine.destination import (
    MIN_POOL_RATE,
    RECENT_SECONDS,
    SPARKLINE_SECONDS,
    Destination,
    Second,
)
from observatory.engine.detectors import DEFAULT_DETECTORS, Detector, Firing
from observatory.engine.detectors.base import QUIET
from observatory.engine.stats import decay, threshold_h, wilson
from observatory.engine.status import DestinationState, DestinationStatus, destination_status
from observatory.engine.wording import iso_s, sig
from observatory.incidents import DETECTORS, SEVERITY_RANK, Change, ChangeKind, Incident, Severity

__all__ = ["DestinationState", "DestinationStatus", "Engine"]

LATENESS = 1  # seconds: the current and the previous second may still be filling
FAST_TAU = 120.0  # recent rate, for the silence test's lower rate estimate (s)
REOPEN_WINDOW = 900.0  # a re-fire this soon after resolution reopens the incident (a flap)
GUARD_SECONDS = 60  # baselines learn from a second once it is this old and not in an incident
POOL_WINDOW_EVENTS = 30.0  # the pool ratio looks at about this many expected events
POOL_BAND = 2.0  # pool members are within this factor of the median count/baseline ratio

_ProbeResult = tuple[str, str, float, bool, str | None, dict[str, Any]]


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


class Engine:
    """Sequential change detection over per-destination, per-second counts.

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
    ) -> None:
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique: {names}")
        self.detectors = tuple(detectors)
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
        self._firings: dict[str, dict[str, Firing]] = {}
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
            dest = Destination(name, first)
            dest.detectors = {d.name: d(dest, self.h, self.config) for d in self.detectors}
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
            for detector in self._alarms(dest, sec, c):
                self._fire(dest, detector, sec, touched)
        for destination, probe, ts, ok, status, details in probes:
            dest = self._dests[destination]
            for detector in dest.detectors.values():
                if detector.judge_probe(probe, ts, ok, status, details):
                    self._fire(dest, detector, sec, touched)

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

    def _new_id(self, destination: str, onset: int, detector: str) -> str:
        key = f"{destination}|{int(onset)}|{detector}"
        ident = hashlib.sha1(key.encode()).hexdigest()[:8]
        n = 1
        while ident in self._ids:
            n += 1
            ident = hashlib.sha1(f"{key}|{n}".encode()).hexdigest()[:8]
        self._ids.add(ident)
        return ident

    def _fire(
        self, dest: Destination, detector: Detector[Any], sec: int, touched: dict[str, ChangeKind]
    ) -> None:
        name = detector.name
        firings = self._firings.setdefault(dest.name, {})
        incident = self._open.get(dest.name)
        if incident is not None and name in firings:
            firing = firings[name]
            firing.last_abnormal = sec  # still abnormal: resolution waits
            detector.again(firing, sec)
            return
        firing = detector.fire(sec)
        end = float(sec + 1)
        what = detector.summary(firing)
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
        dest.forget_since(firing.onset)
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
            dest.detectors[name].follow(firing, sec, c)
            if self._escalate(incident, firing.severity, end, f"{name}: throughput cut"):
                touched.setdefault(dest.name, "update")
        self._refresh(dest, incident, sec)

    def _recovered(self, dest: Destination, sec: int) -> bool:
        firings = self._firings.get(dest.name, {})
        if not firings:
            return False
        for name, detector in dest.detectors.items():
            if name not in firings and detector.gathering():
                return False  # another detector is gathering evidence: not quiet yet
        return all(dest.detectors[name].recovered(f, sec) for name, f in firings.items())

    def _resolve(self, dest: Destination, incident: Incident, sec: int) -> None:
        end = float(sec + 1)
        self._refresh(dest, incident, sec, until=end)
        incident.state = "resolved"
        incident.resolved_at = end
        quiet = sec - max(f.last_abnormal for f in self._firings[dest.name].values())
        incident.note(end, "resolved", f"back to normal for {quiet} s")
        fired = self._firings.pop(dest.name)
        for name, detector in dest.detectors.items():
            detector.resolved(name in fired)
        del self._open[dest.name]
        self._resolved[dest.name] = incident

    # ----------------------------------------------------------------------------------------
    # Summary and evidence
    # ----------------------------------------------------------------------------------------

    @staticmethod
    def _primary(dest: Destination, firings: dict[str, Firing]) -> Firing:
        """The finding that tells the story (see ``Detector.headline``): first to fire among
        the best."""

        def key(firing: Firing) -> tuple[int, float]:
            rank, strength = dest.detectors[firing.detector].headline(firing)
            return rank, -strength

        return min(firings.values(), key=key)

    def _refresh(
        self, dest: Destination, incident: Incident, sec: int, until: float | None = None
    ) -> None:
        firings = self._firings[dest.name]
        primary = self._primary(dest, firings)
        summary = dest.detectors[primary.detector].summary(primary, until)
        incident.summary = f"{dest.name}: {summary}"
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
            "detectors": {name: dest.detectors[name].evidence(f) for name, f in firings.items()},
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
