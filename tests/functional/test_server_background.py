"""`BackgroundServer`: an aiohttp app on its own loop and thread -- bind errors in the caller's
thread, the bound port, a graceful and idempotent stop, blocking work in its pool, and logs
that never quote a request."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import httpx
import pytest
from aiohttp import web

from observatory.server.background import LOG, BackgroundServer


def make_app(started: threading.Event | None = None, delay: float = 0.0) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        if started is not None:
            started.set()
        await asyncio.sleep(delay)
        return web.json_response({"slow": True})

    def blocking_work() -> str:
        time.sleep(0.05)
        return threading.current_thread().name

    async def blocking(request: web.Request) -> web.Response:
        name = await asyncio.get_running_loop().run_in_executor(None, blocking_work)
        return web.json_response({"thread": name})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError(f"bad header {request.headers.get('X-Secret')}")

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    app.router.add_get("/blocking", blocking)
    app.router.add_get("/boom", boom)
    return app


def test_start_binds_any_port_and_serves() -> None:
    server = BackgroundServer(make_app(), name="t-server").start()
    try:
        assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}"
        assert server.running
        assert httpx.get(server.url + "/").json() == {"ok": True}
        # Blocking work runs in the server's own pool, not on its loop.
        assert httpx.get(server.url + "/blocking").json()["thread"].startswith("t-server-io")
        with pytest.raises(RuntimeError):
            server.start()  # single use
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/", timeout=2)
    server.stop()  # idempotent


def test_bind_error_is_raised_in_the_callers_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = BackgroundServer(make_app(), port=port)
        with pytest.raises(OSError):
            server.start()
        assert not server.running
        server.stop()  # nothing to stop


def test_stop_waits_for_a_request_in_flight() -> None:
    started = threading.Event()
    server = BackgroundServer(make_app(started, delay=0.5)).start()
    answers: list[int] = []

    def call() -> None:
        answers.append(httpx.get(server.url + "/slow", timeout=10).status_code)

    t = threading.Thread(target=call)
    t.start()
    assert started.wait(5)
    t0 = time.monotonic()
    server.stop(timeout=5)
    took = time.monotonic() - t0
    t.join(5)
    assert answers == [200]  # answered, not cut off
    assert 0.3 < took < 3.0
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/", timeout=2)


def test_stop_gives_up_on_a_request_after_the_timeout() -> None:
    started = threading.Event()
    server = BackgroundServer(make_app(started, delay=30)).start()
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(server.url + "/slow", timeout=10).status_code)
        except httpx.HTTPError as exc:
            outcome.append(type(exc))

    t = threading.Thread(target=call)
    t.start()
    assert started.wait(5)
    t0 = time.monotonic()
    server.stop(timeout=0.2)
    assert time.monotonic() - t0 < 2.0
    t.join(5)
    assert outcome and outcome[0] != 200


def test_errors_are_logged_without_the_requests_words(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        with BackgroundServer(make_app()) as server:
            r = httpx.get(server.url + "/boom", headers={"X-Secret": "hunter2-secret"})
            assert r.status_code == 500
            # A request aiohttp cannot parse: its error names the bad header line.
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad\x01: hunter2-secret\r\n\r\n")
                assert sock.recv(4096).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    records = [r for r in caplog.records if r.name == LOG.name]
    assert len(records) >= 2
    for record in records:
        text = caplog.handler.format(record)
        assert "hunter2" not in text
    assert any("RuntimeError" in caplog.handler.format(r) for r in records)
