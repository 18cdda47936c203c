"""Rate-limit drift: has a destination's accepted-rate ceiling moved (an unannounced limit change)?

Fed the same per-second :class:`SecondCounts` as the engine and moved on with the same
watermark; pure, deterministic, event time (no clock, no I/O).

The idea: while a destination is throttled, what it still delivers per second *is* the rate
it accepts, its ceiling. So per destination:

* a second is **throttled** when at least ``THROTTLED_SHARE`` of its attempts (and at least
  one) were ``rate_limited`` (429s and vendor throttling codes);
* the **baseline ceiling** is a robust high quantile (p75) of delivered/s over recent throttled
  seconds; before there are ``MIN_BASELINE_SECONDS`` of those, it is the best *sustained*
  delivered/s without throttling (the lowest of ``FREE_RUN`` consecutive unthrottled seconds),
  a lower bound of the ceiling. When traffic later flows unthrottled well above the throttled
  estimate, the limit was raised: the old estimates are dropped;
* a throttled second is **low** when it delivered less than ``DROP_RATIO`` x baseline although
  it had at least that many attempts, or at least ``HEAVY_DEMAND`` x baseline of which at least
  ``HEAVY_SHARE`` were refused (a forwarder whose retries wait out their backoff holding its
  connection slots sends fewer attempts as the limit tightens: the cascade). A quiet or stalled
  second, with few attempts and few refusals, is no evidence either way;
* ``LOW_SECONDS`` low seconds in a row (among the throttled seconds with enough attempts,
  within ``WINDOW`` seconds) flag a ``ceiling_drop``: old ceiling = the baseline, new ceiling =
  the accepted rate (below) from the first low second on. While fewer than two seconds since
  then delivered anything, the flag waits (up to ``WINDOW`` seconds) for the second one: a
  forwarder that delivers a 50-event batch every 5 s reads 50, 0, 0, 0, 0 per second, and a
  rate cannot be told from one batch. The baseline is then frozen;
* the **accepted rate** over a span of seconds (:func:`accepted_rate`) counts every second of
  the clock, those without a line too, so lumpy delivery reads as its mean: the events
  delivered after the first delivering second, over the seconds from it to the last one (the
  span runs on to the span's end once the silence since the last delivery is longer than the
  mean gap between them). It is never 0 while something in the span was delivered;
* the **current ceiling** ("ceiling now") is the accepted rate over the last
  ``CEILING_SECONDS`` seconds (from the first low second on while a drop is flagged), when some
  of them were throttled; else there is none. The **flagged ceiling** is the drop's new ceiling,
  the one number the drift event, the incident's timeline and evidence, its exports and the
  destination screen's "ceiling moved to" all carry;
* ``RESTORE_SECONDS`` throttled seconds in a row delivering at least ``RESTORE_RATIO`` x the old
  baseline, or ``FREE_RUN`` unthrottled seconds that do, flag ``ceiling_restored``; a drop that
  lasts ``ACCEPT_AFTER`` seconds becomes the new baseline (no event).

Units: events per second, as the logs count them. A forwarder that batches n events per
request is throttled per request, so n x requests/s = events/s.

Beside the ceilings, what the destination says about its own limit (:class:`RateLimitUsage`):
mParticle's ``X-mp-rate-limit-percentage-used`` (on success: an early warning) and
``X-mp-rate-limit-exceeded`` (the scope throttled, on a 429), from an ``http`` probe
(:meth:`DriftTracker.note_usage`) or logged with each delivery (the ``rate_limit_used``
column, max per second in :class:`SecondCounts`, taken as each second is judged). The latest
report of each kind goes into the status and every drift event, in plain words; it does not
change what is flagged.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from observatory.detect.counts import SecondCounts

__all__ = [
    "DestinationDrift",
    "DriftEvent",
    "DriftKind",
    "DriftTracker",
    "RateLimitUsage",
    "accepted_rate",
]

DriftKind = Literal["ceiling_drop", "ceiling_restored"]

LATENESS = 1  # like the engine: a second is judged once the watermark is 2 s past its start
THROTTLED_SHARE = 0.02  # of a second's attempts rate limited: the second is throttled
BASELINE_QUANTILE = 0.75
BASELINE_SECONDS = 600  # throttled seconds the baseline quantile looks at
MIN_BASELINE_SECONDS = 10  # throttled seconds before their quantile is the baseline
FREE_RUN = 5  # consecutive unthrottled seconds: a sustained rate (a lower bound of the ceiling)
RAISE_RATIO = 1.2  # sustained unthrottled delivered/s this far above the estimate: limit raised
DROP_RATIO = 0.75  # low second: delivered below this share of the baseline ceiling
HEAVY_SHARE = 0.25  # ... with fewer attempts than that, at least this share of them refused
HEAVY_DEMAND = 0.4  # ... out of at least this share of the baseline ceiling in attempts
LOW_SECONDS = 2  # low throttled seconds in a row that flag a drop
WINDOW = 10  # seconds: the low run must lie within it; the current estimate's span
RESTORE_RATIO = 0.9
RESTORE_SECONDS = 3
ACCEPT_AFTER = 1800  # seconds flagged after which the new ceiling is the baseline
CEILING_SECONDS = 30  # seconds of clock the current ceiling is the accepted rate over
SHARE_TAU = 300.0  # EWMA time constant of the throttled share (s)


@dataclass(frozen=True, slots=True)
class RateLimitUsage:
    """The destination's own word on its rate limit: the share of it used (percent), and the
    scope it said was exceeded (mParticle: org, account, app, feed, workspace, acceleration)."""

    percentage_used: float | None = None
    exceeded: str | None = None
    ts: float | None = None  # when it was said (the probe's time, or the logged second's end)
    from_logs: bool = False  # the percentage came from the delivery logs, not a probe

    def words(self) -> str | None:
        """E.g. "mParticle reports 97 % of its rate limit used; rate limit exceeded
        (workspace scope)"; None when there is nothing to say."""
        parts: list[str] = []
        if self.percentage_used is not None:
            pct = f"{self.percentage_used:.3g} %"
            if self.from_logs:
                parts.append(f"the delivery logs report {pct} of the rate limit used")
            else:
                parts.append(f"mParticle reports {pct} of its rate limit used")
        if self.exceeded is not None:
            parts.append(f"rate limit exceeded ({self.exceeded} scope)")
        return "; ".join(parts) or None


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """A destination's accepted-rate ceiling moved away from its baseline (or came back)."""

    destination: str
    ts: float  # event time: the end of the second that decided it
    old_ceiling: float  # delivered/s (events) before
    new_ceiling: float  # delivered/s (events) now
    throttled_share: float  # rate-limited share of attempts over the evidence seconds
    retry_after_s: float | None = None  # the latest Retry-After a probe saw, if any
    kind: DriftKind = "ceiling_drop"
    usage: RateLimitUsage | None = None  # the destination's latest word on its limit, if any

    def json_line(self) -> dict[str, Any]:
        from observatory.util.isotime import iso

        line: dict[str, Any] = {
            "type": "rate_limit_drift",
            "kind": self.kind,
            "destination": self.destination,
            "ts": iso(self.ts),
            "old_ceiling_per_s": round(self.old_ceiling, 2),
            "new_ceiling_per_s": round(self.new_ceiling, 2),
            "throttled_share": round(self.throttled_share, 4),
            "retry_after_s": self.retry_after_s,
        }
        # Only when said: lines of destinations without such headers stay as they were.
        if self.usage is not None:
            if self.usage.percentage_used is not None:
                line["rate_limit_used_pct"] = self.usage.percentage_used
            if self.usage.exceeded is not None:
                line["rate_limit_exceeded"] = self.usage.exceeded
            line["rate_limit_usage"] = self.usage.words()
        return line


