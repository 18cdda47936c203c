"""Feeds that ask a server on a schedule (a Prometheus scrape, the Delivery Overview API).

Polls run at fixed times, on whole seconds (``every`` apart, not "every after the last one"),
so each scrape's delta covers whole seconds and the engine's delay for them is exact. A server
that asks for a pause (Retry-After, ``msBeforeNext``, an exhausted quota's reset) is not asked
again before then (at most ``MAX_BACKOFF`` ahead). What a failed poll would have reported stays
unreported: the engine treats those seconds as unknown, not as a silent flow.
"""

from __future__ import annotations

import math

import httpx

from observatory.feeds.base import Feed, FeedReport
from observatory.probes.base import parse_rate_limit_headers, redact_url
from observatory.probes.scheduler import MAX_BACKOFF


class PollError(Exception):
    """A poll that did not give data: why, in words without secrets."""


class PolledFeed(Feed):
    """Calls :meth:`poll` every ``config.interval`` seconds on its thread, ``poll_offset``
    seconds after a whole multiple of it."""

    poll_offset = 0.05

    def setup(self) -> None:
        self.not_before = 0.0  # a server's "come back at"
        self.client = httpx.Client(
            timeout=float(self.config.timeout),
            headers={"User-Agent": "observatory-feed/0.1", **self.config.header_values()},
            follow_redirects=True,
        )

    def run(self) -> None:
        try:
            every = self.config.interval
            offset = self.poll_offset
            due = math.ceil(self.clock() / every) * every + offset
            while not self.stopping.is_set():
                wait = max(due, self.not_before) - self.clock()
                if wait > 0 and self.stopping.wait(wait):
                    return
                now = self.clock()
                try:
                    report = self.poll(now)
                except PollError as exc:
                    report = FeedReport(self.name, error=str(exc))
                self.send(report)
                # the next whole multiple of `every` after now (a slow poll skips, never bunches)
                due = (math.floor((self.clock() - offset) / every) + 1) * every + offset
        finally:
            self.client.close()

    def poll(self, now: float) -> FeedReport:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def get(self, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        """GET ``url``; a 429 or an exhausted quota sets when to come back. Any failure is a
        PollError (a transport error too), so a kind handles one exception."""
        try:
            response = self.client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise PollError(f"{redact_url(url)}: {_http_error(exc)}") from None
        now = self.clock()
        _, retry_at = parse_rate_limit_headers(response.headers, now)
        if response.status_code == 429 and retry_at is None:
            retry_at = self.body_retry_at(response, now)
            if retry_at is None:
                retry_at = now + self.config.interval
        if retry_at is not None and (response.status_code == 429 or retry_at > now):
            self.not_before = min(max(retry_at, now), now + MAX_BACKOFF)
        if response.status_code == 429:
            raise PollError(
                f"rate limited by {redact_url(url)} (429); next poll in "
                f"{max(0.0, self.not_before - now):.0f} s"
            )
        if not 200 <= response.status_code < 300:
            raise PollError(f"{redact_url(url)} answered {response.status_code}")
        return response

    def body_retry_at(self, response: httpx.Response, now: float) -> float | None:
        return None


def _http_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return type(exc).__name__
