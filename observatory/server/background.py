"""One aiohttp application served on its own event loop, in a daemon thread.

:class:`BackgroundServer` owns the thread, the loop, the listening socket and a small thread
pool (the loop's default executor, for a handler's blocking work: ``await
loop.run_in_executor(None, ...)``). ``start()`` returns once the socket listens, or raises the
bind error in the caller's thread; ``stop(timeout)`` stops accepting, lets the requests being
answered finish (up to ``timeout``; then they are cancelled), waits for the work they handed to
the pool, and joins the thread.

Nothing about a request is logged: the access log is off, and aiohttp's error records (on
``observatory.server``, silent unless the application configures logging) keep an exception's
traceback and type but not its text, which can quote a request line or header.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

__all__ = ["BackgroundServer", "LOG"]

LOG = logging.getLogger("observatory.server")
LOG.addHandler(logging.NullHandler())  # no "last resort" lines on stderr under the TUI

# How long stop() waits for the thread beyond the requests' own grace.
_JOIN_SLACK = 5.0


class _NoRequestText(logging.Filter):
    """Keep an exception's type and traceback, drop its message (a parse error quotes the
    request line or a header, which may carry a secret)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            frames = "".join(traceback.format_tb(exc_info[2])) if exc_info[2] else ""
            record.exc_text = f"Traceback (most recent call last):\n{frames}{exc_info[0].__name__}"
            record.exc_info = None
        return True


LOG.addFilter(_NoRequestText())


class BackgroundServer:
    """Serves ``app`` on ``host:port`` (0: any free port) from a daemon thread named ``name``.

    Single use: ``start()`` once, ``stop()`` as often as you like. ``handler_options`` go to
    ``web.AppRunner`` (and from there to each connection's handler: ``keepalive_timeout``,
    ``lingering_time``, ``max_field_size``...); by default there is no access log and errors go
    to :data:`LOG`. Size the request bodies a handler may read with the application's
    ``client_max_size``.
    """

    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "background-server",
        backlog: int = 128,
        workers: int = 4,
        **handler_options: Any,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._backlog = backlog
        self._workers = workers
        self._options: dict[str, Any] = {"access_log": None, "logger": LOG, **handler_options}
        self._lock = threading.Lock()
        self._started = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future[float] | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` with the port actually bound (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BackgroundServer:
        """Bind and serve; returns once listening (``port`` is then the bound port), or raises
        the bind error (``OSError``: address in use, no such host...) here."""
        with self._lock:
            if self._started:
                raise RuntimeError(f"{self.name}: a BackgroundServer starts once")
            self._started = True
        ready = threading.Event()
        errors: list[BaseException] = []
        thread = threading.Thread(target=self._run, args=(ready, errors), name=self.name)
        thread.daemon = True
        self._thread = thread
        thread.start()
        ready.wait()
        if errors:
            thread.join(timeout=_JOIN_SLACK)
            self._thread = None
            raise errors[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting connections, give the requests being answered up to ``timeout``
        seconds to finish (then cancel them), wait for their blocking work, close; idempotent."""
        with self._lock:
            loop, stopping, thread = self._loop, self._stopping, self._thread
            self._loop = self._stopping = self._thread = None
        if thread is None:
            return
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(_resolve, stopping, timeout)
            except RuntimeError:  # the loop is already closed
                pass
        thread.join(timeout=2 * timeout + _JOIN_SLACK)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the thread

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        pool = ThreadPoolExecutor(self._workers, thread_name_prefix=f"{self.name}-io")
        loop.set_default_executor(pool)
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(loop, ready, errors))
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            if not ready.is_set():
                errors.append(exc)
        finally:
            ready.set()
            try:
                leftover = asyncio.all_tasks(loop)
                for task in leftover:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # blocking work handed off
                asyncio.set_event_loop(None)
                loop.close()

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: threading.Event, errors: list[BaseException]
    ) -> None:
        runner = web.AppRunner(self.app, handle_signals=False, **self._options)
        try:
            await runner.setup()
            site = web.TCPSite(
                runner, self.host, self.port, backlog=self._backlog, reuse_address=True
            )
            await site.start()
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            await runner.cleanup()
            return
        self.port = runner.addresses[0][1]
        stopping: asyncio.Future[float] = loop.create_future()
        with self._lock:
            self._loop, self._stopping = loop, stopping
        ready.set()
        timeout = 0.0
        try:
            timeout = await stopping
        finally:
            await _shutdown(runner, timeout)


def _resolve(future: asyncio.Future[float], timeout: float) -> None:
    if not future.done():
        future.set_result(timeout)


async def _shutdown(runner: web.AppRunner, timeout: float) -> None:
    """``runner.cleanup()`` with this stop's grace: close the listening sockets, close idle
    keep-alive connections, wait for the handlers running (then cancel them), clean up."""
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is not None:
        await asyncio.sleep(0)  # requests accepted just now start being handled
        server.pre_shutdown()
        await server.shutdown(timeout)
    await runner.cleanup()
