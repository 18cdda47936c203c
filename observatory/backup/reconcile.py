"""Reconciliation: backup webhook events against primary deliveries, by message id.

For each destination in ``backup.destinations``, every backup event (one per message id) is
matched to the ``events`` rows of that destination with outcome ``delivered``:

- ``expected``: backup events expected at the destination (received since ``since``);
- ``delivered``: those delivered at least once (each id counted once, late ones included);
- ``late``: delivered, but the first delivery came more than ``window`` after the backup
  received the event;
- ``duplicates``: ids delivered more than once;
- ``pending``: not delivered, still inside ``window`` of their receipt;
- ``missing``: not delivered, ``window`` has passed.

So ``expected = delivered + pending + missing``. The retry-window countdown looks at the
destination's failing ids (an attempt failed, rate_limited or retrying, and no delivery after
it): ``failing`` still inside the platform's retry window (counted from the first failed
attempt), ``lost`` past it, ``oldest_undelivered_at`` the first failure of the oldest failing
id and ``lost_in_s`` the seconds before its retry window ends.

Everything is computed by DuckDB (joins and aggregates), so a million backup events take a
fraction of a second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from observatory.util.durations import format_duration
from observatory.util.isotime import parse_iso

if TYPE_CHECKING:
    import duckdb

    from observatory.config import BackupConfig

__all__ = [
    "COUNT_KEYS",
    "format_table",
    "parse_since",
    "reconcile",
    "reconcile_ids",
    "retry_countdown",
    "write_missing",
]

COUNT_KEYS: tuple[str, ...] = (
    "expected",
    "delivered",
    "missing",
    "late",
    "duplicates",
    "pending",
)
FAILING_OUTCOMES: tuple[str, ...] = ("failed", "rate_limited", "retrying")

# Per (destination, message id) of the backup: its status and how often it was delivered.
# Parameters: $dests (VARCHAR[]), $since (epoch s or NULL), $window (s), $now (epoch s).
_CLASSIFIED = """
WITH want AS (SELECT unnest($dests::VARCHAR[]) AS destination),
b AS (
    SELECT * FROM (
        SELECT message_id, received_at, unnest(destinations) AS destination
        FROM backup_events
        WHERE $since::DOUBLE IS NULL OR received_at >= to_timestamp($since::DOUBLE)
    )
    WHERE destination IN (SELECT destination FROM want)
),
d AS (
    SELECT e.destination, e.message_id, count(*) AS n, min(e.ts) AS first_ts
    FROM events e
    WHERE e.outcome = 'delivered'
      AND e.destination IN (SELECT destination FROM want)
      AND e.message_id IN (SELECT message_id FROM b)
    GROUP BY e.destination, e.message_id
),
c AS (
    SELECT b.destination, b.message_id, b.received_at, coalesce(d.n, 0) AS n,
        CASE
            WHEN d.n IS NULL AND epoch(b.received_at) + $window::DOUBLE <= $now::DOUBLE
                THEN 'missing'
            WHEN d.n IS NULL THEN 'pending'
            WHEN epoch(d.first_ts) > epoch(b.received_at) + $window::DOUBLE THEN 'late'
            ELSE 'on_time'
        END AS status
    FROM b LEFT JOIN d ON d.destination = b.destination AND d.message_id = b.message_id
)
"""

_SUMMARY = (
    _CLASSIFIED
    + """
SELECT destination,
    count(*) AS expected,
    count(*) FILTER (WHERE n > 0) AS delivered,
    count(*) FILTER (WHERE status = 'missing') AS missing,
    count(*) FILTER (WHERE status = 'late') AS late,
    count(*) FILTER (WHERE n > 1) AS duplicates,
    count(*) FILTER (WHERE status = 'pending') AS pending
