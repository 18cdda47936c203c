"""Feeds: a platform's own metrics and APIs as live input (DESIGN "Feeds").

``build_feeds`` makes the config's ``[[feeds]]``; each reports :class:`FeedReport` objects to
the runtime (``observatory.runtime``), which stores, judges and shows them like log lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from observatory.feeds.base import Feed, FeedReport
from observatory.feeds.delivery_overview import DeliveryOverviewFeed
from observatory.feeds.prometheus import PrometheusFeed
from observatory.feeds.statsd import StatsdFeed

if TYPE_CHECKING:
    from observatory.config import Config

__all__ = ["Feed", "FeedReport", "build_feeds"]

KINDS: dict[str, type[Feed]] = {
    "statsd": StatsdFeed,
    "prometheus": PrometheusFeed,
    "segment_delivery_overview": DeliveryOverviewFeed,
}


def build_feeds(config: Config, emit: Callable[[FeedReport], None]) -> list[Feed]:
    """The config's feeds, not started (a statsd feed is already bound to its port)."""
    from observatory.config import ConfigError

    feeds: list[Feed] = []
    try:
        for i, feed in enumerate(config.feeds):
            try:
                feeds.append(KINDS[feed.kind](feed, emit))
            except OSError as exc:  # a statsd port another daemon holds
                raise ConfigError(
                    f"feeds[{i}].listen",
                    f"cannot listen on udp {feed.listen}: {exc.strerror or exc} "
                    "(another statsd daemon? set listen to a free port)",
                ) from None
    except BaseException:
        for made in feeds:
            made.stop()
        raise
    return feeds
