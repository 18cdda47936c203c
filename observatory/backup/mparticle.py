"""mParticle's Webhook output as backup events: one JSON batch per request.

mParticle POSTs its event-batch format (``{"events": [{"event_type": ..., "data": {...}}, ...],
"mpid": ..., "source_request_id": ..., "user_identities": ..., "device_info": ..., ...}``)
with a configured ``Authorization`` header and no signature (the receiver checks the header).

Which id: ``data.source_message_id``, the per-event id the client (an mParticle SDK, or a
server feed that sets it) gives each event and mParticle carries through to its outputs as
the event's deduplication id; it is what a forwarder's delivery logs can carry as
``message_id``, so reconciliation matches it like Segment's ``messageId``. An event without one
is skipped and reported, not stored: a backup row under an id no delivery log will ever carry
(mParticle's own numeric ``event_id``, say) would be counted "missing" forever.

Each stored event's raw text is the batch reduced to that event (``events: [it]`` with every
batch-level field: identities, device, ``mpid``...), so a missing event written out by
``observatory reconcile --output`` is a batch mParticle's Events API takes back as it is.
Bad events in a batch do not fail the request: mParticle would retry it and they would not get
better; the good ones are stored, the bad ones counted as rejects. A body that is not a batch
at all is a :class:`~observatory.backup.receiver.BadRequest` (400).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["is_batch", "split_batch"]

# (message id, event timestamp as ISO text, raw JSON text)
Event = tuple[str, str | None, str]
# (1-based position in the batch, reason, the event's JSON text)
Skipped = tuple[int, str, str]

# Plausible event times (epoch ms); anything else is stored without a timestamp.
_MS_MIN, _MS_MAX = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01


def is_batch(doc: dict[str, Any]) -> bool:
    """Is a JSON object mParticle's batch (``events``), rather than a Segment event or batch?"""
    return "events" in doc and "messageId" not in doc and "batch" not in doc


def _timestamp(data: dict[str, Any]) -> str | None:
    ms = data.get("timestamp_unixtime_ms")
    if isinstance(ms, str):
        try:
            ms = float(ms)
        except ValueError:
            return None
    if not isinstance(ms, int | float) or isinstance(ms, bool) or not math.isfinite(ms):
        return None
    if not _MS_MIN <= ms < _MS_MAX:
        return None
    return datetime.fromtimestamp(ms / 1000.0, UTC).isoformat().replace("+00:00", "Z")


def split_batch(
    doc: dict[str, Any], dumps: Callable[[Any], bytes]
) -> tuple[list[Event], list[Skipped]]:
    """The batch's events with ids (each as a one-event batch), and the events skipped.

    Raises ``ValueError`` when ``events`` is not a list (the whole body is malformed).
    """
    events = doc["events"]
    if not isinstance(events, list):
        raise ValueError("events must be a list of events")
    shared = {k: v for k, v in doc.items() if k != "events"}
    good: list[Event] = []
    skipped: list[Skipped] = []
    for i, event in enumerate(events, start=1):
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            reason = "not an object" if not isinstance(event, dict) else "no data object"
            skipped.append((i, f"events[{i - 1}]: {reason}", dumps(event).decode()))
            continue
        mid = data.get("source_message_id")
        if not isinstance(mid, str) or not mid.strip():
            skipped.append(
                (i, f"events[{i - 1}]: missing data.source_message_id", dumps(event).decode())
            )
            continue
        raw = dumps({"events": [event], **shared}).decode()
        good.append((mid, _timestamp(data), raw))
    return good, skipped