@dataclass(slots=True)
class DestinationDrift:
    """What the destination screen shows: the ceiling as estimated now, and its baseline."""

    destination: str
    baseline_ceiling: float | None  # delivered/s (events)
    baseline_kind: Literal["throttled", "lower_bound"] | None  # quantile, or unthrottled bound
    # accepted rate over the last CEILING_SECONDS (since the drop while flagged), if throttled
    current_ceiling: float | None
    throttled_share: float  # EWMA of the rate-limited share of attempts
    recent_throttled_share: float  # over the last WINDOW seconds
    flagged: bool
    flagged_at: float | None
    # The drop's new ceiling, as its drift event (and so the incident) carries it.
    flagged_ceiling: float | None
    retry_after_s: float | None
    # The destination's latest word on its limit (RateLimitUsage), if it said anything.
    rate_limit_used_pct: float | None = None
    rate_limit_exceeded: str | None = None
    rate_limit_usage_at: float | None = None
    rate_limit_usage: str | None = None  # the same in plain words, for panes and exports


@dataclass(slots=True)
class _Dest:
    name: str
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_SECONDS))
    floor: float = 0.0  # best sustained unthrottled delivered/s
    free_run: deque[float] = field(default_factory=lambda: deque(maxlen=FREE_RUN))
    recent: deque[tuple[int, int, int]] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )  # (sec, rate_limited, total)
    throttled: deque[tuple[int, float]] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )  # (sec, delivered) of throttled seconds
    # (sec, delivered, throttled) of the judged seconds of the last CEILING_SECONDS
    seen: deque[tuple[int, float, bool]] = field(default_factory=deque)
    change_sec: int | None = None  # the flagged drop's first low second
    low_run: list[tuple[int, float, int, int]] = field(default_factory=list)  # sec, d, rl, total
    share: float = 0.0
    share_weight: float = 0.0
    flagged: bool = False
    flagged_at: float | None = None
    flagged_old: float = 0.0
    flagged_new: float = 0.0
    good_run: list[tuple[float, int, int]] = field(default_factory=list)  # d, rl, total
    retry_after: float | None = None
    usage: RateLimitUsage | None = None
    quantile: float | None = None  # of `samples`, kept until they change (sorting is costly)

    def set_samples(self, values: Iterable[float] = ()) -> None:
        self.samples.clear()
        self.samples.extend(values)
        self.quantile = None

    def add_sample(self, value: float) -> None:
        self.samples.append(value)
        self.quantile = None

    def baseline(self) -> tuple[float | None, Literal["throttled", "lower_bound"] | None]:
        if self.flagged:
            return self.flagged_old, "throttled"
        if len(self.samples) >= MIN_BASELINE_SECONDS:
            if self.quantile is None:
                self.quantile = _quantile(self.samples, BASELINE_QUANTILE)
            return self.quantile, "throttled"
        if self.floor > 0.0:
            return self.floor, "lower_bound"
        return None, None

    def current(self, until: int) -> float | None:
        """The accepted rate over the last CEILING_SECONDS up to ``until`` (the last second
        judged), from the drop on while flagged; None if none of them were throttled."""
        since = until - CEILING_SECONDS + 1
        if self.flagged and self.change_sec is not None:
            since = max(since, self.change_sec)
        if not any(t for s, _, t in self.seen if s >= since):
            return None
        return accepted_rate(((s, d) for s, d, _ in self.seen), since, until)

    def delivering_since(self, since: int) -> int:
        return sum(1 for s, d, _ in self.seen if s >= since and d > 0)

    def recent_share(self) -> float:
        return _share(self.recent)


