"""mParticle's rate-limit usage: the header parser, SecondCounts combining the logged reading by
max, the drift tracker's latest report (probe or logs) and its words, and the words in the
drift evidence of an incident and its export."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from observatory.detect.counts import SecondCounts
from observatory.detect.drift import LATENESS, DriftTracker, RateLimitUsage
from observatory.incidents.export import export_incident
from observatory.incidents.store import list_incidents
from observatory.probes import ProbeResult, parse_rate_limit_headers
from observatory.probes.base import mparticle_usage, probe_retry_after
from tests.unit.test_drift import DEST, START, _runtime, _step, run

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
