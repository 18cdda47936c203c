"""Stored events -> per-destination, per-second counts for the engine (one GROUP BY in DuckDB).

Latency comes as a histogram of log-spaced bins per second, so the engine's `slow` count can
be taken against whatever threshold it holds when the second is fed (a replay aggregates
hours at once while the thresholds keep learning).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from observatory.engine.counts import SecondCounts

BIN_BASE = 1.25  # latency bins: [1.25^k, 1.25^(k+1)) ms
_LN_BASE = math.log(BIN_BASE)

_OUTCOME_COLS = ("delivered", "rate_limited", "rejected", "failed", "retrying", "dropped")

AGG_SQL = (
    "SELECT destination, CAST(floor(epoch(ts)) AS BIGINT) AS sec, "
    + ", ".join(f"count(*) FILTER (WHERE outcome = '{o}')" for o in _OUTCOME_COLS)
    + ", count(latency_ms), coalesce(sum(latency_ms), 0), coalesce(max(latency_ms), 0), "
    f"histogram(CAST(floor(ln(greatest(latency_ms, 1)) / {_LN_BASE!r}) AS INTEGER)) "
    "FILTER (WHERE latency_ms IS NOT NULL) "
    "FROM events WHERE {where} GROUP BY ALL ORDER BY sec, destination"
)


@dataclass(slots=True)
class SecondAgg:
    """A second's counts (with `slow` still 0) and its latency histogram (bin -> count)."""

    counts: SecondCounts
    hist: dict[int, int]

    def resolve(self, thresholds: dict[str, float]) -> SecondCounts:
        """The counts with `slow` = events in bins entirely above the destination's threshold."""
        thr = thresholds.get(self.counts.destination)
        if thr is not None and self.hist:
            first_slow = math.floor(math.log(max(thr, 1.0)) / _LN_BASE) + 1
            self.counts.slow = sum(n for b, n in self.hist.items() if b >= first_slow)
        return self.counts


def fetch_seconds(
    con: duckdb.DuckDBPyConnection, where: str = "true", params: Sequence[Any] | None = None
) -> list[SecondAgg]:
    """Aggregate the events matching `where` (SQL over `events`), ordered by second."""
    rows = con.execute(AGG_SQL.format(where=where), params).fetchall()
    out: list[SecondAgg] = []
    for dest, sec, d, rl, rj, f, rt, dr, n, lsum, lmax, hist in rows:
        counts = SecondCounts(dest, int(sec), d, rl, rj, f, rt, dr, 0, n, float(lsum), float(lmax))
        out.append(SecondAgg(counts, dict(hist) if hist else {}))
    return out


def by_second(aggs: Iterable[SecondAgg]) -> list[tuple[int, list[SecondAgg]]]:
    """Group an ordered list of aggregates by second."""
    grouped: list[tuple[int, list[SecondAgg]]] = []
    for agg in aggs:
        if grouped and grouped[-1][0] == agg.counts.sec:
            grouped[-1][1].append(agg)
        else:
            grouped.append((agg.counts.sec, [agg]))
    return grouped
