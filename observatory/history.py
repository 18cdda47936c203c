"""History: what the stored events show when nothing is live, and replaying them on demand.

Logs whose newest line is older than the staleness window are history: right for detection,
but the dashboard must still show them (someone opens Observatory the morning after an
outage to see what happened). This module is what the TUI's history state rests on:

- :func:`read_history` reads, per destination in the database (or the config), its last-seen
  time, its last known rates and its last stretch of traffic, as a STALE
  :class:`DestinationStatus`, and the span of the stored events;
- :func:`replay_stored` runs detection over every stored event in event time, with a fresh
  engine built as every runtime builds it (:func:`detection_engine`), as `observatory replay`
  does; it only reads (a cursor in any thread), and hands back the incidents it found
  (historical: "found in history") for :func:`save_replayed` to write on the thread that owns
  the write connection. Incident ids are hashes of destination, onset and detector, and the
  save is an upsert, so replaying twice gives the same incidents, never duplicates;
- :func:`replay_counts` is the event-time loop itself, shared with ``Runtime.replay_history``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from observatory.detect import Engine, SecondCounts
from observatory.detect.aggregate import by_second, fetch_seconds
from observatory.detect.destination import SPARKLINE_SECONDS, STATUS_SECONDS
from observatory.detect.status import DestinationStatus, window_figures
from observatory.detect.trend import WINDOWS, trends_of
from observatory.incidents.ledger import Ledger
from observatory.incidents.model import Incident
from observatory.incidents.providers import StatusPageEvidence
from observatory.incidents.store import IncidentLookupError, save_incident

if TYPE_CHECKING:
    import duckdb

    from observatory.config import Config
    from observatory.detect.drift import DriftEvent
    from observatory.incidents.model import Change

# How often the replay reports its progress (in replayed seconds).
PROGRESS_EVERY = 200
# A STALE pane's chart covers up to this much of its last traffic (its longest window).
TREND_SECONDS = max(WINDOWS)


def detection_engine(
    config: Config, ledger: Ledger, on_drift: Callable[[DriftEvent], None] | None = None
) -> Engine:
    """The engine as every runtime builds it: one threshold shared by at least 5
    destinations, so a replay and a live run judge alike."""
    return Engine(
        config.detection,
        n_destinations=max(5, len(config.destinations)),
        ledger=ledger,
        on_drift=on_drift,
    )


def replay_counts(
    groups: list[tuple[int, list[SecondCounts]]],
    feed: Callable[[list[SecondCounts]], None],
    advance: Callable[[float], None],
    speed: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Feed per-second counts in event time, moving the watermark with the data. ``speed``
    None: as fast as possible; N: N seconds of event time per wall second. ``progress(done,
    total)`` every PROGRESS_EVERY seconds replayed and at the end."""
    if not groups:
        return
    first = groups[0][0]
    started = time.monotonic()
    for n, (sec, group) in enumerate(groups, start=1):
        if speed:
            ahead = (sec - first) / speed - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        feed(group)
        advance(sec + 1)
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n, len(groups))
    # Judge the last second too, but do not run past the data: its end is not silence.
    advance(groups[-1][0] + 2)
    if progress is not None:
        progress(len(groups), len(groups))


# -- what is stored ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredHistory:
    """The span of the stored events (epoch s; None: no events) and, per destination, what
    its pane shows when it has no recent traffic."""

    first: float | None = None
    last: float | None = None
    statuses: dict[str, DestinationStatus] = field(default_factory=dict)


