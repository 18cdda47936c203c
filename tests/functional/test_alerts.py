"""Alert sinks and the dispatcher, against real HTTP servers on loopback."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from observatory.alerts import (
    AlertDeliveryError,
    AlertDispatcher,
    AlertSink,
    BellSink,
    PagerDutySink,
    WebhookSink,
    build_sinks,
    slack_escape,
)
from observatory.config import AlertConfig
from observatory.incidents.model import Change
from tests.recording_server import T0, Server, incident

# --------------------------------------------------------------------------------------------
# A recording HTTP server
# --------------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


@pytest.fixture
def make_server() -> Iterator[Callable[[], Server]]:
    servers: list[Server] = []

    def make() -> Server:
        servers.append(Server())
        return servers[-1]

    yield make
    for srv in servers:
        srv.stop()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def alert(kind: str, **kwargs: Any) -> AlertConfig:
    return AlertConfig.model_validate({"kind": kind, **kwargs})


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def all_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from all_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from all_strings(v)


ZERO = {"sent": 0, "failed_attempts": 0, "retried": 0, "dropped": 0, "given_up": 0}


def stats_of(dispatcher: AlertDispatcher, name: str) -> dict[str, int]:
    return dispatcher.stats()[name]


# --------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------


def test_webhook_payload_shape_and_escaping(server: Server) -> None:
    sinks = build_sinks([alert("webhook", url=server.url())])
    assert [s.name for s in sinks] == ["webhook[0]"]
    dispatcher = AlertDispatcher(sinks)
    dispatcher.start()
    hostile = "quota cut <!channel> see <https://evil.example|docs> & <@U123>"
    inc = incident(
        summary=hostile,
        evidence={"top_errors": [{"message": "<!here> Too many requests", "count": 5}]},
    )
    dispatcher.publish(Change("open", inc))
    resolved = incident(
        summary=hostile, state="resolved", resolved_at=T0 + 250, evidence=inc.evidence
    )
    dispatcher.publish(Change("resolved", resolved))
    dispatcher.close()
    assert stats_of(dispatcher, "webhook[0]") == {**ZERO, "sent": 2}

    opened, closed = (r.json() for r in server.requests)
    assert server.requests[0].headers["content-type"] == "application/json"
    assert opened["text"].startswith(
        ":rotating_light: [CRITICAL] tiktok_conversions — rate_limit: quota cut "
    )
    assert "&lt;!channel&gt;" in opened["text"] and "&amp;" in opened["text"]
    assert closed["text"].startswith(":white_check_mark: resolved [CRITICAL] tiktok_conversions")
    assert "lasted 4m 10s" in closed["text"]
    for body in (opened, closed):
        for text in all_strings(body):  # nothing can form a link, mention or command
            assert "<" not in text and ">" not in text
        assert [b["type"] for b in body["blocks"]][:2] == ["section", "section"]
    fields = {
        f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in opened["blocks"][1]["fields"]
    }
    assert set(fields) >= {
        "*Destination*",
        "*Detectors*",
        "*Severity*",
        "*Onset*",
        "*Detected*",
        "*Time to detect*",
        "*Impact*",
    }
    assert fields["*Destination*"] == "tiktok_conversions"
    assert fields["*Onset*"] == "2023-11-14T22:13:20.000Z"
    assert fields["*Time to detect*"] == "4.2s"
    assert "rate limited: 812" in fields["*Impact*"]
    evidence = json.dumps(opened["blocks"])
    assert "&lt;!here&gt; Too many requests" in evidence


def test_slack_escape() -> None:
    assert slack_escape("a & <b> <!channel>") == "a &amp; &lt;b&gt; &lt;!channel&gt;"


def test_pagerduty_lifecycle_with_stable_dedup_key(server: Server) -> None:
    config = alert("pagerduty", routing_key="rk-123", url=server.url("/v2/enqueue"))
    dispatcher = AlertDispatcher(build_sinks([config]))
    dispatcher.start()
    inc = incident(severity="error", summary="x" * 5000)
    dispatcher.publish(Change("open", inc))
    dispatcher.publish(Change("update", inc))  # nothing changed: coalesced away
    inc.severity = "critical"
    inc.detectors.append("volume_drop")
    dispatcher.publish(Change("update", inc))
    inc.state, inc.acknowledged_at = "acknowledged", T0 + 60
    dispatcher.publish(Change("update", inc))
    inc.state, inc.resolved_at = "resolved", T0 + 300
    dispatcher.publish(Change("resolved", inc))
    dispatcher.close()

    events = [r.json() for r in server.requests]
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {"observatory/tiktok_conversions/inc-1"}
    assert all(e["routing_key"] == "rk-123" for e in events)
    first = events[0]["payload"]
    assert len(first["summary"]) <= 1024
    assert first["summary"].startswith("[ERROR] tiktok_conversions — rate_limit: xxx")
    assert first["source"] == "observatory"
    assert first["severity"] == "error"
    assert first["timestamp"] == "2023-11-14T22:13:24.200Z"
    assert first["component"] == "tiktok_conversions"
    assert first["custom_details"]["incident_id"] == "inc-1"
    assert first["custom_details"]["impact"]["rate_limited"] == 812
    assert events[1]["payload"]["severity"] == "critical"
    assert events[1]["payload"]["custom_details"]["detectors"] == ["rate_limit", "volume_drop"]
    assert events[3]["payload"]["timestamp"] == "2023-11-14T22:18:20.000Z"
    assert stats_of(dispatcher, "pagerduty[0]") == {**ZERO, "sent": 4}


# --------------------------------------------------------------------------------------------
# Retries, timeouts, isolation
# --------------------------------------------------------------------------------------------


def test_500_twice_then_ok_is_delivered_once(server: Server) -> None:
    server.script.extend([("status", 500, {}), ("status", 500, {})])
    dispatcher = AlertDispatcher(
        build_sinks([alert("webhook", url=server.url())]), backoff=0.01, max_backoff=0.05
    )
    dispatcher.start()
    # The sink's first news of this incident is an escalation; every retry says so too.
    dispatcher.publish(Change("update", incident()))
    assert wait_until(lambda: stats_of(dispatcher, "webhook[0]")["sent"] == 1)
    dispatcher.close()
    assert len(server.requests) == 3
    assert len({r.body for r in server.requests}) == 1
    assert server.requests[0].json()["text"].startswith(":rotating_light: escalated [CRITICAL]")
    assert stats_of(dispatcher, "webhook[0]") == {
        **ZERO,
        "sent": 1,
        "failed_attempts": 2,
        "retried": 2,
    }


def test_timeouts_are_retried_then_given_up(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = ("sleep", 5.0)
    config = alert("webhook", url=server.url(), timeout="200ms")
    dispatcher = AlertDispatcher(build_sinks([config]), max_attempts=3, backoff=0.01)
    dispatcher.start()
    started = time.monotonic()
    dispatcher.publish(Change("open", incident()))
    assert wait_until(lambda: stats_of(dispatcher, "webhook[0]")["given_up"] == 1)
    elapsed = time.monotonic() - started
    dispatcher.close(timeout=1)
    assert 0.55 < elapsed < 3.0  # three attempts of ~0.2 s each
    assert len(server.requests) == 3
    assert stats_of(dispatcher, "webhook[0]") == {
        **ZERO,
        "failed_attempts": 3,
        "retried": 2,
        "given_up": 1,
    }
    messages = [r.getMessage() for r in caplog.records if r.name == "observatory.alerts"]
    assert any("timed out" in m and "gave up" in m for m in messages)
    assert all(
        r.levelno == logging.WARNING for r in caplog.records if r.name == "observatory.alerts"
    )


def test_permanent_http_error_is_not_retried(server: Server) -> None:
    server.default = ("status", 404, {})
    dispatcher = AlertDispatcher(build_sinks([alert("webhook", url=server.url())]), backoff=0.01)
    dispatcher.start()
    dispatcher.publish(Change("open", incident()))
    dispatcher.close()
    assert len(server.requests) == 1
    assert stats_of(dispatcher, "webhook[0]") == {**ZERO, "failed_attempts": 1, "given_up": 1}


def test_hung_sink_does_not_delay_others_and_publish_never_blocks(
    make_server: Callable[[], Server],
) -> None:
    hung, healthy = make_server(), make_server()
    hung.default = ("sleep", 30.0)
    sinks = build_sinks([alert("webhook", url=hung.url()), alert("webhook", url=healthy.url())])
    dispatcher = AlertDispatcher(sinks, queue_size=100, backoff=0.01)
    dispatcher.start()

    started = time.monotonic()
    dispatcher.publish(Change("open", incident("first")))
    assert healthy.wait_for(1, timeout=5.0)
    # delivered while the other sink hangs (for 30 s): not after it
    assert time.monotonic() - started < 5.0
    assert hung.wait_for(1, timeout=5.0)  # and the hung sink's worker is stuck in its request

    changes = [Change("open", incident(f"flood-{i}")) for i in range(10_000)]
    durations = []
    for change in changes:
        t = time.perf_counter()
        dispatcher.publish(change)
        durations.append(time.perf_counter() - t)
    # publish is a lock, a copy and an append: it never waits for a sink. A call that waited
    # for the hung one would take its 30 s; the bounds here are far from that and far above
    # what a loaded machine's scheduling (GIL hand-overs, a gen-2 GC pass) can add, so they
    # say "never blocks" without timing the interpreter. (Speed is the benchmarks' business.)
    assert max(durations) < 1.0
    assert sum(durations) < 10.0

    # The hung sink kept its newest 100 and dropped the rest (one is in flight).
    assert stats_of(dispatcher, "webhook[0]")["dropped"] == 10_000 - 100
    assert stats_of(dispatcher, "webhook[0]")["sent"] == 0
    ok = lambda: stats_of(dispatcher, "webhook[1]")  # noqa: E731
    assert wait_until(lambda: ok()["sent"] + ok()["dropped"] == 10_001)
    assert ok()["sent"] >= 101 and ok()["failed_attempts"] == 0
    assert "flood-9999" in json.dumps(healthy.requests[-1].json()["blocks"])

    started = time.monotonic()
    dispatcher.close(timeout=0.3)
    assert time.monotonic() - started < 1.0  # close does not wait for the hung request
    assert stats_of(dispatcher, "webhook[0]")["dropped"] == 10_000  # its queue, abandoned


@pytest.mark.slow  # sits out a 1 s Retry-After
def test_retry_after_is_honoured(server: Server) -> None:
    server.script.append(("status", 429, {"Retry-After": "1"}))
    dispatcher = AlertDispatcher(
        build_sinks([alert("webhook", url=server.url())]), backoff=0.01, max_backoff=0.05
    )
    dispatcher.start()
    dispatcher.publish(Change("open", incident()))
    assert server.wait_for(2, timeout=4.0)
    dispatcher.close()
    gap = server.requests[1].at - server.requests[0].at
    assert 0.95 <= gap < 2.5
    assert stats_of(dispatcher, "webhook[0]") == {
        **ZERO,
        "sent": 1,
        "failed_attempts": 1,
        "retried": 1,
    }


# --------------------------------------------------------------------------------------------
# Filtering
# --------------------------------------------------------------------------------------------


def test_historical_incidents_and_min_severity(server: Server) -> None:
    sinks = build_sinks(
        [
            alert("webhook", url=server.url("/all")),
            alert("webhook", url=server.url("/critical"), min_severity="critical"),
        ]
    )
    dispatcher = AlertDispatcher(sinks)
    dispatcher.start()
    old = incident("old", historical=True)
    dispatcher.publish(Change("open", old))
    dispatcher.publish(Change("resolved", old))

    minor = incident("minor", severity="warning")
    dispatcher.publish(Change("open", minor))
    growing = incident("growing", severity="error")
    dispatcher.publish(Change("open", growing))
    growing.severity = "critical"  # escalation: now the critical-only sink hears of it
    dispatcher.publish(Change("update", growing))
    for inc in (minor, growing):
        inc.state, inc.resolved_at = "resolved", T0 + 100
        dispatcher.publish(Change("resolved", inc))
    dispatcher.close()

    def seen(path: str) -> list[tuple[str, str]]:
        out = []
        for r in server.requests:
            if r.path == path:
                label = r.json()["text"].split(" ")[1]  # after the emoji
                out.append((label, "growing" if b"incident growing" in r.body else "minor"))
        return out

    assert seen("/all") == [
        ("[WARNING]", "minor"),
        ("[ERROR]", "growing"),
        ("escalated", "growing"),
        ("resolved", "minor"),
        ("resolved", "growing"),
    ]
    assert seen("/critical") == [("escalated", "growing"), ("resolved", "growing")]
    assert not any("incident old" in r.body.decode() for r in server.requests)
    assert dispatcher.stats()["webhook[1]"] == {**ZERO, "sent": 2}


def test_late_update_of_a_resolved_incident_does_not_retrigger(server: Server) -> None:
    config = alert("pagerduty", routing_key="rk", url=server.url())
    dispatcher = AlertDispatcher(build_sinks([config]))
    dispatcher.start()
    inc = incident()
    dispatcher.publish(Change("open", inc))
    inc.state, inc.resolved_at = "resolved", T0 + 100
    dispatcher.publish(Change("resolved", inc))
    inc.detectors.append("latency")
    dispatcher.publish(Change("update", inc))
    dispatcher.close()
    assert [r.json()["event_action"] for r in server.requests] == ["trigger", "resolve"]


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_secrets_never_leak(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.default = ("status", 500, {})
    webhook = alert("webhook", url=server.url("/services/T000/B000/s3cr3t"))
    pagerduty = alert("pagerduty", routing_key="rk-s3cr3t-key", url=server.url("/v2/enqueue"))
    refused = alert("webhook", url=f"http://127.0.0.1:{_closed_port()}/hooks/s3cr3t-token")
    sinks = build_sinks([webhook, pagerduty, refused])
    dispatcher = AlertDispatcher(sinks, max_attempts=2, backoff=0.01)
    dispatcher.start()
    dispatcher.publish(Change("open", incident()))
    dispatcher.close()

    assert len(server.requests) == 4  # two attempts each: the secrets really were used
    assert any(b"rk-s3cr3t-key" in r.body for r in server.requests)
    stats = dispatcher.stats()
    assert set(stats) == {"webhook[0]", "pagerduty[1]", "webhook[2]"}
    assert all(s["given_up"] == 1 for s in stats.values())

    failures = [r for r in caplog.records if r.name == "observatory.alerts"]
    assert any("webhook[0]" in r.getMessage() and "HTTP 500" in r.getMessage() for r in failures)
    assert any("webhook[2]" in r.getMessage() for r in failures)
    assert any(r.name == "httpx" for r in caplog.records)  # httpx logged the request...
    for record in caplog.records:  # ...with the URL redacted
        text = record.getMessage() + (record.exc_text or "")
        assert "s3cr3t" not in text, record.name
    assert "s3cr3t" not in caplog.text
    assert "s3cr3t" not in repr(stats) + repr(dispatcher) + repr(sinks)
    assert "s3cr3t" not in repr(webhook) + repr(pagerduty)

    for sink in sinks:  # a failing delivery's exception is clean too
        assert isinstance(sink, WebhookSink | PagerDutySink)
        with pytest.raises(AlertDeliveryError) as info:
            try:
                sink.deliver(Change("open", incident()))
            finally:
                sink.close()
        rendered = "".join(traceback.format_exception(info.value))
        assert "s3cr3t" not in str(info.value) + repr(info.value) + rendered
        assert sink.name in str(info.value)


# --------------------------------------------------------------------------------------------
# Command and bell sinks
# --------------------------------------------------------------------------------------------

WRITE_STDIN = "import sys; open(sys.argv[1], 'ab').write(sys.stdin.buffer.read())"
FAIL_FIRST = (
    "import os, sys; p = sys.argv[1]; seen = os.path.exists(p);"
    " open(p, 'ab').write(sys.stdin.buffer.read()); sys.exit(0 if seen else 3)"
)


def test_command_sink_gets_the_json_line_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.jsonl"
    config = alert("command", command=[sys.executable, "-c", WRITE_STDIN, str(out)])
    dispatcher = AlertDispatcher(build_sinks([config]))
    dispatcher.start()
    inc = incident()
    dispatcher.publish(Change("open", inc))
    dispatcher.close()
    lines = out.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [inc.json_line("open")]
    assert stats_of(dispatcher, "command[0]") == {**ZERO, "sent": 1}


def test_command_sink_non_zero_exit_is_retried(tmp_path: Path) -> None:
    out = tmp_path / "got.jsonl"
    config = alert("command", command=[sys.executable, "-c", FAIL_FIRST, str(out)])
    dispatcher = AlertDispatcher(build_sinks([config]), backoff=0.01)
    dispatcher.start()
    dispatcher.publish(Change("open", incident()))
    dispatcher.close()
    assert len(out.read_bytes().splitlines()) == 2  # the failed attempt and the retry
    assert stats_of(dispatcher, "command[0]") == {
        **ZERO,
        "sent": 1,
        "failed_attempts": 1,
        "retried": 1,
    }


def test_command_sink_timeout_and_missing_command(tmp_path: Path) -> None:
    slow = alert("command", command=[sys.executable, "-c", "import time; time.sleep(10)"])
    slow = slow.model_copy(update={"timeout": 0.2})
    missing = alert("command", command=[str(tmp_path / "no-such-command")])
    sinks = build_sinks([slow, missing])
    started = time.monotonic()
    with pytest.raises(AlertDeliveryError, match="timed out") as info:
        sinks[0].deliver(Change("open", incident()))
    assert time.monotonic() - started < 2.0 and not info.value.permanent
    with pytest.raises(AlertDeliveryError) as info:
        sinks[1].deliver(Change("open", incident()))
    assert info.value.permanent and "no-such-command" not in str(info.value)


def test_bell_rings_on_open_and_escalation() -> None:
    stream = io.StringIO()
    dispatcher = AlertDispatcher(build_sinks([alert("bell")], bell_stream=stream))
    dispatcher.start()
    inc = incident(severity="warning")
    dispatcher.publish(Change("open", inc))  # ring
    inc.detectors.append("latency")
    dispatcher.publish(Change("update", inc))  # same severity: no ring
    inc.severity = "critical"
    dispatcher.publish(Change("update", inc))  # escalation: ring
    inc.state, inc.resolved_at = "resolved", T0 + 100
    dispatcher.publish(Change("resolved", inc))  # no ring
    dispatcher.close()
    assert stream.getvalue() == "\a\a"
    assert stats_of(dispatcher, "bell[0]")["given_up"] == 0


def test_bell_without_a_terminal_is_silent() -> None:
    (sink,) = build_sinks([alert("bell")])  # pytest's stderr is not a tty
    assert isinstance(sink, BellSink)
    sink.deliver(Change("open", incident()))  # no stream: nothing happens, nothing raises


# --------------------------------------------------------------------------------------------
# Dispatcher edges
# --------------------------------------------------------------------------------------------


class Flaky:
    """A sink that fails with a non-alert exception whose message quotes a secret."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def deliver(self, change: Change) -> None:
        self.calls += 1
        raise RuntimeError("boom at https://hooks.example/s3cr3t")


