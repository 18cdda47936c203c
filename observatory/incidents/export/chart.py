"""The HTML export's chart: delivered / failed / rate-limited events per second around the
incident, read from `events` and drawn as an inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from observatory.incidents.export.impact import PRE_ONSET_S, Window, _q
from observatory.incidents.export.sanitize import html_escape
from observatory.incidents.model import Incident
from observatory.util.durations import format_duration

MAX_POINTS = 600  # x positions of the chart at most

# Bucket widths and time-axis tick spacings, seconds.
# fmt: off
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
              43200, 86400)
# fmt: on
SERIES = (
    ("delivered", "delivered", "#2563eb"),
    ("failed", "failed + rejected", "#dc2626"),
    ("rate_limited", "rate-limited (429)", "#f59e0b"),
)


@dataclass
class ChartData:
    """Events per second of one destination, in buckets of `step` seconds from `start`."""

    destination: str
    start: int  # epoch seconds of the first bucket
    step: int  # bucket width, seconds
    delivered: list[float]
    failed: list[float]  # failed + rejected
    rate_limited: list[float]

    @property
    def end(self) -> int:
        return self.start + self.step * len(self.delivered)


def chart_data(
    con: duckdb.DuckDBPyConnection, destination: str, start: float, end: float
) -> ChartData:
    """Per-second rates of `destination` over [start, end): one GROUP BY over `events`,
    in buckets wide enough for at most MAX_POINTS of them; empty buckets are zeros."""
    span = max(end - start, 1.0)
    step = next((s for s in NICE_STEPS if span / s <= MAX_POINTS), NICE_STEPS[-1])
    first = int(math.floor(start / step) * step)
    n = max(1, math.ceil((end - first) / step))
    series: dict[str, list[float]] = {k: [0.0] * n for k, _, _ in SERIES}
    rows = _q(
        con,
        "SELECT epoch_us(ts) // ? AS b, "
        "count(*) FILTER (WHERE outcome = 'delivered'), "
        "count(*) FILTER (WHERE outcome IN ('failed', 'rejected')), "
        "count(*) FILTER (WHERE outcome = 'rate_limited') "
        "FROM events WHERE destination = ? AND ts >= to_timestamp(?) AND ts < to_timestamp(?) "
        "GROUP BY 1",
        [step * 1_000_000, destination, float(first), float(first + n * step)],
    )
    for b, delivered, failed, limited in rows:
        i = int(b) - first // step
        if 0 <= i < n:
            series["delivered"][i] = delivered / step
            series["failed"][i] = failed / step
            series["rate_limited"][i] = limited / step
    return ChartData(
        destination, first, step, series["delivered"], series["failed"], series["rate_limited"]
    )


def chart_for(con: duckdb.DuckDBPyConnection, incident: Incident, window: Window) -> ChartData:
    """The chart's data: 5 min before the onset to 5 min after the resolution (or the last
    event, or the detection when the destination went silent)."""
    end = max(window.end, incident.detected_at)
    return chart_data(con, incident.destination, window.start - PRE_ONSET_S, end + PRE_ONSET_S)


def _nice_ceiling(value: float) -> tuple[float, float]:
    """An axis top >= value and its tick step (4 to 7 ticks)."""
    if value <= 0:
        return 1.0, 0.2
    raw = value / 6
    mag = 10 ** math.floor(math.log10(raw))
    # 1-2-5 steps only: a 2.5 step would put 7.5 on an axis of whole events.
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return math.ceil(value / step - 1e-9) * step, step


def _anchor(xx: float, left: float, right: float, width: float) -> str:
    """Text anchor for a label at `xx` about `width` wide, kept inside [left, right]."""
    if xx - left < width / 2:
        return "start"
    return "end" if right - xx < width / 2 else "middle"


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _num(v: float, step: float) -> str:
    """A tick value with as many decimals as a 1-2-5 `step` needs."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{v:,.{decimals}f}"


