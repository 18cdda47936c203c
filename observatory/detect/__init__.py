"""The detection engine: per-destination one-second buckets, sequential detectors, incidents.

Pure Python and deterministic: it is fed `SecondCounts` and probe results in event time and
advanced by a watermark; it never reads a clock or a file (the ledger it runs writes incidents
through the sink it was given).

``engine`` keeps the clock, the pool and the baselines (of each ``destination``) and runs the
detectors (``detectors/``: one module each, behind the contract in ``detectors/base.py``, listed
in the registry ``detectors.DEFAULT_DETECTORS``) and the rate-limit ``drift`` tracker; the
incident ledger (``observatory.incidents.ledger``) turns their firings into incidents;
``status`` is the dashboard's view; ``stats`` holds the statistics they share; ``aggregate``
reads the per-second counts out of the ``events`` table (the one module here that touches the
database).
"""

from observatory.detect.counts import SecondCounts
from observatory.detect.engine import DestinationState, DestinationStatus, Engine

__all__ = ["DestinationState", "DestinationStatus", "Engine", "SecondCounts"]
