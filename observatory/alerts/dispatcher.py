"""Alert sinks: where incident changes go (``[[alerts]]`` in the config).

One sink per ``[[alerts]]`` entry:

- :class:`WebhookSink` posts a Slack-compatible incoming-webhook message
  (``{"text": ..., "blocks": [...]}``);
- :class:`PagerDutySink` sends Events API v2 events (trigger / acknowledge / resolve, with a
  dedup key stable across the incident's changes);
- :class:`BellSink` rings the terminal bell on open and escalation;
- :class:`CommandSink` runs a command (no shell) with the incident JSON line on stdin.

:class:`AlertDispatcher` decouples them from the engine: :meth:`AlertDispatcher.publish` never
blocks and never raises; it filters the change for each sink (historical incidents and those
below the sink's ``min_severity`` are skipped, updates that change nothing a human would notice
are coalesced away) and puts a snapshot on the sink's bounded queue, dropping the oldest entry
when the queue is full. One worker thread per sink delivers, retrying failures with exponential
backoff and jitter (a ``Retry-After`` from the sink wins), up to ``max_attempts``.

Secrets (webhook URLs, routing keys, commands) never appear in log records, exception messages,
stats or reprs: sinks are named after their position in the config (``webhook[0]``) and the
``httpx``/``httpcore`` loggers get a filter that redacts the registered secrets.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any, Protocol, TextIO, runtime_checkable

import httpx
import orjson

from observatory.config import PAGERDUTY_EVENTS_URL, AlertConfig
from observatory.incidents.model import SEVERITY_RANK, Change, Incident, iso
from observatory.util.durations import format_duration
from observatory.util.retry_after import parse_retry_after

__all__ = [
    "AlertDeliveryError",
    "AlertDispatcher",
    "AlertSink",
    "BellSink",
    "CommandSink",
    "PagerDutySink",
    "WebhookSink",
    "build_sinks",
    "pagerduty_event",
    "slack_message",
]

# Named for the package, as before the split: log records keep saying "observatory.alerts".
log = logging.getLogger("observatory.alerts")

USER_AGENT = "observatory-alerts/0.1"
RETRY_AFTER_CAP = 300.0
"""The longest ``Retry-After`` honoured, in seconds (a longer one is clipped to this)."""
_TRACKED_INCIDENTS = 10_000
"""Per sink, how many incidents' last-forwarded state is remembered (oldest forgotten first)."""


# --------------------------------------------------------------------------------------------
# Errors and secret redaction
# --------------------------------------------------------------------------------------------


class AlertDeliveryError(Exception):
    """A delivery attempt failed.

    The message never contains a secret. ``retry_after`` (seconds) is the wait the receiver
    asked for (``Retry-After`` on 429/503); ``permanent`` means retrying cannot help (e.g. HTTP
    400/403/404: a bad payload or a revoked webhook), so the dispatcher gives up at once.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


_REDACTED = "[redacted]"
_secrets_lock = threading.Lock()
_secrets: set[str] = set()


def _redact(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a URL is replaced whole rather than leaving its host behind.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _url_fragments(url: str) -> set[str]:
    """The parts of a secret URL worth redacting: the URL itself, its path and query, and any
    password (the host alone is not secret, and too short a path would redact ordinary words)."""
    fragments = {url, url.rstrip("/")}
    if url == PAGERDUTY_EVENTS_URL:  # the public default carries no secret
        return fragments
    try:
        parsed = httpx.URL(url)
    except Exception:  # an unparsable URL is redacted whole
        return fragments
    path_query = parsed.raw_path.decode("ascii", "replace")
    for fragment in (path_query, path_query.rstrip("/"), parsed.query.decode("ascii", "replace")):
        if len(fragment) >= 6:
            fragments.add(fragment)
    if parsed.password:
        fragments.add(parsed.password)
    return fragments


class _RedactingFilter(logging.Filter):
    """Redacts registered secrets from records of third-party loggers (httpx logs every request
    URL at INFO level, and a webhook URL is a credential)."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _secrets_lock:
            secrets = tuple(_secrets)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        redacted = _redact(message, secrets)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_FILTER = _RedactingFilter()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_FILTER)


def _register_secrets(fragments: Iterable[str]) -> None:
    with _secrets_lock:
        _secrets.update(f for f in fragments if f)


