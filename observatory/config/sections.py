"""The single settings tables: ``[storage]``, ``[detection]``, ``[[alerts]]`` and ``[backup]``.

:class:`StorageConfig`, :class:`DetectionConfig`, :class:`AlertConfig` (with
:data:`PAGERDUTY_EVENTS_URL`) and :class:`BackupConfig` (with its byte-size parsing).
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from observatory.config.fields import (
    Duration,
    NonEmptyStr,
    _budget_before,
    _check_http_url,
    _command_before,
    _custom,
    _Model,
    check_listen,
)
from observatory.config.parsing import _RATE_HINT, parse_duration, parse_rate_budget

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$", re.IGNORECASE)


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


class DrillsConfig(_Model):
    """``[drills]``: fire drills (``observatory drill``) and when the next one is due.

    ``every``: a drill that passed longer ago than this is overdue (the status line says so).
    ``detect_within``: the drill's fault must be detected this soon; ``confirm_within``: each
    alert sink must confirm the open (and later the resolve) this soon after it.
    """

    every: Duration = Field(default=parse_duration("90d"), gt=0)
    detect_within: Duration = Field(default=parse_duration("5s"), gt=0)
    confirm_within: Duration = Field(default=parse_duration("10s"), gt=0)


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

    A customer-data platform's webhook destination POSTs every event to ``listen`` + ``path``
    as well; reconciliation checks each one was delivered to every name in ``destinations``.
    Requests prove where they come from by ``X-Signature`` = hex HMAC-SHA1 of the raw body
    keyed by ``secret`` (Segment), or by an ``Authorization`` header equal to
    ``authorization`` (mParticle's Webhook output sends a configured header and does not
    sign); at least one of the two is required, and either passes when both are set.
    A delivery later than ``window`` after the backup received the event is late; an event
    still undelivered after ``window`` is missing. ``retry_window`` is how long the platform
    keeps retrying a failing event (Segment 4 h, RudderStack 3 h), with per-destination
    overrides in ``retry_windows``. ``secret`` and ``authorization`` are secrets: read them
    with :meth:`secret_value` and :meth:`authorization_value`.
    """

    listen: NonEmptyStr = "127.0.0.1:8765"
    path: NonEmptyStr = "/webhook"
    secret: SecretStr | None = None
    authorization: SecretStr | None = None
    destinations: list[NonEmptyStr]
    window: Duration = Field(default=parse_duration("10m"), gt=0)
    max_body: Annotated[int, BeforeValidator(_size_before)] = Field(default=1_000_000, ge=1)
    retry_window: Duration = Field(default=parse_duration("4h"), gt=0)
    retry_windows: dict[NonEmptyStr, Duration] = Field(default_factory=dict)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_listen(value, "127.0.0.1:8765")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value) or "?" in value:
            raise _custom("path", "must be a URL path starting with / (e.g. /webhook)", value)
        return value

    @field_validator("secret", "authorization")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise _custom("empty", "must not be empty")
        return value

    @model_validator(mode="after")
    def _some_authentication(self) -> BackupConfig:
        if self.secret is None and self.authorization is None:
            raise _custom(
                "required",
                "required (or authorization, the Authorization header mParticle sends)",
                suffix=("secret",),
            )
        return self

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

    def secret_value(self) -> str | None:
        """The shared secret in clear (for checking signatures only), or None."""
        return self.secret.get_secret_value() if self.secret is not None else None

    def authorization_value(self) -> str | None:
        """The expected ``Authorization`` header in clear (for comparing only), or None."""
        return self.authorization.get_secret_value() if self.authorization is not None else None

    def retry_window_for(self, destination: str) -> float:
        """Seconds the platform keeps retrying a failing event for ``destination``."""
        return self.retry_windows.get(destination, self.retry_window)