def _quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def accepted_rate(seconds: Iterable[tuple[int, float]], since: int, until: int) -> float:
    """Events delivered per second from ``since`` to ``until`` (inclusive) out of (second,
    delivered) rows; seconds not among them delivered nothing.

    Lumpy delivery (a batch every few seconds) reads as its mean rate: the events delivered
    after the first delivering second, over the seconds from it to the last delivering one; once
    the silence after the last delivery is longer than the mean gap between deliveries, over
    the seconds from the first to ``until`` instead, so a rate that stopped decays. One
    delivering second: its events over the whole span. 0 only when nothing was delivered."""
    rows = sorted((s, d) for s, d in seconds if since <= s <= until and d > 0)
    if not rows:
        return 0.0
    if len(rows) == 1:
        return rows[0][1] / (until - since + 1)
    first, last = rows[0][0], rows[-1][0]
    after_first = sum(d for _, d in rows[1:])
    gap = (last - first) / (len(rows) - 1)
    span = last - first if until - last <= gap else until - first
    return after_first / span


def _evidence(total: int, rate_limited: int, ceiling: float) -> bool:
    """Can a throttled second delivering under DROP_RATIO x `ceiling` show the ceiling fell?
    Yes if it had the attempts to reach the old ceiling, or fewer but refused heavily (a quiet
    or stalled second that met a few refusals is no evidence either way)."""
    if total >= DROP_RATIO * ceiling:
        return True
    return total >= HEAVY_DEMAND * ceiling and rate_limited >= HEAVY_SHARE * total


def _share(rows: Iterable[tuple[Any, ...]]) -> float:
    """Rate-limited share over rows ending in (..., rate_limited, total)."""
    rl = total = 0
    for row in rows:
        rl += row[-2]
        total += row[-1]
    return rl / total if total else 0.0


