"""A fire drill: a clearly marked synthetic fault for a drill copy of a destination
(``drill:<destination>``), through the real detectors and the real alert sinks, timed.

The drill has its own engine and ledger, fed with synthetic traffic at the destination's
usual rate: it warms up on healthy history in an instant, then runs live on the wall clock
with the fault from the next second on. Nothing of it reaches the real panes, baselines,
incidents or reconciliation: not one event is stored, its incident is not in ``incidents``.
Its changes go to the runtime's alert dispatcher, marked ``[DRILL]``, and every sink's
confirmed delivery (a webhook's 2xx, PagerDuty's 202, a command's exit 0) is timed through the
dispatcher's listener. Once each sink has confirmed the open (or ``confirm_within`` passed),
the drill ends its fault and resolves its incident, and waits for the sinks' resolves.

Steps and targets (``[drills]``): detection within ``detect_within`` of the fault; each sink's
open within ``confirm_within`` of the detection; each sink's resolve within ``confirm_within``
of the resolution. The report says which step missed and why.
"""

from __future__ import annotations

import hashlib
import math
import queue
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from observatory.alerts.dispatcher import AlertDispatcher, Delivery
from observatory.config import Config
from observatory.detect import Engine, SecondCounts
from observatory.incidents.ledger import Ledger
from observatory.incidents.model import Change

DrillKind = Literal["rate_limit", "silence", "errors"]
KINDS: tuple[DrillKind, ...] = ("rate_limit", "silence", "errors")
PREFIX = "drill:"
MARK = "[DRILL] "
WARM_EXTRA = 300  # s of healthy history beyond the warm-up the drill engine learns from
LIVE_LEAD = 0.75  # as the runtime's
MIN_RATE, MAX_RATE, DEFAULT_RATE = 20.0, 2000.0, 50.0
GRACE = 10.0  # s past the detection target before the drill stops waiting for a detection


@dataclass
class Step:
    """One timed step of a drill."""

    name: str
    target_s: float
    took_s: float | None  # None: it did not happen
    ok: bool
    detail: str = ""