def test_publish_never_raises_and_foreign_errors_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = Flaky()
    sink: AlertSink = flaky
    dispatcher = AlertDispatcher([sink], max_attempts=2, backoff=0.01)
    dispatcher.publish(Change("open", None))  # type: ignore[arg-type]  # a broken change, on purpose
    dispatcher.start()
    dispatcher.publish(Change("open", incident()))
    dispatcher.close()
    assert flaky.calls == 2
    assert dispatcher.stats()["flaky"] == {
        **ZERO,
        "failed_attempts": 2,
        "retried": 1,
        "given_up": 1,
    }
    assert "RuntimeError" in caplog.text and "s3cr3t" not in caplog.text


def test_close_counts_what_it_could_not_deliver(server: Server) -> None:
    server.default = ("sleep", 5.0)
    dispatcher = AlertDispatcher(build_sinks([alert("webhook", url=server.url())]))
    for i in range(3):
        dispatcher.publish(Change("open", incident(f"i{i}")))  # queued before start
    dispatcher.start()
    assert server.wait_for(1)
    dispatcher.close(timeout=0.1)
    assert stats_of(dispatcher, "webhook[0]")["dropped"] == 2
    dispatcher.publish(Change("open", incident("late")))  # after close: dropped, no error
    assert stats_of(dispatcher, "webhook[0]")["dropped"] == 3


def test_sink_classes() -> None:
    sinks = build_sinks(
        [
            alert("webhook", url="https://hooks.slack.com/services/T/B/x"),
            alert("pagerduty", routing_key="k"),
        ]
    )
    assert isinstance(sinks[0], WebhookSink) and isinstance(sinks[1], PagerDutySink)
    assert all(isinstance(s, AlertSink) for s in sinks)
