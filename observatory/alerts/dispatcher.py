"""The dispatcher: one bounded queue and worker thread per sink, filtering and coalescing of
changes, and delivery with retries (exponential backoff with jitter, or ``Retry-After``)."""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from observatory.alerts.base import _TRACKED_INCIDENTS, AlertSink
from observatory.alerts.errors import AlertDeliveryError
from observatory.incidents.model import SEVERITY_RANK, Change

# Named for the package, as before the split: log records keep saying "observatory.alerts".
log = logging.getLogger("observatory.alerts")

RETRY_AFTER_CAP = 300.0
"""The longest ``Retry-After`` honoured, in seconds (a longer one is clipped to this)."""

_STAT_KEYS = ("sent", "failed_attempts", "retried", "dropped", "given_up")


def _snapshot(change: Change) -> Change:
    """A copy of ``change`` the engine can no longer mutate under a worker's feet."""
    inc = change.incident
    try:
        evidence = copy.deepcopy(inc.evidence)
    except Exception:  # an uncopyable value: fall back to a shallow copy
        evidence = inc.evidence.copy()
    copied = dataclasses.replace(
        inc,
        detectors=list(inc.detectors),
        evidence=evidence,  # the impact is immutable: shared
        timeline=list(inc.timeline),
    )
    return Change(change.kind, copied)


