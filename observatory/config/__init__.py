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

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from observatory.ingest.classify import guess_vendor

__all__ = [
    "CANONICAL_COLUMNS",
    "PAGERDUTY_EVENTS_URL",
    "AlertConfig",
    "BackupConfig",
    "Config",
    "ConfigError",
    "DestinationConfig",
    "DetectionConfig",
    "ProbeConfig",
    "SourceConfig",
    "StorageConfig",
    "default_config",
    "load_config",
    "parse_duration",
    "parse_rate_budget",
]

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration problem, tied to the key it concerns.

    ``key`` is a dotted path such as ``sources[0].format`` (or ``config`` for file-level
    problems) and ``message`` a one-line, human explanation that never contains a secret.
    ``str(err)`` is ``f"{key}: {message}"``.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = " ".join(message.split())  # always one line
        super().__init__(f"{self.key}: {self.message}")

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


# --------------------------------------------------------------------------------------------
# Durations and rate budgets
# --------------------------------------------------------------------------------------------

_UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DURATION_HINT = "use e.g. 30s, 5m, 7d"


def parse_duration(value: str | int | float) -> float:
    """Return ``value`` as seconds.

    Accepts numbers (seconds) and strings such as ``"500ms"``, ``"1s"``, ``"5m"``, ``"2h"``,
    ``"7d"``, ``"1w"``, ``"1h30m"`` or ``"90"``. Raises :class:`ValueError` for anything else,
    including negative and non-finite values.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({_DURATION_HINT})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            if text.startswith("-"):
                raise ValueError(f"{value!r}: a duration must not be negative")
            seconds = 0.0
            pos = 0
            while pos < len(text):
                match = _DURATION_PART.match(text, pos)
                if match is None:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if not text or pos != len(text):
                raise ValueError(f"{value!r} is not a duration ({_DURATION_HINT})")
    else:
        raise ValueError(f"{value!r} is not a duration ({_DURATION_HINT})")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration must not be negative")
    return seconds


_NAMED_PERIODS: dict[str, float] = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 604800.0,
    "month": 30 * 86400.0,
    "year": 365 * 86400.0,
}
_RATE_HINT = "use e.g. 1/week, 2/day, 3/7d"


def parse_rate_budget(value: str) -> tuple[int, float]:
    """Parse a budget ``"COUNT/PERIOD"`` into ``(count, period_seconds)``.

    ``PERIOD`` is a name (``second``, ``minute``, ``hour``, ``day``, ``week``, ``month`` = 30 days,
    ``year`` = 365 days) or any duration (``7d``, ``12h``). ``"1/week"`` -> ``(1, 604800.0)``.
    Raises :class:`ValueError` otherwise.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a rate budget ({_RATE_HINT})")
    count_text, sep, period_text = value.partition("/")
    count_text, period_text = count_text.strip(), period_text.strip()
    if not sep or not count_text.isdigit() or not period_text:
        raise ValueError(f"{value!r} is not a rate budget ({_RATE_HINT})")
    count = int(count_text)
    if count < 1:
        raise ValueError(f"{value!r}: the count must be at least 1")
    name = period_text.lower()
    if name in _NAMED_PERIODS:
        period = _NAMED_PERIODS[name]
    elif name.endswith("s") and name[:-1] in _NAMED_PERIODS:
        period = _NAMED_PERIODS[name[:-1]]
    else:
        try:
            period = parse_duration(period_text)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate budget ({_RATE_HINT})") from None
    if period <= 0:
        raise ValueError(f"{value!r}: the period must be longer than zero")
    return count, period


# --------------------------------------------------------------------------------------------
# Annotated field types
# --------------------------------------------------------------------------------------------


def _custom(kind: str, detail: str, value: Any = None, suffix: tuple[str | int, ...] = ()) -> Any:
    """Build a PydanticCustomError whose message the error formatter can assemble safely.

    ``detail`` must not contain the offending value; the formatter prefixes ``repr(value)``
    itself, unless the field is secret or was interpolated from the environment.
    """
    ctx: dict[str, Any] = {"detail": detail, "suffix": suffix}
    if value is not None:
        ctx["value"] = value
    return PydanticCustomError(kind, "{detail}", ctx)


