"""Sending alerts over HTTP: the base of the webhook and PagerDuty sinks (POST, status
handling, ``Retry-After``, redacted errors). Retrying is the dispatcher's job."""

from __future__ import annotations

import time

import httpx

from observatory.alerts.errors import AlertDeliveryError
from observatory.alerts.formatting import _clip
from observatory.alerts.redaction import _redact, _register_secrets, _url_fragments
from observatory.config import AlertConfig
from observatory.util.retry_after import parse_retry_after

USER_AGENT = "observatory-alerts/0.1"


class _HttpSink:
    """A sink that POSTs JSON to a secret URL with a sync httpx client (one per sink, created
    in and used only by the sink's worker thread)."""

    kind = "http"
    every_update = False

    def __init__(self, name: str, config: AlertConfig) -> None:
        self.name = name
        self.min_severity = config.min_severity
        self.timeout = float(config.timeout)
        self._config = config  # holds the URL/routing key as SecretStr
        secrets = _url_fragments(config.url_value() or "")
        secrets.add(config.routing_key_value() or "")
        self._secrets = frozenset(s for s in secrets if s)
        _register_secrets(self._secrets)
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, min_severity={self.min_severity!r})"

    def _post(self, body: bytes) -> None:
        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                headers={"user-agent": USER_AGENT},
            )
        url = self._config.url_value() or ""
        try:
            response = self._client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
        except httpx.TimeoutException:
            raise AlertDeliveryError(f"{self.name}: timed out after {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            detail = _redact(str(exc), self._secrets)
            raise AlertDeliveryError(f"{self.name}: {type(exc).__name__}: {detail}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        retry_after = (  # capped at RETRY_AFTER_CAP where the dispatcher waits
            parse_retry_after(response.headers.get("retry-after"), time.time())
            if status in (429, 503)
            else None
        )
        permanent = 400 <= status < 500 and status not in (408, 409, 425, 429)
        try:
            body_text = " ".join(response.text.split())
        except Exception:  # an undecodable body is only detail
            body_text = ""
        detail = _redact(_clip(body_text, 200), self._secrets)
        raise AlertDeliveryError(
            f"{self.name}: HTTP {status}{': ' + detail if detail else ''}",
            retry_after=retry_after,
            permanent=permanent,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
