"""The runtime: tailers + store + engine (+ alert dispatch), wired from the config.

`replay` and `watch`, the TUI and the tests all drive this one class:
- `replay_history()` runs detection over everything stored, in event time (the watermark
  follows the data, so hours replay in seconds with the detections they would have had live);
- `start_live()` reads the backlog, warms the engine on recent history (its faults become
  historical incidents, not live alerts), then `poll()` tails, stores and detects as the
  wall clock advances.
Each incident change is saved, handed to the alert dispatcher and to `on_change`.

Live, the config's probes run on their own thread (`ProbeScheduler`); their results wait in a
thread-safe queue that `poll()` drains on the runtime's thread: each is stored in `probes` and
fed to the engine. A status page's facts (component status, indicator, open incidents' names)
also join the destination's open incident: as `evidence["status_page"]` and, whenever they
change, a "status_page" timeline entry.

Rate-limit drift (`observatory.detect.drift`): the same per-second counts feed a
`DriftTracker`, moved on with the engine's watermark. Each `DriftEvent` goes to `on_drift`
(and `drift_events`) and joins the destination's incident -- the open one, or the next opened within
`DRIFT_ATTACH_WINDOW` -- as `evidence["rate_limit_drift"]` and a "drift" timeline entry.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from observatory.backup.receiver import BackupService, start_backup
from observatory.detect import Engine, SecondCounts
from observatory.detect.aggregate import by_second, fetch_seconds
from observatory.detect.drift import DriftEvent, DriftTracker
from observatory.incidents.model import Change, Incident
from observatory.incidents.store import save_incident
from observatory.ingest.tail import SourceTailer
from observatory.probes import ProbeResult, ProbeScheduler, build_probes, reported_status
from observatory.probes.scheduler import default_client
from observatory.store.db import Store, Tally

if TYPE_CHECKING:
    from observatory.alerts import AlertDispatcher
    from observatory.config import Config

# How much recent history (before now) warms the engine when going live.
WARM_WINDOW = 30 * 60.0
# The engine evaluates a second once the watermark is past it plus its lateness; live, the
# watermark runs this far ahead of the wall clock, so a second is judged ~0.25 s after it
# ends (one poll interval), not a whole second later.
LIVE_LEAD = 0.75
POLL_INTERVAL = 0.2
# A rate-limit drift joins an incident open when it is flagged or opened this soon after (s).
DRIFT_ATTACH_WINDOW = 300.0
# Live, events older than storage.retention are deleted this often (s, wall clock).
PRUNE_INTERVAL = 60.0


class Runtime:
    """One store, one engine, the config's sources; not thread-safe (drive it from one thread)."""

    def __init__(
        self,
        config: Config,
        db: str | None = None,
        *,
        on_change: Callable[[Change], None] | None = None,
        dispatcher: AlertDispatcher | None = None,
        store: Store | None = None,
        probe_client_factory: Callable[[], httpx.AsyncClient] = default_client,
        on_drift: Callable[[DriftEvent], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store or Store.for_config(config, db)
        self.engine = Engine(config.detection, n_destinations=max(5, len(config.destinations)))
        self.on_change = on_change
        self.dispatcher = dispatcher
        self.tailers: list[SourceTailer] = []
        self.last_event_sec: int | None = None
        self.opened_live = 0
        self.incident_changes = 0
        self.live = False
        # Probes: results arrive from the scheduler thread, are taken in poll().
        self.probe_client_factory = probe_client_factory
        self.probe_scheduler: ProbeScheduler | None = None
        self.probe_results: queue.SimpleQueue[ProbeResult] = queue.SimpleQueue()
        self.probes_stored = 0
        # The latest status-page facts per destination, and what each incident has noted.
        self.status_pages: dict[str, dict[str, Any]] = {}
        self._status_noted: dict[str, tuple[Any, ...]] = {}
        # Rate-limit drift: the tracker, every event it raised, the latest drift per
        # destination (as incident evidence) and what each incident has noted of it.
        self.drift = DriftTracker()
        self.on_drift = on_drift
        self.drift_events: list[DriftEvent] = []
        self.drifts: dict[str, dict[str, Any]] = {}
        self._drift_times: dict[str, tuple[float, float | None]] = {}  # flagged, restored
        self._drift_noted: dict[str, tuple[Any, ...]] = {}
        self.backup: BackupService | None = None  # the [backup] receiver, once live
        self._prune_due = 0.0  # wall time of the next retention prune (live)

    def close(self) -> None:
        if self.backup is not None:
            self.backup.stop()  # idempotent
        if self.probe_scheduler is not None:
            self.probe_scheduler.stop()
            self.probe_scheduler = None
        for tailer in self.tailers:
            tailer.close()
        self.store.close()

    # -- detection -----------------------------------------------------------------------

    def _feed(self, counts: list[SecondCounts]) -> None:
        if not counts:
            return
        self.engine.feed(counts)
        self.drift.feed(counts)
        newest = max(c.sec for c in counts)
        if self.last_event_sec is None or newest > self.last_event_sec:
            self.last_event_sec = newest

    def _handle(self, changes: list[Change], wall: float | None = None) -> None:
        for change in changes:
            inc = change.incident
            if wall is not None and change.kind == "open" and not inc.historical:
                # Live, DESIGN's detected_at is wall time (event time in replay).
                inc.detected_at = wall
            self._status_page_evidence(inc)
            self._drift_evidence(inc)
            save_incident(self.store.con, inc)
            self.incident_changes += 1
            if change.kind == "open" and not inc.historical:
                self.opened_live += 1
            if self.dispatcher is not None:
                self.dispatcher.publish(change)
            if self.on_change is not None:
                self.on_change(change)

    def replay_history(
        self, where: str = "true", params: list[object] | None = None, speed: float | None = None
    ) -> None:
        """Run the engine over stored events in event-time order. `speed` None: as fast as
        possible; N: N seconds of event time per wall second."""
        groups = by_second(fetch_seconds(self.store.con, where, params))
        if not groups:
            return
        first = groups[0][0]
        started = time.monotonic()
        for sec, group in groups:
            if speed:
                ahead = (sec - first) / speed - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            self._feed(group)
            self._advance(sec + 1)
        # Judge the last second too, but do not run past the data: its end is not silence.
        self._advance(groups[-1][0] + 2)

    def _advance(self, watermark: float, wall: float | None = None) -> None:
        """Move the engine and the drift tracker on to `watermark`; handle what they raise."""
        self._handle(self.engine.advance(watermark), wall=wall)
        self._handle_drift(self.drift.advance(watermark))

    def _handle_drift(self, events: list[DriftEvent]) -> None:
        """Record each drift, hand it to `on_drift`, add it to the destination's open incident."""
        for event in events:
            self.drift_events.append(event)
            line = event.json_line()
            record = self.drifts.get(event.destination)
            if event.kind == "ceiling_drop" or record is None:
                record = {
                    "old_ceiling_per_s": line["old_ceiling_per_s"],
                    "new_ceiling_per_s": line["new_ceiling_per_s"],
                    "flagged_at": line["ts"],
                    "throttled_share": line["throttled_share"],
                    "retry_after_s": line["retry_after_s"],
                    "unit": "events/s delivered while throttled",
                }
                self._drift_times[event.destination] = (event.ts, None)
            if event.kind == "ceiling_restored":
                record["restored_at"] = line["ts"]
                record["restored_ceiling_per_s"] = line["new_ceiling_per_s"]
                flagged = self._drift_times[event.destination][0]
                self._drift_times[event.destination] = (flagged, event.ts)
            self.drifts[event.destination] = record
            self._refresh(event.destination, self._drift_evidence)
            if self.on_drift is not None:
                self.on_drift(event)

    def _drift_evidence(self, inc: Incident) -> bool:
        """Put the destination's latest rate-limit drift into `inc` when it belongs there
        (flagged while `inc` was open, or at most DRIFT_ATTACH_WINDOW before it opened):
        evidence, and a "drift" timeline entry per drop and restoration; also on the engine's
        live copy, so its later saves keep them. True when `inc` changed."""
        record = self.drifts.get(inc.destination)
        if record is None:
            return False
        flagged, restored = self._drift_times[inc.destination]
        if inc.detected_at > flagged + DRIFT_ATTACH_WINDOW or (
            inc.resolved_at is not None and inc.resolved_at < flagged
        ):
            return False

        def entries(noted: tuple[Any, ...] | None) -> list[tuple[float, str, str]]:
            out = []
            if noted is None or noted[0] != flagged:
                out.append((flagged, "drift", _drift_detail(record)))
            if restored is not None:
                out.append((restored, "drift", _drift_restored_detail(record)))
            return out

        return self._attach(
            inc, "rate_limit_drift", dict(record), self._drift_noted, (flagged, restored), entries
        )

    def _attach(
        self,
        inc: Incident,
        key: str,
        evidence: dict[str, Any],
        noted: dict[str, tuple[Any, ...]],
        sig: tuple[Any, ...],
        entries: Callable[[tuple[Any, ...] | None], list[tuple[float, str, str]]],
    ) -> bool:
        """Put `evidence` under `key` into `inc` and the engine's live copy of it (so its
        later saves keep it); when `sig` differs from what `inc` last noted (in `noted`), add
        `entries(what it noted)` to their timelines. True when `inc` changed."""
        changed = inc.evidence.get(key) != evidence
        targets = [inc] + [i for i in self.engine.incidents() if i.id == inc.id and i is not inc]
        previous = noted.get(inc.id)
        if previous != sig:
            noted[inc.id] = sig
            for ts, kind, detail in entries(previous):
                for target in targets:
                    target.note(ts, kind, detail)
            changed = True
        for target in targets:
            target.evidence[key] = evidence
        return changed

    def _refresh(self, destination: str, attach: Callable[[Incident], bool]) -> None:
        """Save every incident of `destination` that `attach` changed."""
        for inc in self.engine.incidents():
            if inc.destination == destination and attach(inc):
                save_incident(self.store.con, inc)

    # -- live ------------------------------------------------------------------------------

    def start_live(self, now: float | None = None) -> Tally:
        """Open the tailers, store the backlog, warm up on recent history, go live."""
        now = time.time() if now is None else now
        # The backup webhook receiver (config [backup]): listening before the backlog is read.
        self.backup = start_backup(self.config, self.store)
        known = self.store.file_states()
        self.tailers = [
            SourceTailer(src.name, self.config.source_glob(src), known)
            for src in self.config.sources
        ]
        tally = self._store_pending(collect=False)
        self.replay_history("ts >= to_timestamp(?)", [now - WARM_WINDOW])
        self.engine.go_live(now)
        self.live = True
        self.start_probes()
        return tally

    # -- probes ------------------------------------------------------------------------------

    def start_probes(self) -> None:
        """Start the probe scheduler for the config's probes (none configured: nothing)."""
        if self.probe_scheduler is not None:
            return
        probes = build_probes(self.config)
        if not probes:
            return
        self.probe_scheduler = ProbeScheduler(
            probes, self.probe_results.put, client_factory=self.probe_client_factory
        )
        self.probe_scheduler.start()

    def drain_probes(self) -> list[ProbeResult]:
        """Store and feed every queued probe result (the runtime's thread only)."""
        results: list[ProbeResult] = []
        while True:
            try:
                results.append(self.probe_results.get_nowait())
            except queue.Empty:
                break
        if results:
            self.record_probe_results(results)
        return results

    def record_probe_results(self, results: list[ProbeResult]) -> None:
        """Insert `results` into `probes`, feed them to the engine, and add status-page
        facts to the destination's open incident."""
        self.store.con.executemany(
            "INSERT INTO probes (destination, probe, ts, ok, http_status, latency_ms, status, "
            "details) VALUES (?, ?, to_timestamp(?), ?, ?, ?, ?, ?)",
            [
                [
                    r.destination,
                    r.probe,
                    r.ts,
                    r.ok,
                    r.http_status,
                    r.latency_ms,
                    r.status,
                    orjson.dumps(r.details).decode(),
                ]
                for r in results
            ],
        )
        self.probes_stored += len(results)
        for r in results:
            self.engine.feed_probe(
                r.destination, r.probe, r.ts, r.ok, reported_status(r), r.details
            )
            retry_after = r.details.get("retry_after_s")
            if isinstance(retry_after, int | float):
                self.drift.note_retry_after(r.destination, float(retry_after))
            facts = _status_page_facts(r)
            if facts is not None:
                self.status_pages[r.destination] = facts
                self._refresh(r.destination, self._status_page_evidence)

    def _status_page_evidence(self, inc: Incident) -> bool:
        """Put the destination's latest status-page facts into `inc` (evidence, and a
        timeline entry when they changed since this incident last noted them); also on the
        engine's live copy, so its later saves keep the entry. True when `inc` changed."""
        facts = self.status_pages.get(inc.destination)
        if facts is None or inc.historical:
            return False
        sig = (facts.get("component_status"), facts.get("page_indicator"), *facts["incidents"])
        return self._attach(
            inc,
            "status_page",
            facts,
            self._status_noted,
            sig,
            lambda _: [(facts["checked_at"], "status_page", _status_page_detail(facts))],
        )

    def _store_pending(self, collect: bool) -> Tally:
        """Stage what every tailer has and commit it; with `collect`, feed the new rows."""
        aggs: list[SecondCounts] = []

        def gather(con: object) -> None:
            aggs.extend(fetch_seconds(self.store.con, "ingested_at = now()"))

        self.store.begin()
        staged = 0
        try:
            for tailer in self.tailers:
                for block in tailer.blocks():
                    staged += self.store.stage(block) or 1
            tally = self.store.commit(gather if collect and staged else None)
        except BaseException:
            self.store.rollback()
            known = self.store.file_states()
            for tailer in self.tailers:
                tailer.rewind(known)
            raise
        self._feed(aggs)
        return tally

    def poll(self, now: float | None = None) -> Tally:
        """Read what was appended, store it, detect up to the wall clock, and (every
        PRUNE_INTERVAL) delete events older than the retention."""
        now = time.time() if now is None else now
        tally = self._store_pending(collect=True)
        self.drain_probes()
        self._advance(now + LIVE_LEAD, wall=now)
        self._prune(now)
        return tally

    def _prune(self, now: float) -> None:
        """Delete events older than storage.retention before the newest one, once every
        PRUNE_INTERVAL: `ingest` prunes after its backfill, but a live run lasts weeks, and
        without this its table (and what DuckDB keeps of it in memory) grows without end.
        One small committed DELETE; the newest event is the engine's (no scan of the
        table), and at most `now`: a line stamped in the future by a skewed clock must
        not make retention wipe the present."""
        if now < self._prune_due:
            return
        self._prune_due = now + PRUNE_INTERVAL
        newest = None if self.last_event_sec is None else min(self.last_event_sec + 1.0, now)
        self.store.prune(self.config.storage.retention, newest)

    def run_live(
        self, duration: float | None = None, stop: Callable[[], bool] | None = None
    ) -> None:
        """Poll until `duration` seconds have passed or `stop()` says so."""
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            started = time.monotonic()
            self.poll()
            if stop is not None and stop():
                return
            if deadline is not None and started >= deadline:
                return
            time.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - started)))