FROM c
GROUP BY destination
"""
)

# Failing ids first (few), then only their deliveries: no aggregate over every delivery.
_COUNTDOWN = f"""
WITH w AS (
    SELECT unnest($dests::VARCHAR[]) AS destination, unnest($windows::DOUBLE[]) AS window_s
),
f AS (
    SELECT e.destination, e.message_id, min(e.ts) AS first_fail, max(e.ts) AS last_fail
    FROM events e
    WHERE e.outcome IN {FAILING_OUTCOMES!r}
      AND e.destination IN (SELECT destination FROM w)
      AND e.message_id IS NOT NULL
      AND ($since::DOUBLE IS NULL OR e.ts >= to_timestamp($since::DOUBLE))
    GROUP BY e.destination, e.message_id
),
ok AS (
    SELECT e.destination, e.message_id, max(e.ts) AS last_ok
    FROM events e SEMI JOIN f ON e.destination = f.destination AND e.message_id = f.message_id
    WHERE e.outcome = 'delivered'
      AND ($since::DOUBLE IS NULL OR e.ts >= to_timestamp($since::DOUBLE))
    GROUP BY e.destination, e.message_id
),
u AS (
    SELECT f.destination, f.first_fail, w.window_s,
        epoch(f.first_fail) + w.window_s > $now::DOUBLE AS open
    FROM f JOIN w USING (destination)
    LEFT JOIN ok ON ok.destination = f.destination AND ok.message_id = f.message_id
    WHERE ok.last_ok IS NULL OR ok.last_ok < f.last_fail
)
SELECT destination,
    count(*) FILTER (WHERE open) AS failing,
    count(*) FILTER (WHERE NOT open) AS lost,
    epoch(min(first_fail) FILTER (WHERE open)) AS oldest
FROM u
GROUP BY destination
"""

# The raw events not delivered to some destination after their window: an anti join.
_MISSING_RAW = """
WITH want AS (SELECT unnest($dests::VARCHAR[]) AS destination),
b AS (
    SELECT * FROM (
        SELECT message_id, unnest(destinations) AS destination
        FROM backup_events
        WHERE ($since::DOUBLE IS NULL OR received_at >= to_timestamp($since::DOUBLE))
          AND epoch(received_at) + $window::DOUBLE <= $now::DOUBLE
    )
    WHERE destination IN (SELECT destination FROM want)
),
delivered AS (
    SELECT destination, message_id FROM events
    WHERE outcome = 'delivered' AND destination IN (SELECT destination FROM want)
),
missing AS (
    SELECT b.message_id FROM b
    ANTI JOIN delivered d ON d.destination = b.destination AND d.message_id = b.message_id
)
SELECT be.raw FROM backup_events be
WHERE be.message_id IN (SELECT message_id FROM missing)
ORDER BY be.received_at, be.message_id
"""


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an ISO-8601 time (UTC when it has no offset) or a duration before now
    (``2h``, ``30m``); returns epoch seconds. Raises :class:`ValueError`."""
    from observatory.config import parse_duration

    now = time.time() if now is None else now
    text = text.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_iso(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time or a duration (use e.g. 2h or 2024-05-01T12:00:00Z)"
        ) from None


def _destinations(backup: BackupConfig, destination: str | None) -> list[str]:
    return [destination] if destination is not None else list(backup.destinations)


def _params(
    backup: BackupConfig, dests: list[str], since: float | None, now: float | None
) -> dict[str, Any]:
    return {
        "dests": dests,
        "since": since,
        "window": float(backup.window),
        "now": time.time() if now is None else now,
    }


