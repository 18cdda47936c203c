"""Alert sinks: where incident changes go (``[[alerts]]`` in the config)."""

from observatory.alerts.dispatcher import (
    AlertDeliveryError,
    AlertDispatcher,
    AlertSink,
    BellSink,
    CommandSink,
    PagerDutySink,
    WebhookSink,
    build_sinks,
    pagerduty_event,
    slack_escape,
    slack_message,
)

__all__ = [
    "AlertDeliveryError",
    "AlertDispatcher",
    "AlertSink",
    "BellSink",
    "CommandSink",
    "PagerDutySink",
    "WebhookSink",
    "build_sinks",
    "pagerduty_event",
    "slack_escape",
    "slack_message",
]
