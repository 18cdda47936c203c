"""The figures of a replayed outage a person can trust (issue 18): a generated TikTok rate-limit
outage of exactly 5 minutes, replayed in event time, exports as a 5-minute outage, its share and
impact count those 5 minutes and not the quiet minute before resolving, and nothing measured
after it ended (the recovery, at a distinctly different rate) appears in its evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from observatory.incidents.export import export_incident
from observatory.incidents.model import Incident
from observatory.incidents.store import load_incident
from tests.helpers import BASE_EPOCH_MS, make_config, pino_line, replayed_runtime

START = BASE_EPOCH_MS // 1000
HEALTHY_S = 600  # 10 min of normal traffic
OUTAGE_S = 300  # the generated outage: exactly 5 min
RECOVERY_S = 300
RATE = 20  # attempts per second before and during the outage
LIMITED = 16  # of them rate-limited each second of the outage (80 %)
RECOVERY_RATE = 37  # after it: all delivered, at a rate seen nowhere before
ONSET = START + HEALTHY_S
END = ONSET + OUTAGE_S


def _second(sec: int, n: int, limited: int) -> bytes:
    out = []
    for k in range(n):
        code = 429 if k < limited else 200
        out.append(
            pino_line(
                sec * 1000 + k,
                time=sec * 1000 + k * (1000 // n),
                code=code,
                msg="delivered" if code == 200 else "Too many requests",
                messageId=f"m{sec}-{k}",
            )
        )
    return b"".join(out)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Incident, str, Any]]:
    tmp = tmp_path_factory.mktemp("outage")
    path = make_config(tmp)
    path.write_text(path.read_text() + '\n[detection]\nwarmup = "30s"\n', encoding="utf-8")
    body = [_second(START + i, RATE, 0) for i in range(HEALTHY_S)]
    body += [_second(ONSET + i, RATE, LIMITED) for i in range(OUTAGE_S)]
    body += [_second(END + i, RECOVERY_RATE, 0) for i in range(RECOVERY_S)]
    (tmp / "logs" / "fwd.jsonl").write_bytes(b"".join(body))
    runtime = replayed_runtime(path)
    try:
        (inc,) = runtime.engine.all_incidents()
        stored = load_incident(runtime.store.con, inc.id)
        md = export_incident(runtime.store.con, stored, "md")
        doc = json.loads(export_incident(runtime.store.con, stored, "json"))
        doc["html"] = export_incident(runtime.store.con, stored, "html")
        (tmp / "export.md").write_text(md, encoding="utf-8")
        yield stored, md, doc
    finally:
        runtime.close()


def test_the_outage_quiet_period_and_resolution_are_three_figures(
    replayed: tuple[Incident, str, Any],
) -> None:
    inc, md, _ = replayed
    assert inc.state == "resolved" and inc.outage_end is not None and inc.resolved_at is not None
    assert abs(inc.onset - ONSET) <= 5
    outage = inc.outage_end - inc.onset
    assert abs(outage - OUTAGE_S) <= 10, outage
    assert inc.resolved_at - inc.outage_end >= 60  # the quiet period is not outage
    assert "- **Outage duration:** 5 min" in md
    assert "- **Quiet period before resolving:** 1 min" in md
    # the summary's "from X to Y" ends at the outage's end, not at the resolution
    assert f"to {_hms(inc.outage_end)}" in inc.summary
    assert _hms(inc.resolved_at) not in inc.summary
    # the HTML chart shades the outage, and the quiet period apart from it
    page = replayed[2]["html"]
    assert f">outage ended {_hms(inc.outage_end)}</text>" in page
    assert ">outage</text>" in page and ">quiet before resolving</text>" in page


def test_share_and_impact_cover_the_outage_only(replayed: tuple[Incident, str, Any]) -> None:
    inc, md, _ = replayed
    assert inc.impact is not None and inc.outage_end is not None
    seconds = inc.outage_end - inc.onset
    # every second of the outage had 16 429s of 20 attempts; the quiet minute had 37 / s
    # delivered, which would show as 1,200+ more attempts and no 429s
    assert inc.impact.rate_limited == pytest.approx(LIMITED * seconds, abs=LIMITED * 10)
    assert inc.impact.attempts == pytest.approx(RATE * seconds, abs=RATE * 10)
    assert inc.impact.rate_limited / inc.impact.attempts == pytest.approx(0.8, abs=0.01)
    assert "80% of attempts rate-limited" in inc.summary
    # the estimate: 16 of 20 expected not delivered, each second of the outage
    assert inc.impact.not_delivered_est == pytest.approx(LIMITED * seconds, rel=0.05)
    assert f"- **Rate-limited (429):** {inc.impact.rate_limited:,}" in md


def test_no_post_recovery_figure_in_the_evidence(replayed: tuple[Incident, str, Any]) -> None:
    inc, md, doc = replayed
    ev = inc.evidence
    for key in ("at_detection", "at_worst"):
        snap = ev[key]  # type: ignore[literal-required]
        assert snap["at"] <= _iso(inc.outage_end), key
        assert snap["attempts_per_s"] == pytest.approx(RATE, abs=1)
        assert snap["delivered_per_s"] <= RATE - LIMITED + 1
    assert ev["at_worst"]["delivered_of_expected"] <= 0.25
    assert ev["window"]["end"] == _iso(inc.outage_end)
    # the recovery ran at 37 attempts (and deliveries) a second: no evidence number is near it
    numbers = list(_numbers(doc["evidence"]))
    assert numbers and not [x for x in numbers if 30 <= x <= 40 or 30 <= x * 100 <= 40]
    evidence = md.split("## Evidence", 1)[1].split("## Action items", 1)[0]
    assert "### At detection" in evidence and "### At the worst point" in evidence
    assert "Current rate" not in md and "CUSUM" not in evidence


def test_plain_words_first_statistics_in_the_appendix(replayed: tuple[Incident, str, Any]) -> None:
    _, md, _ = replayed
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[0] == "## Summary" and heads[-1] == "## Appendix: detection statistics"
    body, appendix = md.split("## Appendix: detection statistics")
    for jargon in ("CUSUM", "p0", "Wilson", "threshold h"):
        assert jargon not in body, jargon
        assert jargon in appendix or jargon == "threshold h", jargon
    assert "All times are UTC." in md.splitlines()[2]
    assert "conversions were not delivered" in body.split("## Impact")[0]


def _numbers(value: Any, key: str = "") -> Iterator[float]:
    """Every number under ``value`` that measures traffic (counts and times left out)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in ("h", "quiet_s", "over_s", "statistic", "time_to_detect_s", "limit_s"):
                yield from _numbers(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v, key)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


def _hms(ts: float) -> str:
    from observatory.detect.wording import clock

    return clock(ts)


def _iso(ts: float) -> str:
    from observatory.detect.wording import iso_s

    return iso_s(ts)