def retry_countdown(
    con: duckdb.DuckDBPyConnection,
    backup: BackupConfig,
    destinations: list[str] | None = None,
    since: float | None = None,
    now: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Per destination: ``failing``, ``lost``, ``oldest_undelivered_at`` (ISO or None),
    ``lost_in_s`` (seconds before the oldest failing id's retry window ends, or None) and
    ``retry_window_s``. Cheap enough for a UI to call every few seconds on its own cursor."""
    now = time.time() if now is None else now
    dests = list(backup.destinations) if destinations is None else list(destinations)
    windows = [float(backup.retry_window_for(d)) for d in dests]
    rows = con.execute(
        _COUNTDOWN, {"dests": dests, "windows": windows, "since": since, "now": now}
    ).fetchall()
    found = {r[0]: r for r in rows}
    out: dict[str, dict[str, Any]] = {}
    for dest, window in zip(dests, windows, strict=True):
        _, failing, lost, oldest = found.get(dest, (dest, 0, 0, None))
        out[dest] = {
            "failing": int(failing),
            "lost": int(lost),
            "oldest_undelivered_at": _iso(oldest) if oldest is not None else None,
            "lost_in_s": round(oldest + window - now, 3) if oldest is not None else None,
            "retry_window_s": window,
        }
    return out


def reconcile(
    con: duckdb.DuckDBPyConnection,
    backup: BackupConfig,
    destination: str | None = None,
    since: float | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """One summary per destination (``backup.destinations``, or just ``destination``):
    ``{"destination", "expected", "delivered", "missing", "late", "duplicates", "pending"}``
    plus the retry-window countdown's keys (see :func:`retry_countdown`)."""
    now = time.time() if now is None else now
    dests = _destinations(backup, destination)
    rows = con.execute(_SUMMARY, _params(backup, dests, since, now)).fetchall()
    found = {r[0]: r[1:] for r in rows}
    countdown = retry_countdown(con, backup, dests, since, now)
    out: list[dict[str, Any]] = []
    for dest in dests:
        counts = found.get(dest, (0,) * len(COUNT_KEYS))
        summary: dict[str, Any] = {"destination": dest}
        summary.update({k: int(v) for k, v in zip(COUNT_KEYS, counts, strict=True)})
        summary.update(countdown[dest])
        out.append(summary)
    return out


def reconcile_ids(
    con: duckdb.DuckDBPyConnection,
    backup: BackupConfig,
    destination: str | None = None,
    since: float | None = None,
    now: float | None = None,
) -> dict[str, dict[str, set[str]]]:
    """The ids behind :func:`reconcile`'s counts: ``{destination: {key: {message ids}}}`` for
    every key of :data:`COUNT_KEYS`."""
    dests = _destinations(backup, destination)
    out: dict[str, dict[str, set[str]]] = {d: {k: set() for k in COUNT_KEYS} for d in dests}
    rows = con.execute(
        _CLASSIFIED + "SELECT destination, message_id, status, n FROM c",
        _params(backup, dests, since, now),
    ).fetchall()
    for dest, mid, status, n in rows:
        sets = out[dest]
        sets["expected"].add(mid)
        if n > 0:
            sets["delivered"].add(mid)
        if n > 1:
            sets["duplicates"].add(mid)
        if status in ("missing", "late", "pending"):
            sets[status].add(mid)
    return out


def write_missing(
    con: duckdb.DuckDBPyConnection,
    backup: BackupConfig,
    path: str | Path,
    destination: str | None = None,
    since: float | None = None,
    now: float | None = None,
) -> int:
    """Write the missing events as received (raw JSON, one per line, oldest first; an event
    missing at several destinations once) to ``path``; return how many."""
    dests = _destinations(backup, destination)
    result = con.execute(_MISSING_RAW, _params(backup, dests, since, now))
    written = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        while True:
            chunk = result.fetchmany(50_000)
            if not chunk:
                break
            fh.write("".join(r[0] + "\n" for r in chunk))
            written += len(chunk)
    return written


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _lost_in_text(seconds: float | None) -> str:
    """The table's `lost in` cell: the time left, or `lost` once the window has ended."""
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "lost"
    return format_duration(seconds)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The summaries as an aligned text table (``lost in``: time left before the oldest
    failing event's retry window ends)."""
    header = ["destination", *COUNT_KEYS, "failing", "lost", "lost in"]
    body = [
        [
            str(r["destination"]),
            *(str(r[k]) for k in COUNT_KEYS),
            str(r["failing"]),
            str(r["lost"]),
            _lost_in_text(r["lost_in_s"]),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *body]
    ]
    return "\n".join(lines)


def reconcile_output(rows: list[dict[str, Any]], fmt: str) -> str:
    """What `observatory reconcile --format FMT` prints (json: one line per destination)."""
    if fmt == "json":
        return "".join(orjson.dumps(row).decode() + "\n" for row in rows)
    return format_table(rows) + "\n"
