"""Rate-limit drift: the DriftTracker on synthetic per-second counts, and the runtime hook that
puts a drift into the destination's incident (evidence, timeline, saved, exported); and
mParticle's rate-limit usage: the header parser, SecondCounts combining the logged reading by
max, the tracker's latest report (probe or logs) and its words in the drift evidence."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from observatory.config import load_config
from observatory.detect.counts import SecondCounts
from observatory.detect.drift import (
    BASELINE_QUANTILE,
    LATENESS,
    WINDOW,
    DriftEvent,
    DriftTracker,
    RateLimitUsage,
    accepted_rate,
)
from observatory.incidents.export import export_incident
from observatory.incidents.providers import DRIFT_ATTACH_WINDOW
from observatory.incidents.store import list_incidents
from observatory.probes import ProbeResult, parse_rate_limit_headers
from observatory.probes.base import mparticle_usage, probe_retry_after
from observatory.runtime import Runtime
from tests.helpers import make_config

START = 1_700_000_000
DEST = "tiktok_conversions"


def run(
    tracker: DriftTracker, rows: list[tuple[int, int, int]], start: int = START, dest: str = DEST
) -> list[DriftEvent]:
    """Feed (delivered, rate_limited, failed) per consecutive second and advance past each."""
    events: list[DriftEvent] = []
    for i, (delivered, limited, failed) in enumerate(rows):
        sec = start + i
        tracker.feed(
            [SecondCounts(dest, sec, delivered=delivered, rate_limited=limited, failed=failed)]
        )
        events += tracker.advance(sec + 1)
    # judge the last second too
    return events + tracker.advance(start + len(rows) + LATENESS)


def at_ceiling(n: int, ceiling: int, rng: random.Random, limited: tuple[int, int] = (10, 120)):
    """n seconds of a destination throttled at `ceiling` events/s (a little jitter)."""
    return [(ceiling + rng.randint(-3, 3), rng.randint(*limited), 0) for _ in range(n)]


def test_ceiling_drop_is_flagged_with_old_and_new_ceilings() -> None:
    rng = random.Random(1)
    tracker = DriftTracker()
    rows = (
        at_ceiling(120, 100, rng) + [(40, 200, 0), (40, 230, 0), (41, 240, 0)] + [(40, 240, 0)] * 10
    )
    events = run(tracker, rows)
    assert len(events) == 1
    ev = events[0]
    assert ev.kind == "ceiling_drop" and ev.destination == DEST
    # judged with the engine's lateness: the second 121 (the 2nd low one) ends at +122
    assert ev.ts == START + 122
    assert 97 <= ev.old_ceiling <= 103
    assert ev.new_ceiling == 40
    assert ev.throttled_share == (200 + 230) / (40 + 200 + 40 + 230)
    assert ev.retry_after_s is None
    st = tracker.status()[DEST]
    assert st.flagged and st.flagged_at == START + 122 and st.flagged_ceiling == 40
    assert st.baseline_ceiling == ev.old_ceiling  # frozen while flagged
    # the current estimate: the accepted rate since the drop (40, 40, 41, 40, ...)
    tracker.advance(START + len(rows) + LATENESS + 1)
    assert tracker.status()[DEST].current_ceiling == pytest.approx(40, abs=0.1)


def test_steady_throttled_traffic_raises_nothing() -> None:
    rng = random.Random(2)
    tracker = DriftTracker()
    rows: list[tuple[int, int, int]] = []
    for _ in range(3600):
        r = rng.random()
        if r < 0.01:
            rows.append((rng.randint(5, 30), rng.randint(0, 3), 0))  # a stall: few attempts
        elif r < 0.02:
            rows.append((rng.randint(80, 95), rng.randint(5, 50), rng.randint(0, 5)))
        elif r < 0.2:
            rows.append((rng.randint(90, 105), 0, 0))  # unthrottled second
        else:
            rows.append((100 + rng.randint(-4, 4), rng.randint(2, 150), 0))
    assert run(tracker, rows) == []
    st = tracker.status()[DEST]
    assert st.baseline_kind == "throttled" and 98 <= (st.baseline_ceiling or 0) <= 102
    assert 0.3 < st.throttled_share < 0.6 and not st.flagged


def test_lone_low_second_and_demand_drop_raise_nothing() -> None:
    rng = random.Random(3)
    tracker = DriftTracker()
    rows = at_ceiling(60, 100, rng)
    rows += [(30, 150, 0)]  # one low throttled second, then back at the ceiling
    rows += at_ceiling(30, 100, rng)
    rows += [(35, 5, 0)] * 30  # upstream traffic falls: hardly any attempts, not a drift
    rows += [(35, 0, 0)] * 30
    assert run(tracker, rows) == []


def test_cascade_with_fewer_attempts_is_flagged_when_refused_heavily() -> None:
    """A forwarder whose throttled requests hold its slots through their backoff sends fewer
    attempts once the limit tightens: 60 attempts/s, 20 refused, 40 delivered still shows the
    ceiling fell from 100 to 40. As many attempts refused lightly, or few refused heavily, not."""
    rng = random.Random(6)
    light = at_ceiling(60, 100, rng) + [(45, 10, 0)] * 20  # 55 attempts, 18 % refused
    few = at_ceiling(60, 100, rng) + [(20, 15, 0)] * 20  # 35 attempts: a stall
    assert run(DriftTracker(), light) == []
    assert run(DriftTracker(), few) == []
    events = run(DriftTracker(), at_ceiling(60, 100, rng) + [(40, 20, 0)] * 20)
    assert [e.kind for e in events] == ["ceiling_drop"]
    assert 97 <= events[0].old_ceiling <= 103 and events[0].new_ceiling == 40
    assert events[0].ts == START + 60 + 2  # the 2nd low second, judged 1 s after its end


def test_lumpy_batches_flag_their_mean_rate() -> None:
    """A 50-event batch every 2 s reads 0, 50, 0, 50 per second: the flag waits for the
    second batch and says 25/s, the one number the status shows too."""
    rng = random.Random(7)
    tracker = DriftTracker()
    events = run(tracker, at_ceiling(60, 100, rng) + [(0, 80, 0), (50, 80, 0)] * 6)
    assert [e.kind for e in events] == ["ceiling_drop"]
    assert events[0].new_ceiling == 25
    assert events[0].ts == START + 60 + 4  # the end of the 2nd batch's second
    st = tracker.status()[DEST]
    assert st.flagged and st.flagged_ceiling == 25
    assert st.current_ceiling == pytest.approx(25, rel=0.1)


def lumpy_throttle(rng: random.Random, seconds: int, period: int, batch: int):
    """A forwarder throttled to one accepted `batch`-event request every `period` s (seeded
    phase and jitter): the accepted batch's second, seconds of refused retries, and seconds with
    no line at all (None) while it waits out its backoff."""
    rows: list[tuple[int, int, int] | None] = []
    phase = rng.randrange(period)
    for i in range(seconds):
        if (i + phase) % period == 0:
            rows.append((batch, batch * rng.randint(0, 3), 0))
        elif rng.random() < 0.6:
            rows.append((0, batch * rng.randint(2, 5), 0))
        else:
            rows.append(None)
    return rows


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("period", "batch"), [(5, 50), (2, 20), (3, 30)])
def test_lumpy_batch_delivery_never_reads_as_a_ceiling_of_0(
    seed: int, period: int, batch: int
) -> None:
    """Throttled from 100/s to one batch every few seconds (10 events/s), with empty seconds
    between: the drop's new ceiling, the flagged ceiling and the ceiling now are all above 0
    and near 10/s, every second of the throttle, not 0 as the median of the seconds read."""
    rng = random.Random(seed)
    true_rate = batch / period
    tracker = DriftTracker()
    run(tracker, at_ceiling(60, 100, rng))
    events: list[DriftEvent] = []
    nows: list[float | None] = []
    for i, row in enumerate(lumpy_throttle(rng, 120, period, batch)):
        sec = START + 60 + i
        if row is not None:
            d, rl, f = row
            tracker.feed([SecondCounts(DEST, sec, delivered=d, rate_limited=rl, failed=f)])
        events += tracker.advance(sec + 1)
        if events:
            st = tracker.status()[DEST]
            assert st.flagged and st.flagged_ceiling == events[0].new_ceiling
            nows.append(st.current_ceiling)
    assert [e.kind for e in events] == ["ceiling_drop"]
    ev = events[0]
    assert 97 <= ev.old_ceiling <= 103
    assert ev.ts <= START + 60 + WINDOW + 1  # the wait for a 2nd batch is WINDOW s at most
    assert 0.6 * true_rate <= ev.new_ceiling <= 1.6 * true_rate, ev.new_ceiling
    assert nows and all(n is not None and n > 0 for n in nows)
    # once it has a few batches to go on, the ceiling now stays close to the true rate
    settled = [n for n in nows[3 * period :] if n is not None]
    assert settled and all(0.75 * true_rate <= n <= 1.3 * true_rate for n in settled), settled


def test_accepted_rate_counts_the_clock_not_the_lines() -> None:
    # continuous: the mean; one batch: its events over the span; none: 0
    assert accepted_rate([(s, 40.0) for s in range(10)], 0, 9) == 40
    assert accepted_rate([(3, 50.0)], 0, 9) == 5
    assert accepted_rate([], 0, 9) == 0
    # batches of 50 every 5 s: 10/s, wherever the span ends between two of them
    batches = [(s, 50.0) for s in range(0, 30, 5)]
    assert all(accepted_rate(batches, 0, end) == 10 for end in range(25, 30))
    # delivery stopped: the rate decays once the silence is longer than the usual gap
    assert accepted_rate(batches, 0, 60) == 250 / 60


def test_restoration_is_flagged() -> None:
    rng = random.Random(4)
    tracker = DriftTracker()
    rows = at_ceiling(60, 100, rng) + [(40, 200, 0)] * 30 + [(100, 100, 0)] * 5
    events = run(tracker, rows)
    assert [e.kind for e in events] == ["ceiling_drop", "ceiling_restored"]
    back = events[1]
    assert back.old_ceiling == 40 and back.new_ceiling == 100
    assert back.ts == START + 60 + 30 + 3  # three throttled seconds at the old ceiling
    st = tracker.status()[DEST]
    assert not st.flagged and st.flagged_ceiling is None


def test_unthrottled_rate_is_a_lower_bound_before_any_throttling() -> None:
    tracker = DriftTracker()
    rows = [(80, 0, 0)] * 30 + [(30, 90, 0)] * 5
    events = run(tracker, rows)
    assert len(events) == 1
    assert events[0].old_ceiling == 80 and events[0].new_ceiling == 30
    tracker2 = DriftTracker()
    run(tracker2, [(80, 0, 0)] * 30)
    st = tracker2.status()[DEST]
    assert st.baseline_kind == "lower_bound" and st.baseline_ceiling == 80
    assert st.current_ceiling is None  # never throttled: no estimate


def test_raised_limit_moves_the_baseline_up_without_an_event() -> None:
    rng = random.Random(5)
    tracker = DriftTracker()
    rows = at_ceiling(60, 100, rng) + [(150, 0, 0)] * 10 + at_ceiling(60, 150, rng)
    assert run(tracker, rows) == []
    st = tracker.status()[DEST]
    assert 147 <= (st.baseline_ceiling or 0) <= 153
    # a drop back to 100 is now a drift from 150
    events = run(tracker, [(100, 200, 0)] * 3, start=START + len(rows))
    assert [e.kind for e in events] == ["ceiling_drop"]
    assert 147 <= events[0].old_ceiling <= 153 and events[0].new_ceiling == 100


def test_pieces_add_up_late_seconds_are_ignored_and_retry_after_is_carried() -> None:
    rng = random.Random(6)
    tracker = DriftTracker()
    run(tracker, at_ceiling(60, 100, rng))
    tracker.note_retry_after(DEST, 2.0)
    sec = START + 60
    # a second in two pieces: 50 + 50 delivered is no drop
    tracker.feed([SecondCounts(DEST, sec, delivered=50, rate_limited=100)])
    tracker.feed([SecondCounts(DEST, sec, delivered=50, rate_limited=20)])
    assert tracker.advance(sec + 1 + LATENESS) == []
    # a late piece of an already judged second changes nothing
    tracker.feed([SecondCounts(DEST, sec - 5, delivered=0, rate_limited=500)])
    events = run(tracker, [(40, 200, 0)] * 2, start=sec + 1)
    assert len(events) == 1 and events[0].retry_after_s == 2.0
    assert events[0].json_line()["type"] == "rate_limit_drift"


def test_advance_judges_like_the_engine_and_is_deterministic() -> None:
    rows = at_ceiling(60, 100, random.Random(7)) + [(40, 200, 0)] * 3
    a, b = DriftTracker(), DriftTracker()
    for i, (d, rl, f) in enumerate(rows):
        a.feed([SecondCounts(DEST, START + i, delivered=d, rate_limited=rl, failed=f)])
        b.feed([SecondCounts(DEST, START + i, delivered=d, rate_limited=rl, failed=f)])
    # a second is judged once the watermark is LATENESS + 1 past its start
    assert a.advance(START + 61 + LATENESS) == []  # up to START + 60: one low second
    events = a.advance(START + 62 + LATENESS)
    assert [e.ts for e in events] == [START + 62]
    assert b.advance(START + 100) == events
    assert 0 < BASELINE_QUANTILE < 1


# -- the runtime hook --------------------------------------------------------------------------


def _runtime(tmp_path: Path, warmup: str = "10s") -> Runtime:
    path = make_config(tmp_path)
    path.write_text(path.read_text() + f'\n[detection]\nwarmup = "{warmup}"\n', encoding="utf-8")
    return Runtime(load_config(path))


def _step(runtime: Runtime, sec: int, delivered: int, limited: int) -> None:
    counts = [SecondCounts(DEST, sec, delivered=delivered, rate_limited=limited)]
    counts.append(SecondCounts("meta_capi", sec, delivered=100))
    runtime._feed(counts)
    runtime._advance(sec + 1)


def _probe_down(runtime: Runtime, ts: float) -> None:
    runtime.record_probe_results(
        [
            ProbeResult(DEST, "http", ts + k, False, 503, 5.0, "down", {"retry_after_s": 2.0})
            for k in range(3)
        ]
    )


def test_drift_joins_the_open_incident(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    drifts: list[DriftEvent] = []
    runtime.on_drift = drifts.append
    try:
        rng = random.Random(8)
        for i in range(60):
            _step(runtime, START + i, 100 + rng.randint(-2, 2), 30)
        _probe_down(runtime, START + 60)  # a probe incident opens
        for i in range(60, 65):
            _step(runtime, START + i, 100, 30)
        assert [i.detector for i in runtime.engine.incidents()] == ["probe"]
        for i in range(65, 75):
            _step(runtime, START + i, 40, 200)
        assert [d.kind for d in drifts] == ["ceiling_drop"]
        assert drifts[0].retry_after_s == 2.0
        assert runtime.drift_events == drifts
        stored = list_incidents(runtime.store.con)
        assert len(stored) == 1
        inc = stored[0]
        ev = inc.evidence["rate_limit_drift"]
        assert ev["new_ceiling_per_s"] == 40 and 98 <= ev["old_ceiling_per_s"] <= 102
        assert ev["flagged_at"] == "2023-11-14T22:14:27.000Z"  # START + 67
        assert ev["throttled_share"] == round(400 / 480, 4) and ev["retry_after_s"] == 2.0
        notes = [e for e in inc.timeline if e.kind == "drift"]
        assert len(notes) == 1 and "-> 40/s" in notes[0].detail
        # the engine's later saves keep it (the live copy carries it), noted once
        for i in range(75, 80):
            _step(runtime, START + i, 40, 200)
        _probe_down(runtime, START + 80)
        inc = list_incidents(runtime.store.con)[0]
        assert [e.kind for e in inc.timeline].count("drift") == 1
        assert "rate_limit_drift" in inc.evidence
        md = export_incident(runtime.store.con, inc, "md")
        assert "Rate-limit drift" in md and "**New ceiling (per s):** 40" in md
        # restoration: noted on the same incident, evidence updated
        for i in range(80, 90):
            _step(runtime, START + i, 100, 40)
        assert [d.kind for d in drifts] == ["ceiling_drop", "ceiling_restored"]
        inc = list_incidents(runtime.store.con)[0]
        assert inc.evidence["rate_limit_drift"]["restored_ceiling_per_s"] == 100
        assert [e.kind for e in inc.timeline].count("drift") == 2
    finally:
        runtime.close()


def test_drift_joins_the_next_incident_within_the_window(tmp_path: Path) -> None:
    # traffic detectors still warming up: only the probe opens an incident, after the drift
    runtime = _runtime(tmp_path, warmup="2h")
    try:
        rng = random.Random(9)
        for i in range(60):
            _step(runtime, START + i, 100 + rng.randint(-2, 2), 30)
        for i in range(60, 70):
            _step(runtime, START + i, 40, 40)
        assert [d.kind for d in runtime.drift_events] == ["ceiling_drop"]
        assert not [i for i in runtime.engine.incidents() if i.destination == DEST]
        _probe_down(runtime, START + 70)
        for i in range(70, 76):
            _step(runtime, START + i, 40, 40)
        stored = [i for i in list_incidents(runtime.store.con) if i.destination == DEST]
        assert [i.detector for i in stored] == ["probe"]
        inc = stored[0]
        assert inc.evidence["rate_limit_drift"]["new_ceiling_per_s"] == 40
        assert inc.evidence["rate_limit_drift"]["flagged_at"] == "2023-11-14T22:14:22.000Z"
        assert [e.kind for e in inc.timeline].count("drift") == 1
    finally:
        runtime.close()
    # an incident opened long after the drift does not get it
    assert DRIFT_ATTACH_WINDOW < 3600
    (tmp_path / "late").mkdir()
    runtime = _runtime(tmp_path / "late", warmup="2h")
    try:
        for i in range(60):
            _step(runtime, START + i, 100, 30)
        for i in range(60, 70):
            _step(runtime, START + i, 40, 40)
        late = START + 70 + int(DRIFT_ATTACH_WINDOW) + 60
        _probe_down(runtime, late)
        _step(runtime, late + 3, 40, 40)
        probe_incidents = [i for i in list_incidents(runtime.store.con) if i.destination == DEST]
        assert probe_incidents
        assert all("rate_limit_drift" not in i.evidence for i in probe_incidents)
    finally:
        runtime.close()


# mParticle's rate-limit usage

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-mp-rate-limit-percentage-used": "97"}, {"percentage_used": 97.0}),
        ({"x-mp-rate-limit-percentage-used": " 12.5 % "}, {"percentage_used": 12.5}),
        ({"X-mp-rate-limit-exceeded": "Workspace"}, {"exceeded": "workspace"}),
        ({"X-mp-rate-limit-exceeded": '"feed"'}, {"exceeded": "feed"}),
        ({"X-mp-rate-limit-exceeded": "<b>app</b>\x1b[31m"}, {"exceeded": "bappb31m"}),
        ({"X-mp-rate-limit-percentage-used": "lots"}, None),
        ({"X-mp-rate-limit-percentage-used": "-3"}, None),
        ({"X-mp-rate-limit-percentage-used": "nan"}, None),
        ({"X-mp-rate-limit-exceeded": "  "}, None),
    ],
)
def test_headers(headers: dict[str, str], expected: dict[str, object] | None) -> None:
    details, _ = parse_rate_limit_headers(headers, NOW)
    # recorded verbatim either way (the raw header names carry "rate-limit")
    assert set(details["rate_limit_headers"]) == {k.lower() for k in headers}
    assert details.get("rate_limit", {}).get("mparticle") == expected


def test_429_with_scope_and_retry_after() -> None:
    details, retry_at = parse_rate_limit_headers(
        {"Retry-After": "5", "X-mp-rate-limit-exceeded": "account"}, NOW
    )
    assert details["rate_limit"]["mparticle"] == {"exceeded": "account"}
    assert retry_at == NOW + 5
    assert mparticle_usage(details) == (None, "account")
    assert probe_retry_after(details) == 5.0
    assert mparticle_usage({}) == (None, None) and probe_retry_after({}) is None
    assert probe_retry_after({"retry_after_s": 2.0}) == 2.0  # set by a probe itself


def test_second_counts_combine_the_reading_by_max() -> None:
    a = SecondCounts(DEST, 1, delivered=1)
    a.add(SecondCounts(DEST, 1, delivered=1, rate_limit_used=40.0))
    a.add(SecondCounts(DEST, 1, delivered=1, rate_limit_used=90.0))
    a.add(SecondCounts(DEST, 1, delivered=1, rate_limit_used=60.0))
    a.add(SecondCounts(DEST, 1, delivered=1))
    assert a.rate_limit_used == 90.0 and a.delivered == 5


def test_words() -> None:
    assert RateLimitUsage().words() is None
    assert RateLimitUsage(97.0).words() == "mParticle reports 97 % of its rate limit used"
    assert RateLimitUsage(None, "workspace").words() == "rate limit exceeded (workspace scope)"
    assert RateLimitUsage(99.5, "app", from_logs=True).words() == (
        "the delivery logs report 99.5 % of the rate limit used; rate limit exceeded (app scope)"
    )


def test_latest_report_wins_and_logs_keep_the_probes_scope() -> None:
    tracker = DriftTracker()
    tracker.note_usage(DEST, None, None, NOW)  # nothing said: nothing kept
    assert DEST not in tracker.status()
    tracker.note_usage(DEST, None, "workspace", NOW + 10)
    tracker.note_usage(DEST, 50.0, None, NOW + 5)  # older: ignored
    status = tracker.status()[DEST]
    assert (status.rate_limit_used_pct, status.rate_limit_exceeded) == (None, "workspace")
    # a logged reading in a later second keeps the scope the probe saw
    tracker.feed([SecondCounts(DEST, int(NOW) + 20, delivered=3, rate_limit_used=99.0)])
    tracker.advance(NOW + 30)
    status = tracker.status()[DEST]
    assert status.rate_limit_used_pct == 99.0 and status.rate_limit_exceeded == "workspace"
    assert status.rate_limit_usage_at == NOW + 21
    assert status.rate_limit_usage == (
        "the delivery logs report 99 % of the rate limit used; rate limit exceeded "
        "(workspace scope)"
    )
    # a probe's 2xx reading says the limit is no longer exceeded
    tracker.note_usage(DEST, 80.0, None, NOW + 40)
    status = tracker.status()[DEST]
    assert status.rate_limit_exceeded is None
    assert status.rate_limit_usage == "mParticle reports 80 % of its rate limit used"


def test_drift_events_carry_the_report_and_plain_lines_stay_as_they_were() -> None:
    rng = random.Random(3)
    rows = [(100 + rng.randint(-3, 3), rng.randint(10, 120), 0) for _ in range(60)]
    plain = run(DriftTracker(), [*rows, *[(40, 200, 0)] * 3])
    assert len(plain) == 1 and "rate_limit_usage" not in plain[0].json_line()
    tracker = DriftTracker()
    run(tracker, rows)
    tracker.note_usage(DEST, None, "workspace", START + 60)
    events = run(tracker, [(40, 200, 0)] * 3, start=START + 60)
    assert len(events) == 1
    line = events[0].json_line()
    assert line["rate_limit_exceeded"] == "workspace"
    assert line["rate_limit_usage"] == "rate limit exceeded (workspace scope)"
    assert "rate_limit_used_pct" not in line
    assert LATENESS >= 0


def test_the_report_reaches_the_incident_and_its_export(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    try:
        rng = random.Random(8)
        for i in range(60):
            _step(runtime, START + i, 100 + rng.randint(-2, 2), 30)
        # three failing probes (a probe incident opens), as an http probe records a 429 from
        # mParticle: the headers parsed under details["rate_limit"]
        details = {"rate_limit": {"retry_after_s": 2.0, "mparticle": {"exceeded": "workspace"}}}
        runtime.record_probe_results(
            [
                ProbeResult(DEST, "http", START + 60 + k, False, 429, 5.0, "http 429", details)
                for k in range(3)
            ]
        )
        for i in range(60, 75):
            _step(runtime, START + i, 40 if i >= 65 else 100, 200 if i >= 65 else 30)
        assert [d.kind for d in runtime.drift_events] == ["ceiling_drop"]
        drift = runtime.drift_events[0]
        assert drift.retry_after_s == 2.0  # read from the parsed headers too
        inc = list_incidents(runtime.store.con)[0]
        ev = inc.evidence["rate_limit_drift"]
        assert ev["rate_limit_usage"] == "rate limit exceeded (workspace scope)"
        (note,) = [e for e in inc.timeline if e.kind == "drift"]
        assert note.detail.endswith("; rate limit exceeded (workspace scope)")
        md = export_incident(runtime.store.con, inc, "md")
        assert "Rate limit usage" in md and "rate limit exceeded (workspace scope)" in md
        status = runtime.drift.status()[DEST]
        assert status.rate_limit_usage == "rate limit exceeded (workspace scope)"
    finally:
        runtime.close()
