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


QUIET_FILL = "#e5e7eb"  # the quiet period before resolving: grey, not red


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
        "coalesce(sum(n) FILTER (WHERE outcome = 'delivered'), 0), "
        "coalesce(sum(n) FILTER (WHERE outcome IN ('failed', 'rejected')), 0), "
        "coalesce(sum(n) FILTER (WHERE outcome = 'rate_limited'), 0) "
        "FROM outcomes WHERE destination = ? AND ts >= to_timestamp(?) AND ts < to_timestamp(?) "
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


# The SVG's size and, inside it, the plot area (room left for the axes, legend and labels).
WIDTH, HEIGHT = 1120, 440
LEFT, RIGHT, TOP, BOTTOM = 76, WIDTH - 28, 78, HEIGHT - 58
PLOT_W, PLOT_H = RIGHT - LEFT, BOTTOM - TOP


@dataclass(frozen=True)
class _Scale:
    """Where times and values fall in the plot: [t0, t1] across it, 0 to `ymax` up it."""

    t0: float
    t1: float
    ymax: float

    def x(self, t: float) -> float:
        """The x of time `t`, clamped to the plot."""
        return LEFT + (min(max(t, self.t0), self.t1) - self.t0) / (self.t1 - self.t0) * PLOT_W

    def y(self, v: float) -> float:
        return BOTTOM - v / self.ymax * PLOT_H


def _svg_open(dest: str) -> list[str]:
    """The `<svg>` element's opening, its title and a white background."""
    return [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="Events per second at {dest} around the incident" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif" '
        'font-size="13">',
        f"<title>Events per second at {dest} around the incident</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]


def _incident_span(scale: _Scale, window: Window) -> str:
    """The outage shaded (onset to its last abnormal second), and the quiet period before
    resolving in a paler tint (drawn first: behind everything else)."""
    xa, xo, xb = scale.x(window.start), scale.x(window.outage_until), scale.x(window.end)
    out = (
        f'<rect x="{xa:.1f}" y="{TOP}" width="{max(xo - xa, 1.5):.1f}" height="{PLOT_H}" '
        'fill="#fecaca" fill-opacity="0.45"/>'
    )
    if xb - xo >= 1.0:
        out += (
            f'<rect x="{xo:.1f}" y="{TOP}" width="{xb - xo:.1f}" height="{PLOT_H}" '
            f'fill="{QUIET_FILL}" fill-opacity="0.6"/>'
        )
    return out


def _value_axis(scale: _Scale, ystep: float, unit: str) -> list[str]:
    """Horizontal grid lines with their values, and the axis title `unit`."""
    out: list[str] = []
    for i in range(round(scale.ymax / ystep) + 1):
        v = i * ystep
        yy = scale.y(v)
        out.append(
            f'<line x1="{LEFT}" x2="{RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{"#8c959f" if v == 0 else "#e5e7eb"}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{LEFT - 8}" y="{yy + 4:.1f}" text-anchor="end" fill="#424a53">'
            f"{_num(v, ystep)}</text>"
        )
    out.append(
        f'<text transform="translate(18 {TOP + PLOT_H / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" fill="#424a53">{html_escape(unit)}</text>'
    )
    return out


def _time_axis(scale: _Scale) -> list[str]:
    """The time axis: ticks on round times (at most 10 of them) and the date(s) below."""
    t0, t1 = scale.t0, scale.t1
    span = t1 - t0
    tick = next((s for s in NICE_STEPS if span / s <= 10), NICE_STEPS[-1])
    t = math.ceil(t0 / tick) * tick
    out = [f'<line x1="{LEFT}" x2="{RIGHT}" y1="{BOTTOM}" y2="{BOTTOM}" stroke="#8c959f"/>']
    while t <= t1:
        xx = scale.x(t)
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{BOTTOM + 5}" '
            'stroke="#e5e7eb" stroke-width="1"/>'
        )
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{BOTTOM}" y2="{BOTTOM + 5}" stroke="#8c959f"/>'
        )
        out.append(
            f'<text x="{xx:.1f}" y="{BOTTOM + 20}" text-anchor="middle" fill="#424a53">'
            f"{_hms(t)}</text>"
        )
        t += tick
    d0 = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d")
    d1 = datetime.fromtimestamp(t1, UTC).strftime("%Y-%m-%d")
    days = d0 if d0 == d1 else f"{d0} to {d1}"
    out.append(
        f'<text x="{LEFT + PLOT_W / 2:.0f}" y="{HEIGHT - 12}" text-anchor="middle" '
        f'fill="#424a53">time (UTC), {days}</text>'
    )
    return out


def _series_lines(scale: _Scale, data: ChartData) -> list[str]:
    """One polyline per series; delivered last, on top: where it falls to zero, that shows."""
    out: list[str] = []
    for key, name, colour in reversed(SERIES):
        values: list[float] = getattr(data, key)
        pts = " ".join(
            f"{scale.x(data.start + (i + 0.5) * data.step):.1f},{scale.y(val):.1f}"
            for i, val in enumerate(values)
        )
        out.append(
            f'<polyline class="series" data-series="{key}" points="{pts}" fill="none" '
            f'stroke="{colour}" stroke-width="2" stroke-linejoin="round">'
            f"<title>{html_escape(name)}</title></polyline>"
        )
    return out


