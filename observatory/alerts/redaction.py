"""Keeping alert secrets (webhook URLs, routing keys) out of logs and error messages.

Sinks register the parts of their secret URLs with :func:`_register_secrets`; importing this
module installs a filter on the ``httpx``/``httpcore`` loggers that redacts them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import httpx

from observatory.config import PAGERDUTY_EVENTS_URL

_REDACTED = "[redacted]"
_secrets_lock = threading.Lock()
_secrets: set[str] = set()


def _redact(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a URL is replaced whole rather than leaving its host behind.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _url_fragments(url: str) -> set[str]:
    """The parts of a secret URL worth redacting: the URL itself, its path and query, and any
    password (the host alone is not secret, and too short a path would redact ordinary words)."""
    fragments = {url, url.rstrip("/")}
    if url == PAGERDUTY_EVENTS_URL:  # the public default carries no secret
        return fragments
    try:
        parsed = httpx.URL(url)
    except Exception:  # an unparsable URL is redacted whole
        return fragments
    path_query = parsed.raw_path.decode("ascii", "replace")
    for fragment in (path_query, path_query.rstrip("/"), parsed.query.decode("ascii", "replace")):
        if len(fragment) >= 6:
            fragments.add(fragment)
    if parsed.password:
        fragments.add(parsed.password)
    return fragments


class _RedactingFilter(logging.Filter):
    """Redacts registered secrets from records of third-party loggers (httpx logs every request
    URL at INFO level, and a webhook URL is a credential)."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _secrets_lock:
            secrets = tuple(_secrets)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        redacted = _redact(message, secrets)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_FILTER = _RedactingFilter()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_FILTER)


def _register_secrets(fragments: Iterable[str]) -> None:
    with _secrets_lock:
        _secrets.update(f for f in fragments if f)