def _status_page_facts(result: ProbeResult) -> dict[str, Any] | None:
    """What a status page said, from a statuspage probe result that parsed; else None."""
    d = result.details
    if d.get("kind") != "statuspage" or not ("component_status" in d or "page_indicator" in d):
        return None
    facts: dict[str, Any] = {"probe": result.probe, "checked_at": result.ts}
    for key in ("component", "component_status", "page_indicator", "page_description"):
        if key in d:
            facts[key] = d[key]
    incidents = d.get("incidents")
    facts["incidents"] = [str(n) for n in incidents] if isinstance(incidents, list) else []
    return facts


def _status_page_detail(facts: dict[str, Any]) -> str:
    parts = []
    if "component" in facts:
        parts.append(f"component {facts['component']}: {facts.get('component_status')}")
    if "page_indicator" in facts:
        described = facts.get("page_description")
        parts.append(
            f"page indicator {facts['page_indicator']}" + (f" ({described})" if described else "")
        )
    names = facts["incidents"]
    parts.append("open incidents: " + ("; ".join(names) if names else "none"))
    return "status page: " + ", ".join(parts)


def _drift_detail(record: dict[str, Any]) -> str:
    detail = (
        f"rate-limit drift: accepted-rate ceiling {record['old_ceiling_per_s']:g}/s -> "
        f"{record['new_ceiling_per_s']:g}/s (delivered while throttled), "
        f"{record['throttled_share'] * 100:.1f}% of attempts throttled"
    )
    if record.get("retry_after_s") is not None:
        detail += f", Retry-After {record['retry_after_s']:g} s"
    return detail


def _drift_restored_detail(record: dict[str, Any]) -> str:
    return (
        f"rate-limit drift over: accepted-rate ceiling back to "
        f"{record['restored_ceiling_per_s']:g}/s (baseline {record['old_ceiling_per_s']:g}/s)"
    )
