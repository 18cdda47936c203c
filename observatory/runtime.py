"""The runtime: tailers + store + engine (+ alert dispatch), wired from the config.

`replay` and `watch`, the TUI and the tests all drive this one class; every entry point builds
it with `observatory.owner.build_runtime`, which attaches the config's alert dispatcher:
- `replay_history()` runs detection over everything stored, in event time (the watermark
  follows the data, so hours replay in seconds with the detections they would have had live);
- `start_live()` reads the backlog, warms the engine on recent history (its faults become
  historical incidents, not live alerts), then `poll()` tails, stores and detects as the
  wall clock advances.
Each incident change is saved, handed to the alert dispatcher and to `on_change`. The runtime
owns its dispatcher: `close()` flushes it (at most `alert_flush_timeout` seconds), then stops it.

Live, the config's probes run on their own thread (`ProbeScheduler`); their results wait in a
thread-safe queue that `poll()` drains on the runtime's thread: each is stored in `probes` and
fed to the engine, and a status page's facts join the destination's open incident.

Incidents are written by one ledger (`observatory.incidents.ledger`), which the engine runs:
it saves every change in the `incidents` table before the runtime hands it on; the status page
and the rate-limit drift (which the engine tracks) reach incidents as its evidence providers
(`observatory.incidents.providers`). Operators' acknowledgements and notes go through
`acknowledge` and `note`, to the same ledger.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, cast

import httpx
import orjson

from observatory.backup.receiver import BackupService, start_backup
from observatory.detect import SecondCounts
from observatory.detect.aggregate import by_second, fetch_seconds
from observatory.detect.drift import DriftEvent, DriftTracker
from observatory.detect.status import DestinationStatus
from observatory.drills import Drill, DrillReport, save_drill
from observatory.drills.run import DrillKind
from observatory.feeds import Feed, FeedReport, build_feeds
from observatory.history import detection_engine, replay_counts
from observatory.incidents.ledger import Ledger
from observatory.incidents.model import Change, Incident
from observatory.incidents.providers import StatusPageEvidence
from observatory.incidents.store import IncidentTable
from observatory.ingest.tail import SourceTailer
from observatory.probes import ProbeResult, ProbeScheduler, build_probes, reported_status
from observatory.probes.base import mparticle_usage, probe_retry_after
from observatory.probes.scheduler import default_client
from observatory.server.api import ApiService, start_api
from observatory.snapshot import SnapshotMaker
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
# Live, events older than storage.retention are deleted this often (s, wall clock).
PRUNE_INTERVAL = 60.0
# At close, how long queued alerts may take to be delivered before they are dropped (s).
ALERT_FLUSH_TIMEOUT = 5.0


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
        alert_flush_timeout: float = ALERT_FLUSH_TIMEOUT,
    ) -> None:
        self.config = config
        self.store = store or Store.for_config(config, db)
        self.status_pages = StatusPageEvidence()
        self.ledger = Ledger(sink=IncidentTable(self.store.con), providers=[self.status_pages])
        self.engine = detection_engine(config, self.ledger, on_drift=self._on_drift)
        self.on_change = on_change
        self.dispatcher = dispatcher
        self.alert_flush_timeout = alert_flush_timeout
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
        # Rate-limit drift: every event the engine's tracker raised, handed to on_drift too.
        self.on_drift = on_drift
        self.drift_events: list[DriftEvent] = []
        self.backup: BackupService | None = None  # the [backup] receiver, once live
        # [[feeds]]: their reports arrive from their threads, are taken in poll()
        self.feeds: list[Feed] = []
        self.feed_reports: queue.SimpleQueue[FeedReport] = queue.SimpleQueue()
        # destination -> the feeds its numbers come from (several add up: two rudder-servers)
        self.feed_of: dict[str, list[Feed]] = {}
        self.feed_rejected = 0
        # a fire drill in progress (observatory drill), and the reports of finished ones
        self.drill: Drill | None = None
        self.drill_reports: dict[str, DrillReport] = {}
        self.api: ApiService | None = None  # the [server] API, once live
        # What the owner's own panes and its viewers render: one maker, so the backup
        # recount (a scan, every few seconds) is shared.
        self.snapshots = SnapshotMaker()
        # Work for the runtime's thread from others (the API's acknowledgements and notes).
        self._commands: queue.SimpleQueue[tuple[Callable[[Runtime], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._prune_due = 0.0  # wall time of the next retention prune (live)

    @property
    def drift(self) -> DriftTracker:
        """The engine's rate-limit drift tracker."""
        return self.engine.drift

    def _on_drift(self, event: DriftEvent) -> None:
        self.drift_events.append(event)
        if self.on_drift is not None:
            self.on_drift(event)

    def close(self) -> None:
        """Stop the API, flush and stop the alert dispatcher (bounded by
        `alert_flush_timeout`), then stop the backup receiver and the probes, and close the
        tailers and the store."""
        try:
            if self.drill is not None:
                self.drill.cancel()
                self.drill = None
            if self.api is not None:
                self.api.stop()  # idempotent
            if self.dispatcher is not None:
                self.dispatcher.close(self.alert_flush_timeout)
        finally:
            if self.backup is not None:
                self.backup.stop()  # idempotent
            if self.probe_scheduler is not None:
                self.probe_scheduler.stop()
                self.probe_scheduler = None
            for feed in self.feeds:
                feed.stop()
            for tailer in self.tailers:
                tailer.close()
            self.store.close()

    # -- detection -----------------------------------------------------------------------

    def _feed(self, counts: list[SecondCounts]) -> None:
        if not counts:
            return
        self.engine.feed(counts)
        newest = max(c.sec for c in counts)
        if self.last_event_sec is None or newest > self.last_event_sec:
            self.last_event_sec = newest

    def _handle(self, changes: list[Change]) -> None:
        """Hand on the changes the ledger has written: to the alert dispatcher, `on_change`."""
        for change in changes:
            inc = change.incident
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
        replay_counts(groups, self._feed, self._advance, speed)

    def _advance(self, watermark: float, wall: float | None = None) -> None:
        """Move the engine on to `watermark` (live: `wall` is the wall clock now)."""
        self._handle(self.engine.advance(watermark, wall=wall))

    # -- operators ---------------------------------------------------------------------------

    def acknowledge(self, id_or_prefix: str, ts: float) -> Incident:
        """Acknowledge an incident (live in the ledger, or an earlier run's)."""
        return self.ledger.acknowledge_any(id_or_prefix, ts)

    def note(self, id_or_prefix: str, ts: float, text: str) -> Incident:
        """Add an operator's note to an incident's timeline."""
        return self.ledger.note(id_or_prefix, ts, text)

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
        # Feeds: bound now; what their platforms still hold of the recent past warms up too
        self.feeds = build_feeds(self.config, self.feed_reports.put)
        for feed in self.feeds:
            report = feed.backfill()
            if report is not None:
                self.take_feed_report(feed, report)
        self.replay_history("ts >= to_timestamp(?)", [now - WARM_WINDOW])
        self.engine.go_live(now)
        self.live = True
        for feed in self.feeds:
            feed.start()
        self.start_probes()
        self.api = start_api(self)
        return tally

    # -- work from other threads --------------------------------------------------------------

    def submit(self, command: Callable[[Runtime], Any]) -> Future[Any]:
        """Run ``command(self)`` on the runtime's thread (at its next poll); its result or
        exception in the Future."""
        future: Future[Any] = Future()
        self._commands.put((command, future))
        return future

    def run_commands(self) -> None:
        """Run the submitted commands (the runtime's thread only)."""
        while True:
            try:
                command, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(command(self))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

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
        facts to the destination's open incident (a dependency's: stored only)."""
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
        # A dependency's probes are stored for `deps` and the `d` screen only: fed to the
        # engine they would make it a destination (a pane, baselines, incidents).
        dependencies = {d.name for d in self.config.dependencies}
        for r in results:
            if r.destination in dependencies:
                continue
            self.engine.feed_probe(
                r.destination, r.probe, r.ts, r.ok, reported_status(r), r.details
            )
            retry_after = probe_retry_after(r.details)
            if retry_after is not None:
                self.drift.note_retry_after(r.destination, retry_after)
            self.drift.note_usage(r.destination, *mparticle_usage(r.details), r.ts)
            if self.status_pages.record(r):
                self.ledger.refresh(r.destination)

    # -- fire drills -------------------------------------------------------------------------

    def start_drill(
        self, destination: str | None = None, kind: str = "rate_limit", now: float | None = None
    ) -> str:
        """Start a fire drill on a drill copy of ``destination`` (default: the first configured
        one, else the busiest seen); its id. Live only; one at a time. ValueError when it
        cannot start (the runtime's thread only)."""
        if not self.live:
            raise ValueError("a drill runs on a live runtime (watch, or the TUI)")
        if self.drill is not None:
            raise ValueError(f"drill {self.drill.report.id} is still running")
        statuses = self.engine.status()
        if destination is None:
            if self.config.destinations:
                destination = self.config.destinations[0].name
            elif statuses:
                busiest = max(statuses.values(), key=lambda s: s.baseline_rate or 0.0)
                destination = busiest.destination
            else:
                raise ValueError("no destination to drill: name one (--destination)")
        status = statuses.get(destination)
        rate = status.baseline_rate if status is not None else None
        now = time.time() if now is None else now
        drill_kind = cast(DrillKind, kind)  # Drill refuses an unknown kind
        self.drill = Drill(destination, drill_kind, self.config, self.dispatcher, now, rate)
        return self.drill.report.id

    def _tick_drill(self, now: float) -> None:
        if self.drill is None:
            return
        report = self.drill.tick(now)
        if report is not None:
            self.drill = None
            save_drill(self.store.con, report)
            self.drill_reports[report.id] = report

    def drill_report(self, drill_id: str) -> DrillReport | None:
        """A finished drill's report (None while it runs); KeyError for an unknown id."""
        if self.drill is not None and self.drill.report.id == drill_id:
            return None
        if drill_id in self.drill_reports:
            return self.drill_reports[drill_id]
        raise KeyError(f"no drill {drill_id}")

    # -- feeds -------------------------------------------------------------------------------

    def drain_feeds(self) -> int:
        """Store, judge and count every queued feed report (the runtime's thread only)."""
        by_name = {f.name: f for f in self.feeds}
        taken = 0
        while True:
            try:
                report = self.feed_reports.get_nowait()
            except queue.Empty:
                return taken
            feed = by_name.get(report.feed)
            if feed is not None:
                self.take_feed_report(feed, report)
                taken += 1

    def take_feed_report(self, feed: Feed, report: FeedReport) -> None:
        """One report: its destinations judged ``feed.delay`` behind the clock, its counts
        stored in ``feed_seconds`` and fed, what it reported told to the engine."""
        for dest in {c.destination for c in report.counts} | set(report.reported):
            feeds = self.feed_of.setdefault(dest, [])
            if feed not in feeds:
                feeds.append(feed)
                self.engine.set_delay(dest, feed.delay)  # the longest of its feeds' delays
        self.store.store_feed(feed.name, report.counts, report.samples)
        self.feed_rejected += report.rejected
        self._feed(report.counts)
        for dest, until in report.reported.items():
            self.engine.reported(dest, until)

    def status(self) -> dict[str, DestinationStatus]:
        """Per destination, what the dashboard shows, with the feed its numbers come from."""
        statuses = self.engine.status()
        for dest, feeds in self.feed_of.items():
            status = statuses.get(dest)
            if status is not None:
                status.feed = " + ".join(f.describe() for f in feeds)
                errors = [f"{f.name}: {f.last_error}" for f in feeds if f.last_error]
                status.feed_error = "; ".join(errors) or None
        return statuses

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
        self.drain_feeds()
        self.drain_probes()
        self.run_commands()
        self._advance(now + LIVE_LEAD, wall=now)
        self._tick_drill(now)
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
