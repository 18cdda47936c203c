"""The detector contract: one detector of one destination, and what it reports when it fires.

A detector is a class in the registry (:data:`observatory.detect.detectors.DEFAULT_DETECTORS`).
The engine makes one instance per destination, so an instance's attributes are that
destination's detector state (its CUSUM, its learned ratio); the destination's shared baselines
(rate, delivered ratio, pool, history, latency histogram, probes) are on ``self.dest``.

Every evaluated second, for an armed destination, the engine calls :meth:`Detector.step` on
each detector in registry order (``judges_flow`` detectors only while the destination is not
stale) and :meth:`Detector.judge_probe` for each probe result; a True opens or joins the
destination's incident with :meth:`Detector.fire` (or, already firing, :meth:`Detector.again`).
While the incident is open it calls :meth:`Detector.follow` every second, and resolves it once
no other detector is :meth:`Detector.gathering` evidence and every firing has
:meth:`Detector.recovered`. Once a second is old enough to be normal traffic, the engine
learns the destination's baselines from it and calls :meth:`Detector.learn`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from observatory.detect.counts import SecondCounts
from observatory.detect.destination import RECENT_SECONDS, Second
from observatory.detect.stats import ReverseTest
from observatory.detect.wording import clock, iso_s, sig
from observatory.incidents.model import Severity

if TYPE_CHECKING:
    from observatory.config import DetectionConfig
    from observatory.detect.destination import Destination

QUIET = 60  # seconds without an alarm before resolving
MIN_TRIALS = 10  # the reverse test needs this many trials in its window
REVERSE_MARGIN = 6.0  # nats: the reverse test's least evidence for normal traffic
REVERSE_SHARE = 0.3  # ... and this share of what normal traffic typically gives
MIN_WINDOW = 60  # the reverse test's window: where normal traffic typically gives h nats
MAX_WINDOW = 110  # against the fault, within these bounds (recovery judged within 2 minutes)
STOPPED = 0.1  # a flow at a tenth of its normal rate: the reverse tests' picture of a stopped one

# Which finding headlines an incident's summary: the lowest rank, the strongest within a rank.
HEADLINE_NO_ATTEMPTS = 0  # nothing was even attempted: that is the story
HEADLINE_CAUSE = 10  # failures, 429s: the cause, told over the symptoms below
HEADLINE_SILENCE = 20
HEADLINE_VOLUME = 30
HEADLINE_LATENCY = 40
HEADLINE_PROBE = 50
HEADLINE_OTHER = 100


@dataclass
class Firing:
    """A detector that fired in its destination's current incident."""

    detector: str
    onset: int
    fired_at: float
    statistic: float
    limit: float  # h, or the silence limit in seconds
    severity: Severity
    last_abnormal: int  # the last second the detector was in alarm
    reverse: ReverseTest = field(default_factory=lambda: ReverseTest(MIN_WINDOW, MAX_WINDOW))
    p0: float = 0.0
    p1: float = 0.0
    k: int = 0  # detector's bad events since onset (failures, 429s, slow; own count for volume)
    n: int = 0  # trials since onset (attempts, latency events; own + pool for volume)
    fault: float = 0.0  # the fault as observed: bad share (Bernoulli) or volume ratio


F = TypeVar("F", bound=Firing)


class Detector(ABC, Generic[F]):
    """One detector of one destination.

    Subclasses set ``name`` and ``base_severity`` and implement :meth:`step`, :meth:`fire`,
    :meth:`follow`, :meth:`summary` and :meth:`details`; the other methods have defaults.
    """

    name: ClassVar[str]
    base_severity: ClassVar[Severity]
    # Judges how much traffic flows (silence, volume): a stale destination's quiet is history,
    # not an outage, so it is not stepped while stale and is reset when it becomes stale.
    judges_flow: ClassVar[bool] = False
    headline_rank: ClassVar[int] = HEADLINE_OTHER
    reverse_share: ClassVar[float] = REVERSE_SHARE  # see recovered()

    def __init__(self, dest: Destination, h: float, config: DetectionConfig) -> None:
        self.dest = dest
        self.h = h
        self.config = config

    # -- every second ------------------------------------------------------------------------

    @abstractmethod
    def step(self, sec: int, c: SecondCounts) -> bool:
        """Judge one evaluated second of an armed destination; True while in alarm."""

    def judge_probe(
        self, probe: str, ts: float, ok: bool, status: str | None, details: dict[str, Any]
    ) -> bool:
        """Judge one probe result; True while in alarm. Most detectors ignore probes."""
        return False

    def learn(self, c: SecondCounts) -> None:
        """Learn the detector's own baselines from a second taken as normal traffic."""

    def gathering(self) -> bool:
        """Half way to an alarm: the destination is not quiet enough to resolve."""
        return False

    def reset(self) -> None:
        """Forget the evidence gathered (the destination became stale)."""

    # -- in an incident ----------------------------------------------------------------------

    @abstractmethod
    def fire(self, sec: int) -> F:
        """The finding, on the second the detector first alarms in an incident."""

    def again(self, firing: F, sec: int) -> None:
        """In alarm again while firing (the engine has moved ``firing.last_abnormal``)."""

    @abstractmethod
    def follow(self, firing: F, sec: int, c: SecondCounts) -> None:
        """Each later second of the open incident: feed the reverse test, move
        ``firing.last_abnormal`` while still abnormal, raise ``firing.severity``."""

    def recovered(self, firing: F, sec: int) -> bool:
        """Back to normal: ``QUIET`` seconds without an alarm and the reverse test passed
        (normal traffic favoured over the fault as observed)."""
        if sec - firing.last_abnormal < QUIET:
            return False
        return firing.reverse.passes(self.h, REVERSE_MARGIN, self.reverse_share, MIN_TRIALS)

    def resolved(self, fired: bool) -> None:
        """The destination's incident resolved; ``fired``: this detector was in it."""
        if fired:
            self.reset()

    # -- words and evidence ------------------------------------------------------------------

    @abstractmethod
    def summary(self, firing: F, until: float | None = None) -> str:
        """The finding in words (summaries and the timeline); ``until``: resolved at."""

    @abstractmethod
    def details(self, firing: F) -> dict[str, Any]:
        """The detector's own evidence (after onset, detection time and severity)."""

    def evidence(self, firing: F) -> dict[str, Any]:
        """The firing's evidence, as the incident's ``evidence.detectors[name]``."""
        out: dict[str, Any] = {
            "onset": iso_s(firing.onset),
            "detected_at": iso_s(firing.fired_at),
            "time_to_detect_s": sig(firing.fired_at - firing.onset),
            "severity": firing.severity,
        }
        out.update(self.details(firing))
        return out

    def headline(self, firing: F) -> tuple[int, float]:
        """(rank, strength): the incident's summary tells the finding of the lowest rank, the
        strongest within a rank (equal ones: the first to fire)."""
        return self.headline_rank, 0.0

    # -- helpers for summaries ---------------------------------------------------------------

    def when(self, firing: F, until: float | None) -> str:
        since = clock(firing.onset)
        return f"since {since}" if until is None else f"from {since} to {clock(until)}"

    def window(self, firing: F, until: float | None) -> list[Second]:
        """The seconds a summary speaks of: the outage, from the onset to ``until`` (its end)
        or, while it goes on, to now. (Not the last few seconds: a summary read during the
        recovery must still tell the outage.)"""
        end = until if until is not None else math.inf
        rows = [r for r in self.dest.history if firing.onset <= r.sec < end]
        return rows or self.dest.recent(RECENT_SECONDS)
