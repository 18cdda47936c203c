"""A loopback HTTP/1.1 server imitating the platform and status APIs the observatory watches.

One asyncio event loop in a background thread serves keep-alive connections with a small,
cheap request parser (thousands of requests per second on one core). Endpoints, with the
shapes of the real APIs (see ``wire-formats.md``):

* ``POST /open_api/v1.3/event/track/`` -- TikTok Events API 2.0 (HTTP 200; ``code`` decides:
  0 ok, 40100 throttled, 40105 bad token, 40002 bad body);
* ``POST /v21.0/<pixel>/events`` -- Meta Conversions API (any ``/vN.M/``; errors are HTTP 400
  with ``error.code`` 17 throttled, 190 token, 100 bad body);
* ``POST /v17/customers/<id>:uploadClickConversions`` -- Google Ads (429 ``RESOURCE_EXHAUSTED``
  with ``retryDelay``; ``partialFailureError`` for gclids starting with ``bad``);
* ``POST /webhook/<name>`` -- a CRM webhook (``{"batch":[...]}`` or one event);
* ``GET /api/v2/summary.json``, ``/api/v2/status.json``, ``/api/v2/components.json``,
  ``/api/v2/incidents/unresolved.json`` -- an Atlassian status page;
* ``GET /metrics`` -- rudder-server style Prometheus counters of what was really accepted;
* ``GET /destinations/<id>/delivery-metrics`` -- the Segment Public API delivery metrics;
* ``GET /health``, ``GET /_stats`` and ``POST /_control`` (``{"op": ..., **kwargs}``).

The answers come from `vendors` and `status_apis`; the state and its thread-safe control
methods (`set_component`, `set_fault`, `set_qps_limit`, `set_token_valid`, `set_error_rate`)
from `state.SimState`.
"""

from __future__ import annotations

import asyncio
import threading
import time

import orjson

from observatory.simulator.state import REASONS, Reply, SimState
from observatory.simulator.status_apis import metrics_reply, segment_reply, statuspage_reply
from observatory.simulator.vendors import platform_reply

__all__ = ["SimServer"]


class SimServer(SimState):
    """Fake platform/status APIs on loopback, served from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        super().__init__(seed)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimServer:
        """Bind and serve in a daemon thread; returns self once `url` is set."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle, self.host, self.port, backlog=1024, reuse_address=True
                    )
                )
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            sock = self._server.sockets[0]
            self.port = sock.getsockname()[1]
            self.url = f"http://{self.host}:{self.port}"
            ready.set()
            try:
                loop.run_forever()
            finally:
                self._server.close()
                for w in list(self._writers):
                    w.close()
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="sim-server", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = None
        self._thread = None

    def __enter__(self) -> SimServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = b""
                try:
                    if "content-length" in headers:
                        n = int(headers["content-length"])
                        if n:
                            body = await reader.readexactly(n)
                    elif headers.get("transfer-encoding", "").lower() == "chunked":
                        body = await self._read_chunked(reader)
                except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                    return
                conn = headers.get("connection", "").lower()
                keep = conn != "close" and (version != "HTTP/1.0" or conn == "keep-alive")
                started = time.monotonic()
                try:
                    resp = self._dispatch(method, target, body, started)
                except Exception as exc:  # noqa: BLE001 - a bug must not kill the connection
                    resp = Reply(500, {"error": f"simulator error: {exc}"})
                if resp.delay > 0:
                    await asyncio.sleep(resp.delay)
                    self._finish_delayed(target, started)
                reason = REASONS.get(resp.status, "Unknown")
                out = [
                    f"HTTP/1.1 {resp.status} {reason}\r\n"
                    f"Content-Type: {resp.content_type}\r\n"
                    f"Content-Length: {len(resp.body)}\r\n"
                ]
                for k, v in resp.headers:
                    out.append(f"{k}: {v}\r\n")
                if not keep:
                    out.append("Connection: close\r\n")
                out.append("\r\n")
                writer.write(
                    "".join(out).encode("latin-1") + (b"" if method == "HEAD" else resp.body)
                )
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return  # the peer went away, or the server is stopping
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except RuntimeError:
                pass

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def _finish_delayed(self, target: str, started: float) -> None:
        p = self._platform_of(target.partition("?")[0])
        if p is not None:
            self.observe_latency(p, time.monotonic() - started)

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _platform_of(path: str) -> str | None:
        if path.startswith("/open_api/"):
            return "tiktok"
        if path.startswith("/webhook/"):
            return "webhook"
        if path.startswith("/v"):
            if path.endswith("/events"):
                return "meta"
            if path.endswith(":uploadClickConversions"):
                return "google"
        return None

    def _dispatch(self, method: str, target: str, body: bytes, now: float) -> Reply:
        path, _, query = target.partition("?")
        fault = self.arrived(path, now)
        platform = self._platform_of(path)
        if platform is not None:
            if method != "POST":
                return Reply(405, {"error": "method not allowed"})
            return platform_reply(self, platform, body, fault, now)
        if fault is not None:
            resp = fault.reply()
            if resp is not None:
                return resp
        resp = self._serve(method, path, query, body)
        if fault is not None and fault.kind == "timeout":
            resp.delay = fault.delay
        return resp

    def _serve(self, method: str, path: str, query: str, body: bytes) -> Reply:
        if method not in ("GET", "HEAD"):
            if path == "/_control" and method == "POST":
                return self._control_request(body)
            return Reply(405, {"error": "method not allowed"})
        if path == "/health":
            return Reply(200, {"ok": True})
        if path.startswith("/api/v2/"):
            return statuspage_reply(self, path)
        if path == "/metrics":
            return metrics_reply(self)
        if path.startswith("/destinations/") and path.endswith("/delivery-metrics"):
            dest_id = path[len("/destinations/") : -len("/delivery-metrics")]
            return segment_reply(self, dest_id, query)
        if path == "/_stats":
            return Reply(200, self.stats())
        return Reply(404, {"error": f"no such endpoint: {path}"})

    def _control_request(self, body: bytes) -> Reply:
        try:
            req = orjson.loads(body or b"{}")
            if not isinstance(req, dict) or "op" not in req:
                raise ValueError('body must be a JSON object with "op"')
            op = req.pop("op")
            self.control(str(op), **req)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return Reply(400, {"ok": False, "error": str(exc)})
        return Reply(200, {"ok": True})
