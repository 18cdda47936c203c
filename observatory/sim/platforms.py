"""The platforms the simulator imitates, and every name each one goes by.

A platform is one of ``tiktok``, ``meta``, ``google`` or ``webhook``. Scenarios, control
operations and the Segment-like API accept it by any alias: its destination id (``dst_meta``),
its destination name (``meta_capi``) or its rudder-server destination type
(``facebook_conversions``).
"""

from __future__ import annotations

__all__ = [
    "WATCHED_VIA",
    "COMPONENTS",
    "COMPONENT_STATUSES",
    "DEST_IDS",
    "DEST_NAMES",
    "DEST_TYPES",
    "platform_name",
]

COMPONENTS: dict[str, str] = {
    "tiktok": "TikTok Conversions",
    "meta": "Meta Conversions API",
    "google": "Google Ads",
    "webhook": "Webhooks",
}
"""Status page component of each platform."""
COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
DEST_TYPES = {
    "tiktok": "TIKTOK_ADS",
    "meta": "FACEBOOK_CONVERSIONS",
    "google": "GOOGLE_ADWORDS_OFFLINE_CONVERSIONS",
    "webhook": "WEBHOOK",
}
DEST_IDS = {
    "tiktok": "dst_tiktok",
    "meta": "dst_meta",
    "google": "dst_google",
    "webhook": "dst_webhook",
}
"""Destination ids used in /metrics labels and accepted by /destinations/<id>/delivery-metrics."""
DEST_NAMES = {
    "tiktok": "tiktok_conversions",
    "meta": "meta_capi",
    "google": "google_ads",
    "webhook": "crm_webhook",
}
_ALIASES: dict[str, str] = {}
for _p in COMPONENTS:
    for _alias in (_p, DEST_IDS[_p], DEST_NAMES[_p], DEST_TYPES[_p].lower()):
        _ALIASES[_alias.lower()] = _p
_ALIASES["google_ads"] = "google"
_ALIASES["crm"] = "webhook"


def platform_name(name: str) -> str:
    """The canonical platform (tiktok | meta | google | webhook) for a name or alias."""
    try:
        return _ALIASES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown platform {name!r} (expected one of {', '.join(COMPONENTS)})"
        ) from None


WATCHED_VIA = ("logs", "rudderstack", "segment")
"""What a simulation's config watches: the forwarder's delivery logs, rudder-server's statsd
metrics, or Segment's Delivery Overview API (``observatory demo/simulate --platform``)."""
