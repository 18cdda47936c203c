"""probe: the destination's own health and status APIs say something is wrong.

Opens after 3 consecutive probe failures or on a non-operational status component; resolves
after 3 successes. A major outage or a probe that keeps failing makes it an error. The probe
states live on the destination (``dest.probes``): the dashboard and the incident's evidence
show them whichever detector fired.
"""

from __future__ import annotations

import math
from typing import Any

from observatory.detect.counts import SecondCounts
from observatory.detect.destination import ProbeState
from observatory.detect.detectors.base import HEADLINE_PROBE, Detector, Firing
from observatory.detect.wording import clock
from observatory.incidents.model import SEVERITY_RANK, Severity

OPERATIONAL = frozenset({"", "operational", "ok", "up", "healthy", "none", "normal", "green"})
MAJOR = frozenset({"major_outage", "major", "down", "outage", "critical", "red"})
FAILURES = 3  # consecutive bad results that alarm (a non-operational status alarms at once)
SUCCESSES = 3  # consecutive good results that clear a probe
_EVIDENCE_KEYS = ("retry", "ratelimit", "rate-limit", "rate_limit", "quota", "reset", "status")


class ProbeDetector(Detector[Firing]):
    """Consecutive probe failures or a non-operational status."""

    name = "probe"
    base_severity = "warning"
    headline_rank = HEADLINE_PROBE

    def step(self, sec: int, c: SecondCounts) -> bool:
        return False  # judged on probe results, not on counts

    def judge_probe(
        self, probe: str, ts: float, ok: bool, status: str | None, details: dict[str, Any]
    ) -> bool:
        state = self.dest.probes.setdefault(probe, ProbeState())
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
            if state.successes >= SUCCESSES:
                state.bad_since = None
            return False
        state.successes = 0
        state.failures += 1
        if state.bad_since is None:
            state.bad_since = ts
        return not operational or state.failures >= FAILURES

    def severity(self) -> Severity:
        worst: Severity = self.base_severity
        for state in self.dest.probes.values():
            status = (state.status or "").strip().lower()
            if status in MAJOR or (not state.ok and state.failures >= FAILURES):
                worst = "error"
        return worst

    def bad(self) -> bool:
        return any(s.bad_since is not None for s in self.dest.probes.values())

    def fire(self, sec: int) -> Firing:
        bad = [s.bad_since for s in self.dest.probes.values() if s.bad_since is not None]
        return Firing(
            detector=self.name,
            onset=math.floor(min(bad)) if bad else sec,
            fired_at=float(sec + 1),
            statistic=0.0,
            limit=float(FAILURES),
            severity=self.severity(),
            last_abnormal=sec,
        )

    def follow(self, firing: Firing, sec: int, c: SecondCounts) -> None:
        if self.bad():
            firing.last_abnormal = sec
        severity = self.severity()
        if SEVERITY_RANK[severity] > SEVERITY_RANK[firing.severity]:
            firing.severity = severity

    def recovered(self, firing: Firing, sec: int) -> bool:
        return not self.bad()

    def summary(self, firing: Firing, until: float | None = None) -> str:
        parts = []
        for probe, state in sorted(self.dest.probes.items()):
            if state.bad_since is None:
                continue
            what = state.status or ("failing" if not state.ok else "not operational")
            parts.append(f"probe {probe} {what} since {clock(state.bad_since)}")
        return "; ".join(parts) or "probe failing"

    def details(self, firing: Firing) -> dict[str, Any]:
        return {
            "probes": {
                probe: {
                    "ok": s.ok,
                    "status": s.status,
                    "consecutive_failures": s.failures,
                    "consecutive_successes": s.successes,
                    "details": s.details,
                }
                for probe, s in sorted(self.dest.probes.items())
            }
        }
