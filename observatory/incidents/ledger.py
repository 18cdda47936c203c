"""The incident ledger: the one writer of incidents.

Every change to an incident happens here and only here: opened, merged, escalated, reopened and
resolved from the detectors' firings (the engine calls :meth:`Ledger.fire` and
:meth:`Ledger.end_second`), acknowledged and annotated by operators (:meth:`Ledger.acknowledge`,
:meth:`Ledger.note`), and given evidence by providers (:class:`EvidenceProvider`: a status page's
facts, a rate-limit drift) whenever it changes or a provider learns something new
(:meth:`Ledger.refresh`). Each change is written through the ledger's :class:`IncidentSink`
(the DuckDB ``incidents`` table, when it has one) before it is handed back as a
:class:`Change` holding a snapshot, so what a viewer is told, what is stored and what is
exported are the same incident.

Times are event time, except ``detected_at`` of an incident opened live: the wall clock when
the engine was moved on (``wall``), the moment someone could first have known.

One incident per destination at a time. A detector that fires opens it (or reopens the last
one, as a flap, if that resolved less than ``REOPEN_WINDOW`` ago) or joins the open one; its
severity only escalates; every change is a timeline entry. While open, every firing follows the
traffic each second; the incident resolves once no other detector is gathering evidence and
every firing has recovered (DESIGN "Incidents"). The words and the per-detector evidence come
from the detectors themselves.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from observatory.detect.counts import SecondCounts
from observatory.detect.destination import RECENT_SECONDS, Destination, Second
from observatory.detect.detectors.base import QUIET, Detector, Firing
from observatory.detect.stats import wilson
from observatory.detect.wording import iso_s, sig
from observatory.incidents.model import (
    SEVERITY_RANK,
    Change,
    ChangeKind,
    ErrorRatio,
    Evidence,
    Impact,
    Incident,
    Severity,
    Snapshot,
    TimelineKind,
)

REOPEN_WINDOW = 900.0  # a re-fire this soon after resolution reopens the incident (a flap)
KEEP_INCIDENTS = 1000  # all_incidents() keeps this many


@dataclass
class _Sums:
    """What the outage cost so far: not delivered ≈ ∫(expected − delivered) dt, and counts.

    Seconds after the last abnormal one wait in ``pending``: they join the outage if an alarm
    comes back before the incident resolves, and are dropped when it resolves (the quiet
    period is not outage)."""

    first_sec: int  # seconds [first_sec, last_sec] are seen (counted, or pending)
    last_sec: int
    not_delivered: float = 0.0
    failed: int = 0
    rate_limited: int = 0
    rejected: int = 0
    attempts: int = 0
    delivered: int = 0
    pending: list[Second] = field(default_factory=list)


# A timeline entry a provider adds: (ts, kind, detail).
Entry = tuple[float, TimelineKind, str]
# The evidence keys providers write.
ProviderKey = Literal["status_page", "rate_limit_drift"]


@dataclass
class Attachment:
    """What a provider knows for one incident: ``evidence[key]``, and the timeline entries to
    add when ``sig`` differs from what the incident last noted (``entries`` is given that)."""

    key: ProviderKey
    evidence: dict[str, Any]
    sig: tuple[Any, ...]
    entries: Callable[[tuple[Any, ...] | None], list[Entry]]


class EvidenceProvider(Protocol):
    """Evidence from outside the detectors (a status page, a rate-limit drift)."""

    def attach(self, incident: Incident) -> Attachment | None:
        """What belongs in ``incident`` now; None when nothing does."""


class IncidentSink(Protocol):
    """Where the ledger writes incidents (``observatory.incidents.store.IncidentTable``)."""

    def save(self, incident: Incident) -> None: ...

    def acknowledge(self, id_or_prefix: str, ts: float) -> Incident: ...

    def add_note(self, id_or_prefix: str, ts: float, text: str) -> Incident: ...


class Ledger:
    """Every incident, by destination (``live``: incidents opened now alert).

    ``sink``: where each change is written (None: kept in memory only, as in the engine's own
    tests); ``providers``: evidence from outside the detectors.
    """

    def __init__(
        self,
        h: float = 0.0,
        *,
        sink: IncidentSink | None = None,
        providers: Sequence[EvidenceProvider] = (),
    ) -> None:
        self.h = h  # the engine's threshold, set by the engine that runs this ledger
        self.sink = sink
        self.providers = list(providers)
        self.live = False
        self.wall: float | None = None  # live: the wall clock of the current advance
        self._noted: dict[tuple[str, str], tuple[Any, ...]] = {}  # (key, id) -> sig noted
        self._open: dict[str, Incident] = {}
        self._firings: dict[str, dict[str, Firing]] = {}
        self._impact: dict[str, _Sums] = {}
        # destinations whose incident is in its outage this second (not in the quiet period):
        # only then may evidence change
        self._abnormal: set[str] = set()
        # each open incident's summary as it will read once resolved: "from onset to the
        # outage end", written at its last abnormal second
        self._closing: dict[str, str] = {}
        self._resolved: dict[str, Incident] = {}
        self._all: deque[Incident] = deque(maxlen=KEEP_INCIDENTS)
        self._ids: set[str] = set()

    def is_open(self, destination: str) -> bool:
        return destination in self._open

    def open_incident(self, destination: str) -> Incident | None:
        """The destination's open (or acknowledged) incident."""
        return self._open.get(destination)

    def end_second(
        self, dest: Destination, sec: int, c: SecondCounts, touched: dict[str, ChangeKind]
    ) -> Change | None:
        """After the second's detections and learning: follow the destination's open incident
        and resolve it once recovered; the Change to report, if any (``touched``: the
        destinations whose incident opened or changed this second)."""
        incident = self._open.get(dest.name)
        if incident is None:
            return None
        self._follow(dest, incident, sec, c, touched)
        kind = touched.get(dest.name)
        if kind is None and self._recovered(dest, sec):
            self._resolve(dest, incident, sec)
            return self._change("resolved", incident)
        if kind is not None:
            return self._change(kind, incident)
        return None

    def _change(self, kind: ChangeKind, incident: Incident) -> Change:
        """The incident changed: gather the providers' evidence, write it, snapshot it."""
        self._provide(incident)
        if self.sink is not None:
            self.sink.save(incident)
        return Change(kind, incident.snapshot())

    # -- evidence providers ----------------------------------------------------------------

    def _provide(self, incident: Incident) -> bool:
        """Put each provider's evidence into ``incident``; True when it changed.

        The timeline notes every change a provider reports, but the evidence only takes what
        providers know while the incident is in its outage: after its last abnormal second
        (the quiet period, and once resolved) the evidence stays as it was."""
        changed = False
        in_outage = (
            incident.state != "resolved"
            and incident.destination in self._abnormal
            and self._open.get(incident.destination) is incident
        )
        for provider in self.providers:
            att = provider.attach(incident)
            if att is None:
                continue
            previous = self._noted.get((att.key, incident.id))
            if previous != att.sig:
                self._noted[(att.key, incident.id)] = att.sig
                for ts, kind, detail in att.entries(previous):
                    incident.note(ts, kind, detail)
                changed = True
            if in_outage and incident.evidence.get(att.key) != att.evidence:
                incident.evidence[att.key] = att.evidence
                changed = True
        return changed

    def refresh(self, destination: str) -> None:
        """A provider learned something about ``destination``: write its open incident again
        if that changed it. (Written, not published: the next change carries it to viewers.)"""
        incident = self._open.get(destination)
        if incident is not None and self._provide(incident) and self.sink is not None:
            self.sink.save(incident)

    def _new_id(self, destination: str, onset: int, detector: str) -> str:
        key = f"{destination}|{int(onset)}|{detector}"
        ident = hashlib.sha1(key.encode()).hexdigest()[:8]
        n = 1
        while ident in self._ids:
            n += 1
            ident = hashlib.sha1(f"{key}|{n}".encode()).hexdigest()[:8]
        self._ids.add(ident)
        return ident

    def fire(
        self, dest: Destination, detector: Detector[Any], sec: int, touched: dict[str, ChangeKind]
    ) -> None:
        """``detector`` of ``dest`` is in alarm in second ``sec``: open, join or reopen the
        destination's incident (or, already firing, keep it from resolving)."""
        name = detector.name
        firings = self._firings.setdefault(dest.name, {})
        incident = self._open.get(dest.name)
        if incident is not None and name in firings:
            firing = firings[name]
            firing.last_abnormal = sec  # still abnormal: resolution waits
            detector.again(firing, sec)
            return
        self._abnormal.add(dest.name)
        firing = detector.fire(sec)
        end = float(sec + 1)
        what = detector.summary(firing)
        if incident is not None:  # another detector's finding about the same destination
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
            del self._resolved[dest.name]
            incident, impact = self._reopen(dest, last, firing, sec, what)
        else:
            incident, impact = self._open_new(dest, firing, sec, what)
        self._impact[dest.name] = impact
        dest.forget_since(firing.onset)
        self._firings[dest.name] = {name: firing}
        self._open[dest.name] = incident
        touched[dest.name] = "open"
        self._refresh(dest, incident, sec)

    def _open_new(
        self, dest: Destination, firing: Firing, sec: int, what: str
    ) -> tuple[Incident, _Sums]:
        name = firing.detector
        end = float(sec + 1)
        incident = Incident(
            id=self._new_id(dest.name, firing.onset, name),
            destination=dest.name,
            detector=name,
            severity=firing.severity,
            onset=float(firing.onset),
            # live: when someone could first have known (the wall clock); replayed: event time
            detected_at=self.wall if self.live and self.wall is not None else end,
            detectors=[name],
            historical=not self.live,
        )
        incident.note(end, "opened", f"{name} fired: {what}")
        self._all.append(incident)
        impact = _Sums(first_sec=sec + 1, last_sec=sec)
        self._impact_from_history(dest, impact, firing.onset, sec)
        return incident, impact

    def _reopen(
        self, dest: Destination, incident: Incident, firing: Firing, sec: int, what: str
    ) -> tuple[Incident, _Sums]:
        """A re-fire soon after resolution: the same incident again, counted as a flap."""
        name = firing.detector
        end = float(sec + 1)
        incident.state = "open"
        incident.resolved_at = None
        incident.acknowledged_at = None
        incident.flaps += 1
        if self.live:
            incident.historical = False  # the re-fire is live: it alerts
        if name not in incident.detectors:
            incident.detectors.append(name)
        incident.note(end, "reopened", f"{name} fired again within 15 min: {what}")
        self._escalate(incident, firing.severity, end, f"{name} fired")
        impact = self._impact.get(dest.name) or _Sums(firing.onset, firing.onset - 1)
        impact.last_sec = max(impact.last_sec, firing.onset - 1)
        self._impact_from_history(dest, impact, firing.onset, sec)
        return incident, impact

    def _escalate(self, incident: Incident, severity: Severity, ts: float, why: str) -> bool:
        if SEVERITY_RANK[severity] <= SEVERITY_RANK[incident.severity]:
            return False
        incident.note(ts, "escalated", f"{incident.severity} -> {severity}: {why}")
        incident.severity = severity
        return True

    def _impact_from_history(self, dest: Destination, impact: _Sums, onset: int, sec: int) -> None:
        """Count the seconds of [onset, sec] that the impact has not counted yet."""
        for row in dest.history:
            if onset <= row.sec < impact.first_sec or impact.last_sec < row.sec <= sec:
                self._add_impact(impact, row)
        impact.first_sec = min(impact.first_sec, onset)
        impact.last_sec = max(impact.last_sec, sec)

    @staticmethod
    def _add_impact(impact: _Sums, row: Second) -> None:
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
        """Per second while open: feed the reverse tests, escalate; in the outage (a detector
        was abnormal this second) count the impact and refresh the evidence, in the quiet
        period after it keep the second aside (it joins the outage if an alarm comes back)."""
        end = float(sec + 1)
        firings = self._firings[dest.name]
        for name, firing in firings.items():
            if firing.fired_at > sec:  # fired this very second
                continue
            dest.detectors[name].follow(firing, sec, c)
            if self._escalate(incident, firing.severity, end, f"{name}: throughput cut"):
                touched.setdefault(dest.name, "update")
        abnormal = max(f.last_abnormal for f in firings.values()) >= sec
        impact = self._impact[dest.name]
        if impact.last_sec < sec:
            impact.pending.append(dest.history[-1])
            impact.last_sec = sec
        if not abnormal:
            self._abnormal.discard(dest.name)
            closing = self._closing.get(dest.name)
            if closing is not None and incident.summary != closing:
                # the outage has ended (as far as is known): say "from X to Y", with nothing
                # measured since. Written, not published: the resolution carries it.
                incident.summary = closing
                if self.sink is not None:
                    self.sink.save(incident)
            return
        self._abnormal.add(dest.name)
        for row in impact.pending:  # the quiet seconds before were outage after all
            self._add_impact(impact, row)
        impact.pending.clear()
        self._refresh(dest, incident, sec)

    def _recovered(self, dest: Destination, sec: int) -> bool:
        firings = self._firings.get(dest.name, {})
        if not firings:
            return False
        for name, detector in dest.detectors.items():
            if name not in firings and detector.gathering():
                return False  # another detector is gathering evidence: not quiet yet
        return all(dest.detectors[name].recovered(f, sec) for name, f in firings.items())

    def resolve_now(self, dest: Destination, sec: int, why: str) -> Change | None:
        """Resolve ``dest``'s open incident at the end of ``sec`` without waiting for the quiet
        period: a fire drill ends its own fault. None when nothing is open."""
        incident = self._open.get(dest.name)
        if incident is None:
            return None
        self._resolve(dest, incident, sec)
        incident.note(float(sec + 1), "note", why)
        return self._change("resolved", incident)

    def _resolve(self, dest: Destination, incident: Incident, sec: int) -> None:
        """Resolved at the end of ``sec``: the outage ended at its last abnormal second; the
        quiet period's seconds are dropped from the impact, and the summary tells the outage
        (written then: nothing measured since is in it)."""
        end = float(sec + 1)
        last = max(f.last_abnormal for f in self._firings[dest.name].values())
        self._impact[dest.name].pending.clear()
        self._abnormal.discard(dest.name)
        incident.outage_end = float(min(last, sec) + 1)
        closing = self._closing.pop(dest.name, None)
        if closing is not None:
            incident.summary = closing
        incident.state = "resolved"
        incident.resolved_at = end
        quiet = sec - last
        incident.note(end, "resolved", f"back to normal for {quiet} s")
        fired = self._firings.pop(dest.name)
        for name, detector in dest.detectors.items():
            detector.resolved(name in fired)
        del self._open[dest.name]
        self._resolved[dest.name] = incident

    @staticmethod
    def _primary(dest: Destination, firings: dict[str, Firing]) -> Firing:
        """The finding that tells the story (see ``Detector.headline``): first to fire among
        the best."""

        def key(firing: Firing) -> tuple[int, float]:
            rank, strength = dest.detectors[firing.detector].headline(firing)
            return rank, -strength

        return min(firings.values(), key=key)

    def _refresh(self, dest: Destination, incident: Incident, sec: int) -> None:
        """An abnormal second ``sec`` of the outage: the summary, impact and evidence as of its
        end (the outage so far)."""
        firings = self._firings[dest.name]
        primary = self._primary(dest, firings)
        end = float(sec + 1)
        detector = dest.detectors[primary.detector]
        incident.summary = f"{dest.name}: {detector.summary(primary, None)}"
        self._closing[dest.name] = f"{dest.name}: {detector.summary(primary, end)}"
        incident.outage_end = end
        impact = self._impact[dest.name]
        incident.impact = Impact(
            not_delivered_est=round(max(0.0, impact.not_delivered)),
            failed=impact.failed,
            rate_limited=impact.rate_limited,
            rejected=impact.rejected,
            attempts=impact.attempts,
            delivered=impact.delivered,
        )
        attempts = impact.attempts
        evidence = Evidence(
            window={"start": iso_s(incident.onset), "end": iso_s(end)},
            baseline_rate_per_s=sig(dest.rate.rate),
            expected_delivered_per_s=sig(dest.expected_delivered_rate()),
            rate_limited_share=sig(impact.rate_limited / attempts) if attempts else 0.0,
            h=sig(self.h),
            # resolving needs QUIET seconds without an alarm and a reverse test passed
            quiet_s=QUIET,
            detectors={name: dest.detectors[name].evidence(f) for name, f in firings.items()},
        )
        if attempts:
            bad = impact.failed + impact.rejected
            lo, hi = wilson(bad, attempts)
            evidence["error_ratio"] = ErrorRatio(
                failed_or_rejected=bad,
                attempts=attempts,
                ratio=sig(bad / attempts),
                wilson95=[sig(lo), sig(hi)],
            )
        now = _snapshot(dest, incident.onset, sec)
        old = incident.evidence
        evidence["at_detection"] = old.get("at_detection") or now
        worst = old.get("at_worst")
        evidence["at_worst"] = now if worst is None or _worse(now, worst) else worst
        # in place: keys others add (the providers' facts) stay
        incident.evidence.update(evidence)

    # -- operators ---------------------------------------------------------------------------

    def acknowledge(self, incident_id: str, ts: float) -> Change | None:
        """open -> acknowledged (a timeline entry); None if no open incident has that id."""
        for incident in self._open.values():
            if incident.id == incident_id and incident.state == "open":
                incident.state = "acknowledged"
                incident.acknowledged_at = ts
                incident.note(ts, "acknowledged", "acknowledged")
                return self._change("update", incident)
        return None

    def _known(self, id_or_prefix: str) -> Incident | None:
        """The incident held here with this id, or the only one whose id starts with it."""
        found = {i.id: i for i in self._all if i.id.startswith(id_or_prefix)}
        if id_or_prefix in found:
            return found[id_or_prefix]
        return next(iter(found.values())) if len(found) == 1 else None

    def acknowledge_any(self, id_or_prefix: str, ts: float) -> Incident:
        """Acknowledge an incident held here or, failing that, one only the sink has (an
        earlier run's); the incident as it now is. Raises KeyError when none matches."""
        held = self._known(id_or_prefix)
        if held is not None:
            change = self.acknowledge(held.id, ts)
            if change is not None:
                return change.incident
        if self.sink is None:
            if held is None:
                raise KeyError(f"no incident with id {id_or_prefix!r}")
            return held.snapshot()
        return self.sink.acknowledge(id_or_prefix, ts)

    def note(self, id_or_prefix: str, ts: float, text: str) -> Incident:
        """Add an operator's note (kind "note") to an incident's timeline; the incident as it
        now is. Raises ValueError for an empty note, KeyError when no incident matches."""
        text = text.strip()
        if not text:
            raise ValueError("an empty note")
        held = self._known(id_or_prefix)
        if held is None:
            if self.sink is None:
                raise KeyError(f"no incident with id {id_or_prefix!r}")
            return self.sink.add_note(id_or_prefix, ts, text)
        held.note(ts, "note", text)
        return self._change("update", held).incident

    def incidents(self) -> list[Incident]:
        """Open and acknowledged incidents (live objects), oldest first."""
        return sorted(self._open.values(), key=lambda i: (i.detected_at, i.id))

    def all_incidents(self) -> list[Incident]:
        """Every incident opened (the last 1000), resolved ones included, oldest first."""
        return list(self._all)