# --------------------------------------------------------------------------------------------
# The sink protocol
# --------------------------------------------------------------------------------------------


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go; one per ``[[alerts]]`` entry.

    ``deliver`` sends one change and raises on failure (an :class:`AlertDeliveryError` may say
    how long to wait, or that retrying is pointless); the dispatcher retries. It is only ever
    called from the sink's own worker thread. Optional attributes the dispatcher reads:
    ``min_severity`` (default ``"warning"``), ``every_update`` (default False: only updates
    that change severity, detectors or state are delivered) and ``close()``.
    """

    name: str

    def deliver(self, change: Change) -> None: ...


def _escalated(seen: dict[str, int], incident: Incident, kind: str) -> bool:
    """Track the highest severity seen per incident; True when this change is new or higher."""
    rank = SEVERITY_RANK.get(incident.severity, 0)
    if kind == "resolved":
        seen.pop(incident.id, None)
        return False
    previous = seen.get(incident.id)
    seen[incident.id] = max(rank, previous if previous is not None else rank)
    if len(seen) > _TRACKED_INCIDENTS:
        seen.pop(next(iter(seen)))
    return previous is None or rank > previous


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack documents, so untrusted text cannot form links,
    mentions (``<!channel>``, ``<@U123>``) or other control sequences."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return _compact(value, 200)


def _compact(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return _clip(value, limit)
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = str(value)
    return _clip(text, limit)


def _impact_text(impact: dict[str, Any]) -> str:
    if not impact:
        return "—"
    parts = [f"{str(k).replace('_', ' ')}: {_number(v)}" for k, v in impact.items()]
    return _clip(", ".join(parts), 500)


def _headline(change: Change, label: str = "") -> str:
    """``[CRITICAL] dest — detector: summary`` (raw, unescaped)."""
    inc = change.incident
    text = f"[{inc.severity.upper()}] {inc.destination} — {inc.detector}"
    if label:
        text = f"{label} {text}"
    if inc.summary:
        text += f": {inc.summary}"
    return text


def _json_bytes(value: Any) -> bytes:
    return orjson.dumps(
        value,
        default=str,
        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
    )


# --------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------

_EMOJI = {"critical": ":rotating_light:", "error": ":rotating_light:", "warning": ":warning:"}


def slack_message(change: Change, *, escalated: bool = False) -> dict[str, Any]:
    """The Slack incoming-webhook body for ``change``; all untrusted text is escaped."""
    inc = change.incident
    if change.kind == "resolved":
        emoji, label = ":white_check_mark:", "resolved"
    elif inc.state == "acknowledged":
        emoji, label = ":eyes:", "acknowledged"
    elif change.kind == "update":
        label = "escalated" if escalated else "updated"
        emoji = _EMOJI.get(inc.severity, ":warning:")
    else:
        emoji, label = _EMOJI.get(inc.severity, ":warning:"), ""
    headline = slack_escape(_clip(_headline(change), 600))
    text = f"{emoji} {label + ' ' if label else ''}{headline}"
    if change.kind == "resolved" and inc.resolved_at is not None:
        text += f" (lasted {format_duration(inc.resolved_at - inc.onset)})"

    def field(title: str, value: str) -> dict[str, str]:
        return {"type": "mrkdwn", "text": f"*{title}*\n{slack_escape(_clip(value, 400))}"}

    detectors = inc.detectors or [inc.detector]
    fields = [
        field("Destination", inc.destination),
        field("Detectors", ", ".join(detectors)),
        field("Severity", inc.severity),
        field("Onset", iso(inc.onset) or "—"),
        field("Detected", iso(inc.detected_at) or "—"),
        field("Time to detect", format_duration(inc.detected_at - inc.onset)),
        field("Impact", _impact_text(inc.impact)),
    ]
    if inc.acknowledged_at is not None:
        fields.append(field("Acknowledged", iso(inc.acknowledged_at) or "—"))
    if inc.resolved_at is not None:
        fields.append(field("Resolved", iso(inc.resolved_at) or "—"))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": fields[:10]},
    ]
    if inc.evidence:
        lines = [
            f"• {slack_escape(_clip(str(key), 60))}: {slack_escape(_compact(value, 300))}"
            for key, value in list(inc.evidence.items())[:8]
        ]
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("*Evidence*\n" + "\n".join(lines), 2900)},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"observatory · incident {slack_escape(_clip(inc.id, 200))}",
                }
            ],
        }
    )
    return {"text": text, "blocks": blocks}


def pagerduty_action(change: Change) -> str:
    """``trigger`` for open/update, ``acknowledge`` once acknowledged, ``resolve`` when resolved."""
    if change.kind == "resolved":
        return "resolve"
    if change.incident.state == "acknowledged":
        return "acknowledge"
    return "trigger"


def pagerduty_dedup_key(incident: Incident) -> str:
    """``observatory/{destination}/{id}``; stable, and within PagerDuty's 255 characters."""
    key = f"observatory/{incident.destination}/{incident.id}"
    if len(key) > 255:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = key[:238] + "~" + digest
    return key


