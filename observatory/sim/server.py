"""A loopback HTTP server imitating the platform and status APIs the observatory watches.

`SimServer` serves a `SimState` with aiohttp on an event loop in a background thread (a
`observatory.server.background.BackgroundServer`), on 127.0.0.1 unless told otherwise.
Endpoints, with the shapes of the real APIs (see ``wire-formats.md``):

* ``POST /open_api/v1.3/event/track/`` -- TikTok Events API 2.0, ``POST /v21.0/<pixel>/events``
  -- Meta Conversions API (any ``/vN.M/``), ``POST /v17/customers/<id>:uploadClickConversions``
  -- Google Ads, ``POST /webhook/<name>`` -- a CRM webhook (answers in `vendors`);
* ``GET /api/v2/summary.json`` and the other status page documents, ``GET /metrics``
  (Prometheus) and ``GET /destinations/<id>/delivery-metrics`` (Segment) -- see `status_apis`;
* ``GET /delivery-overview/<step>`` -- Segment's Delivery Overview, see `delivery_overview`;
* ``POST /v2/events`` and ``/v2/bulkevents`` -- mParticle's Events API, see `mparticle`;
* ``GET /health``, ``GET /_stats`` and ``POST /_control`` (``{"op": ..., **kwargs}``).

Every request is counted and meets the fault injected on the longest prefix of its path.
Errors are JSON like the rest: 404 for a GET of an unknown endpoint, 405 for a method an
endpoint does not take, 500 with the exception's words if a handler fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from observatory.server.background import BackgroundServer
from observatory.sim.delivery_overview import delivery_overview_reply
from observatory.sim.mparticle import MPARTICLE_PATHS, mparticle_reply
from observatory.sim.state import Fault, Reply, SimState
from observatory.sim.status_apis import metrics_reply, segment_reply, statuspage_reply
from observatory.sim.vendors import platform_reply

__all__ = ["SimServer"]

# The delivery APIs; each route is named for its platform. Any method reaches the handler,
# which refuses all but POST (405) before the path's fault applies.
_PLATFORM_ROUTES = {
    "tiktok": "/open_api/{rest:.*}",
    "meta": "/v{rest:.*}/events",
    "google": "/v{rest:.*}:uploadClickConversions",
    "webhook": "/webhook/{rest:.*}",
}
# When the request arrived (monotonic) and the fault injected on its path.
_ARRIVAL = web.RequestKey("arrival", tuple[float, Fault | None])
_MAX_BODY = 1 << 26  # aiohttp refuses bodies over 1 MiB by default; the fake APIs take any batch
_SHUTDOWN_GRACE = 0.1  # seconds an in-flight request gets to finish (then again once cancelled)


def _response(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body,
        headers=[("Content-Type", reply.content_type), *reply.headers],
    )


def _not_allowed() -> web.Response:
    return _response(Reply(405, {"error": "method not allowed"}))


class SimServer(SimState):
    """Fake platform/status APIs on loopback, served from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        super().__init__(seed)
        self.host = host
        self.port = port
        self._http: BackgroundServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimServer:
        """Bind and serve in a daemon thread; returns self once `url` is set."""
        http = BackgroundServer(
            self._app(), self.host, self.port, name="sim-server", backlog=1024
        ).start()
        self._http = http
        self.port = http.port
        self.url = http.url
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        http, self._http = self._http, None
        if http is not None:
            http.stop(_SHUTDOWN_GRACE)

    def __enter__(self) -> SimServer:
        return self.start() if self._http is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the application

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._arrive], client_max_size=_MAX_BODY)
        # Before the platforms: Meta's ``/v{rest}/events`` would take ``/v2/events`` too.
        for path in MPARTICLE_PATHS:
            app.router.add_route("*", path, self._mparticle)
        for platform, path in _PLATFORM_ROUTES.items():
            app.router.add_route("*", path, self._platform_handler(platform), name=platform)
        app.router.add_get("/health", self._health)
        app.router.add_get("/api/v2/{doc:.*}", self._statuspage)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/destinations/{dest:.*}/delivery-metrics", self._segment)
        app.router.add_get("/delivery-overview/{step}", self._delivery_overview)
        app.router.add_get("/_stats", self._stats)
        app.router.add_post("/_control", self._control)
        return app

    @web.middleware
    async def _arrive(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count the request, apply its path's fault, and answer every error in JSON."""
        started = time.monotonic()
        fault = self.arrived(request.path, started)
        request[_ARRIVAL] = (started, fault)
        # A delivery API applies its fault itself, to record the events it refuses.
        generic = request.match_info.route.name not in _PLATFORM_ROUTES
        if generic and fault is not None:
            forced = fault.reply()
            if forced is not None:
                return _response(forced)
        try:
            response = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            if request.method in ("GET", "HEAD"):
                response = _response(Reply(404, {"error": f"no such endpoint: {request.path}"}))
            else:
                response = _not_allowed()
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug answers 500 and the server goes on
            return _response(Reply(500, {"error": f"simulator error: {exc}"}))
        if generic and fault is not None and fault.kind == "timeout":
            await asyncio.sleep(fault.delay)
        return response

    def _platform_handler(self, platform: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def deliver(request: web.Request) -> web.Response:
            if request.method != "POST":
                return _not_allowed()
            started, fault = request[_ARRIVAL]
            reply = platform_reply(self, platform, await request.read(), fault, started)
            if reply.delay > 0:
                await asyncio.sleep(reply.delay)
                self.observe_latency(platform, time.monotonic() - started)
            return _response(reply)

        return deliver

    async def _health(self, request: web.Request) -> web.Response:
        return _response(Reply(200, {"ok": True}))

    async def _statuspage(self, request: web.Request) -> web.Response:
        return _response(statuspage_reply(self, request.path))

    async def _metrics(self, request: web.Request) -> web.Response:
        return _response(metrics_reply(self))

    async def _segment(self, request: web.Request) -> web.Response:
        return _response(segment_reply(self, request.match_info["dest"], request.query_string))

    async def _delivery_overview(self, request: web.Request) -> web.Response:
        reply = delivery_overview_reply(
            self,
            request.match_info["step"],
            request.query_string,
            request.headers.get("Authorization"),
        )
        return _response(reply)

    async def _mparticle(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _not_allowed()
        started, _fault = request[_ARRIVAL]
        auth = request.headers.get("Authorization")
        return _response(mparticle_reply(self, request.path, auth, await request.read(), started))

    async def _stats(self, request: web.Request) -> web.Response:
        return _response(Reply(200, self.stats()))

    async def _control(self, request: web.Request) -> web.Response:
        try:
            req = orjson.loads(await request.read() or b"{}")
            if not isinstance(req, dict) or "op" not in req:
                raise ValueError('body must be a JSON object with "op"')
            op = req.pop("op")
            self.control(str(op), **req)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return _response(Reply(400, {"ok": False, "error": str(exc)}))
        return _response(Reply(200, {"ok": True}))
