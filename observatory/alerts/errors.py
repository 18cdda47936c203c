"""The error a sink raises when a delivery attempt fails."""

from __future__ import annotations


class AlertDeliveryError(Exception):
    """A delivery attempt failed.

    The message never contains a secret. ``retry_after`` (seconds) is the wait the receiver
    asked for (``Retry-After`` on 429/503); ``permanent`` means retrying cannot help (e.g. HTTP
    400/403/404: a bad payload or a revoked webhook), so the dispatcher gives up at once.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