def pagerduty_event(change: Change, routing_key: str) -> dict[str, Any]:
    """The PagerDuty Events API v2 body for ``change``."""
    inc = change.incident
    action = pagerduty_action(change)
    ts = {"resolve": inc.resolved_at, "acknowledge": inc.acknowledged_at}.get(action)
    details: dict[str, Any] = {
        "incident_id": inc.id,
        "state": inc.state,
        "change": change.kind,
        "detector": inc.detector,
        "detectors": inc.detectors or [inc.detector],
        "onset": iso(inc.onset),
        "detected_at": iso(inc.detected_at),
        "acknowledged_at": iso(inc.acknowledged_at),
        "resolved_at": iso(inc.resolved_at),
        "time_to_detect_s": round(max(0.0, inc.detected_at - inc.onset), 3),
        "impact": inc.impact,
        "evidence": inc.evidence,
        "flaps": inc.flaps,
    }
    return {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": pagerduty_dedup_key(inc),
        "payload": {
            "summary": _clip(_headline(change), 1024),
            "source": "observatory",
            "severity": inc.severity,
            "timestamp": iso(ts if ts is not None else inc.detected_at),
            "component": inc.destination,
            "class": inc.detector,
            "custom_details": details,
        },
    }


# --------------------------------------------------------------------------------------------
# Sinks
# --------------------------------------------------------------------------------------------


class _HttpSink:
    """A sink that POSTs JSON to a secret URL with a sync httpx client (one per sink, created
    in and used only by the sink's worker thread)."""

    kind = "http"
    every_update = False

    def __init__(self, name: str, config: AlertConfig) -> None:
        self.name = name
        self.min_severity = config.min_severity
        self.timeout = float(config.timeout)
        self._config = config  # holds the URL/routing key as SecretStr
        secrets = _url_fragments(config.url_value() or "")
        secrets.add(config.routing_key_value() or "")
        self._secrets = frozenset(s for s in secrets if s)
        _register_secrets(self._secrets)
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, min_severity={self.min_severity!r})"

    def _post(self, body: bytes) -> None:
        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                headers={"user-agent": USER_AGENT},
            )
        url = self._config.url_value() or ""
        try:
            response = self._client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
        except httpx.TimeoutException:
            raise AlertDeliveryError(f"{self.name}: timed out after {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            detail = _redact(str(exc), self._secrets)
            raise AlertDeliveryError(f"{self.name}: {type(exc).__name__}: {detail}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        retry_after = (  # capped at RETRY_AFTER_CAP where the dispatcher waits
            parse_retry_after(response.headers.get("retry-after"), time.time())
            if status in (429, 503)
            else None
        )
        permanent = 400 <= status < 500 and status not in (408, 409, 425, 429)
        try:
            body_text = " ".join(response.text.split())
        except Exception:  # an undecodable body is only detail
            body_text = ""
        detail = _redact(_clip(body_text, 200), self._secrets)
        raise AlertDeliveryError(
            f"{self.name}: HTTP {status}{': ' + detail if detail else ''}",
            retry_after=retry_after,
            permanent=permanent,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class WebhookSink(_HttpSink):
    """A Slack-compatible incoming webhook."""

    kind = "webhook"

    def __init__(self, name: str, config: AlertConfig) -> None:
        super().__init__(name, config)
        self._seen: dict[str, int] = {}
        self._pending: tuple[Change, bytes] | None = None  # a retry resends the same body

    def deliver(self, change: Change) -> None:
        if self._pending is None or self._pending[0] is not change:
            escalated = _escalated(self._seen, change.incident, change.kind)
            self._pending = (change, _json_bytes(slack_message(change, escalated=escalated)))
        self._post(self._pending[1])
        self._pending = None


class PagerDutySink(_HttpSink):
    """PagerDuty Events API v2 (``url`` defaults to the public enqueue endpoint)."""

    kind = "pagerduty"

    def deliver(self, change: Change) -> None:
        routing_key = self._config.routing_key_value() or ""
        self._post(_json_bytes(pagerduty_event(change, routing_key)))


class BellSink:
    """Rings the terminal bell (``\\a``) when an incident opens or escalates."""

    kind = "bell"
    every_update = False

    def __init__(self, name: str, config: AlertConfig, stream: TextIO | None) -> None:
        self.name = name
        self.min_severity = config.min_severity
        self._stream = stream
        self._seen: dict[str, int] = {}
        self._pending: Change | None = None  # a change whose ring failed, to retry

    def __repr__(self) -> str:
        return f"BellSink(name={self.name!r}, min_severity={self.min_severity!r})"

    def deliver(self, change: Change) -> None:
        retry = self._pending is change
        if not retry and not _escalated(self._seen, change.incident, change.kind):
            return
        self._pending = change
        if self._stream is not None:
            self._stream.write("\a")
            self._stream.flush()
        self._pending = None


class CommandSink:
    """Runs a command (an argv list, no shell) with the incident JSON line on stdin; a
    non-zero exit or a timeout is a failure. The command's output is discarded."""

    kind = "command"
    every_update = True

    def __init__(self, name: str, config: AlertConfig) -> None:
        self.name = name
        self.min_severity = config.min_severity
        self.timeout = float(config.timeout)
        self._config = config

    def __repr__(self) -> str:
        return f"CommandSink(name={self.name!r}, min_severity={self.min_severity!r})"

    def deliver(self, change: Change) -> None:
        argv = self._config.command_argv()
        data = _json_bytes(change.incident.json_line(change.kind)) + b"\n"
        posix = os.name == "posix"
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=posix,
            )
        except OSError as exc:  # not found, not executable: retrying will not help
            raise AlertDeliveryError(
                f"{self.name}: cannot run the command ({type(exc).__name__})", permanent=True
            ) from None
        try:
            proc.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc, posix)
            raise AlertDeliveryError(f"{self.name}: timed out after {self.timeout:g}s") from None
        except BaseException:
            self._kill(proc, posix)
            raise
        if proc.returncode != 0:
            raise AlertDeliveryError(f"{self.name}: exited with status {proc.returncode}")

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], posix: bool) -> None:
        try:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)  # the command and anything it started
            else:
                proc.kill()
        except OSError:
            pass
        try:
            proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            pass


