"""The webhook sink: Slack-compatible incoming-webhook messages (``{"text": ..., "blocks":
[...]}``) and :class:`WebhookSink`, which posts them."""

from __future__ import annotations

from typing import Any

from observatory.alerts.base import _escalated
from observatory.alerts.formatting import _clip, _compact, _headline, _impact_text, _json_bytes
from observatory.alerts.http_sink import _HttpSink
from observatory.config import AlertConfig
from observatory.incidents.model import Change
from observatory.util.durations import format_duration
from observatory.util.isotime import iso


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack documents, so untrusted text cannot form links,
    mentions (``<!channel>``, ``<@U123>``) or other control sequences."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_EMOJI = {"critical": ":rotating_light:", "error": ":rotating_light:", "warning": ":warning:"}


def slack_message(change: Change, *, escalated: bool = False) -> dict[str, Any]:
    """The Slack incoming-webhook body for ``change``; all untrusted text is escaped."""
    inc = change.incident
    if change.kind == "resolved":
        emoji, label = ":white_check_mark:", "resolved"
    elif inc.state == "acknowledged":
        emoji, label = ":eyes:", "acknowledged"
    elif change.kind == "update":
        label = "escalated" if escalated else "updated"
        emoji = _EMOJI.get(inc.severity, ":warning:")
    else:
        emoji, label = _EMOJI.get(inc.severity, ":warning:"), ""
    headline = slack_escape(_clip(_headline(change), 600))
    text = f"{emoji} {label + ' ' if label else ''}{headline}"
    if change.kind == "resolved" and inc.resolved_at is not None:
        # the outage, not the quiet period the engine waited before resolving
        end = inc.outage_end if inc.outage_end is not None else inc.resolved_at
        text += f" (outage lasted {format_duration(end - inc.onset)})"

    def field(title: str, value: str) -> dict[str, str]:
        return {"type": "mrkdwn", "text": f"*{title}*\n{slack_escape(_clip(value, 400))}"}

    detectors = inc.detectors or [inc.detector]
    fields = [
        field("Destination", inc.destination),
        field("Detectors", ", ".join(detectors)),
        field("Severity", inc.severity),
        field("Onset", iso(inc.onset) or "—"),
        field("Detected", iso(inc.detected_at) or "—"),
        field("Time to detect", format_duration(inc.detected_at - inc.onset)),
        field("Impact", _impact_text(inc.impact)),
    ]
    if inc.acknowledged_at is not None:
        fields.append(field("Acknowledged", iso(inc.acknowledged_at) or "—"))
    if inc.resolved_at is not None:
        fields.append(field("Resolved", iso(inc.resolved_at) or "—"))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": fields[:10]},
    ]
    if inc.evidence:
        lines = [
            f"• {slack_escape(_clip(str(key), 60))}: {slack_escape(_compact(value, 300))}"
            for key, value in list(inc.evidence.items())[:8]
        ]
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("*Evidence*\n" + "\n".join(lines), 2900)},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"observatory · incident {slack_escape(_clip(inc.id, 200))}",
                }
            ],
        }
    )
    return {"text": text, "blocks": blocks}


class WebhookSink(_HttpSink):
    """A Slack-compatible incoming webhook."""

    kind = "webhook"

    def __init__(self, name: str, config: AlertConfig) -> None:
        super().__init__(name, config)
        self._seen: dict[str, int] = {}
        self._pending: tuple[Change, bytes] | None = None  # a retry resends the same body

    def deliver(self, change: Change) -> None:
        if self._pending is None or self._pending[0] is not change:
            escalated = _escalated(self._seen, change.incident, change.kind)
            self._pending = (change, _json_bytes(slack_message(change, escalated=escalated)))
        self._post(self._pending[1])
        self._pending = None
