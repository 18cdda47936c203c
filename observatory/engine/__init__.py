"""The detection engine: per-destination one-second buckets, sequential detectors, incidents.

Pure Python and deterministic: it is fed `SecondCounts` and probe results in event time and
advanced by a watermark; it never reads a clock, a file or the database.
"""

from observatory.engine.counts import SecondCounts
from observatory.engine.engine import DestinationState, DestinationStatus, Engine

__all__ = ["DestinationState", "DestinationStatus", "Engine", "SecondCounts"]
