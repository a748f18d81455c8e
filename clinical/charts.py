"""Server-side inline SVG trend charts a clinician reads at a glance; no JavaScript, no CDN.

Fixed clinical y-scales per vital sign (widened only to fit the data), the normal band shaded,
the latest point labelled, a 12-month window that keeps the reading before it, dense series
reduced to daily low/high, implausible values drawn as marked outliers. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from clinical import display
from clinical.formatting import format_when
from clinical.readings import Measure, Series, When

WIDTH, HEIGHT = 360.0, 150.0
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 40.0, 44.0, 10.0, 22.0
WINDOW = timedelta(days=365)
DENSE = 60  # more points than this in the window are reduced to one low/high pair per day

Point = tuple[When, float, bool]


def _num(value: float) -> str:
    return f"{value:.1f}"


def _label(value: float) -> str:
    """Axis and point labels follow the display's rule for unknown measures (3 significant digits)."""
    return display.show_number(Decimal(repr(value)), None).text


def window(points: Sequence[Point], now_ts: float) -> tuple[Point, ...]:
    """The last 12 months plus the reading just before them; all points when none is that recent."""
    start = now_ts - WINDOW.total_seconds()
    inside = [i for i, p in enumerate(points) if p[0].sort_key.timestamp() >= start]
    if len(inside) < 2:
        return tuple(points)
    first = max(inside[0] - 1, 0)
    return tuple(points[first:])


def merge_same_instant(points: Sequence[Point]) -> tuple[Point, ...]:
    """Identical readings at one instant are one point; different ones are kept (both are real)."""
    kept: list[Point] = []
    for p in points:
        if kept and kept[-1][0].sort_key == p[0].sort_key and kept[-1][1] == p[1]:
            continue
        kept.append(p)
    return tuple(kept)


def downsample(points: Sequence[Point]) -> tuple[Point, ...]:
    """A dense series as each day's lowest and highest reading, in time order (not noise)."""
    if len(points) <= DENSE:
        return tuple(points)
    days: dict[object, list[Point]] = {}
    for p in points:
        days.setdefault(p[0].sort_key.date(), []).append(p)
    reduced: list[Point] = []
    for day_points in days.values():
        low = min(day_points, key=lambda p: p[1])
        high = max(day_points, key=lambda p: p[1])
        pair = sorted({id(low): low, id(high): high}.values(), key=lambda p: p[0].sort_key)
        reduced.extend(pair)
    return tuple(reduced)


def _scale(measure: Measure, values: list[float]) -> tuple[float, float]:
    definition = measure.definition
    lo, hi = min(values), max(values)
    if (
        definition is not None
        and definition.scale
        and measure.latest.unit == display.human_unit(definition.unit)
    ):
        fixed_lo, fixed_hi = definition.scale
        return min(fixed_lo, lo), max(fixed_hi, hi)
    pad = (hi - lo) * 0.15 or max(abs(hi) * 0.1, 1.0)
    return lo - pad, hi + pad


