"""The detection engine on seeded synthetic traffic (DESIGN "Detection" and "Incidents").

Asserted on what a user sees: which incidents open and when (delay from the true onset, in
event time), their detector, severity, merge, escalation, resolution, flaps, historical/live
flags, ids; never on the detectors' internal state. Traffic comes from
observatory.sim.synthetic: Poisson counts around one upstream multiplier with an hourly wave
and 3x campaign minutes, background errors and 429s, lognormal latencies.
"""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from observatory.config import DetectionConfig
from observatory.detect import Engine, SecondCounts
from observatory.detect.status import STATE_RULES, STATE_SECONDS, pane_state
from observatory.incidents.model import Change, Incident
from observatory.sim import latency_shapes
from observatory.sim.synthetic import Fault, FaultKind, Traffic

START = 1_700_000_000
LEAD = 900  # seconds of normal traffic before a fault (warm-up is 3 minutes)
RATES = {"a_slow": 1.0, "b_mid": 10.0, "c_big": 100.0, "d_huge": 500.0}


def drive(
    traffic: Traffic, engine: Engine, start: int, stop: int, split: bool = False
) -> list[Change]:
    """Feed second by second as the runtime does (watermark = end of the last second)."""
    changes: list[Change] = []
    for sec in range(start, stop):
        counts = traffic.second(sec)
        if split:
            counts = [piece for c in counts for piece in halves(c)]
        engine.feed(counts)
        changes += engine.advance(sec + 1)
    return changes


