"""Building the sinks the config asks for, one per ``[[alerts]]`` entry."""

from __future__ import annotations

from typing import TextIO

from observatory.alerts.base import AlertSink
from observatory.alerts.bell import BellSink, _default_bell_stream
from observatory.alerts.command import CommandSink
from observatory.alerts.pagerduty import PagerDutySink
from observatory.alerts.webhook import WebhookSink
from observatory.config import AlertConfig


def build_sinks(alerts: list[AlertConfig], *, bell_stream: TextIO | None = None) -> list[AlertSink]:
    """One sink per ``[[alerts]]`` entry, named ``{kind}[{index}]``.

    ``bell_stream`` is where a bell sink writes ``\\a``; by default ``sys.stderr`` when it is a
    terminal, else nowhere.
    """
    sinks: list[AlertSink] = []
    for index, config in enumerate(alerts):
        name = f"{config.kind}[{index}]"
        if config.kind == "webhook":
            sinks.append(WebhookSink(name, config))
        elif config.kind == "pagerduty":
            sinks.append(PagerDutySink(name, config))
        elif config.kind == "bell":
            stream = bell_stream if bell_stream is not None else _default_bell_stream()
            sinks.append(BellSink(name, config, stream))
        elif config.kind == "command":
            sinks.append(CommandSink(name, config))
        else:  # pragma: no cover - the config model admits only the kinds above
            raise ValueError(f"alerts[{index}].kind: unknown alert kind")
    return sinks