def _span_labels(scale: _Scale, window: Window) -> list[str]:
    """Onset and the outage's end labelled above the plot at the outage's edges (so they
    never collide with the detection label inside it); the end only when there is room."""
    xa, xb = scale.x(window.start), scale.x(window.outage_until)
    out = [
        f'<text x="{xa:.1f}" y="{TOP - 8}" text-anchor="{_anchor(xa, LEFT, RIGHT, 110)}" '
        f'fill="#991b1b" font-weight="600">onset {_hms(window.start)}</text>'
    ]
    if xb - xa > 230:
        end_label = "last data" if window.ongoing else "outage ended"
        if window.outage_end is None and not window.ongoing:
            end_label = "resolved"  # an older incident: its outage's end was not recorded
        out.append(
            f'<text x="{xb:.1f}" y="{TOP - 8}" text-anchor="{_anchor(xb, LEFT, RIGHT, 160)}" '
            f'fill="#991b1b" font-weight="600">{end_label} {_hms(window.outage_until)}</text>'
        )
    return out


def _detection_marker(scale: _Scale, incident: Incident) -> list[str]:
    """A dashed line at the detection, labelled with its time and the time to detect."""
    xd = scale.x(incident.detected_at)
    ttd = format_duration(incident.detected_at - incident.onset, long=True)
    far_right = RIGHT - xd < 240
    return [
        f'<line x1="{xd:.1f}" x2="{xd:.1f}" y1="{TOP}" y2="{BOTTOM}" stroke="#6d28d9" '
        'stroke-width="2" stroke-dasharray="6 4"/>',
        f'<text x="{xd - 6 if far_right else xd + 6:.1f}" y="{TOP + 18}" '
        f'text-anchor="{"end" if far_right else "start"}" fill="#6d28d9" font-weight="600">'
        f"detected {_hms(incident.detected_at)} (+{html_escape(ttd)})</text>",
    ]


_NO_EVENTS = (
    f'<text x="{LEFT + PLOT_W / 2:.0f}" y="{TOP + PLOT_H / 2:.0f}" text-anchor="middle" '
    'fill="#57606a">no events captured for this destination in this window</text>'
)


def _legend(window: Window) -> list[str]:
    """The legend, one row above the plot (text widths estimated: no layout engine here)."""
    lx = float(LEFT)
    span_name = "outage"
    if window.ongoing:
        span_name = "incident (ongoing)"
    elif window.outage_end is None:  # an older incident: its outage's end was not recorded
        span_name = "incident (onset to resolved)"
    legend = [
        *((name, f'stroke="{colour}" stroke-width="3"') for _, name, colour in SERIES),
        (span_name, "#fecaca"),
        ("detected", 'stroke="#6d28d9" stroke-width="2" stroke-dasharray="6 4"'),
    ]
    if not window.ongoing and window.end - window.outage_until >= 1.0:
        legend.insert(len(SERIES) + 1, ("quiet before resolving", QUIET_FILL))
    out: list[str] = []
    for name, stroke in legend:
        if stroke.startswith("#"):  # a shaded span: its fill
            out.append(
                f'<rect x="{lx:.0f}" y="15" width="26" height="18" fill="{stroke}" '
                'fill-opacity="0.8" stroke="#d1d5db" stroke-width="1"/>'
            )
        else:
            out.append(f'<line x1="{lx:.0f}" x2="{lx + 26:.0f}" y1="24" y2="24" {stroke}/>')
        out.append(
            f'<text x="{lx + 33:.0f}" y="29" font-size="14" fill="#1f2328">'
            f"{html_escape(name)}</text>"
        )
        lx += 33 + len(name) * 7.6 + 28
    return out


def render_chart(data: ChartData, incident: Incident, window: Window) -> str:
    """An inline SVG: three lines with a legend, time and count axes, the incident shaded
    over `window` (onset to resolution, or to the last event while ongoing) and a marker at
    the detection."""
    peak = max([*data.delivered, *data.failed, *data.rate_limited, 0.0])
    ymax, ystep = _nice_ceiling(peak)
    scale = _Scale(float(data.start), float(data.end), ymax)
    bucket = format_duration(data.step, long=True, coarse=True)  # "2 s", "1 min"
    unit = "events/s" if data.step == 1 else f"events/s (mean per {bucket})"
    dest = html_escape(data.destination)
    out = [
        *_svg_open(dest),
        _incident_span(scale, window),
        *_value_axis(scale, ystep, unit),
        *_time_axis(scale),
        *_series_lines(scale, data),
        *_span_labels(scale, window),
        *_detection_marker(scale, incident),
        *([_NO_EVENTS] if peak == 0 else []),
        *_legend(window),
        "</svg>",
    ]
    caption = (
        f"Events per second at {dest}, {_hms(scale.t0)} to {_hms(scale.t1)} UTC"
        + ("" if data.step == 1 else f", mean over {bucket} buckets")
        + ". Failed includes rejected."
    )
    return f"<figure>{''.join(out)}<figcaption>{caption}</figcaption></figure>"