def render_chart(data: ChartData, incident: Incident, window: Window) -> str:
    """An inline SVG: three lines with a legend, time and count axes, the incident shaded
    over `window` (onset to resolution, or to the last event while ongoing) and a marker at
    the detection."""
    W, H = 1120, 440
    left, right, top, bottom = 76, W - 28, 78, H - 58
    pw, ph = right - left, bottom - top
    t0, t1 = float(data.start), float(data.end)
    bucket = format_duration(data.step, long=True, coarse=True)  # "2 s", "1 min"

    def x(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / (t1 - t0) * pw

    peak = max([*data.delivered, *data.failed, *data.rate_limited, 0.0])
    ymax, ystep = _nice_ceiling(peak)

    def y(v: float) -> float:
        return bottom - v / ymax * ph

    out: list[str] = []
    dest = html_escape(data.destination)
    out.append(
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="Events per second at {dest} around the incident" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif" '
        'font-size="13">'
    )
    out.append(f"<title>Events per second at {dest} around the incident</title>")
    out.append(f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>')

    # The incident span, behind everything else.
    xa, xb = x(window.start), x(window.end)
    out.append(
        f'<rect x="{xa:.1f}" y="{top}" width="{max(xb - xa, 1.5):.1f}" height="{ph}" '
        'fill="#fecaca" fill-opacity="0.45"/>'
    )

    # Grid and y axis.
    for i in range(round(ymax / ystep) + 1):
        v = i * ystep
        yy = y(v)
        out.append(
            f'<line x1="{left}" x2="{right}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{"#8c959f" if v == 0 else "#e5e7eb"}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 8}" y="{yy + 4:.1f}" text-anchor="end" fill="#424a53">'
            f"{_num(v, ystep)}</text>"
        )
    unit = "events/s" if data.step == 1 else f"events/s (mean per {bucket})"
    out.append(
        f'<text transform="translate(18 {top + ph / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#424a53">{html_escape(unit)}</text>'
    )

    # Time axis: ticks on round times, at most 10 of them.
    span = t1 - t0
    tick = next((s for s in NICE_STEPS if span / s <= 10), NICE_STEPS[-1])
    t = math.ceil(t0 / tick) * tick
    out.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8c959f"/>')
    while t <= t1:
        xx = x(t)
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{bottom + 5}" '
            'stroke="#e5e7eb" stroke-width="1"/>'
        )
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{bottom}" y2="{bottom + 5}" stroke="#8c959f"/>'
        )
        out.append(
            f'<text x="{xx:.1f}" y="{bottom + 20}" text-anchor="middle" fill="#424a53">'
            f"{_hms(t)}</text>"
        )
        t += tick
    d0 = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d")
    d1 = datetime.fromtimestamp(t1, UTC).strftime("%Y-%m-%d")
    days = d0 if d0 == d1 else f"{d0} to {d1}"
    out.append(
        f'<text x="{left + pw / 2:.0f}" y="{H - 12}" text-anchor="middle" fill="#424a53">'
        f"time (UTC), {days}</text>"
    )

    # The series; delivered last, on top: where it falls to zero, that is what shows.
    for key, name, colour in reversed(SERIES):
        values: list[float] = getattr(data, key)
        pts = " ".join(
            f"{x(data.start + (i + 0.5) * data.step):.1f},{y(val):.1f}"
            for i, val in enumerate(values)
        )
        out.append(
            f'<polyline class="series" data-series="{key}" points="{pts}" fill="none" '
            f'stroke="{colour}" stroke-width="2" stroke-linejoin="round">'
            f"<title>{html_escape(name)}</title></polyline>"
        )

    # Onset and resolution labelled above the plot at the span's edges (so they never
    # collide with the detection label inside it), the detection marker and its label.
    onset_label = f"onset {_hms(window.start)}"
    out.append(
        f'<text x="{xa:.1f}" y="{top - 8}" text-anchor="{_anchor(xa, left, right, 110)}" '
        f'fill="#991b1b" font-weight="600">{onset_label}</text>'
    )
    if xb - xa > 230:
        end_label = "last data" if window.ongoing else "resolved"
        out.append(
            f'<text x="{xb:.1f}" y="{top - 8}" text-anchor="{_anchor(xb, left, right, 130)}" '
            f'fill="#991b1b" font-weight="600">{end_label} {_hms(window.end)}</text>'
        )
    xd = x(incident.detected_at)
    ttd = format_duration(incident.detected_at - incident.onset, long=True)
    out.append(
        f'<line x1="{xd:.1f}" x2="{xd:.1f}" y1="{top}" y2="{bottom}" stroke="#6d28d9" '
        'stroke-width="2" stroke-dasharray="6 4"/>'
    )
    far_right = right - xd < 240
    out.append(
        f'<text x="{xd - 6 if far_right else xd + 6:.1f}" y="{top + 18}" '
        f'text-anchor="{"end" if far_right else "start"}" fill="#6d28d9" font-weight="600">'
        f"detected {_hms(incident.detected_at)} (+{html_escape(ttd)})</text>"
    )
    if peak == 0:
        out.append(
            f'<text x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}" text-anchor="middle" '
            'fill="#57606a">no events captured for this destination in this window</text>'
        )

    # Legend, one row above the plot (text widths estimated: no layout engine here).
    lx = float(left)
    span_name = "incident (ongoing)" if window.ongoing else "incident (onset to resolved)"
    legend = [
        *((name, f'stroke="{colour}" stroke-width="3"') for _, name, colour in SERIES),
        (span_name, ""),
        ("detected", 'stroke="#6d28d9" stroke-width="2" stroke-dasharray="6 4"'),
    ]
    for name, stroke in legend:
        if stroke:
            out.append(f'<line x1="{lx:.0f}" x2="{lx + 26:.0f}" y1="24" y2="24" {stroke}/>')
        else:
            out.append(
                f'<rect x="{lx:.0f}" y="15" width="26" height="18" fill="#fecaca" '
                'fill-opacity="0.8" stroke="#f87171" stroke-width="1"/>'
            )
        out.append(
            f'<text x="{lx + 33:.0f}" y="29" font-size="14" fill="#1f2328">'
            f"{html_escape(name)}</text>"
        )
        lx += 33 + len(name) * 7.6 + 28
    out.append("</svg>")
    caption = (
        f"Events per second at {dest}, {_hms(t0)} to {_hms(t1)} UTC"
        + ("" if data.step == 1 else f", mean over {bucket} buckets")
        + ". Failed includes rejected."
    )
    return f"<figure>{''.join(out)}<figcaption>{caption}</figcaption></figure>"
