"""``[[sources]]``: :class:`SourceConfig`, one family of log files and how to read its lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from observatory.config.fields import Column, NonEmptyStr, _custom, _Model

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

Preset = Literal["nginx_upstream", "gtm_cloud_logging", "stape_gtms3"]
PRESET_FORMATS: dict[str, str] = {
    "nginx_upstream": "regex",  # an nginx egress proxy's access log
    "gtm_cloud_logging": "jsonl",  # sGTM on Cloud Run: request logs exported from Cloud Logging
    "stape_gtms3": "jsonl",  # sGTM tags logging by Stape's GTMS-3 convention
}
"""The format each preset reads (the presets themselves: ingest/formats/presets.py)."""


class SourceConfig(_Model):
    """``[[sources]]``: one family of log files and how to read its lines.

    ``path`` keeps the glob as written (relative to the config file); use
    :meth:`resolved_glob` (or :meth:`Config.source_glob`) for the absolute glob.
    ``fields`` maps a canonical column to a field of the line (a dotted path into JSON, a logfmt
    key or a regex group), ``static`` gives constant column values and ``map`` renames raw
    values of a column (``{column: {raw: replacement}}``).
    """

    name: str
    path: NonEmptyStr
    format: Literal["jsonl", "logfmt", "regex"]
    pattern: str | None = None
    preset: Preset | None = None
    ts_format: NonEmptyStr | None = None
    latency_unit: Literal["ms", "s", "us"] = "ms"
    fields: dict[Column, NonEmptyStr] = Field(default_factory=dict)
    static: dict[Column, NonEmptyStr] = Field(default_factory=dict)
    map: dict[Column, dict[str, str]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise _custom("name", "is not a valid name (use letters, digits and _ . - only)", value)
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise _custom("regex", f"invalid regular expression: {exc}") from None
        if not compiled.groupindex:
            raise _custom(
                "regex", "needs at least one named group, e.g. (?P<destination>\\S+)"
            ) from None
        return value

    @model_validator(mode="after")
    def _format_settings(self) -> SourceConfig:
        if self.preset is not None and PRESET_FORMATS[self.preset] != self.format:
            raise _custom(
                "preset",
                f"is only allowed with format = '{PRESET_FORMATS[self.preset]}'",
                self.preset,
                suffix=("preset",),
            )
        if self.format == "regex":
            if self.pattern is None and self.preset is None:
                raise _custom(
                    "required",
                    "required when format = 'regex' (or set preset = 'nginx_upstream')",
                    suffix=("pattern",),
                )
        elif self.pattern is not None:
            raise _custom("pattern", "only allowed with format = 'regex'", suffix=("pattern",))
        return self

    def resolved_glob(self, base_dir: str | Path) -> str:
        """The ``path`` glob made absolute against ``base_dir`` (``~`` is expanded)."""
        path = Path(self.path).expanduser()
        if not path.is_absolute():
            path = Path(base_dir) / path
        return str(path)
