"""The mParticle Events API's rate-limit signals: ``POST /v2/events`` and ``/v2/bulkevents``.

mParticle answers an accepted batch with 202 and ``X-mp-rate-limit-percentage-used`` (how much
of the limit is in use, an early warning), and a batch over the limit with 429, ``Retry-After``
(seconds) and ``X-mp-rate-limit-exceeded`` naming the limit hit (here always ``workspace``).
HTTP Basic auth with the workspace key and secret is required. The limit is a token bucket of
`SimState.mparticle_bucket` (270 batches/s by default, ``set_mparticle_limit`` to change it);
the batches themselves are only counted (`SimState.mparticle_counts`), not recorded per event.
"""

from __future__ import annotations

import base64
import binascii
import math

import orjson

from observatory.sim.state import Reply, SimState

__all__ = ["MPARTICLE_PATHS", "mparticle_reply"]

MPARTICLE_PATHS = ("/v2/events", "/v2/bulkevents")


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    # mParticle's error body (medium confidence): a list of errors with a code and a message.
    return Reply(status, {"errors": [{"code": status, "message": message}]}, headers)


def _authorized(header: str | None) -> bool:
    """Whether `header` is HTTP Basic with a ``key:secret`` pair (any pair is accepted)."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        pair = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    key, sep, secret = pair.partition(":")
    return bool(key and sep and secret)


def mparticle_reply(
    state: SimState, path: str, authorization: str | None, body: bytes, now: float
) -> Reply:
    """The Events API's answer to a batch (or a list of them, for bulkevents) at monotonic `now`."""
    if not _authorized(authorization):
        return _error(
            401,
            "Unauthorized: HTTP Basic with the workspace key and secret is required.",
            [("WWW-Authenticate", 'Basic realm="mParticle"')],
        )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _error(400, "The request body is not valid JSON.")
    wanted = list if path.endswith("bulkevents") else dict
    if not isinstance(doc, wanted):
        shape = "an array of batches" if wanted is list else "a batch object"
        return _error(400, f"The request body must be {shape}.")
    with state.lock:
        bucket = state.mparticle_bucket
        accepted = bucket.take(now)
        burst = max(1.0, bucket.qps)
        if accepted:
            state.mparticle_counts["accepted"] += 1
            used = round(100 * (burst - bucket.tokens) / burst)
            return Reply(
                202, b"", [("X-mp-rate-limit-percentage-used", str(min(100, max(0, used))))]
            )
        state.mparticle_counts["rate_limited"] += 1
        wait = (1.0 - bucket.tokens) / bucket.qps if bucket.qps > 0 else 60.0
    headers = [
        ("Retry-After", str(max(1, math.ceil(wait)))),
        ("X-mp-rate-limit-exceeded", "workspace"),
    ]
    return _error(429, "Too Many Requests: the workspace's rate limit is exceeded.", headers)
