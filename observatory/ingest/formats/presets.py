"""Ready-made sources (`preset = "..."`): a known log shape read with no `fields` mapping.

A preset fixes the format's settings and maps canonical columns to fields of the line;
what the user writes in `fields`, `static` and `map` still wins, column by column
(`normalize.effective_fields`). The names and formats here are the ones
`config/sources.py` accepts (PRESET_FORMATS); a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from observatory.ingest.formats.jsonl import Derive
from observatory.ingest.formats.regex import NGINX_UPSTREAM
from observatory.ingest.formats.sgtm import (
    CLOUD_LOGGING_DERIVED,
    CLOUD_LOGGING_FIELDS,
    GTMS3_DERIVED,
    GTMS3_FIELDS,
    cloud_logging_skip,
    gtms3_skip,
)


@dataclass(frozen=True)
class Preset:
    """One preset: its format and settings, and where each canonical column is.

    `fields` maps a column to the field it is read from (for a derived column, the main
    one, which a reject's "missing field" reason names); `derived` (jsonl only) computes
    a column from several values of the line instead, and `skip` (jsonl only) names the
    valid lines that are not deliveries.
    """

    format: str
    fields: dict[str, str]
    pattern: str | None = None
    ts_format: str | None = None
    latency_unit: str = "ms"
    derived: Mapping[str, Derive] = field(default_factory=dict)
    skip: Derive | None = None


PRESETS: dict[str, Preset] = {
    "nginx_upstream": Preset(
        format="regex",
        pattern=NGINX_UPSTREAM,
        ts_format="%d/%b/%Y:%H:%M:%S %z",
        latency_unit="s",
        fields={
            "ts": "time_local",
            "destination": "host",
            "http_status": "status",
            "latency_ms": "upstream_time",
        },
    ),
    "gtm_cloud_logging": Preset(
        format="jsonl",
        fields=CLOUD_LOGGING_FIELDS,
        derived=CLOUD_LOGGING_DERIVED,
        skip=cloud_logging_skip,
    ),
    "stape_gtms3": Preset(
        format="jsonl",
        fields=GTMS3_FIELDS,
        derived=GTMS3_DERIVED,
        skip=gtms3_skip,
    ),
}
