"""The building blocks of the config models: annotated field types and shared validators.

``Duration``, ``NonEmptyStr`` and ``Column`` (with :data:`CANONICAL_COLUMNS`); the
``BeforeValidator`` functions that read durations, rate budgets and commands; the http(s) URL
check; ``_custom``, which builds errors the loader can report without echoing secrets; and
``_Model``, the base of every config table.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr
from pydantic_core import PydanticCustomError

from observatory.config.parsing import (
    _DURATION_HINT,
    _RATE_HINT,
    parse_duration,
    parse_rate_budget,
)

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
    "rate_limit_used",
]
CANONICAL_COLUMNS: tuple[str, ...] = typing.get_args(Column)
"""The canonical columns a source may map (keys of ``fields``, ``static`` and ``map``), in the
order of ``events`` after ``ingested_at, source``. ``rate_limit_used``: the share of its rate
limit (percent) the destination reported with the delivery, e.g. mParticle's
``X-mp-rate-limit-percentage-used`` header value, when the forwarder logs it."""


def _check_http_url(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    raw = value.get_secret_value().strip()
    if not re.match(r"^https?://[^\s/]+", raw, re.IGNORECASE):
        raise _custom("url", "must be an http:// or https:// URL")
    return value


def check_link(value: str | None) -> str | None:
    """A plain (not secret) http(s) URL, such as a runbook or a documentation page: stripped,
    and refused when it is not http:// or https:// (it ends up as a link in documents)."""
    if value is None:
        return None
    raw = value.strip()
    if not re.match(r"^https?://[^\s/]+\S*$", raw, re.IGNORECASE):
        raise _custom("url", "must be an http:// or https:// URL (no spaces)", value)
    return raw


class _Model(BaseModel):
    """Base for every config table: unknown keys are errors, and inputs (which may be secrets)
    are left out of ``str(ValidationError)``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8787`` for IPv6) -> (host, port); ValueError if it is not one."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def check_listen(value: str, example: str) -> str:
    """A ``HOST:PORT`` listen address (``[::1]:8787`` for IPv6), stripped."""
    try:
        split_host_port(value)
    except ValueError:
        raise _custom("listen", f"is not HOST:PORT (e.g. {example})", value) from None
    return value.strip()