def halves(c: SecondCounts) -> list[SecondCounts]:
    """The same second in two pieces (as from two sources or a late line)."""
    first = SecondCounts(
        c.destination,
        c.sec,
        delivered=c.delivered // 2,
        rate_limited=c.rate_limited // 2,
        failed=c.failed // 2,
        latency_n=c.latency_n // 2,
        latency_sum=c.latency_sum / 2,
        latency_max=c.latency_max,
        hist={b: n // 2 for b, n in c.hist.items() if n // 2},
    )
    second = SecondCounts(
        c.destination,
        c.sec,
        delivered=c.delivered - first.delivered,
        rate_limited=c.rate_limited - first.rate_limited,
        rejected=c.rejected,
        failed=c.failed - first.failed,
        retrying=c.retrying,
        dropped=c.dropped,
        latency_n=c.latency_n - first.latency_n,
        latency_sum=c.latency_sum - first.latency_sum,
        latency_max=c.latency_max,
        hist={b: n - first.hist.get(b, 0) for b, n in c.hist.items() if n - first.hist.get(b, 0)},
    )
    return [first, second]


def scenario(
    faults: list[Fault], seconds: int, seed: int = 1, rates: dict[str, float] | None = None
) -> tuple[Engine, list[Change]]:
    traffic = Traffic(rates or RATES, START, seconds, seed=seed, faults=faults)
    engine = Engine(DetectionConfig())
    return engine, drive(traffic, engine, START, START + seconds)


def opened(changes: list[Change], destination: str | None = None) -> list[Incident]:
    return [
        c.incident
        for c in changes
        if c.kind == "open" and (destination is None or c.incident.destination == destination)
    ]


# ------------------------------------------------------------------------------------------
# Threshold and false alarms
# ------------------------------------------------------------------------------------------


def test_threshold_follows_the_false_alarm_budget() -> None:
    week = 7 * 86400
    engine = Engine(DetectionConfig())  # 1/week, tick 1 s, N = 5, D = 6
    assert engine.h == pytest.approx(math.log(5 * 6 * week))
    assert Engine(DetectionConfig(), n_destinations=20).h == pytest.approx(math.log(20 * 6 * week))
    looser = Engine(DetectionConfig.model_validate({"false_alarm_budget": "7/week"}))
    assert looser.h == pytest.approx(math.log(5 * 6 * week / 7))


@pytest.mark.parametrize("seed", [4, 11])
def test_no_false_alarm_in_an_hour_of_bursty_traffic(seed: int) -> None:
    rates = {"a_trickle": 0.3, **RATES}
    traffic = Traffic(rates, START, 3600, seed=seed)
    assert traffic.multiplier.max() >= 2.5, "the hour should hold a campaign"
    engine = Engine(DetectionConfig())
    changes = drive(traffic, engine, START, START + 3600)
    assert [c.incident.summary for c in changes] == []
    assert all(s.state == "ok" for s in engine.status().values())


@pytest.mark.parametrize("shape", ["uniform", "quantised", "bimodal", "heavy"])
def test_steady_latencies_of_any_shape_raise_no_alarm_up_to_1500_per_second(
    shape: latency_shapes.Shape,
) -> None:
    """Bounded, quantised, bimodal and heavy-tailed latencies are learned as they are: half an
    hour of steady traffic at up to 1,500 ev/s opens nothing (a p99 tracker that assumed a
    lognormal shape undershot on uniform and quantised latencies and alarmed)."""
    rates = {"fast": 1500.0, "big": 500.0, "mid": 10.0}
    traffic = Traffic(rates, START, 1800, seed=31, latency_shape=shape)
    engine = Engine(DetectionConfig())
    changes = drive(traffic, engine, START, START + 1800)
    assert [c.incident.summary for c in changes] == []


@pytest.mark.parametrize("shape", latency_shapes.SHAPES)
def test_a_threefold_slowdown_is_caught_within_5_s_whatever_the_shape(
    shape: latency_shapes.Shape,
) -> None:
    onset = START + LEAD
    fault = Fault("latency", "b_mid", onset, onset + 120, 3.0)
    traffic = Traffic(RATES, START, LEAD + 120, seed=32, faults=[fault], latency_shape=shape)
    changes = drive(traffic, Engine(DetectionConfig()), START, START + LEAD + 120)
    incidents = opened(changes)
    assert [(i.destination, i.detector) for i in incidents] == [("b_mid", "latency")]
    assert incidents[0].detected_at - onset <= 5
    assert "latency up since" in incidents[0].summary


# ------------------------------------------------------------------------------------------
# Each detector on its fault
# ------------------------------------------------------------------------------------------

CASES: list[tuple[FaultKind, float, str, str, str, float]] = [
    # kind, level, destination, detector, final severity, max delay (s)
    ("failures", 1.0, "b_mid", "error_rate", "critical", 2),
    ("failures", 1.0, "a_slow", "error_rate", "critical", 15),
    ("rate_limit", 1.0, "b_mid", "rate_limit", "critical", 2),
    ("rate_limit", 0.3, "c_big", "rate_limit", "warning", 5),
    ("silence", 1.0, "b_mid", "silence", "critical", 6),
    ("volume", 0.5, "c_big", "volume_drop", "error", 10),
    ("latency", 3.0, "c_big", "latency", "warning", 3),
    ("latency", 3.0, "b_mid", "latency", "warning", 5),
    # a tail fault: 10 % of requests time out (30 s), the rest as fast as ever
    ("timeouts", 0.1, "c_big", "latency", "warning", 3),
]


@pytest.mark.parametrize(
    ("kind", "level", "destination", "detector", "severity", "max_delay"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES],
)
def test_detector_fires_on_its_fault(
    kind: FaultKind, level: float, destination: str, detector: str, severity: str, max_delay: float
) -> None:
    onset = START + LEAD
    fault = Fault(kind, destination, onset, onset + 300, level)
    engine, changes = scenario([fault], LEAD + 300 + 180)
    incidents = opened(changes)
    assert [i.destination for i in incidents] == [destination], "one incident, only there"
    incident = engine.all_incidents()[0]
    assert detector in incident.detectors
    if detector != "silence":  # at 10 ev/s the volume share test may beat the silence timer
        assert incident.detector == detector
    assert incident.detected_at - onset <= max_delay
    assert abs(incident.onset - onset) <= (3 if max_delay <= 10 else 10)
    assert incident.severity == severity
    assert incident.state == "resolved" and incident.resolved_at is not None
    assert incident.resolved_at - fault.end <= 120
    assert incident.flaps == 0
    json.dumps(incident.json_line("resolved"))  # the JSON line serialises as is


def test_silence_tells_no_attempts_from_nothing_delivered() -> None:
    onset = START + LEAD
    faults = [
        Fault("silence", "b_mid", onset, onset + 120),
        Fault("failures", "c_big", onset, onset + 120),
    ]
    engine, _ = scenario(faults, LEAD + 130)
    by_dest = {i.destination: i for i in engine.all_incidents()}
    silent = by_dest["b_mid"].evidence["detectors"]["silence"]
    assert silent["kind"] == "no_attempts"
    assert "no events from" in by_dest["b_mid"].summary  # it has ended
    failing = by_dest["c_big"]
    assert failing.evidence["detectors"]["silence"]["kind"] == "attempts_not_delivered"
    assert failing.evidence["detectors"]["silence"]["failed"] > 0
    # the summary names the cause, not the symptom
    assert "failed or rejected" in failing.summary


def test_probe_opens_after_three_failures_and_resolves_after_three_successes() -> None:
    engine = Engine(DetectionConfig())
    traffic = Traffic(RATES, START, 1200, seed=3)
    changes = drive(traffic, engine, START, START + 600)
    for i, ok in enumerate([False, False, False, False, True, True, True]):
        ts = START + 600 + 30 * i
        engine.feed_probe("c_big", "status", ts, ok, None, {"Retry-After": "30", "token": "x"})
        changes += drive(traffic, engine, ts, ts + 30)
    incidents = opened(changes)
    assert [(i.destination, i.detector) for i in incidents] == [("c_big", "probe")]
    incident = engine.all_incidents()[0]
    assert incident.detected_at == pytest.approx(START + 600 + 60 + 1, abs=2)
    assert incident.state == "resolved"
    assert incident.resolved_at == pytest.approx(START + 600 + 180 + 1, abs=2)
    # what the probes saw, frozen at detection (no other keys)
    assert incident.evidence["at_detection"]["probe_headers"] == {"Retry-After": "30"}
    # a non-operational status component opens at once
    engine.feed_probe("b_mid", "statuspage", START + 900, True, "major_outage")
    changes = drive(traffic, engine, START + 810, START + 905)
    incidents = opened(changes)
    assert [(i.destination, i.severity) for i in incidents] == [("b_mid", "error")]


# ------------------------------------------------------------------------------------------
# Incidents: merge, escalation, resolution, flaps
# ------------------------------------------------------------------------------------------


def test_detectors_of_a_destination_merge_into_one_incident() -> None:
    onset = START + LEAD
    engine, changes = scenario([Fault("failures", "c_big", onset, onset + 120)], LEAD + 300)
    assert len(opened(changes)) == 1
    incident = engine.all_incidents()[0]
    assert incident.detector == "error_rate"
    assert set(incident.detectors) == {"error_rate", "silence"}
    kinds = [entry.kind for entry in incident.timeline]
    assert kinds[0] == "opened" and "detector" in kinds and kinds[-1] == "resolved"
    assert [c.kind for c in changes][0] == "open" and [c.kind for c in changes][-1] == "resolved"
    impact = incident.impact
    assert impact is not None and impact.failed >= 100 * 120 * 0.5
    assert impact.not_delivered_est == pytest.approx(impact.failed, rel=0.25)
    lo, hi = incident.evidence["error_ratio"]["wilson95"]
    assert lo <= incident.evidence["error_ratio"]["ratio"] <= hi


def test_severity_escalates_and_never_goes_down() -> None:
    onset = START + LEAD
    faults = [
        Fault("rate_limit", "c_big", onset, onset + 120, 0.3),
        Fault("rate_limit", "c_big", onset + 120, onset + 240, 1.0),
        Fault("rate_limit", "c_big", onset + 240, onset + 300, 0.3),
    ]
    engine, changes = scenario(faults, LEAD + 500)
    mine = [c for c in changes if c.incident.destination == "c_big"]
    assert [c.kind for c in mine][0] == "open" and mine[0].incident.severity == "warning"
    escalated = [c for c in mine if c.kind == "update" and c.incident.severity == "critical"]
    assert escalated and escalated[0].incident.detected_at == mine[0].incident.detected_at
    assert 120 <= escalated[0].incident.timeline[-1].ts - onset <= 125
    incident = engine.all_incidents()[0]
    assert incident.severity == "critical" and incident.state == "resolved"
    assert any(e.kind == "escalated" and "critical" in e.detail for e in incident.timeline)
    assert "rate-limited" in incident.summary
    assert len(opened(changes)) == 1


def test_refire_within_15_minutes_reopens_as_a_flap() -> None:
    onset = START + LEAD
    faults = [
        Fault("failures", "c_big", onset, onset + 60),
        Fault("failures", "c_big", onset + 400, onset + 460),  # after resolution, < 15 min
        Fault("failures", "c_big", onset + 1600, onset + 1660),  # > 15 min after: a new one
    ]
    engine, changes = scenario(faults, LEAD + 1900)
    mine = [(c.kind, c.incident.id) for c in changes if c.incident.destination == "c_big"]
    first = mine[0][1]
    assert [k for k, i in mine if i == first].count("open") == 2
    assert [k for k, i in mine if i == first].count("resolved") == 2
    reopened = next(i for i in engine.all_incidents() if i.id == first)
    assert reopened.flaps == 1
    assert any(e.kind == "reopened" for e in reopened.timeline)
    others = {i for _, i in mine} - {first}
    assert len(others) == 1, "a fault 15+ min after resolution is a new incident"


# ------------------------------------------------------------------------------------------
# Historical vs live, staleness, acknowledgement, ids
# ------------------------------------------------------------------------------------------


def test_incidents_before_go_live_are_historical() -> None:
    onset = START + LEAD
    faults = [
        Fault("failures", "c_big", onset, onset + 60),  # in the backlog
        Fault("rate_limit", "d_huge", onset + 300, onset + 360),  # after going live
    ]
    traffic = Traffic(RATES, START, LEAD + 500, seed=5, faults=faults)
    engine = Engine(DetectionConfig())
    backlog = drive(traffic, engine, START, onset + 200)
    engine.go_live(onset + 200)
    live = drive(traffic, engine, onset + 200, START + LEAD + 500)
    assert [(i.destination, i.historical) for i in opened(backlog)] == [("c_big", True)]
    assert [(i.destination, i.historical) for i in opened(live)] == [("d_huge", False)]


def test_staleness_suppresses_silence_after_go_live() -> None:
    traffic = Traffic(RATES, START, 600, seed=6)
    engine = Engine(DetectionConfig())  # staleness 10 min
    drive(traffic, engine, START, START + 600)
    later = START + 600 + 1800
    engine.go_live(later)  # the logs stopped half an hour before start-up
    assert engine.advance(later + 120) == []
    assert {s.state for s in engine.status().values()} == {"stale"}
    # data again: that destination is watched again
    fresh = Traffic({"b_mid": 10.0}, later + 120, 600, seed=7)
    changes = drive(fresh, engine, later + 120, later + 700)
    assert opened(changes) == []
    assert engine.status()["b_mid"].state == "ok"
    assert engine.status()["c_big"].state == "stale"

    # the same history replayed without going live: the end of the data is silence
    replay = Engine(DetectionConfig())
    drive(traffic, replay, START, START + 600)
    assert {i.detector for i in opened(replay.advance(START + 900))} >= {"silence"}


def test_acknowledge() -> None:
    onset = START + LEAD
    engine, changes = scenario([Fault("silence", "c_big", onset, onset + 600)], LEAD + 60)
    (incident,) = engine.incidents()
    change = engine.acknowledge(incident.id, onset + 30.5)
    assert change is not None and change.kind == "update"
    assert change.incident.state == "acknowledged"
    assert change.incident.acknowledged_at == onset + 30.5
    assert change.incident.timeline[-1].kind == "acknowledged"
    assert engine.incidents()[0].state == "acknowledged"
    assert engine.acknowledge(incident.id, onset + 31) is None  # already acknowledged
    assert engine.acknowledge("nope", onset + 31) is None


def test_ids_are_deterministic() -> None:
    onset = START + LEAD
    faults = [Fault("rate_limit", "b_mid", onset, onset + 120)]
    first = scenario(faults, LEAD + 300)[1]
    again = scenario(faults, LEAD + 300)[1]
    assert [c.incident.json_line(c.kind) for c in first] == [
        c.incident.json_line(c.kind) for c in again
    ]
    incident = opened(first)[0]
    key = f"{incident.destination}|{int(incident.onset)}|{incident.detector}"
    assert incident.id == hashlib.sha1(key.encode()).hexdigest()[:8]


def test_a_second_fed_in_pieces_counts_the_same() -> None:
    onset = START + LEAD
    faults = [Fault("failures", "b_mid", onset, onset + 120)]
    traffic = Traffic(RATES, START, LEAD + 300, seed=8, faults=faults)
    whole = drive(traffic, Engine(DetectionConfig()), START, START + LEAD + 300)
    traffic = Traffic(RATES, START, LEAD + 300, seed=8, faults=faults)
    pieces = drive(traffic, Engine(DetectionConfig()), START, START + LEAD + 300, split=True)
    assert [(c.kind, c.incident.id, c.incident.detected_at) for c in whole] == [
        (c.kind, c.incident.id, c.incident.detected_at) for c in pieces
    ]


def test_changes_are_snapshots_in_time_order() -> None:
    onset = START + LEAD
    faults = [Fault("failures", "c_big", onset, onset + 60)]
    traffic = Traffic(RATES, START, LEAD + 300, seed=9, faults=faults)
    engine = Engine(DetectionConfig())
    for sec in range(START, START + LEAD + 300):  # everything first, one advance at the end
        engine.feed(traffic.second(sec))
    changes = engine.advance(START + LEAD + 300)
    times = [c.incident.timeline[-1].ts for c in changes]
    assert times == sorted(times)
    assert changes[0].kind == "open" and changes[0].incident.resolved_at is None
    assert changes[-1].kind == "resolved" and changes[-1].incident.resolved_at is not None


# ------------------------------------------------------------------------------------------
# Latency thresholds and status
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", latency_shapes.SHAPES)
def test_latency_thresholds_sit_just_above_the_p99(shape: latency_shapes.Shape) -> None:
    """Whatever the distribution's shape, the slow threshold is the top of the p99's bin: at
    most about 1 % of normal events lie above it, and it is at most one bin (25 %, plus the
    estimate's noise) above the true p99."""
    traffic = Traffic(RATES, START, 900, seed=10, latency_shape=shape)
    engine = Engine(DetectionConfig())
    assert engine.latency_thresholds() == {}
    drive(traffic, engine, START, START + 900)
    thresholds = engine.latency_thresholds()
    assert set(thresholds) == set(RATES)
    p99 = latency_shapes.true_p99(shape)
    for name in ("b_mid", "c_big", "d_huge"):
        above = latency_shapes.share_above(shape, thresholds[name])
        assert above <= 0.011 and thresholds[name] <= 1.3 * p99, (name, thresholds[name], p99)


def test_status_for_the_dashboard() -> None:
    onset = START + LEAD
    traffic = Traffic(
        RATES,
        START,
        LEAD + 60,
        seed=2,
        faults=[
            Fault("silence", "b_mid", onset, onset + 60),
            Fault("rate_limit", "d_huge", onset, onset + 60),
        ],
    )
    engine = Engine(DetectionConfig())
    drive(traffic, engine, START, START + 60)
    assert {s.state for s in engine.status().values()} == {"warmup"}
    drive(traffic, engine, START + 60, onset + 30)
    status = engine.status()
    assert status["c_big"].state == "ok"
    assert status["b_mid"].state == "down" and status["b_mid"].incident_id is not None
    big = status["c_big"]
    assert 30 <= big.rate_now <= 400
    assert big.delivered_now == pytest.approx(big.rate_now, rel=0.02)
    assert len(big.sparkline) == 300 and big.sparkline[-1] == pytest.approx(big.rate_now, rel=1)
    # a 429 storm: attempts go on, throughput (delivered/s, the sparkline) collapses
    huge = status["d_huge"]
    assert huge.state == "down" and huge.rate_now > 100
    assert huge.delivered_now == 0 and huge.sparkline[-10:] == [0] * 10
    assert min(huge.sparkline[-60:-30]) > 100  # before the fault
    assert big.success_pct is not None and big.success_pct > 98
    assert big.rate_limited_pct is not None and big.rate_limited_pct < 1
    assert big.avg_latency_ms == pytest.approx(80 * math.exp(0.125), rel=0.05)
    assert big.last_event_ts == onset + 29
    # a new destination appears by itself
    engine.feed([SecondCounts("e_new", onset + 31, delivered=3)])
    assert "e_new" in engine.status()


def test_a_long_gap_in_the_data_costs_little() -> None:
    traffic = Traffic(RATES, START, 600, seed=13)
    engine = Engine(DetectionConfig())
    drive(traffic, engine, START, START + 600)
    changes = engine.advance(START + 30 * 86400)  # a month without a line: not 2.6M seconds
    assert {i.detector for i in opened(changes)} == {"silence"}
    assert {s.state for s in engine.status().values()} == {"stale"}
    # a bogus early timestamp first does not make the engine walk up to the present either
    engine = Engine(DetectionConfig())
    engine.feed([SecondCounts("x", 0, delivered=1)])
    engine.feed(traffic.second(START))
    engine.advance(START + 2)
    assert engine.status()["c_big"].rate_now > 0


# ------------------------------------------------------------------------------------------
# Persistence: one failed batch is noise, a fault lasts
# ------------------------------------------------------------------------------------------


def _with_failures(
    traffic: Traffic, engine: Engine, sec: int, extra: dict[int, int], dest: str
) -> list[SecondCounts]:
    counts = traffic.second(sec)
    for c in counts:
        if c.destination == dest and sec in extra:
            c.failed += extra[sec]
    return counts


@pytest.mark.parametrize(("seconds", "fires"), [(1, False), (2, True), (3, True)])
def test_a_single_second_burst_of_failures_is_not_an_incident(seconds: int, fires: bool) -> None:
    """100 failures at a 100 ev/s destination: in one second (one failed batch of a batching
    forwarder, retried) nothing opens; over 2+ consecutive seconds error_rate opens."""
    onset = START + LEAD
    per_second = 100 // seconds
    extra = {onset + i: per_second + (100 % seconds if i == 0 else 0) for i in range(seconds)}
    total = LEAD + 300
    traffic = Traffic(RATES, START, total, seed=3)
    engine = Engine(DetectionConfig())
    changes: list[Change] = []
    for sec in range(START, START + total):
        engine.feed(_with_failures(traffic, engine, sec, extra, "c_big"))
        changes += engine.advance(sec + 1)
    incidents = opened(changes)
    if not fires:
        assert incidents == []
        return
    assert [(i.destination, i.detector) for i in incidents] == [("c_big", "error_rate")]
    assert incidents[0].detected_at - onset <= seconds
    assert incidents[0].onset == onset


def test_lone_batch_bursts_raise_no_alarm() -> None:
    """Batchy noise (a lone one-second burst of 20-200 failures, 429s or slow events about once
    a minute per destination) over an hour of bursty traffic opens nothing."""
    rates = {"a_trickle": 0.3, **RATES}
    traffic = Traffic(rates, START, 3600, seed=5, bursts=True)
    assert len(traffic.burst_seconds()) >= 100
    engine = Engine(DetectionConfig())
    changes = drive(traffic, engine, START, START + 3600)
    assert [c.incident.summary for c in changes] == []


# ---------------------------------------------------------------------------------------------
# Resolution: the reverse test, slow destinations, campaign ends
# ---------------------------------------------------------------------------------------------


def test_reverse_test_needs_its_shortest_window_and_evidence_for_normal() -> None:
    from observatory.detect.stats import ReverseTest

    test = ReverseTest(shortest=60, longest=110)
    for _ in range(59):
        test.push(-1.0, -1.0, 10.0)  # each second favours normal traffic by a nat
    assert not test.passes(enough=16.7, margin=6.0, share=0.3, min_trials=10)  # 59 s only
    test.push(-1.0, -1.0, 10.0)
    assert test.passes(enough=16.7, margin=6.0, share=0.3, min_trials=10)
    assert test.window(16.7)[0] == 60


def test_reverse_test_window_grows_where_evidence_is_thin_and_keeps_fault_seconds() -> None:
    from observatory.detect.stats import ReverseTest

    test = ReverseTest(shortest=60, longest=110)
    for _ in range(30):
        test.push(2.0, -0.1, 1.0)  # the fault's last seconds
    for _ in range(80):
        test.push(-0.1, -0.1, 1.0)  # normal again, but each second says little
    seconds, llr, typical, _ = test.window(16.7)
    assert seconds == 110  # normal traffic would give only 11 nats in 110 s: longest window
    assert llr == pytest.approx(30 * 2.0 - 80 * 0.1)
    assert not test.passes(enough=16.7, margin=6.0, share=0.3, min_trials=10)


def test_a_slow_destination_recovers_within_two_minutes() -> None:
    """A 100 % failure outage of a 1 ev/s destination: resolved 60-120 s after recovery."""
    onset = START + LEAD
    fault = Fault("failures", "a_slow", onset, onset + 300)
    traffic = Traffic(RATES, START, LEAD + 600, seed=21, faults=[fault])
    engine = Engine(DetectionConfig())
    drive(traffic, engine, START, START + LEAD + 600)
    mine = [i for i in engine.all_incidents() if i.destination == "a_slow"]
    assert len(mine) == 1 and mine[0].flaps == 0
    assert mine[0].resolved_at is not None
    assert 60 <= mine[0].resolved_at - fault.end <= 120


def test_the_end_of_a_campaign_is_not_a_silence() -> None:
    """After 20 minutes at 3x, traffic falls back to 1x; a 1 ev/s destination then has a
    12-second gap. Judged at the campaign's rate that gap would alarm; judged at the
    upstream's current level (the pool) it is ordinary."""
    engine = Engine(DetectionConfig())
    changes: list[Change] = []
    campaign_end = START + 1800
    for sec in range(START, START + 2100):
        mult = 3 if sec < campaign_end else 1
        small = mult if not (campaign_end + 60 <= sec < campaign_end + 72) else 0
        engine.feed(
            [
                SecondCounts("big", sec, delivered=300 * mult),
                SecondCounts("mid", sec, delivered=100 * mult),
                SecondCounts("small", sec, delivered=small),
            ]
        )
        changes += engine.advance(sec + 1)
    assert [c.incident.summary for c in changes if c.kind == "open"] == []


def test_a_delayed_destination_is_judged_late_on_its_own_times() -> None:
    """A destination from a lagging feed (minute buckets, scrapes) gets its counts up to its
    delay late: none is dropped, and its incident reads the same times as on prompt data."""
    onset = START + LEAD
    fault = Fault("rate_limit", "c_big", onset, onset + 300, 0.8)
    seconds = LEAD + 300 + 180
    traffic = Traffic(RATES, START, seconds, seed=3, faults=[fault])
    prompt = Engine(DetectionConfig())
    expected = opened(drive(traffic, prompt, START, START + seconds))

    delayed = Engine(DetectionConfig())
    delayed.set_delay("c_big", 90)
    changes: list[Change] = []
    backlog: list[SecondCounts] = []
    for sec in range(START, START + seconds + 95):
        counts = traffic.second(sec) if sec < START + seconds else []
        delayed.feed(c for c in counts if c.destination != "c_big")
        backlog += [c for c in counts if c.destination == "c_big"]
        delayed.feed(c for c in backlog if c.sec <= sec - 85)  # reported 85 s late
        backlog = [c for c in backlog if c.sec > sec - 85]
        changes += delayed.advance(sec + 1)
    assert delayed.late_events == 0
    # (the others' data ends 95 s before the clock stops: that silence is not compared)
    got = [i for i in opened(changes) if i.onset < START + seconds]
    assert [(i.destination, i.detector, i.onset) for i in got] == [
        (i.destination, i.detector, i.onset) for i in expected
    ]
    assert [i.destination for i in got] == ["c_big"]
    assert got[0].detected_at - onset <= 5  # in event time, as on prompt data
    assert delayed.all_incidents()[0].state == "resolved"
    # the clock judged it 90 s later; the history holds its own seconds
    status = delayed.status()
    assert status["c_big"].last_event_ts == status["a_slow"].last_event_ts


@pytest.mark.parametrize("reporting", [True, False])
def test_a_feed_that_misses_reports_is_unknown_not_silent(reporting: bool) -> None:
    """A scraped destination (judged 15 s late) whose scrapes fail for 30 s: the scrape after
    them brings the whole gap's counts, too late for its older seconds. With reports those
    seconds are unknown and nothing alarms; counted as zeros (no reports), it is a silence."""
    seconds = LEAD + 300
    traffic = Traffic(RATES, START, seconds, seed=4)
    engine = Engine(DetectionConfig())
    engine.set_delay("c_big", 15)
    gap = range(START + LEAD, START + LEAD + 30)
    held: list[SecondCounts] = []
    changes: list[Change] = []
    for sec in range(START, START + seconds):
        counts = traffic.second(sec)
        if sec in gap:
            held += [c for c in counts if c.destination == "c_big"]
            counts = [c for c in counts if c.destination != "c_big"]
        elif held:
            counts, held = counts + held, []
        engine.feed(counts)
        if reporting and sec not in gap:
            engine.reported("c_big", sec + 1)
        changes += engine.advance(sec + 1)
    assert engine.late_events > 0  # the gap's first 15 s came after they were judged
    got = [(i.destination, i.detector) for i in opened(changes)]
    assert got == ([] if reporting else [("c_big", "silence")])


def test_pane_state_rule() -> None:
    """STALE over everything; with an open incident DOWN only when nothing was delivered in
    the window, else DEGRADED; WARMUP before the detectors judge; OK otherwise."""
    assert pane_state(True, True, True, 0) == "stale"
    assert pane_state(False, True, True, 0) == "down"
    assert pane_state(False, True, True, 1) == "degraded"
    assert pane_state(False, True, False, 5) == "degraded"  # an incident counts in warm-up too
    assert pane_state(False, False, False, 0) == "warmup"
    assert pane_state(False, False, True, 0) == "ok"  # a quiet second is not an outage
    assert [s for s, _ in STATE_RULES] == ["STALE", "DOWN", "DEGRADED", "WARMUP", "OK"]


def test_state_and_figures_share_one_window_through_a_throttle_and_recovery() -> None:
    """A critical 429 storm that still lets 10 % through is DEGRADED, not DOWN; a total one is
    DOWN; once delivery is back the pane says DEGRADED (the incident is in its quiet period)
    within the window, and its shares over that window show the recovery, then OK."""
    onset = START + LEAD
    traffic = Traffic(
        RATES,
        START,
        LEAD + 400,
        seed=3,
        faults=[
            Fault("rate_limit", "d_huge", onset, onset + 60, level=0.9),
            Fault("rate_limit", "c_big", onset, onset + 60),
        ],
    )
    engine = Engine(DetectionConfig())
    drive(traffic, engine, START, onset + 40)
    status = engine.status()
    huge, big = status["d_huge"], status["c_big"]
    assert huge.incident_id is not None and huge.severity == "critical"
    assert huge.state == "degraded" and huge.delivered_now > 10
    assert big.incident_id is not None and big.state == "down" and big.delivered_now == 0
    assert huge.window_s == STATE_SECONDS == 10
    assert huge.rate_limited_pct is not None and huge.rate_limited_pct > 80
    # delivery back at onset + 60: a window later, the figures and state agree on it
    drive(traffic, engine, onset + 40, onset + 60 + STATE_SECONDS + 2)
    big = engine.status()["c_big"]
    assert big.incident_id is not None  # still open: the quiet period before resolving
    assert big.state == "degraded" and big.delivered_now > 50
    assert big.rate_limited_pct is not None and big.rate_limited_pct < 1
    drive(traffic, engine, onset + 60 + STATE_SECONDS + 2, onset + 300)
    assert engine.status()["c_big"].state == "ok"