def _default_bell_stream() -> TextIO | None:
    stream = sys.stderr
    try:
        return stream if stream is not None and stream.isatty() else None
    except (AttributeError, ValueError, OSError):
        return None


def build_sinks(alerts: list[AlertConfig], *, bell_stream: TextIO | None = None) -> list[AlertSink]:
    """One sink per ``[[alerts]]`` entry, named ``{kind}[{index}]``.

    ``bell_stream`` is where a bell sink writes ``\\a``; by default ``sys.stderr`` when it is a
    terminal, else nowhere.
    """
    sinks: list[AlertSink] = []
    for index, config in enumerate(alerts):
        name = f"{config.kind}[{index}]"
        if config.kind == "webhook":
            sinks.append(WebhookSink(name, config))
        elif config.kind == "pagerduty":
            sinks.append(PagerDutySink(name, config))
        elif config.kind == "bell":
            stream = bell_stream if bell_stream is not None else _default_bell_stream()
            sinks.append(BellSink(name, config, stream))
        elif config.kind == "command":
            sinks.append(CommandSink(name, config))
        else:  # pragma: no cover - the config model admits only the kinds above
            raise ValueError(f"alerts[{index}].kind: unknown alert kind")
    return sinks


# --------------------------------------------------------------------------------------------
# The dispatcher
# --------------------------------------------------------------------------------------------

_STAT_KEYS = ("sent", "failed_attempts", "retried", "dropped", "given_up")


def _snapshot(change: Change) -> Change:
    """A copy of ``change`` the engine can no longer mutate under a worker's feet."""
    inc = change.incident
    try:
        evidence = copy.deepcopy(inc.evidence)
        impact = copy.deepcopy(inc.impact)
    except Exception:  # an uncopyable value: fall back to a shallow copy
        evidence, impact = dict(inc.evidence), dict(inc.impact)
    copied = dataclasses.replace(
        inc,
        detectors=list(inc.detectors),
        evidence=evidence,
        impact=impact,
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
                if permanent or attempt >= self.max_attempts:
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