def _duration_before(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise _custom("duration", f"is not a duration ({_DURATION_HINT})", value)


def _budget_before(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_rate_budget(value)
        except ValueError:
            raise _custom("rate_budget", f"is not a rate budget ({_RATE_HINT})", value) from None
    if isinstance(value, list | tuple) and len(value) == 2:
        return tuple(value)
    raise _custom("rate_budget", f"is not a rate budget ({_RATE_HINT})", value)


def _command_before(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _custom("command_type", "expected a string or a list of strings")


Duration = Annotated[float, BeforeValidator(_duration_before)]
"""Seconds; accepts duration strings (``"30s"``) and plain numbers."""

NonEmptyStr = Annotated[str, Field(min_length=1)]

Column = Literal[
    "ts",
    "destination",
    "event_name",
    "message_id",
    "outcome",
    "http_status",
    "error_code",
    "error_message",
    "latency_ms",
    "attempt",
]
CANONICAL_COLUMNS: tuple[str, ...] = typing.get_args(Column)
"""The canonical columns a source may map (keys of ``fields``, ``static`` and ``map``)."""

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$", re.IGNORECASE)


def _check_http_url(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    raw = value.get_secret_value().strip()
    if not re.match(r"^https?://[^\s/]+", raw, re.IGNORECASE):
        raise _custom("url", "must be an http:// or https:// URL")
    return value


class _Model(BaseModel):
    """Base for every config table: unknown keys are errors, and inputs (which may be secrets)
    are left out of ``str(ValidationError)``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class StorageConfig(_Model):
    """``[storage]``: the DuckDB database and its limits.

    ``db`` is kept as written; :attr:`Config.db_path` gives it resolved against the config
    file's directory (``":memory:"`` is passed through).
    """

    db: NonEmptyStr = "observatory.duckdb"
    retention: Duration = Field(default=parse_duration("7d"), gt=0)
    memory_limit: str = "256MB"
    threads: int | None = Field(default=None, ge=1)
    # the TUI's SQL console may read files and URLs (read_csv, 'file.parquet', httpfs)
    sql_external_access: bool = False

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, value: str) -> str:
        value = value.strip()
        if not _MEMORY_RE.match(value):
            raise _custom("memory_size", "is not a memory size (use e.g. 256MB, 1GiB)", value)
        return value


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
    preset: Literal["nginx_upstream"] | None = None
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
    def _regex_needs_pattern(self) -> SourceConfig:
        if self.format == "regex":
            if self.pattern is None and self.preset is None:
                raise _custom(
                    "required",
                    "required when format = 'regex' (or set preset = 'nginx_upstream')",
                    suffix=("pattern",),
                )
        elif self.preset is not None:
            raise _custom("preset", "only allowed with format = 'regex'", suffix=("preset",))
        elif self.pattern is not None:
            raise _custom("pattern", "only allowed with format = 'regex'", suffix=("pattern",))
        return self

    def resolved_glob(self, base_dir: str | Path) -> str:
        """The ``path`` glob made absolute against ``base_dir`` (``~`` is expanded)."""
        path = Path(self.path).expanduser()
        if not path.is_absolute():
            path = Path(base_dir) / path
        return str(path)


class ProbeConfig(_Model):
    """``[[destinations.probes]]``: an active check of a destination or status API.

    ``url`` and ``headers`` are secrets (they may carry tokens): read them with
    :meth:`url_value` and :meth:`header_values`, never log them.
    """

    kind: Literal["statuspage", "segment_delivery", "prometheus", "http"]
    url: SecretStr
    component: str | None = None
    every: Duration = Field(default=parse_duration("30s"), gt=0)
    timeout: Duration = Field(default=parse_duration("5s"), gt=0)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    expect_status: int = Field(default=200, ge=100, le=599)
    selector: str | None = None
    method: Literal["GET", "HEAD"] = "GET"

    _url = field_validator("url")(_check_http_url)

    def url_value(self) -> str:
        """The probe URL in clear (for making the request only)."""
        return self.url.get_secret_value()

    def header_values(self) -> dict[str, str]:
        """The request headers in clear (for making the request only)."""
        return {k: v.get_secret_value() for k, v in self.headers.items()}


class DestinationConfig(_Model):
    """``[[destinations]]``: a known destination, its vendor and its probes.

    Destinations seen in logs are discovered automatically; configuring one only adds a vendor
    and probes.
    """

    name: NonEmptyStr
    vendor: Literal["tiktok", "meta", "google_ads", "webhook", "generic"] = "generic"
    probes: list[ProbeConfig] = Field(default_factory=list)


class DetectionConfig(_Model):
    """``[detection]``: detector tick, false-alarm budget and warm-up/staleness windows."""

    tick: Duration = Field(default=parse_duration("1s"), gt=0)
    false_alarm_budget: Annotated[tuple[int, float], BeforeValidator(_budget_before)] = (
        parse_rate_budget("1/week")
    )
    silence_floor: Duration = parse_duration("5s")
    staleness: Duration = parse_duration("10m")
    warmup: Duration = parse_duration("3m")
    warmup_events: int = Field(default=50, ge=0)

    @field_validator("false_alarm_budget")
    @classmethod
    def _budget(cls, value: tuple[int, float]) -> tuple[int, float]:
        if value[0] < 1 or not math.isfinite(value[1]) or value[1] <= 0:
            raise _custom("rate_budget", f"is not a rate budget ({_RATE_HINT})")
        return value


class AlertConfig(_Model):
    """``[[alerts]]``: where incident notifications go.

    ``webhook`` (Slack-compatible JSON) needs ``url``; ``pagerduty`` (Events v2) needs
    ``routing_key`` and defaults ``url`` to :data:`PAGERDUTY_EVENTS_URL`; ``command`` needs
    ``command`` (an argv list, or a string split with :func:`shlex.split`); ``bell`` rings the
    terminal bell. ``url`` and ``routing_key`` are secrets.
    """

    kind: Literal["webhook", "pagerduty", "bell", "command"]
    url: SecretStr | None = None
    routing_key: SecretStr | None = None
    command: Annotated[list[str] | str | None, BeforeValidator(_command_before)] = None
    timeout: Duration = Field(default=parse_duration("5s"), gt=0)
    min_severity: Literal["warning", "error", "critical"] = "warning"

    _url = field_validator("url")(_check_http_url)

    @model_validator(mode="after")
    def _kind_requirements(self) -> AlertConfig:
        if self.kind == "webhook" and self.url is None:
            raise _custom("required", "required for kind = 'webhook'", suffix=("url",))
        if self.kind == "pagerduty":
            if self.routing_key is None or not self.routing_key.get_secret_value():
                raise _custom(
                    "required", "required for kind = 'pagerduty'", suffix=("routing_key",)
                )
            if self.url is None:
                self.url = SecretStr(PAGERDUTY_EVENTS_URL)
        if self.kind == "command" and not self.command_argv():
            raise _custom("required", "required for kind = 'command'", suffix=("command",))
        return self

    def url_value(self) -> str | None:
        """The alert URL in clear, or None."""
        return self.url.get_secret_value() if self.url is not None else None

    def routing_key_value(self) -> str | None:
        """The PagerDuty routing key in clear, or None."""
        return self.routing_key.get_secret_value() if self.routing_key is not None else None

    def command_argv(self) -> list[str]:
        """``command`` as an argv list (a string is split with :func:`shlex.split`)."""
        if self.command is None:
            return []
        if isinstance(self.command, str):
            return shlex.split(self.command)
        return list(self.command)


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$", re.IGNORECASE)
_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def _size_before(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _SIZE_RE.match(value.strip())
        if match:
            unit = (match.group(2) or "B").lower()
            return int(float(match.group(1)) * _SIZE_UNITS[unit])
    raise _custom("size", "is not a size (use e.g. 1MB, 512KB, 1MiB or a number of bytes)", value)


class BackupConfig(_Model):
    """``[backup]``: the backup webhook receiver and reconciliation.

    A customer-data platform's webhook destination (Segment's sends ``X-Signature`` = hex
    HMAC-SHA1 of the raw body keyed by ``secret``) POSTs every event to ``listen`` + ``path``
    as well; reconciliation checks each one was delivered to every name in ``destinations``.
    A delivery later than ``window`` after the backup received the event is late; an event
    still undelivered after ``window`` is missing. ``retry_window`` is how long the platform
    keeps retrying a failing event (Segment 4 h, RudderStack 3 h), with per-destination
    overrides in ``retry_windows``. ``secret`` is a secret: read it with :meth:`secret_value`.
    """

    listen: NonEmptyStr = "127.0.0.1:8765"
    path: NonEmptyStr = "/webhook"
    secret: SecretStr
    destinations: list[NonEmptyStr]
    window: Duration = Field(default=parse_duration("10m"), gt=0)
    max_body: Annotated[int, BeforeValidator(_size_before)] = Field(default=1_000_000, ge=1)
    retry_window: Duration = Field(default=parse_duration("4h"), gt=0)
    retry_windows: dict[NonEmptyStr, Duration] = Field(default_factory=dict)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise _custom("listen", "is not HOST:PORT (e.g. 127.0.0.1:8765)", value)
        return value.strip()

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value) or "?" in value:
            raise _custom("path", "must be a URL path starting with / (e.g. /webhook)", value)
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise _custom("empty", "must not be empty")
        return value

    @field_validator("destinations")
    @classmethod
    def _destinations(cls, value: list[str]) -> list[str]:
        if not value:
            raise _custom("empty", "must name at least one destination")
        return list(dict.fromkeys(value))

    @field_validator("retry_windows")
    @classmethod
    def _retry_windows(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            if seconds <= 0:
                raise _custom("duration", "must be longer than zero", suffix=(name,))
        return value

    @property
    def host(self) -> str:
        """The address to listen on (brackets of an IPv6 literal removed)."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port to listen on (0: any free port)."""
        return int(self.listen.rpartition(":")[2])

    def secret_value(self) -> str:
        """The shared secret in clear (for checking signatures only)."""
        return self.secret.get_secret_value()

    def retry_window_for(self, destination: str) -> float:
        """Seconds the platform keeps retrying a failing event for ``destination``."""
        return self.retry_windows.get(destination, self.retry_window)


class Config(_Model):
    """The whole configuration.

    ``base_dir`` is the directory of the config file (set by :func:`load_config`; the current
    directory otherwise); it cannot be set from TOML, and relative ``storage.db`` and source
    ``path`` values are resolved against it.
    """

    storage: StorageConfig = Field(default_factory=StorageConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    destinations: list[DestinationConfig] = Field(default_factory=list)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    alerts: list[AlertConfig] = Field(default_factory=list)
    backup: BackupConfig | None = None
    base_dir: Path = Field(default_factory=lambda: Path.cwd(), exclude=True, repr=False)

    @field_validator("sources", "destinations")
    @classmethod
    def _unique_names(cls, items: list[Any], info: ValidationInfo) -> list[Any]:
        kind = "source" if info.field_name == "sources" else "destination"
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.name in seen:
                raise _custom(
                    "duplicate",
                    f"duplicate {kind} name {item.name!r} (already used by "
                    f"{info.field_name}[{seen[item.name]}])",
                    suffix=(i, "name"),
                )
            seen[item.name] = i
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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]

_INTERPOLATION = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Keys whose values are secret wherever they appear: values under them are never echoed.
_SECRET_KEYS = frozenset({"url", "routing_key", "headers", "command"})


def _format_key(loc: Loc) -> str:
    """``("sources", 0, "format")`` -> ``sources[0].format``; empty -> ``config``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY.match(part) else json.dumps(part)
            out += f".{text}" if out else text
    return out or "config"


def _interpolate_str(text: str, loc: Loc) -> tuple[str, bool]:
    """Replace ``${NAME}`` with the environment value; ``$${`` -> ``${``."""
    used_env = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used_env
        token = match.group(0)
        if token == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            raise ConfigError(
                _format_key(loc), "unterminated ${ (write ${NAME}, or $${ for a literal ${)"
            )
        if not _ENV_NAME.match(name):
            raise ConfigError(
                _format_key(loc),
                f"invalid environment variable reference ${{{name}}} "
                "(write ${NAME}, or $${ for a literal ${)",
            )
        if name not in os.environ:
            raise ConfigError(_format_key(loc), f"environment variable {name} is not set")
        used_env = True
        return os.environ[name]

    return _INTERPOLATION.sub(replace, text), used_env


def _interpolate(value: Any, loc: Loc, tainted: set[Loc]) -> Any:
    """Interpolate every string in ``value``; record the locations that used the environment."""
    if isinstance(value, str):
        result, used_env = _interpolate_str(value, loc)
        if used_env:
            tainted.add(loc)
        return result
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), tainted) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), tainted) for i, v in enumerate(value)]
    return value


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated/Optional/list/dict wrappers down to a model class where there is one."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if not models:
                return annotation
            annotation = models[0]
        else:
            return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose table is at ``loc`` (for suggesting key names), if any."""
    current: Any = Config
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
            continue
        origin = typing.get_origin(current)
        if origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _is_secret(loc: Loc, tainted: set[Loc]) -> bool:
    """True when the value at ``loc`` must not be echoed."""
    if any(isinstance(p, str) and p in _SECRET_KEYS for p in loc):
        return True
    for t in tainted:
        n = min(len(t), len(loc))
        if t[:n] == loc[:n]:
            return True
    return False


def _with_value(value: Any, detail: str, show: bool) -> str:
    if show and isinstance(value, str | int | float) and not isinstance(value, bool):
        return f"{value!r} {detail}"
    return f"value {detail}" if detail.startswith("is ") else detail


def _describe(error: Any, tainted: set[Loc]) -> ConfigError:
    """Turn one pydantic error dict into a ConfigError without echoing secret input."""
    loc: Loc = tuple(error.get("loc", ()))
    kind: str = error.get("type", "")
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")

    if loc and loc[-1] == "[key]":  # a dict key outside its allowed literal set
        loc = loc[:-1]
        if kind == "literal_error" and loc and loc[-1] == value:
            valid = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
            return ConfigError(_format_key(loc), f"unknown column (valid: {valid})")
    loc = (*loc, *ctx.get("suffix", ()))
    show = not _is_secret(loc, tainted)
    key = _format_key(loc)

    if "detail" in ctx:  # raised by this module's validators
        return ConfigError(key, _with_value(ctx.get("value"), str(ctx["detail"]), show))
    if kind == "missing":
        return ConfigError(key, "required key is missing")
    if kind == "extra_forbidden":
        message = "unknown key"
        parent = _model_at(loc[:-1])
        if parent is not None and isinstance(loc[-1], str):
            names = [n for n, f in parent.model_fields.items() if not f.exclude]
            close = difflib.get_close_matches(loc[-1], names, n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        return ConfigError(key, message)
    if kind == "literal_error":
        options = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return ConfigError(key, _with_value(value, f"is not one of {options}", show))
    simple = {
        "string_type": "expected a string",
        "int_type": "expected an integer",
        "int_parsing": "expected an integer",
        "int_from_float": "expected an integer",
        "float_type": "expected a number",
        "float_parsing": "expected a number",
        "bool_type": "expected true or false",
        "bool_parsing": "expected true or false",
        "list_type": "expected a list (an array, or [[tables]])",
        "tuple_type": "expected a list",
        "dict_type": "expected a table",
        "model_type": "expected a table",
        "model_attributes_type": "expected a table",
    }
    if kind in simple:
        return ConfigError(key, simple[kind])
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return ConfigError(key, "must not be empty")
    bounds = {
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
    }
    if kind in bounds:
        return ConfigError(key, bounds[kind].format(**ctx))
    # Fallback: pydantic's msg never embeds the input value (unlike str(ValidationError)).
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    return ConfigError(key, message)


def _from_validation_error(exc: ValidationError, tainted: set[Loc]) -> ConfigError:
    errors = exc.errors(include_url=False)
    if not errors:
        return ConfigError("config", "invalid configuration")
    first = errors[0]
    if first["type"] == "missing":
        # A misspelt key shows up as "missing X" plus "unknown Y" in the same table; the
        # unknown key (with its "did you mean") is the more useful one to report.
        parent = tuple(first["loc"])[:-1]
        for other in errors:
            if other["type"] == "extra_forbidden" and tuple(other["loc"])[:-1] == parent:
                first = other
                break
    return _describe(first, tainted)


def load_config(path: str | Path) -> Config:
    """Read, interpolate and validate the TOML config at ``path``.

    Raises :class:`ConfigError` (key ``config`` for a missing or unparsable file, otherwise the
    dotted key of the first invalid setting).
    """
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {file}") from None
    except IsADirectoryError:
        raise ConfigError("config", f"not a file: {file}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"invalid TOML in {file}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("config", f"{file} is not valid UTF-8") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {file}: {exc.strerror}") from None

    if "base_dir" in data:
        raise ConfigError("base_dir", "unknown key")
    tainted: set[Loc] = set()
    data = _interpolate(data, (), tainted)
    data["base_dir"] = file.resolve().parent
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _from_validation_error(exc, tainted) from None
