"""``[server]``: the owner's local HTTP API (where viewers and CLI commands attach)."""

from __future__ import annotations

import ipaddress

from pydantic import SecretStr, field_validator, model_validator

from observatory.config.fields import (
    NonEmptyStr,
    _custom,
    _Model,
    check_listen,
    split_host_port,
)

DEFAULT_LISTEN = "127.0.0.1:8787"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerConfig(_Model):
    """``[server]``: the API the owner (``watch``, or a TUI started when no owner runs) serves.

    ``listen`` is loopback by default. The bearer ``token`` is generated at first start into a
    0600 file beside the database unless set here (``token = "${OBSERVATORY_TOKEN}"``); a
    listen address that is not loopback needs it set. ``enabled = false`` serves nothing (the
    database then stays the owner's alone).
    """

    enabled: bool = True
    listen: NonEmptyStr = DEFAULT_LISTEN
    token: SecretStr | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_listen(value, DEFAULT_LISTEN)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise _custom("token", "is too short (at least 16 characters)")
        return value

    @model_validator(mode="after")
    def _exposed_needs_token(self) -> ServerConfig:
        host, _ = split_host_port(self.listen)
        if self.enabled and not is_loopback(host) and self.token is None:
            raise _custom(
                "token",
                f"listen {self.listen} is not loopback: set token explicitly "
                '(token = "${OBSERVATORY_TOKEN}")',
                suffix=("token",),
            )
        return self
