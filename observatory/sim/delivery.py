"""The simulated forwarder itself: `Forwarder`, its delivery loop and its delivery log.

Each destination has a queue flushed every `flush_interval` seconds in batches by up to
`concurrency` requests in flight over one shared keep-alive `httpx.AsyncClient`, on its own
thread and event loop. Retryable failures are retried with exponential backoff (or the
answer's retry delay), and every attempt's outcome is written as one pino-style line per event.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import orjson

from observatory.sim.conversions import (
    _BATCH,
    _PATHS,
    DESTINATIONS,
    Event,
    EventStream,
    _classify,
    _Outcome,
    _payload,
)


class Forwarder:
    """Delivers a seeded conversion stream to the simulator and logs every outcome."""

    def __init__(
        self,
        base_url: str,
        log_path: str | Path,
        *,
        seed: int = 0,
        rate: float = 100.0,
        destinations: tuple[str, ...] = DESTINATIONS,
        flush_interval: float = 0.2,
        concurrency: int = 8,
        timeout: float = 5.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        batch: dict[str, int] | None = None,
        p_bad_gclid: float = 0.003,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.log_path = Path(log_path)
        self.rate = rate
        self.destinations = destinations
        self.flush_interval = flush_interval
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.batch = dict(_BATCH, **(batch or {}))
        self.stream = EventStream(seed, p_bad_gclid)
        self._jitter = random.Random(seed + 1)
        self._queues: dict[str, deque[Event]] = {d: deque() for d in destinations}
        self._buf: list[bytes] = []
        self._paused = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.lines = 0
        self.counts: dict[str, dict[str, int]] = {
            d: {"delivered": 0, "rate_limited": 0, "rejected": 0, "failed": 0, "retrying": 0}
            for d in destinations
        }

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        """Stop generating, sending and writing (a hung forwarder)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def set_rate(self, rate: float) -> None:
        self.rate = float(rate)

    def start(self) -> Forwarder:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._main(started))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="sim-forwarder", daemon=True)
        self._thread.start()
        started.wait(5)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop, cancel in-flight work and flush the log (idempotent)."""
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------------ the loop

    async def _main(self, started: threading.Event) -> None:
        limits = httpx.Limits(
            max_connections=self.concurrency * len(self.destinations) + 4,
            max_keepalive_connections=self.concurrency * len(self.destinations) + 4,
        )
        fh = open(self.log_path, "ab")  # noqa: SIM115 - closed below
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self.timeout,
                limits=limits,
                headers={"Access-Token": "sim-token", "Content-Type": "application/json"},
            ) as client:
                tasks = [asyncio.create_task(self._generate())]
                inflight: set[asyncio.Task[None]] = set()
                for dest in self.destinations:
                    tasks.append(asyncio.create_task(self._flusher(client, dest, inflight)))
                started.set()
                while not self._stopping:
                    await asyncio.sleep(0.1)
                    self._write(fh)
                for t in tasks + list(inflight):
                    t.cancel()
                await asyncio.gather(*tasks, *inflight, return_exceptions=True)
        finally:
            self._write(fh)
            fh.close()

    def _write(self, fh: Any) -> None:
        if self._buf:
            buf, self._buf = self._buf, []
            fh.write(b"".join(buf))
            fh.flush()

    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        owed = 0.0
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            dt, last = now - last, now
            if self._paused:
                owed = 0.0
                continue
            owed += self.rate * dt
            n = int(owed)
            owed -= n
            wall = time.time()
            for _ in range(n):
                ev = self.stream.next(wall)
                for q in self._queues.values():
                    q.append(ev)

    async def _flusher(
        self, client: httpx.AsyncClient, dest: str, inflight: set[asyncio.Task[None]]
    ) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        q = self._queues[dest]
        size = self.batch[dest]
        while True:
            await asyncio.sleep(self.flush_interval)
            while q and not self._paused:
                await sem.acquire()
                batch = [q.popleft() for _ in range(min(size, len(q)))]
                task = asyncio.create_task(self._send(client, dest, batch, sem))
                inflight.add(task)
                task.add_done_callback(inflight.discard)

    async def _send(
        self, client: httpx.AsyncClient, dest: str, batch: list[Event], sem: asyncio.Semaphore
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            body = orjson.dumps(_payload(dest, batch))
            attempt = 1
            while True:
                while self._paused:
                    await asyncio.sleep(0.1)
                t0 = loop.time()
                try:
                    resp = await client.post(_PATHS[dest], content=body)
                    outcome = _classify(dest, resp)
                except httpx.TimeoutException:
                    outcome = _Outcome(
                        "timeout",
                        None,
                        "ETIMEDOUT",
                        f"timeout of {int(self.timeout * 1000)}ms exceeded",
                    )
                except httpx.TransportError as exc:
                    outcome = _Outcome("conn", None, "ECONNRESET", str(exc) or type(exc).__name__)
                duration = round((loop.time() - t0) * 1000, 1)
                final = not outcome.retryable or attempt >= self.max_attempts
                self._log(dest, batch, attempt, outcome, duration, final)
                if final:
                    return
                delay = outcome.retry_after
                if delay is None:
                    delay = self.backoff * 2 ** (attempt - 1) * (0.75 + 0.5 * self._jitter.random())
                await asyncio.sleep(min(delay, self.max_backoff))
                attempt += 1
        finally:
            sem.release()

    def _log(
        self,
        dest: str,
        batch: list[Event],
        attempt: int,
        outcome: _Outcome,
        duration: float,
        final: bool,
    ) -> None:
        ms = int(time.time() * 1000)
        counts = self.counts[dest]
        per_event = outcome.per_event or {}
        out = self._buf
        for i, ev in enumerate(batch):
            rec: dict[str, Any] = {
                "level": 30,
                "time": ms,
                "pid": 4242,
                "hostname": "fwd-sim",
                "msg": "delivery ok",
                "dest": dest,
                "event": ev.name,
                "messageId": ev.message_id,
            }
            if outcome.status is not None:
                rec["code"] = outcome.status
            rec["duration"] = duration
            rec["attempt"] = attempt
            if outcome.kind == "ok" and i not in per_event:
                counts["delivered"] += 1
            else:
                if outcome.kind == "ok":
                    code, message = per_event[i]
                    failed_final = True
                else:
                    code, message = outcome.err_code or "", outcome.err_message or ""
                    failed_final = final
                if failed_final:
                    rec["level"], rec["msg"] = 50, "delivery failed"
                    key = {"throttle": "rate_limited", "rejected": "rejected", "ok": "rejected"}
                    counts[key.get(outcome.kind, "failed")] += 1
                else:
                    rec["level"], rec["msg"] = 40, "delivery retrying"
                    counts["retrying"] += 1
                rec["err"] = {"code": code, "message": message}
            out.append(orjson.dumps(rec) + b"\n")
        self.lines += len(batch)