def _snapshot(dest: Destination, onset: float, sec: int) -> Snapshot:
    """The flow over the last ``RECENT_SECONDS`` seconds up to ``sec`` (from the onset on)."""
    rows = [r for r in dest.recent(RECENT_SECONDS) if r.sec >= onset] or dest.recent(1)
    n = max(len(rows), 1)
    attempts = sum(r.total for r in rows)
    delivered = sum(r.delivered for r in rows)
    expected = sum(r.expected for r in rows)
    snap = Snapshot(
        at=iso_s(sec + 1.0),
        over_s=len(rows),
        attempts_per_s=sig(attempts / n),
        delivered_per_s=sig(delivered / n),
        expected_delivered_per_s=sig(expected / n),
        delivered_of_expected=sig(delivered / expected) if expected > 0 else 1.0,
        rate_limited_share=sig(sum(r.rate_limited for r in rows) / attempts) if attempts else 0.0,
        failed_share=(
            sig(sum(r.failed + r.rejected for r in rows) / attempts) if attempts else 0.0
        ),
    )
    headers: dict[str, Any] = {}
    probes: dict[str, dict[str, Any]] = {}
    for name, state in sorted(dest.probes.items()):
        headers.update(state.details)
        probes[name] = {"ok": state.ok, "status": state.status}
    if headers:
        snap["probe_headers"] = headers
    if probes:
        snap["probes"] = probes
    return snap


def _worse(a: Snapshot, b: Snapshot) -> bool:
    """``a`` is a worse point of the outage than ``b``: less delivered of what was expected,
    or as little and more attempts failed or rate-limited."""

    def key(s: Snapshot) -> tuple[float, float]:
        bad = s.get("rate_limited_share", 0.0) + s.get("failed_share", 0.0)
        return s.get("delivered_of_expected", 1.0), -bad

    return key(a) < key(b)
