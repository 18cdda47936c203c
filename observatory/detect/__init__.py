"""The detection engine: per-destination one-second buckets, sequential detectors, incidents.

Pure Python and deterministic: it is fed `SecondCounts` and probe results in event time and
advanced by a watermark; it never reads a clock, a file or the database.

``engine`` keeps the clock, the pool and the baselines (of each ``destination``) and runs the
detectors (``detectors/``: one module each, behind the contract in ``detectors/base.py``, listed
in the registry ``detectors.DEFAULT_DETECTORS``); ``lifecycle`` turns their firings into
incidents; ``status`` is the dashboard's view; ``stats`` holds the statistics they share.
"""

from observatory.detect.counts import SecondCounts
from observatory.detect.engine import DestinationState, DestinationStatus, Engine

__all__ = ["DestinationState", "DestinationStatus", "Engine", "SecondCounts"]
