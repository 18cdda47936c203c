"""The detectors, one module each, and the registry the engine runs.

A new detector is a module with a :class:`Detector` subclass and one line in
``DEFAULT_DETECTORS``; the engine runs exactly the detectors it is given (this tuple unless told
otherwise), in this order, and shares its false-alarm budget among them (D = their number).
"""

from __future__ import annotations

from typing import Any

from observatory.detect.detectors.base import Detector, Firing
from observatory.detect.detectors.bernoulli import ErrorRateDetector, RateLimitDetector
from observatory.detect.detectors.latency import LatencyDetector
from observatory.detect.detectors.probe import ProbeDetector
from observatory.detect.detectors.silence import SilenceDetector
from observatory.detect.detectors.volume import VolumeDropDetector

DEFAULT_DETECTORS: tuple[type[Detector[Any]], ...] = (
    SilenceDetector,
    VolumeDropDetector,
    ErrorRateDetector,
    RateLimitDetector,
    LatencyDetector,
    ProbeDetector,
)
DETECTOR_NAMES: tuple[str, ...] = tuple(d.name for d in DEFAULT_DETECTORS)

__all__ = ["DEFAULT_DETECTORS", "DETECTOR_NAMES", "Detector", "Firing"]
