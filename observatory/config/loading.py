"""Loading ``config.toml``: read, interpolate, validate, and report the first problem safely.

:func:`load_config` reads the TOML file, interpolates ``${NAME}`` references, validates the
result as a :class:`Config` and turns a pydantic error into one :class:`ConfigError` naming the
key, without echoing secret values or values that came from the environment.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from observatory.config.model import Config
from observatory.config.parsing import ConfigError, Loc, _format_key, _interpolate

# Keys whose values are secret wherever they appear: values under them are never echoed.
_SECRET_KEYS = frozenset({"url", "routing_key", "headers", "command", "token"})


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
