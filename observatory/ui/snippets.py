"""Example queries for the SQL console, picked from a list (Grafana's / harlequin's snippets).

Each is written against the real schema (observatory.store.schema): `outcomes` (every
outcome with its count, from log lines and from feeds) for rates and shares, `events` (one
row per logged delivery) for error details. Their windows end at the newest stored event,
not at the wall clock, so they read the same on live data, a replay or an old database."""

from __future__ import annotations

from typing import NamedTuple


class Snippet(NamedTuple):
    """One example query: a short title for the list and its SQL."""

    title: str
    sql: str


SNIPPETS: tuple[Snippet, ...] = (
    Snippet(
        "Throughput per minute",
        """\
-- delivered per destination per minute, the last hour of stored data
SELECT time_bucket(INTERVAL 1 minute, ts) AS minute, destination,
       coalesce(sum(n) FILTER (WHERE outcome = 'delivered'), 0) AS delivered,
       round(delivered / 60, 2) AS delivered_per_s,
       sum(n) AS attempts
FROM outcomes
WHERE ts >= (SELECT max(ts) FROM outcomes) - INTERVAL 1 hour
GROUP BY ALL
ORDER BY minute DESC, destination""",
    ),
    Snippet(
        "Top errors",
        """\
-- the most frequent failures, alike ones counted together, over all stored events
SELECT destination, outcome::VARCHAR AS outcome, http_status, error_code, error_message,
       count(*) AS n, min(ts) AS first_seen, max(ts) AS last_seen
FROM events
WHERE outcome <> 'delivered'
GROUP BY ALL
ORDER BY n DESC, last_seen DESC
LIMIT 20""",
    ),
    Snippet(
        "429 share (15 min)",
        """\
-- the share of attempts that were rate-limited (429 or the platform's own code),
-- per destination, over the last 15 minutes of stored data
SELECT destination,
       coalesce(sum(n) FILTER (WHERE outcome = 'rate_limited'), 0) AS rate_limited,
       sum(n) AS attempts,
       round(100 * rate_limited / attempts, 1) AS pct_429
FROM outcomes
WHERE ts >= (SELECT max(ts) FROM outcomes) - INTERVAL 15 minute
GROUP BY destination
ORDER BY pct_429 DESC, destination""",
    ),
    Snippet(
        "429 share per minute",
        """\
-- the rate-limited share of attempts per destination per minute, the last hour
SELECT time_bucket(INTERVAL 1 minute, ts) AS minute, destination,
       round(100 * coalesce(sum(n) FILTER (WHERE outcome = 'rate_limited'), 0)
             / sum(n), 1) AS pct_429,
       sum(n) AS attempts
FROM outcomes
WHERE ts >= (SELECT max(ts) FROM outcomes) - INTERVAL 1 hour
GROUP BY ALL
ORDER BY minute DESC, destination""",
    ),
    Snippet(
        "Latency percentiles",
        """\
-- delivery latency per destination over the last 15 minutes of stored data (log lines)
SELECT destination, count(*) AS n,
       round(quantile_cont(latency_ms, 0.5), 1) AS p50_ms,
       round(quantile_cont(latency_ms, 0.95), 1) AS p95_ms,
       round(quantile_cont(latency_ms, 0.99), 1) AS p99_ms
FROM events
WHERE latency_ms IS NOT NULL
  AND ts >= (SELECT max(ts) FROM events) - INTERVAL 15 minute
GROUP BY destination
ORDER BY p95_ms DESC""",
    ),
    Snippet(
        "Incidents",
        """\
-- incidents, newest first, with how long each outage lasted
SELECT id, destination, state, severity, detector, onset, detected_at, resolved_at,
       coalesce(outage_end, resolved_at) - onset AS outage, summary
FROM incidents
ORDER BY detected_at DESC
LIMIT 50""",
    ),
)
