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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from observatory.incidents.model import Incident
from observatory.runtime import Runtime
from observatory.snapshot import Snapshot, live_now
from observatory.ui.queries import disable_external_access, external_access_allowed

if TYPE_CHECKING:
    import duckdb

    from observatory.config import Config
    from observatory.history import HistoryReplay
    from observatory.incidents.export import Format

POLL_SECONDS = 0.25

__all__ = ["Snapshot", "RuntimeDriver", "IncidentState", "acknowledge_incident", "note_incident"]


class IncidentState(NamedTuple):
    """What an incident action answers: the incident and the state it is in now."""

    id: str
    state: str


@dataclass
class RuntimeDriver:
    """Owns a Runtime on one thread. `run()` is the body of the app's thread worker.

    The app's other driver, for a TUI attached to another process's runtime, is
    :class:`observatory.ui.attached.AttachedDriver`; both answer the same calls.
    """

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
    # Set once `run()` has returned: the runtime (and its alert dispatcher) is closed.
    _done: threading.Event = field(default_factory=threading.Event)

    attached_to: ClassVar[str | None] = None  # the owner's URL when attached; here: none

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
        return live_now(runtime)

    def snapshot(self, runtime: Runtime) -> Snapshot:
        return runtime.snapshots.make(runtime, self.now(runtime))

    # -- what the screens ask (from worker threads; each call blocks until done) -------------

    @property
    def config(self) -> Config | None:
        """The runtime's config (None while it starts): the dependency map, response plans."""
        runtime = self.runtime
        return runtime.config if runtime is not None else None

    def read_cursor(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor for reads (the runtime must be up)."""
        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("the runtime is still starting")
        return runtime.store.cursor()

    def acknowledge(self, incident_id: str, ts: float) -> IncidentState:
        incident = self.submit(acknowledge_incident(incident_id, ts)).result(timeout=30)
        return IncidentState(incident.id, incident.state)

    def add_note(self, incident_id: str, ts: float, text: str) -> IncidentState:
        incident = self.submit(note_incident(incident_id, ts, text)).result(timeout=30)
        return IncidentState(incident.id, incident.state)

    def export_incident(self, incident_id: str, fmt: Format) -> tuple[str, str]:
        """The incident's export in ``fmt``: (its full id, the text)."""
        from observatory.config import response_plan
        from observatory.incidents.export import export_incident
        from observatory.incidents.store import load_incident

        with self.read_cursor() as cur:
            incident = load_incident(cur, incident_id)
            plan = response_plan(self.config, incident.destination)
            return incident.id, export_incident(cur, incident, fmt, plan)

    def backup_destinations(self, snap: Snapshot | None = None) -> list[str] | None:
        """The [backup] table's destinations (None: no [backup] table)."""
        runtime = self.runtime
        backup = runtime.config.backup if runtime is not None else None
        return None if backup is None else list(backup.destinations)

    def write_missing(self, destination: str, path: str, now: float) -> int:
        """Write the destination's missing backup events, as received, to ``path``."""
        from observatory.backup.reconcile import write_missing

        runtime = self.runtime
        backup = runtime.config.backup if runtime is not None else None
        if backup is None:
            raise ValueError("no [backup] table in the config")
        with self.read_cursor() as cur:
            return write_missing(cur, backup, path, destination, now=now)

    def replay_history(self, progress: Callable[[int, int], None] | None = None) -> HistoryReplay:
        """Replay every stored event through a fresh engine in event time (as `observatory
        replay` does): the DuckDB reads and the detectors run in the calling thread (a
        worker), the incidents are saved on the runtime's thread (an upsert: replaying
        again adds none). The panes read the stored history again."""
        from observatory.history import replay_stored, save_replayed

        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("the runtime is still starting")
        with self.read_cursor() as cur:
            replay = replay_stored(cur, runtime.config, progress)

        def save(rt: Runtime) -> int:
            new = save_replayed(rt.store.con, replay.incidents)
            rt.snapshots.history_changed()
            return new

        return replace(replay, new=self.submit(save).result(timeout=60))

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
        if self.note:
            runtime.snapshots.note = self.note  # viewers of this owner see it too
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