class _Worker:
    """One sink's queue, counters, forwarding state and thread."""

    def __init__(self, sink: AlertSink, name: str, queue_size: int) -> None:
        self.sink = sink
        self.name = name
        self.min_rank = SEVERITY_RANK.get(str(getattr(sink, "min_severity", "warning")), 0)
        self.every_update = bool(getattr(sink, "every_update", False))
        self.queue: deque[Change] = deque()
        self.queue_size = max(1, queue_size)
        self.cond = threading.Condition(threading.Lock())
        self.stats = dict.fromkeys(_STAT_KEYS, 0)
        # incident id -> (severity, detectors, state) last forwarded to this sink
        self.forwarded: OrderedDict[str, tuple[str, tuple[str, ...], str]] = OrderedDict()
        self.dropping = False
        self.thread: threading.Thread | None = None

    def wants(self, change: Change) -> bool:
        """Whether this sink should get ``change`` (called under ``cond``)."""
        inc = change.incident
        if change.kind == "resolved":
            # Only incidents this sink was told about get a resolve.
            return self.forwarded.pop(inc.id, None) is not None
        if inc.state == "resolved":  # a late update of a resolved incident must not re-trigger
            return False
        if SEVERITY_RANK.get(inc.severity, 0) < self.min_rank:
            return False
        signature = (inc.severity, tuple(sorted(inc.detectors)), inc.state)
        previous = self.forwarded.get(inc.id)
        if change.kind == "update" and previous == signature and not self.every_update:
            return False
        self.forwarded[inc.id] = signature
        self.forwarded.move_to_end(inc.id)
        if len(self.forwarded) > _TRACKED_INCIDENTS:
            self.forwarded.popitem(last=False)
        return True


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt of a change to a sink: ``ok`` (the sink confirmed: a 2xx,
    PagerDuty's 202, a command's exit 0) or the failure in words; ``final`` when no retry
    follows."""

    sink: str
    change: Change
    ok: bool
    error: str | None
    at: float  # wall clock
    final: bool


class AlertDispatcher:
    """Fans incident changes out to sinks, one worker thread and bounded queue per sink.

    ``publish`` never blocks and never raises. Each sink gets a change unless the incident is
    historical, or below the sink's ``min_severity``, or the change is an update that alters
    neither severity, detectors nor state (unless the sink sets ``every_update``); a resolve
    goes to every sink that was told about the incident. When a sink's queue is full the
    oldest queued change is dropped and counted. Failed deliveries are retried with
    exponential backoff (``backoff * 2**n``, capped at ``max_backoff``, with jitter) or after
    the ``retry_after`` the sink's error carries, up to ``max_attempts`` attempts in all.
    """

    def __init__(
        self,
        sinks: list[AlertSink],
        *,
        queue_size: int = 1000,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self.max_attempts = max(1, max_attempts)
        self.backoff = max(0.0, backoff)
        self.max_backoff = max(0.0, max_backoff)
        self._random = random.Random()
        self._workers: list[_Worker] = []
        names: set[str] = set()
        for sink in sinks:
            name = str(getattr(sink, "name", type(sink).__name__))
            unique, n = name, 2
            while unique in names:
                unique, n = f"{name}#{n}", n + 1
            names.add(unique)
            self._workers.append(_Worker(sink, unique, queue_size))
        self._closing = False
        self._abort = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Delivery], None]] = []

    def __repr__(self) -> str:
        names = ", ".join(w.name for w in self._workers)
        return f"AlertDispatcher(sinks=[{names}])"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start one worker thread per sink (idempotent)."""
        with self._lock:
            if self._started or self._closing:
                return
            self._started = True
            for worker in self._workers:
                worker.thread = threading.Thread(
                    target=self._run, args=(worker,), name=f"alerts-{worker.name}", daemon=True
                )
                worker.thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, then stop the workers.

        Changes still queued at the deadline are counted as dropped; a change whose retries
        are cut short counts as given up. A sink blocked in an attempt is left to finish it
        on its (daemon) thread, bounded by the sink's own timeout.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._closing = True
            started = self._started
        for worker in self._workers:
            with worker.cond:
                worker.cond.notify_all()
        if started:
            for worker in self._workers:
                if worker.thread is not None:
                    worker.thread.join(max(0.0, deadline - time.monotonic()))
        self._abort.set()
        for worker in self._workers:
            with worker.cond:
                left = len(worker.queue)
                worker.queue.clear()
                worker.stats["dropped"] += left
                worker.cond.notify_all()
            if left:
                log.warning("alert %s: closed with %d undelivered change(s)", worker.name, left)
        for worker in self._workers:  # let workers that were between attempts exit
            if worker.thread is not None and worker.thread.is_alive():
                worker.thread.join(0.05)
        if not started:
            for worker in self._workers:
                _close_sink(worker)

    @property
    def sink_names(self) -> list[str]:
        """The sinks' names, as ``stats`` and deliveries name them."""
        return [w.name for w in self._workers]

    def listen(self, listener: Callable[[Delivery], None]) -> Callable[[], None]:
        """Call ``listener`` (on a sink's worker thread) after every delivery attempt; returns
        a function that stops it. A fire drill uses this to see each sink confirm."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def _tell(self, delivery: Delivery) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(delivery)
            except Exception:  # a listener must not break delivery
                log.warning("alerts: a delivery listener failed", exc_info=True)

    # -- publishing --------------------------------------------------------------------------

    def publish(self, change: Change) -> None:
        """Queue ``change`` for every sink that wants it; never blocks, never raises."""
        try:
            self._publish(change)
        except Exception:  # the engine must never be disturbed by alerting
            log.warning("alerts: could not queue an incident change", exc_info=True)

    def _publish(self, change: Change) -> None:
        if change.incident.historical:
            return
        snapshot: Change | None = None
        closed = self._closing
        for worker in self._workers:
            started_dropping = False
            with worker.cond:
                if not worker.wants(change):
                    continue
                if closed:
                    worker.stats["dropped"] += 1
                    continue
                if snapshot is None:
                    snapshot = _snapshot(change)
                if len(worker.queue) >= worker.queue_size:
                    worker.queue.popleft()
                    worker.stats["dropped"] += 1
                    started_dropping = not worker.dropping
                    worker.dropping = True
                worker.queue.append(snapshot)
                worker.cond.notify()
            if started_dropping:
                log.warning(
                    "alert %s: queue full (%d), dropping the oldest changes",
                    worker.name,
                    worker.queue_size,
                )

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink name: sent, failed_attempts, retried, dropped, given_up."""
        out: dict[str, dict[str, int]] = {}
        for worker in self._workers:
            with worker.cond:
                out[worker.name] = dict(worker.stats)
        return out

    # -- workers -----------------------------------------------------------------------------

    def _run(self, worker: _Worker) -> None:
        try:
            while True:
                with worker.cond:
                    while not worker.queue and not self._closing and not self._abort.is_set():
                        worker.cond.wait()
                    if self._abort.is_set() or not worker.queue:
                        return
                    change = worker.queue.popleft()
                    if not worker.queue:
                        worker.dropping = False
                self._deliver(worker, change)
        finally:
            _close_sink(worker)

    def _deliver(self, worker: _Worker, change: Change) -> None:
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                with worker.cond:
                    worker.stats["retried"] += 1
            try:
                worker.sink.deliver(change)
            except Exception as exc:  # any failure is retried or given up
                message = _error_text(exc)
                with worker.cond:
                    worker.stats["failed_attempts"] += 1
                permanent = bool(getattr(exc, "permanent", False))
                final = permanent or attempt >= self.max_attempts
                self._tell(Delivery(worker.name, change, False, message, time.time(), final))
                if final:
                    with worker.cond:
                        worker.stats["given_up"] += 1
                    log.warning(
                        "alert %s: gave up on incident %s after %d attempt(s): %s",
                        worker.name,
                        change.incident.id,
                        attempt,
                        message,
                    )
                    return
                delay = self._delay(attempt, getattr(exc, "retry_after", None))
                log.warning(
                    "alert %s: attempt %d/%d failed: %s; retrying in %.2fs",
                    worker.name,
                    attempt,
                    self.max_attempts,
                    message,
                    delay,
                )
                if self._abort.wait(delay):
                    with worker.cond:
                        worker.stats["given_up"] += 1
                    log.warning(
                        "alert %s: gave up on incident %s at shutdown",
                        worker.name,
                        change.incident.id,
                    )
                    return
            else:
                with worker.cond:
                    worker.stats["sent"] += 1
                self._tell(Delivery(worker.name, change, True, None, time.time(), True))
                return

    def _delay(self, attempt: int, retry_after: Any) -> float:
        if isinstance(retry_after, int | float) and retry_after >= 0:
            wait = min(float(retry_after), RETRY_AFTER_CAP)
            return wait + self._random.uniform(0.0, min(1.0, 0.1 * wait))
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * self._random.uniform(0.5, 1.0)


def _error_text(exc: BaseException) -> str:
    """A one-line description of a delivery failure. Our sinks' errors are already free of
    secrets; for anything else only the exception's type is shown, since its message might
    quote a URL."""
    if isinstance(exc, AlertDeliveryError):
        return str(exc)
    return type(exc).__name__


def _close_sink(worker: _Worker) -> None:
    closer = getattr(worker.sink, "close", None)
    if callable(closer):
        try:
            closer()
        except Exception:  # closing is best effort
            log.warning("alert %s: error while closing (%s)", worker.name, "ignored")