class DriftTracker:
    """Per-destination accepted-rate ceilings from per-second counts; flags their drift."""

    def __init__(self) -> None:
        self._dests: dict[str, _Dest] = {}
        self._pending: dict[int, dict[str, SecondCounts]] = {}
        self._next_sec: int | None = None
        # per destination, how far behind the clock it is judged (the engine's delays)
        self.delays: dict[str, int] = {}

    # -- input -----------------------------------------------------------------------------

    def feed(self, counts: Iterable[SecondCounts]) -> None:
        """Add counts; a (destination, second) may come in pieces. Seconds already judged
        are ignored (late), as in the engine."""
        for c in counts:
            sec = int(c.sec)
            key = sec + self.delays.get(c.destination, 0)  # when it is judged
            if self._next_sec is not None and key < self._next_sec:
                continue
            if c.destination not in self._dests:
                self._dests[c.destination] = _Dest(c.destination)
            bucket = self._pending.setdefault(key, {})
            mine = bucket.get(c.destination)
            if mine is None:
                mine = bucket[c.destination] = SecondCounts(c.destination, sec)
            mine.add(c)

    def note_retry_after(self, destination: str, seconds: float | None) -> None:
        """The latest Retry-After the destination answered (from a probe's headers)."""
        if destination not in self._dests:
            self._dests[destination] = _Dest(destination)
        self._dests[destination].retry_after = seconds

    def note_usage(
        self,
        destination: str,
        percentage_used: float | None,
        exceeded_scope: str | None,
        ts: float,
        from_logs: bool = False,
    ) -> None:
        """What the destination said about its rate limit at ``ts`` (mParticle's
        ``X-mp-rate-limit-*`` headers from a probe, or the logged percentage). An older report
        than the one kept changes nothing; a newer one replaces it, except that a percentage
        from the logs keeps the exceeded scope a probe saw (logs carry no scope)."""
        if percentage_used is None and exceeded_scope is None:
            return
        if destination not in self._dests:
            self._dests[destination] = _Dest(destination)
        d = self._dests[destination]
        kept = d.usage
        if kept is not None and kept.ts is not None and ts < kept.ts:
            return
        if from_logs and exceeded_scope is None and kept is not None:
            exceeded_scope = kept.exceeded
        d.usage = RateLimitUsage(percentage_used, exceeded_scope, ts, from_logs)

    # -- time ------------------------------------------------------------------------------

    def advance(self, watermark: float) -> list[DriftEvent]:
        """Judge every second ``s <= floor(watermark) - 2`` not yet judged, in order."""
        last = math.floor(watermark) - 1 - LATENESS
        if self._next_sec is None:
            if not self._pending:
                return []
            self._next_sec = min(self._pending)
        events: list[DriftEvent] = []
        # Seconds without counts change nothing but the recent windows: jump over them.
        for sec in sorted(s for s in self._pending if s <= last):
            if sec < self._next_sec:
                del self._pending[sec]
                continue
            for name, c in sorted(self._pending.pop(sec).items()):
                if c.rate_limit_used is not None:
                    self.note_usage(name, c.rate_limit_used, None, float(c.sec + 1), True)
                event = self._judge(self._dests[name], c.sec, c)
                if event is not None:
                    events.append(event)
        self._next_sec = max(self._next_sec, last + 1)
        return events

    def _judge(self, d: _Dest, sec: int, c: SecondCounts) -> DriftEvent | None:
        total = c.total
        if total <= 0:
            return None
        rl = c.rate_limited
        delivered = float(c.delivered)
        d.recent.append((sec, rl, total))
        while d.recent and d.recent[0][0] <= sec - WINDOW:
            d.recent.popleft()
        # the long-run throttled share: an EWMA over seconds, gaps decay it
        w = math.exp(-1.0 / SHARE_TAU)
        d.share = d.share * w + (rl / total) * (1.0 - w)
        d.share_weight = d.share_weight * w + (1.0 - w)
        throttled = rl >= 1 and rl >= THROTTLED_SHARE * total
        d.seen.append((sec, delivered, throttled))
        while d.seen[0][0] <= sec - CEILING_SECONDS:
            d.seen.popleft()
        end = float(sec + 1)
        if d.flagged:
            return self._judge_flagged(d, sec, end, delivered, rl, total, throttled)
        baseline, _ = d.baseline()
        if not throttled:
            d.free_run.append(delivered)
            if len(d.free_run) == FREE_RUN:
                sustained = min(d.free_run)
                if d.samples and sustained > RAISE_RATIO * (baseline or 0.0):
                    d.set_samples()  # the limit went up: the throttled estimates are stale
                    d.floor = 0.0
                d.floor = max(d.floor, sustained)
            if baseline is not None and delivered >= DROP_RATIO * baseline:
                d.low_run.clear()  # plenty got through: no drop
            return None
        d.free_run.clear()
        d.throttled.append((sec, delivered))
        if baseline is None:
            self._learn(d, delivered)
            return None
        if delivered >= DROP_RATIO * baseline:
            d.low_run.clear()
            self._learn(d, delivered)
            return None
        if not _evidence(total, rl, baseline):
            return None
        d.low_run = [r for r in d.low_run if r[0] > sec - WINDOW]
        d.low_run.append((sec, delivered, rl, total))
        if len(d.low_run) < LOW_SECONDS:
            return None
        since = d.low_run[0][0]
        if d.delivering_since(since) < 2 and sec - since + 1 < WINDOW:
            return None  # one batch tells no rate: wait for the next (or WINDOW seconds)
        new = accepted_rate(((s, v) for s, v, _ in d.seen), since, sec)
        share = _share(d.low_run)
        d.flagged, d.flagged_at, d.flagged_old, d.flagged_new = True, end, baseline, new
        d.change_sec = since
        # what is kept to accept the drop as the ceiling later: this drop's seconds only
        d.throttled.clear()
        for r in d.low_run[1:]:
            d.throttled.append((r[0], r[1]))
        d.good_run.clear()
        d.low_run.clear()
        return DriftEvent(d.name, end, baseline, new, share, d.retry_after, "ceiling_drop", d.usage)

    def _judge_flagged(
        self,
        d: _Dest,
        sec: int,
        end: float,
        delivered: float,
        rl: int,
        total: int,
        throttled: bool,
    ) -> DriftEvent | None:
        old = d.flagged_old
        good = delivered >= RESTORE_RATIO * old
        if throttled:
            d.throttled.append((sec, delivered))
            d.free_run.clear()
            if good:
                d.good_run.append((delivered, rl, total))
            elif _evidence(total, rl, old):
                d.good_run.clear()  # throttled below the old ceiling: still dropped
            if len(d.good_run) >= RESTORE_SECONDS:
                return self._restore(d, end)
        else:
            d.free_run.append(delivered)
            if len(d.free_run) == FREE_RUN and min(d.free_run) >= RESTORE_RATIO * old:
                d.good_run = [(v, 0, 1) for v in d.free_run]
                d.good_run[-1] = (d.free_run[-1], rl, total)
                return self._restore(d, end)
        if d.flagged_at is not None and end - d.flagged_at >= ACCEPT_AFTER:
            # the drop has lasted: it is the ceiling now
            d.flagged = False
            d.change_sec = None
            d.set_samples(v for _, v in d.throttled)
            d.floor = 0.0
        return None

    def _restore(self, d: _Dest, end: float) -> DriftEvent:
        new = float(statistics.median(v for v, _, _ in d.good_run))
        share = _share(d.good_run)
        old = d.flagged_new  # the ceiling the drop's event said, so the two entries agree
        d.flagged = False
        d.flagged_at = None
        d.change_sec = None
        d.good_run.clear()
        d.low_run.clear()
        d.free_run.clear()
        d.add_sample(new)
        return DriftEvent(d.name, end, old, new, share, d.retry_after, "ceiling_restored", d.usage)

    # -- output ----------------------------------------------------------------------------

    def status(self) -> dict[str, DestinationDrift]:
        """Per destination: baseline and current ceiling, throttled share, drift state."""
        out: dict[str, DestinationDrift] = {}
        for name in sorted(self._dests):
            d = self._dests[name]
            # the last second judged for this destination (seconds without lines count as 0)
            if self._next_sec is not None:
                until = self._next_sec - 1 - self.delays.get(name, 0)
            else:
                until = d.seen[-1][0] if d.seen else 0
            baseline, kind = d.baseline()
            share = d.share / d.share_weight if d.share_weight > 0 else 0.0
            out[name] = DestinationDrift(
                destination=name,
                baseline_ceiling=baseline,
                baseline_kind=kind,
                current_ceiling=d.current(until),
                throttled_share=share,
                recent_throttled_share=d.recent_share(),
                flagged=d.flagged,
                flagged_at=d.flagged_at,
                flagged_ceiling=d.flagged_new if d.flagged else None,
                retry_after_s=d.retry_after,
            )
            usage = d.usage
            if usage is not None:
                status = out[name]
                status.rate_limit_used_pct = usage.percentage_used
                status.rate_limit_exceeded = usage.exceeded
                status.rate_limit_usage_at = usage.ts
                status.rate_limit_usage = usage.words()
        return out

    def _learn(self, d: _Dest, delivered: float) -> None:
        d.add_sample(delivered)
        if len(d.samples) >= MIN_BASELINE_SECONDS:
            d.floor = 0.0  # the throttled estimate supersedes the unthrottled lower bound
