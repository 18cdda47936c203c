"""Configuration: load, interpolate and validate ``config.toml``.

The file is TOML (read with :mod:`tomllib`). Every string value may reference environment
variables as ``${NAME}``; ``$${`` writes a literal ``${``. The result is validated by pydantic
models that forbid unknown keys, and any problem is reported as a single :class:`ConfigError`
whose ``key`` names the offending setting (``sources[0].format``, ``storage.retention``, or
``config`` for problems with the file itself).

Secrets (probe URLs and headers, alert URLs and routing keys, alert commands and any value that
came from an environment variable) are never echoed in error messages, and the secret-typed fields
are :class:`pydantic.SecretStr`, so ``repr()``/``str()`` of a config never shows them.

Durations are written as ``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``, ``"1w"`` or
combinations such as ``"1h30m"`` (plain numbers are seconds) and are stored as float seconds.
"""

from observatory.config.dependencies import (
    DependencyConfig,
    ResponsePlan,
    dependents,
    response_plan,
)
from observatory.config.destinations import DestinationConfig, ProbeConfig, ResponseFields
from observatory.config.feeds import FeedConfig
from observatory.config.fields import CANONICAL_COLUMNS
from observatory.config.loading import load_config
from observatory.config.model import Config, default_config
from observatory.config.parsing import ConfigError, parse_duration, parse_rate_budget
from observatory.config.sections import (
    PAGERDUTY_EVENTS_URL,
    AlertConfig,
    BackupConfig,
    DetectionConfig,
    DrillsConfig,
    StorageConfig,
)
from observatory.config.server import ServerConfig
from observatory.config.sources import SourceConfig
from observatory.config.ui import UiConfig

__all__ = [
    "ServerConfig",
    "CANONICAL_COLUMNS",
    "PAGERDUTY_EVENTS_URL",
    "AlertConfig",
    "BackupConfig",
    "Config",
    "ConfigError",
    "DependencyConfig",
    "DestinationConfig",
    "DetectionConfig",
    "DrillsConfig",
    "FeedConfig",
    "ProbeConfig",
    "ResponseFields",
    "ResponsePlan",
    "SourceConfig",
    "StorageConfig",
    "UiConfig",
    "default_config",
    "dependents",
    "load_config",
    "parse_duration",
    "parse_rate_budget",
    "response_plan",
]
