"""The whole configuration: :class:`Config` (the root model) and :func:`default_config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from observatory.config.dependencies import DependencyConfig, check_dependency_links
from observatory.config.destinations import DestinationConfig
from observatory.config.feeds import FeedConfig
from observatory.config.fields import _custom, _Model
from observatory.config.sections import (
    AlertConfig,
    BackupConfig,
    DetectionConfig,
    DrillsConfig,
    StorageConfig,
)
from observatory.config.server import ServerConfig
from observatory.config.sources import SourceConfig
from observatory.config.ui import UiConfig
from observatory.ingest.classify import guess_vendor


class Config(_Model):
    """The whole configuration.

    ``base_dir`` is the directory of the config file (set by :func:`load_config`; the current
    directory otherwise); it cannot be set from TOML, and relative ``storage.db`` and source
    ``path`` values are resolved against it.
    """

    storage: StorageConfig = Field(default_factory=StorageConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    destinations: list[DestinationConfig] = Field(default_factory=list)
    feeds: list[FeedConfig] = Field(default_factory=list)
    dependencies: list[DependencyConfig] = Field(default_factory=list)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    alerts: list[AlertConfig] = Field(default_factory=list)
    backup: BackupConfig | None = None
    server: ServerConfig = Field(default_factory=ServerConfig)
    drills: DrillsConfig = Field(default_factory=DrillsConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    base_dir: Path = Field(default_factory=lambda: Path.cwd(), exclude=True, repr=False)
    _dependency_links = model_validator(mode="after")(check_dependency_links)

    @field_validator("sources", "destinations", "feeds")
    @classmethod
    def _unique_names(cls, items: list[Any], info: ValidationInfo) -> list[Any]:
        kind = str(info.field_name)[:-1]
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            name = item.label if kind == "feed" else item.name
            if name in seen:
                raise _custom(
                    "duplicate",
                    f"duplicate {kind} name {name!r} (already used by "
                    f"{info.field_name}[{seen[name]}]; set name = ...)",
                    suffix=(i, "name"),
                )
            seen[name] = i
        return items

    @property
    def db_path(self) -> str:
        """``storage.db`` resolved against :attr:`base_dir` (``:memory:`` unchanged)."""
        db = self.storage.db
        if db.startswith(":memory:"):
            return db
        path = Path(db).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        return str(path)

    def source_glob(self, source: SourceConfig) -> str:
        """The absolute glob of ``source`` (its ``path`` resolved against :attr:`base_dir`)."""
        return source.resolved_glob(self.base_dir)

    def source(self, name: str) -> SourceConfig | None:
        """The source called ``name``, or None."""
        return next((s for s in self.sources if s.name == name), None)

    def destination(self, name: str) -> DestinationConfig | None:
        """The configured destination called ``name``, or None."""
        return next((d for d in self.destinations if d.name == name), None)

    def vendor_for(self, destination: str) -> str:
        """The vendor of ``destination``: as configured, else guessed from its name."""
        dest = self.destination(destination)
        if dest is not None and "vendor" in dest.model_fields_set:
            return dest.vendor
        return guess_vendor(destination)


def default_config() -> Config:
    """A configuration with every default and no sources (for the demo and ``:memory:`` use)."""
    return Config()
