"""Shared by the alert tests and the TUI/owner tests: a recording HTTP server (a webhook or
PagerDuty stand-in on loopback) and a ready-made incident."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from observatory.incidents.model import Impact, Incident

T0 = 1_700_000_000.0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived

    def json(self) -> Any:
        return json.loads(self.body)


# A behaviour: ("status", code, headers) answers at once; ("sleep", seconds) answers 200 late.
Behaviour = tuple[Any, ...]


class Server:
    """ThreadingHTTPServer on 127.0.0.1:0 that records every request and answers according to
    a script (consumed one behaviour per request), then ``default``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Behaviour] = deque()
        self.default: Behaviour = ("status", 200, {})
        self.release = threading.Event()
        self._cond = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with server._cond:
                    server.requests.append(
                        Recorded(self.path, dict(self.headers.items()), body, time.monotonic())
                    )
                    behaviour = server.script.popleft() if server.script else server.default
                    server._cond.notify_all()
                status, headers = 200, {}
                if behaviour[0] == "sleep":
                    server.release.wait(behaviour[1])
                else:
                    status, headers = behaviour[1], behaviour[2]
                # Error bodies echo the path, as some services do: it must be redacted.
                reply = b"ok" if status < 400 else f"no such hook {self.path}".encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= count, timeout)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def incident(id: str = "inc-1", **kwargs: Any) -> Incident:
    values: dict[str, Any] = {
        "destination": "tiktok_conversions",
        "detector": "rate_limit",
        "severity": "critical",
        "onset": T0,
        "detected_at": T0 + 4.2,
        "detectors": ["rate_limit"],
        "summary": "429 share 62% (baseline 0.1%)",
        "evidence": {"top_errors": [{"code": "40100", "count": 812}], "retry_after": "1"},
        "impact": Impact(not_delivered_est=1234, rate_limited=812),
    }
    values.update(kwargs)
    return Incident(id=id, **values)
