"""A detector is one class plus one registry entry: a retry-storm detector that lives only here
runs through the engine's normal path (step, fire, follow, recover) beside the shipped ones,
opens an incident with its own summary and evidence, merges with another detector's finding
and resolves; the shipped registry and threshold are untouched."""

from __future__ import annotations

import math
from typing import Any

import pytest

from observatory.config import DetectionConfig
from observatory.detect import Engine, SecondCounts
from observatory.detect.destination import Destination
from observatory.detect.detectors import DEFAULT_DETECTORS, DETECTOR_NAMES, Detector, Firing
from observatory.detect.stats import bernoulli_llr
from observatory.detect.wording import pct
from observatory.incidents import model as incidents
from observatory.incidents.model import Change

START = 1_700_000_000
RATE = 20  # attempts/s of the one destination
STORM = 0.5  # retries at least this share of attempts ...
RUN = 5  # ... for this many seconds in a row: a storm
NORMAL = 0.05  # the share of retries the reverse test takes as normal


class RetryStormDetector(Detector[Firing]):
    """Retries are at least half the attempts for 5 seconds in a row."""

    name = "retry_storm"
    base_severity = "warning"

    def __init__(self, dest: Destination, h: float, config: DetectionConfig) -> None:
        super().__init__(dest, h, config)
        self.run = 0
        self.start = 0
        self.retries = 0
        self.attempts = 0

    def step(self, sec: int, c: SecondCounts) -> bool:
        if c.total and c.retrying >= STORM * c.total:
            if self.run == 0:
                self.start, self.retries, self.attempts = sec, 0, 0
            self.run += 1
            self.retries += c.retrying
            self.attempts += c.total
        else:
            self.run = 0
        return self.run >= RUN

    def reset(self) -> None:
        self.run = 0

    def fire(self, sec: int) -> Firing:
        return Firing(
            detector=self.name,
            onset=self.start,
            fired_at=float(sec + 1),
            statistic=float(self.run),
            limit=float(RUN),
            severity=self.base_severity,
            last_abnormal=sec,
            p0=NORMAL,
            p1=STORM,
            k=self.retries,
            n=self.attempts,
        )

    def follow(self, firing: Firing, sec: int, c: SecondCounts) -> None:
        # the default recovered() wants QUIET seconds and a passed reverse test: feed it
        a, b = bernoulli_llr(firing.p0, firing.p1)
        k, n = c.retrying, c.total
        firing.k += k
        firing.n += n
        typical = n * (firing.p0 * a + (1.0 - firing.p0) * b)
        firing.reverse.push(k * a + (n - k) * b, typical, float(n))

    def summary(self, firing: Firing, until: float | None = None) -> str:
        share = firing.k / firing.n if firing.n else 0.0
        return (
            f"retry storm {self.when(firing, until)}: {pct(share)} of attempts were retries "
            f"({firing.k}/{firing.n})"
        )

    def details(self, firing: Firing) -> dict[str, Any]:
        return {"retries": firing.k, "attempts": firing.n, "storm_share": STORM}


WITH_STORMS: tuple[type[Detector[Any]], ...] = (*DEFAULT_DETECTORS, RetryStormDetector)


def second(sec: int, retrying: int = 0, failed: int = 0) -> SecondCounts:
    return SecondCounts(
        "shop", sec, delivered=RATE - retrying - failed, retrying=retrying, failed=failed
    )


def run(engine: Engine, start: int, stop: int, **bad: int) -> list[Change]:
    changes: list[Change] = []
    for sec in range(start, stop):
        engine.feed([second(sec, **bad)])
        changes += engine.advance(sec + 1)
    return changes


def test_a_detector_from_outside_opens_and_resolves_an_incident() -> None:
    engine = Engine(DetectionConfig(), detectors=WITH_STORMS)
    warm = START + 600  # past warm-up: the destination is armed
    assert run(engine, START, warm) == []
    changes = run(engine, warm, warm + 30, retrying=12)  # 60 % retries
    opened = [c.incident for c in changes if c.kind == "open"]
    assert len(opened) == 1
    incident = opened[0]
    assert incident.detector == "retry_storm" and incident.detectors == ["retry_storm"]
    assert incident.severity == "warning"
    assert incident.onset == warm  # the storm's first second
    assert incident.detected_at == warm + RUN  # alarmed in its 5th second
    assert incident.summary.startswith("shop: retry storm since ")
    assert "60% of attempts were retries (60/100)" in incident.summary
    evidence = incident.evidence["detectors"]["retry_storm"]
    assert evidence["retries"] == 60 and evidence["storm_share"] == STORM
    assert evidence["time_to_detect_s"] == RUN

    # the storm ends: quiet for a minute, and the reverse test favours normal traffic
    end = warm + 30
    changes = run(engine, end, end + 200)
    resolved = [c.incident for c in changes if c.kind == "resolved"]
    assert [i.id for i in resolved] == [incident.id]
    assert end + 60 <= resolved[0].resolved_at <= end + 70  # type: ignore[operator]  # resolved: set
    assert "retry storm from " in resolved[0].summary
    assert engine.incidents() == []


def test_a_new_detector_merges_with_the_shipped_ones() -> None:
    engine = Engine(DetectionConfig(), detectors=WITH_STORMS)
    warm = START + 600
    run(engine, START, warm)
    run(engine, warm, warm + 20, retrying=12)
    changes = run(engine, warm + 20, warm + 40, retrying=12, failed=4)  # and failures
    (incident,) = engine.all_incidents()
    assert incident.detectors == ["retry_storm", "error_rate"]
    # escalated by error_rate (to error, and to critical as throughput is cut too)
    assert incident.severity != "warning"
    assert [e.detail for e in incident.timeline if e.kind == "escalated"][0] == (
        "warning -> error: error_rate fired"
    )
    assert any(c.kind == "update" for c in changes)
    # the cause (failures) tells the story over the new detector's default headline
    assert "failed or rejected" in incident.summary


def test_the_shipped_registry_and_threshold_are_untouched() -> None:
    assert "retry_storm" not in DETECTOR_NAMES
    assert incidents.DETECTORS == DETECTOR_NAMES
    assert len(DETECTOR_NAMES) == 6
    week = 7 * 86400
    assert Engine(DetectionConfig()).h == pytest.approx(math.log(5 * 6 * week))
    # a seventh detector takes its share of the false-alarm budget
    assert Engine(DetectionConfig(), detectors=WITH_STORMS).h == pytest.approx(
        math.log(5 * 7 * week)
    )
    with pytest.raises(ValueError, match="unique"):
        Engine(DetectionConfig(), detectors=(*DEFAULT_DETECTORS, DEFAULT_DETECTORS[0]))
