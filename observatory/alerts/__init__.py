"""Alert sinks: where incident changes go (``[[alerts]]`` in the config).

One sink per ``[[alerts]]`` entry:

- :class:`WebhookSink` posts a Slack-compatible incoming-webhook message
  (``{"text": ..., "blocks": [...]}``);
- :class:`PagerDutySink` sends Events API v2 events (trigger / acknowledge / resolve, with a
  dedup key stable across the incident's changes);
- :class:`BellSink` rings the terminal bell on open and escalation;
- :class:`CommandSink` runs a command (no shell) with the incident JSON line on stdin.

:class:`AlertDispatcher` decouples them from the engine: :meth:`AlertDispatcher.publish` never
blocks and never raises; it filters the change for each sink (historical incidents and those
below the sink's ``min_severity`` are skipped, updates that change nothing a human would notice
are coalesced away) and puts a snapshot on the sink's bounded queue, dropping the oldest entry
when the queue is full. One worker thread per sink delivers, retrying failures with exponential
backoff and jitter (a ``Retry-After`` from the sink wins), up to ``max_attempts``.

Secrets (webhook URLs, routing keys, commands) never appear in log records, exception messages,
stats or reprs: sinks are named after their position in the config (``webhook[0]``) and the
``httpx``/``httpcore`` loggers get a filter that redacts the registered secrets.

Where things live: :mod:`~observatory.alerts.dispatcher` (queues, workers, retries),
:mod:`~observatory.alerts.webhook` and :mod:`~observatory.alerts.pagerduty` (payloads and
sinks), :mod:`~observatory.alerts.http_sink` (HTTP sending), :mod:`~observatory.alerts.bell`,
:mod:`~observatory.alerts.command`, :mod:`~observatory.alerts.build` (sinks from the config),
:mod:`~observatory.alerts.redaction` (secrets kept out of logs).
"""

from observatory.alerts.base import AlertSink
from observatory.alerts.bell import BellSink
from observatory.alerts.build import build_sinks
from observatory.alerts.command import CommandSink
from observatory.alerts.dispatcher import AlertDispatcher
from observatory.alerts.errors import AlertDeliveryError
from observatory.alerts.pagerduty import PagerDutySink, pagerduty_event
from observatory.alerts.webhook import WebhookSink, slack_escape, slack_message

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
