"""Run probes on their own thread: one asyncio loop, one ``httpx.AsyncClient``.

Each probe runs every ``every`` seconds (±10 % jitter), counted from the end of its previous
run, so it never overlaps itself; a run is cut at the probe's timeout; and when a server asks
for a pause (Retry-After, an exhausted quota's reset) the probe is not called before then.
Results go to ``on_result`` on the scheduler thread: hand them to another thread through a
queue (the runtime does).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

import httpx

from observatory.probes.base import Probe, ProbeResult

log = logging.getLogger(__name__)

JITTER = 0.10
# A server's "come back at" is honoured up to this far ahead (a bogus date must not silence
# a probe for a year).
MAX_BACKOFF = 3600.0
# Grace on top of a probe's own timeout before the scheduler gives up on the run.
TIMEOUT_GRACE = 1.0


def default_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=True,
        headers={"User-Agent": "observatory-probe/0.1"},
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
    )


class ProbeScheduler:
    """Runs `probes` until `stop()`; see the module docstring."""

    def __init__(
        self,
        probes: Sequence[Probe],
        on_result: Callable[[ProbeResult], None],
        client_factory: Callable[[], httpx.AsyncClient] = default_client,
        *,
        jitter: float = JITTER,
        seed: int | None = None,
    ) -> None:
        self.probes = list(probes)
        self.on_result = on_result
        self.client_factory = client_factory
        self.jitter = jitter
        self._random = random.Random(seed)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self.runs = 0

    # -- thread side ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="observatory-probes", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self, timeout: float = 5.0) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # loop already closed
                pass
        thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run_all())
        except Exception:  # never let the thread die with a traceback on stderr
            log.exception("probe scheduler stopped")
        finally:
            self._ready.set()
            loop.close()

    # -- loop side --------------------------------------------------------------------------

    async def _run_all(self) -> None:
        self._stopping = asyncio.Event()
        self._ready.set()
        async with self.client_factory() as client:
            tasks = [
                asyncio.create_task(self._run_one(p, client, i)) for i, p in enumerate(self.probes)
            ]
            await self._stopping.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _interval(self, every: float) -> float:
        return every * (1.0 + self._random.uniform(-self.jitter, self.jitter))

    async def _run_one(self, probe: Probe, client: httpx.AsyncClient, index: int) -> None:
        # A small stagger so many probes do not all fire in the same instant.
        await asyncio.sleep(min(0.05 * index, probe.every * self.jitter))
        while True:
            result = await self._once(probe, client)
            self.runs += 1
            try:
                self.on_result(result)
            except Exception:
                log.exception("probe result handler failed")
            delay = self._interval(probe.every)
            now = time.time()
            if result.retry_at is not None and result.retry_at > now + delay:
                delay = min(result.retry_at - now, MAX_BACKOFF)
            await asyncio.sleep(delay)

    async def _once(self, probe: Probe, client: httpx.AsyncClient) -> ProbeResult:
        started = time.time()
        try:
            return await asyncio.wait_for(probe.run(client), probe.timeout + TIMEOUT_GRACE)
        except TimeoutError:
            return ProbeResult(
                probe.destination,
                probe.name,
                started,
                False,
                status="timeout",
                details={"error": f"no response within {probe.timeout:g} s"},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Probe.run promises not to raise; belt and braces
            return ProbeResult(
                probe.destination,
                probe.name,
                started,
                False,
                status="error",
                details={"error": type(exc).__name__},
            )
