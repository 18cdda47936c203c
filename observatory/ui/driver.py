"""The runtime's own thread: polls, runs commands, and publishes Snapshots.

The Runtime is not thread-safe, so exactly one thread (a Textual thread worker started by
the app) drives it. Anything else that must touch the runtime's write connection or its
engine (acknowledging an incident, so the engine does not later overwrite it) is queued
here as a command and runs between polls.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from observatory.backup.reconcile import reconcile
from observatory.detect.drift import DestinationDrift
from observatory.detect.engine import DestinationStatus
from observatory.incidents.model import Incident
from observatory.runtime import Runtime
from observatory.store.query import first_line
from observatory.ui.queries import disable_external_access, external_access_allowed

POLL_SECONDS = 0.25
BACKUP_SECONDS = 5.0  # how often the backup reconciliation is recounted for the panes


@dataclass(frozen=True)
class Snapshot:
    """What the live panes render: copies, safe to hand to the UI thread."""

    now: float
    statuses: dict[str, DestinationStatus]
    incidents: list[Incident]
    live: bool
    note: str = ""
    drift: dict[str, DestinationDrift] = field(default_factory=dict)  # rate-limit ceilings
    # with a [backup] table: per destination, reconcile()'s summary (missing, pending, ...)
    backup: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RuntimeDriver:
    """Owns a Runtime on one thread. `run()` is the body of the app's thread worker."""

    factory: Callable[[], Runtime]
    publish: Callable[[Snapshot], None]
    poll: bool = True
    # The panes' now and, live, the runtime's wall clock (None: time.time())
    clock: Callable[[], float] | None = None
    note: str = ""
    runtime: Runtime | None = None
    paused: bool = False
    _commands: queue.Queue[tuple[Callable[[Runtime], Any], Future[Any]]] = field(
        default_factory=queue.Queue
    )
    _stop: bool = False
    _backup: dict[str, dict[str, Any]] = field(default_factory=dict)
    _backup_at: float | None = None
    # Set once `run()` has returned: the runtime (and its alert dispatcher) is closed.
    _done: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self._stop = True
        self._commands.put((lambda rt: None, Future()))

    def wait_closed(self, timeout: float) -> bool:
        """Wait up to `timeout` s for `run()` to return; True if it has."""
        return self._done.wait(timeout)

    def submit(self, command: Callable[[Runtime], Any]) -> Future[Any]:
        """Run `command(runtime)` on the runtime's thread; the future holds its result."""
        future: Future[Any] = Future()
        self._commands.put((command, future))
        return future

    def wall(self) -> float | None:
        """What the runtime polls as the wall clock: the driver's clock, else None (the
        runtime's own, time.time())."""
        return None if self.clock is None else self.clock()

    def now(self, runtime: Runtime) -> float:
        if self.clock is not None:
            return self.clock()
        if runtime.live:
            return time.time()
        # Replayed history: "now" is just past the data, so ages read as in the data.
        return float(runtime.last_event_sec + 1) if runtime.last_event_sec is not None else 0.0

    def snapshot(self, runtime: Runtime) -> Snapshot:
        return Snapshot(
            now=self.now(runtime),
            statuses=runtime.engine.status(),
            incidents=[i.snapshot() for i in runtime.engine.incidents()],
            live=runtime.live,
            note=self.note,
            drift=runtime.drift.status(),
            backup=self._backup_counts(runtime),
        )

    def _backup_counts(self, runtime: Runtime) -> dict[str, dict[str, Any]]:
        """The backup reconciliation, recounted every BACKUP_SECONDS (it scans the backup
        events and the deliveries); a failure leaves the last counts and says so."""
        backup = runtime.config.backup
        if backup is None:
            return {}
        started = time.monotonic()
        if self._backup_at is not None and started - self._backup_at < BACKUP_SECONDS:
            return self._backup
        self._backup_at = started
        try:
            rows = reconcile(runtime.store.con, backup, now=self.now(runtime))
        except Exception as exc:  # the panes keep the last counts
            self.note = f"backup reconciliation failed: {first_line(exc)}"
            return self._backup
        self._backup = {row["destination"]: row for row in rows}
        return self._backup

    def run(self) -> None:
        """Build the runtime, go live (with `poll`), then poll, run commands and publish
        until stopped; the runtime is closed (its alerts flushed) before this returns."""
        try:
            self._run()
        finally:
            self._done.set()

    def _run(self) -> None:
        runtime = self.factory()
        try:
            if not external_access_allowed(runtime.config):
                disable_external_access(runtime.store.con)
        except BaseException:
            runtime.close()
            raise
        self.runtime = runtime
        try:
            if self.poll and not runtime.live:
                runtime.start_live(self.wall())
            self.publish(self.snapshot(runtime))
            while not self._stop:
                started = time.monotonic()
                if self.poll:
                    runtime.poll(self.wall())
                ran = self._run_commands(runtime, started)
                if self._stop:
                    break
                if (self.poll or ran) and not self.paused:
                    self.publish(self.snapshot(runtime))
        finally:
            runtime.close()

    def _run_commands(self, runtime: Runtime, started: float) -> bool:
        """Run queued commands until the next poll is due; True if any ran."""
        ran = False
        while not self._stop:
            timeout = POLL_SECONDS - (time.monotonic() - started) if self.poll else None
            if timeout is not None and timeout <= 0:
                break
            try:
                command, future = self._commands.get(timeout=timeout)
            except queue.Empty:
                break
            if self._stop:
                break
            ran = True
            try:
                future.set_result(command(runtime))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            if not self.poll:
                break
        return ran


def acknowledge_incident(incident_id: str, ts: float) -> Callable[[Runtime], Incident]:
    """A command: acknowledge the incident, through the runtime's ledger."""
    return lambda runtime: runtime.acknowledge(incident_id, ts)


def note_incident(incident_id: str, ts: float, text: str) -> Callable[[Runtime], Incident]:
    """A command: add a note to the incident's timeline, through the runtime's ledger."""
    return lambda runtime: runtime.note(incident_id, ts, text)
