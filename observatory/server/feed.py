"""``GET /api/snapshots``: the owner's Snapshots as server-sent events, for attached viewers.

While anyone listens, one producer asks the runtime's thread for a Snapshot every
SNAPSHOT_SECONDS (at its next poll: the runtime is not thread-safe), encodes it once and hands
the same bytes to every listener. A listener that is slower than that misses the
intermediate ones: it always gets the newest (no queue grows behind a slow viewer). With
nothing new for HEARTBEAT_SECONDS a comment line goes out, so a viewer can tell a quiet owner
from a dead connection. Stopping the server ends every stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from observatory.snapshot import live_now, snapshot_json

if TYPE_CHECKING:
    from observatory.runtime import Runtime
    from observatory.snapshot import Snapshot

SNAPSHOT_SECONDS = 0.25
HEARTBEAT_SECONDS = 1.0

Command = Callable[[Callable[["Runtime"], "Snapshot"]], Awaitable["Snapshot"]]


class SnapshotFeed:
    """One producer of encoded Snapshots, many listeners (all on the server's event loop)."""

    def __init__(self, command: Command) -> None:
        self._command = command  # runs a function on the runtime's thread
        self._latest: tuple[int, bytes] = (0, b"")
        self._changed = asyncio.Condition()
        self._listeners = 0
        self._producer: asyncio.Task[None] | None = None
        self._closing = False

    async def close(self) -> None:
        """End every stream (the server's on_shutdown)."""
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._producer

    def _make(self, runtime: Runtime) -> Snapshot:
        return runtime.snapshots.make(runtime, live_now(runtime))

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        while self._listeners > 0 and not self._closing:
            started = loop.time()
            try:
                snap = await self._command(self._make)
            except Exception:  # the runtime is busy or stopping: the heartbeat goes on
                snap = None
            if snap is not None:
                body = snapshot_json(snap)
                async with self._changed:
                    self._latest = (self._latest[0] + 1, body)
                    self._changed.notify_all()
            await asyncio.sleep(max(0.0, SNAPSHOT_SECONDS - (loop.time() - started)))

    async def _next(self, seen: int) -> tuple[int, bytes] | None:
        """The newest Snapshot after ``seen``; None after HEARTBEAT_SECONDS without one."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._latest[0] > seen or self._closing),
                    HEARTBEAT_SECONDS,
                )
            except TimeoutError:
                return None
            return None if self._closing else self._latest

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        self._listeners += 1
        if self._producer is None or self._producer.done():
            self._producer = asyncio.create_task(self._produce())
        seen = 0
        try:
            while not self._closing:
                latest = await self._next(seen)
                if latest is None:
                    await response.write(b": still here\n\n")
                    continue
                seen, body = latest
                await response.write(b"event: snapshot\ndata: " + body + b"\n\n")
        except ConnectionError:
            pass  # the viewer went away
        finally:
            self._listeners -= 1
        return response