def line_chart(measure: Measure, chart_id: str, now_ts: float | None = None) -> SafeString:
    """An SVG of the measure's series on shared axes, with a <title> on every point."""
    now_ts = now_ts if now_ts is not None else timezone.now().timestamp()
    shaped: list[tuple[Series, tuple[Point, ...]]] = []
    for s in measure.series:
        points = downsample(merge_same_instant(window(s.points, now_ts)))
        if len(points) >= 2:
            shaped.append((s, points))
    if not shaped:
        return mark_safe("")
    t0 = min(p[0].sort_key.timestamp() for _s, pts in shaped for p in pts)
    t1 = max(p[0].sort_key.timestamp() for _s, pts in shaped for p in pts)
    outliers = [o for s, _p in shaped for o in s.outliers if t0 <= o[0].sort_key.timestamp() <= t1]
    values = [p[1] for _s, pts in shaped for p in pts] + [o[1] for o in outliers]
    v0, v1 = _scale(measure, values)
    span_t = (t1 - t0) or 1.0
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(t: float) -> float:
        return PAD_LEFT + (t - t0) / span_t * inner_w

    def y(v: float) -> float:
        return PAD_TOP + (1 - (v - v0) / (v1 - v0)) * inner_h

    parts = [_band(measure, v0, v1, y)]
    summaries = []
    unit = shaped[0][0].unit
    for index, (s, points) in enumerate(shaped):
        line = " ".join(f"{_num(x(w.sort_key.timestamp()))},{_num(y(v))}" for w, v, _cur in points)
        parts.append(f'<polyline class="chart-line chart-line-{index}" points="{line}"/>')
        for w, v, current in points:
            cls = "chart-point chart-point-current" if current else "chart-point"
            parts.append(
                f'<circle class="{cls} chart-point-{index}" cx="{_num(x(w.sort_key.timestamp()))}" '
                f'cy="{_num(y(v))}" r="{3.2 if current else 2.4}"><title>{escape(s.label)} '
                f"{escape(_label(v))} {escape(s.unit)}, {escape(format_when(w))}</title></circle>"
            )
        last = points[-1]
        parts.append(
            f'<text class="chart-latest chart-latest-{index}" '
            f'x="{_num(x(last[0].sort_key.timestamp()) + 5)}" '
            f'y="{_num(y(last[1]) + 4)}">{escape(_label(last[1]))}</text>'
        )
        summaries.append(
            f"{s.label}: {len(points)} points from {format_when(points[0][0])} to "
            f"{format_when(last[0])}, latest {_label(last[1])} {s.unit}, lowest "
            f"{_label(min(p[1] for p in points))}, highest {_label(max(p[1] for p in points))}."
        )
    for w, v in outliers:
        cx, cy = _num(x(w.sort_key.timestamp())), _num(y(v))
        parts.append(
            f'<g class="chart-outlier"><title>Implausible value {escape(_label(v))} {escape(unit)}, '
            f"{escape(format_when(w))}: not a real reading</title>"
            f'<path d="M{cx} {cy} m-4 -4 l8 8 m0 -8 l-8 8"/></g>'
        )
    if outliers:
        summaries.append(f"{len(outliers)} implausible value{'s' if len(outliers) > 1 else ''} marked.")
    axis = (
        f'<line class="chart-axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" '
        f'y2="{HEIGHT - PAD_BOTTOM}"/>'
        f'<line class="chart-axis" x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{HEIGHT - PAD_BOTTOM}"/>'
        f'<text class="chart-label" x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">'
        f"{_label(v1)}</text>"
        f'<text class="chart-label" x="{PAD_LEFT - 4}" y="{HEIGHT - PAD_BOTTOM}" text-anchor="end">'
        f"{_label(v0)}</text>"
        f'<text class="chart-label" x="{PAD_LEFT}" y="{HEIGHT - 5}">{escape(_day(t0, shaped))}</text>'
        f'<text class="chart-label" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 5}" text-anchor="end">'
        f"{escape(_day(t1, shaped))}</text>"
    )
    cid = escape(chart_id)
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" role="img" '
        f'aria-labelledby="{cid}-t {cid}-d">'
        f'<title id="{cid}-t">{escape(measure.label)} trend</title>'
        f'<desc id="{cid}-d">{escape(" ".join(summaries))}</desc>'
        f"{axis}{''.join(parts)}</svg>"
    )
    return mark_safe(svg)  # noqa: S308 - every interpolated text is escaped above, numbers are formatted


def _band(measure: Measure, v0: float, v1: float, y) -> str:
    """The normal band (the app's adult cut-offs for vitals), shaded behind the lines."""
    definition = measure.definition
    if definition is None or measure.latest.unit != display.human_unit(definition.unit):
        return ""
    band = display.normal_band(definition)
    if band is None:
        return ""
    low = v0 if band[0] is None else max(band[0], v0)
    high = v1 if band[1] is None else min(band[1], v1)
    if high <= low:
        return ""
    return (
        f'<rect class="chart-band" x="{PAD_LEFT}" y="{_num(y(high))}" width="{WIDTH - PAD_LEFT - PAD_RIGHT}" '
        f'height="{_num(y(low) - y(high))}"><title>Usual adult range</title></rect>'
    )


def _day(ts: float, shaped: list[tuple[Series, tuple[Point, ...]]]) -> str:
    for _s, points in shaped:
        for p in points:
            if p[0].sort_key.timestamp() == ts:
                text = format_when(p[0])
                return text.rsplit(" ", 1)[0] if p[0].precision == "minute" else text
    return ""