def read_history(con: duckdb.DuckDBPyConnection, names: Iterable[str] = ()) -> StoredHistory:
    """Every destination in ``events`` (and each of ``names``, the configured ones, even
    without events) as a STALE status: last seen, its rates over the last seconds it had
    traffic, its delivered events per second over its last SPARKLINE_SECONDS and its
    chart's windows (:mod:`observatory.detect.trend`) up to its last second."""
    rows = con.execute(
        "SELECT destination, epoch(min(ts)), epoch(max(ts)) FROM events "
        "WHERE destination IS NOT NULL GROUP BY 1"
    ).fetchall()
    statuses: dict[str, DestinationStatus] = {}
    for dest, _first, last in rows:
        last_sec = int(last // 1)
        start = last_sec - TREND_SECONDS + 1  # the chart's longest window
        counts = fetch_seconds(
            con, "destination = ? AND ts >= to_timestamp(?)", [dest, float(start)]
        )
        statuses[dest] = _stale_status(dest, last_sec, start, counts)
    for name in names:
        if name not in statuses:
            statuses[name] = _stale_status(name, None, 0, [])
    first = min((r[1] for r in rows), default=None)
    newest = max((r[2] for r in rows), default=None)
    return StoredHistory(
        first=None if first is None else float(first),
        last=None if newest is None else float(newest),
        statuses=dict(sorted(statuses.items())),
    )


def _stale_status(
    name: str, last_sec: int | None, start: int, counts: list[SecondCounts]
) -> DestinationStatus:
    by_sec: dict[int, SecondCounts] = {}
    for c in counts:
        mine = by_sec.get(c.sec)
        if mine is None:
            by_sec[c.sec] = c
        else:
            mine.add(c)
    series = [] if last_sec is None else [by_sec.get(s) for s in range(start, last_sec + 1)]
    # the chart's windows up to its last second (no baseline: none is known from storage)
    # from its first second with events (before that: no data, not quiet)
    first = next((n for n, c in enumerate(series) if c is not None), len(series))
    trends = trends_of(
        (start + n, c.delivered, c.rate_limited, c.failed + c.rejected, 0.0)
        if c is not None
        else (start + n, 0, 0, 0, 0.0)
        for n, c in enumerate(series[first:], start=first)
    )
    series = series[-SPARKLINE_SECONDS:]
    # Every figure over the destination's last minute of traffic (its window_s): a stale
    # pane has no "now" to follow, and a minute says more than 10 s of a slow flow.
    minute = [c for c in series[-STATUS_SECONDS:] if c is not None]
    figures = window_figures(minute, STATUS_SECONDS)
    return DestinationStatus(
        destination=name,
        state="stale",
        rate_now=figures.rate_now,
        success_pct=figures.success_pct,
        rate_limited_pct=figures.rate_limited_pct,
        avg_latency_ms=figures.avg_latency_ms,
        last_event_ts=None if last_sec is None else float(last_sec),
        incident_id=None,
        sparkline=[c.delivered if c is not None else 0 for c in series],
        delivered_now=figures.delivered_now,
        window_s=STATUS_SECONDS,
        trends=trends if last_sec is not None else [],
    )


# -- replay on demand ---------------------------------------------------------------------------


class _Found:
    """The replay's ledger sink: the newest state of every incident, kept in memory (the
    caller saves them where the write connection lives)."""

    def __init__(self) -> None:
        self.incidents: dict[str, Incident] = {}

    def save(self, incident: Incident) -> None:
        self.incidents[incident.id] = incident.snapshot()

    def acknowledge(self, id_or_prefix: str, ts: float) -> Incident:
        raise IncidentLookupError(f"no incident {id_or_prefix!r} in this replay")

    def add_note(self, id_or_prefix: str, ts: float, text: str) -> Incident:
        raise IncidentLookupError(f"no incident {id_or_prefix!r} in this replay")


@dataclass(frozen=True)
class HistoryReplay:
    """What a replay of the stored events found."""

    incidents: list[Incident]  # newest state of each, oldest onset first; all historical
    changes: int  # incident changes (open, update, resolved) along the way
    first: float | None  # the replayed span (epoch s), None: nothing stored
    last: float | None
    seconds: float  # wall time it took
    new: int = 0  # of ``incidents``, how many were not stored before (set once saved)


def replay_stored(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    progress: Callable[[int, int], None] | None = None,
) -> HistoryReplay:
    """Detection over every stored event, in event time, as `observatory replay` runs it.
    Reads only (``con`` may be any cursor); the incidents are for :func:`save_replayed`."""
    started = time.monotonic()
    found = _Found()
    engine = detection_engine(config, Ledger(sink=found, providers=[StatusPageEvidence()]))
    groups = by_second(fetch_seconds(con))
    changes: list[Change] = []
    replay_counts(groups, engine.feed, lambda w: changes.extend(engine.advance(w)), None, progress)
    incidents = sorted(found.incidents.values(), key=lambda i: (i.onset, i.id))
    return HistoryReplay(
        incidents=incidents,
        changes=len(changes),
        first=float(groups[0][0]) if groups else None,
        last=float(groups[-1][0] + 1) if groups else None,
        seconds=time.monotonic() - started,
    )


def save_replayed(con: duckdb.DuckDBPyConnection, incidents: list[Incident]) -> int:
    """Upsert the replay's incidents in one transaction (the write connection, on its
    thread); acknowledgements and notes already stored are kept. How many were new."""
    if not incidents:
        return 0
    ids = [i.id for i in incidents]
    con.execute("BEGIN")
    try:
        known = {
            r[0]
            for r in con.execute(
                "SELECT id FROM incidents WHERE list_contains(?, id)", [ids]
            ).fetchall()
        }
        for incident in incidents:
            save_incident(con, incident)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return len(set(ids) - known)
