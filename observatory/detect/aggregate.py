"""Stored events -> per-destination, per-second counts for the engine (one GROUP BY in DuckDB).

The logged rate-limit usage (``rate_limit_used``) comes as the second's highest reading.
Latency comes as a histogram on the engine's fixed log-spaced bins (``engine.counts``), so the
engine counts `slow` events itself, against the threshold it holds when it evaluates the
second: live and in a replay alike, however the second was split into pieces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from observatory.detect.counts import LN_BIN_BASE, MAX_BIN, SecondCounts

_OUTCOME_COLS = ("delivered", "rate_limited", "rejected", "failed", "retrying", "dropped")

_BIN = f"least(CAST(floor(ln(greatest(latency_ms, 1)) / {LN_BIN_BASE!r}) AS INTEGER), {MAX_BIN})"
# The latency histogram counts each request once: events delivered in one batch share its
# timestamp and its latency, and are one observation of the destination's latency, not many
# (20 events of one slow request are not 20 independent slow events). Events with the same
# (ts, latency) in a second count once.
AGG_SQL = (
    "WITH e AS (SELECT destination, ts, outcome, latency_ms, rate_limit_used, "
    "CAST(floor(epoch(ts)) AS BIGINT) AS sec FROM events WHERE {where}), "
    "c AS (SELECT destination, sec, "
    + ", ".join(f"count(*) FILTER (WHERE outcome = '{o}') AS {o}" for o in _OUTCOME_COLS)
    + ", count(latency_ms) AS n, coalesce(sum(latency_ms), 0) AS lsum, "
    "coalesce(max(latency_ms), 0) AS lmax, max(rate_limit_used) AS rlu FROM e GROUP BY ALL), "
    f"h AS (SELECT destination, sec, histogram({_BIN}) AS hist FROM (SELECT DISTINCT "
    "destination, sec, ts, latency_ms FROM e WHERE latency_ms IS NOT NULL) GROUP BY ALL) "
    "SELECT c.*, h.hist FROM c LEFT JOIN h USING (destination, sec) ORDER BY sec, destination"
)


def fetch_seconds(
    con: duckdb.DuckDBPyConnection, where: str = "true", params: Sequence[Any] | None = None
) -> list[SecondCounts]:
    """Aggregate the events matching `where` (SQL over `events`), ordered by second."""
    rows = con.execute(AGG_SQL.format(where=where), params).fetchall()
    return [
        SecondCounts(
            dest,
            int(sec),
            delivered=d,
            rate_limited=rl,
            rejected=rj,
            failed=f,
            retrying=rt,
            dropped=dr,
            latency_n=n,
            latency_sum=float(lsum),
            latency_max=float(lmax),
            hist=dict(hist) if hist else {},
            rate_limit_used=float(rlu) if rlu is not None else None,
        )
        for dest, sec, d, rl, rj, f, rt, dr, n, lsum, lmax, rlu, hist in rows
    ]


def by_second(counts: Iterable[SecondCounts]) -> list[tuple[int, list[SecondCounts]]]:
    """Group an ordered list of counts by second."""
    grouped: list[tuple[int, list[SecondCounts]]] = []
    for c in counts:
        if grouped and grouped[-1][0] == c.sec:
            grouped[-1][1].append(c)
        else:
            grouped.append((c.sec, [c]))
    return grouped