@dataclass
class DrillReport:
    id: str
    destination: str
    kind: str
    started_at: float
    rate: float  # synthetic events/s
    passed: bool = False
    incident_id: str | None = None
    steps: list[Step] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drill_destination(self) -> str:
        return PREFIX + self.destination

    @property
    def detect_s(self) -> float | None:
        first = self.steps[0] if self.steps else None
        return first.took_s if first is not None and first.name == "detect" else None

    def failures(self) -> list[str]:
        """Each step that missed, in words."""
        out = []
        for s in self.steps:
            if not s.ok:
                took = "never" if s.took_s is None else f"{s.took_s:.2f} s"
                why = f": {s.detail}" if s.detail else ""
                out.append(f"{s.name}: {took} (target {s.target_s:g} s){why}")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillReport:
        """A report from its JSON form (an owner's answer, a ``drills`` row)."""
        keys = ("name", "target_s", "took_s", "ok", "detail")
        steps = [Step(**{k: s[k] for k in keys}) for s in data.get("steps", [])]
        return cls(
            id=str(data["id"]),
            destination=str(data["destination"]),
            kind=str(data["kind"]),
            started_at=float(data["started_at"]),
            rate=float(data["rate"]),
            passed=bool(data["passed"]),
            incident_id=data.get("incident_id"),
            steps=steps,
            timeline=list(data.get("timeline", [])),
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drill_destination"] = self.drill_destination
        out["detect_s"] = self.detect_s
        out["failures"] = self.failures()
        return out


class Drill:
    """One drill, ticked by the runtime (its thread) until :meth:`tick` returns the report."""

    def __init__(
        self,
        destination: str,
        kind: DrillKind,
        config: Config,
        dispatcher: AlertDispatcher | None,
        now: float,
        rate: float | None = None,
        seed: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown drill kind {kind!r} (expected {', '.join(KINDS)})")
        if destination.startswith(PREFIX):
            raise ValueError(f"{destination!r} is already a drill destination")
        self.kind: DrillKind = kind
        self.name = PREFIX + destination
        self.targets = config.drills
        self.dispatcher = dispatcher
        self.rate = min(MAX_RATE, max(MIN_RATE, rate or DEFAULT_RATE))
        started = float(now)
        ident = hashlib.sha1(f"{destination}|{kind}|{started}".encode()).hexdigest()[:10]
        self.report = DrillReport(ident, destination, kind, started, self.rate)
        self.rng = np.random.default_rng(seed)
        self.engine = Engine(config.detection, n_destinations=5, ledger=Ledger())
        self.sinks = dispatcher.sink_names if dispatcher is not None else []
        self.deliveries: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self._stop_listening = dispatcher.listen(self._heard) if dispatcher is not None else None
        # warm up on healthy history, in event time (historical: nothing is alerted)
        first = math.floor(now) - int(config.detection.warmup) - WARM_EXTRA
        for sec in range(first, math.floor(now)):
            self.engine.feed([self._second(sec, faulty=False)])
            self.engine.advance(sec + 1)
        self.engine.go_live(now)
        self.fed = math.floor(now)
        self.fault_at = float(math.floor(now) + 1)
        self.fault_on = True
        self.detected_at: float | None = None
        self.resolved_at: float | None = None
        self.opened: dict[str, float] = {}  # sink -> when it confirmed the open
        self.closed: dict[str, float] = {}  # sink -> when it confirmed the resolve
        self.errors: dict[str, str] = {}  # sink -> its last failure
        self.phase: Literal["detecting", "confirming", "resolving", "done"] = "detecting"

    # -- traffic ---------------------------------------------------------------------------

    def _second(self, sec: int, faulty: bool) -> SecondCounts:
        n = int(self.rng.poisson(self.rate))
        c = SecondCounts(self.name, sec)
        if faulty and self.kind == "silence":
            return c
        if faulty and self.kind == "rate_limit":
            c.rate_limited = int(self.rng.binomial(n, 0.8))
        elif faulty and self.kind == "errors":
            c.failed = int(self.rng.binomial(n, 0.5))
        else:
            c.failed = int(self.rng.binomial(n, 0.002))
        c.delivered = n - c.rate_limited - c.failed
        ms = self.rng.lognormal(math.log(80.0), 0.3, size=min(n, 50))
        for v in ms:
            c.latency_n += 1
            c.latency_sum += float(v)
            c.latency_max = max(c.latency_max, float(v))
        return c

    # -- deliveries (the sinks' worker threads) ----------------------------------------------

    def _heard(self, delivery: Delivery) -> None:
        if delivery.change.incident.destination == self.name:
            self.deliveries.put(delivery)

    def _take_deliveries(self) -> None:
        while True:
            try:
                d = self.deliveries.get_nowait()
            except queue.Empty:
                return
            if not d.ok:
                self.errors[d.sink] = d.error or "failed"
                continue
            self.errors.pop(d.sink, None)
            if d.change.kind == "resolved":
                self.closed.setdefault(d.sink, d.at)
            else:
                self.opened.setdefault(d.sink, d.at)

    # -- the clock -------------------------------------------------------------------------

    def _publish(self, change: Change) -> None:
        inc = change.incident
        if not inc.summary.startswith(MARK):
            inc.summary = MARK + inc.summary
        self.report.incident_id = inc.id
        if self.dispatcher is not None:
            self.dispatcher.publish(change)

    def tick(self, now: float) -> DrillReport | None:
        """Feed the seconds that ended, move the drill engine on, follow the sinks; the
        report once the drill is over."""
        self._take_deliveries()
        while self.fed < math.floor(now):
            faulty = self.fault_on and self.fed >= self.fault_at
            self.engine.feed([self._second(self.fed, faulty)])
            self.fed += 1
        for change in self.engine.advance(now + LIVE_LEAD, wall=now):
            if change.kind == "open" and self.detected_at is None:
                self.detected_at = change.incident.detected_at
            self._publish(change)
        t = self.targets
        if self.phase == "detecting":
            if self.detected_at is not None:
                self.phase = "confirming"
            elif now - self.fault_at > float(t.detect_within) + GRACE:
                return self._finish(now)
        if self.phase == "confirming":
            assert self.detected_at is not None
            if set(self.sinks) <= set(self.opened) or (
                now - self.detected_at > float(t.confirm_within)
            ):
                self._resolve(now)
        if self.phase == "resolving":
            assert self.resolved_at is not None
            if set(self.sinks) <= set(self.closed) or (
                now - self.resolved_at > float(t.confirm_within)
            ):
                return self._finish(now)
        return None

    def _resolve(self, now: float) -> None:
        """End the fault and resolve the drill incident (no quiet period: it is ours)."""
        self.fault_on = False
        change = self.engine.resolve_now(
            self.name, math.floor(now) - 2, "drill over: the synthetic fault was ended"
        )
        self.resolved_at = now
        if change is not None:
            self._publish(change)
        self.phase = "resolving"

    def _finish(self, now: float) -> DrillReport:
        self._take_deliveries()
        if self._stop_listening is not None:
            self._stop_listening()
        t = self.targets
        steps: list[Step] = []
        detect = None if self.detected_at is None else self.detected_at - self.fault_at
        steps.append(
            Step(
                "detect",
                float(t.detect_within),
                detect,
                detect is not None and detect <= float(t.detect_within),
                "" if detect is not None else "the drill fault was not detected",
            )
        )
        if not self.sinks:
            steps.append(Step("alerts", float(t.confirm_within), None, False, "no [[alerts]] sink"))
        for sink in self.sinks:
            for what, seen, since in (
                ("open", self.opened, self.detected_at),
                ("resolve", self.closed, self.resolved_at),
            ):
                at = seen.get(sink)
                took = None if at is None or since is None else max(0.0, at - since)
                ok = took is not None and took <= float(t.confirm_within)
                detail = "" if ok else self.errors.get(sink, "no confirmed delivery")
                name = f"{sink}: {what} confirmed"
                steps.append(Step(name, float(t.confirm_within), took, ok, detail))
        self.report.steps = steps
        self.report.passed = all(s.ok for s in steps)
        incidents = self.engine.all_incidents()
        if incidents:
            self.report.timeline = [
                {"ts": e.ts, "kind": e.kind, "detail": e.detail} for e in incidents[-1].timeline
            ]
        self.phase = "done"
        return self.report

    def cancel(self) -> None:
        """Stop listening (the runtime closes mid-drill)."""
        if self._stop_listening is not None:
            self._stop_listening()
