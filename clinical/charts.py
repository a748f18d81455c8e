"""Server-side inline SVG trend charts a clinician reads at a glance; no JavaScript, no CDN.

Fixed clinical y-scales per vital sign (widened only to fit the data), the normal band shaded,
the latest point labelled, a 12-month window that keeps the reading before it, dense series
reduced to daily low/high, implausible values drawn as marked outliers. Every text is escaped.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta, tzinfo
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


def _label(value: float, definition: display.MeasureDef | None = None) -> str:
    """Labels at the measure's own precision (HR 82, not 82.0); 3 significant digits otherwise."""
    if definition is not None and definition.decimals is not None:
        return f"{value:.{definition.decimals}f}"  # a chart label, hundreds per page: no Decimal
    return display.show_number(Decimal(repr(round(value, 6))), None).text


def window(points: Sequence[Point], now_ts: float, since_ts: float | None = None) -> tuple[Point, ...]:
    """The last 12 months (or, for an inpatient stay, since admission: `since_ts`) plus the
    reading just before them; all points when too few are that recent (never an empty chart)."""
    start = since_ts if since_ts is not None else now_ts - WINDOW.total_seconds()
    inside = [i for i, p in enumerate(points) if p[0].sort_key.timestamp() >= start]
    if not inside or (since_ts is None and len(inside) < 2):
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


Range = tuple[float, float, float]  # (time, low, high) of one day


def downsample(points: Sequence[Point]) -> tuple[tuple[Point, ...], tuple[Range, ...]]:
    """A dense series as one point per day (the day's mean, at its last reading's time) and the
    day's low-high range drawn as a bar; the real latest reading always ends the line."""
    if len(points) <= DENSE:
        return tuple(points), ()
    days: dict[object, list[Point]] = {}
    for p in points[:-1]:
        days.setdefault(p[0].sort_key.date(), []).append(p)
    reduced: list[Point] = []
    ranges: list[Range] = []
    for day_points in days.values():
        values = [p[1] for p in day_points]
        last = day_points[-1]
        reduced.append((last[0], sum(values) / len(values), any(p[2] for p in day_points)))
        if len(values) > 1:
            ranges.append((last[0].sort_key.timestamp(), min(values), max(values)))
    reduced.append(points[-1])
    return tuple(reduced), tuple(ranges)


def _scale(measure: _Shown, values: list[float]) -> tuple[float, float]:
    """A fixed clinical scale where the measure has one (widened to fit); otherwise at least
    ±5 % around the data, so 82.1 → 82.9 kg does not look like a swing."""
    definition = measure.definition
    lo, hi = min(values), max(values)
    fixed = definition is not None and definition.scale
    if fixed and measure.unit == display.human_unit(definition.unit):
        fixed_lo, fixed_hi = definition.scale
        return min(fixed_lo, lo), max(fixed_hi, hi)
    middle = (hi + lo) / 2
    half = max((hi - lo) / 2 * 1.15, abs(middle) * 0.05, 0.5)
    low = middle - half
    return (max(low, 0.0) if lo >= 0 else low), middle + half


def _span(points: Sequence[Point]) -> str:
    """What the chart covers, said in its caption: "16 days", "11 months"."""
    days = (points[-1][0].sort_key - points[0][0].sort_key).days
    if days < 2:
        return f"{max(days * 24, 1)} hours" if days == 1 else "1 day"
    if days < 60:
        return f"{days} days"
    if days < 730:
        return f"{round(days / 30.44)} months"
    return f"{round(days / 365.25)} years"


def chart_span(measure: Measure, now_ts: float | None = None, since_ts: float | None = None) -> str:
    """The caption's description of the window: "16 days · 100 readings"."""
    now_ts = now_ts if now_ts is not None else timezone.now().timestamp()
    for s in measure.series:
        points = merge_same_instant(window(s.points, now_ts, since_ts))
        if len(points) >= 2:
            return f"{_span(points)} · {len(points)} readings"
    return ""


def line_chart(
    measure: Measure, chart_id: str, now_ts: float | None = None, since_ts: float | None = None
) -> SafeString:
    """An SVG of the measure's series on shared axes, with a <title> on every point."""
    now_ts = now_ts if now_ts is not None else timezone.now().timestamp()
    windowed = tuple(replace(s, points=window(s.points, now_ts, since_ts)) for s in measure.series)
    shown = _Shown(measure.label, measure.definition, measure.latest.unit, measure.adult)
    # A When equals another at the same instant whatever its precision; the point titles print
    # the precision ("Mar 2024" or "1 Mar 2024"), so it is part of the key too.
    precisions = tuple(p[0].precision for s in windowed for p in s.points)
    return _drawn(chart_id, shown, windowed, precisions, timezone.get_default_timezone())


@dataclass(frozen=True)
class _Shown:
    """What of a measure, beyond its points, a chart depends on."""

    label: str
    definition: display.MeasureDef | None
    unit: str  # the latest reading's unit: fixed scales and bands only in the measure's own unit
    adult: bool


# A reload with the same readings draws the same charts: keep the last few hundred (a few MB at
# most). The key is every input of the drawing, the window already applied and the zone the
# times are written in, so a new reading, a moved window or another zone is a new chart.
@functools.lru_cache(maxsize=256)
def _drawn(
    chart_id: str, measure: _Shown, series: tuple[Series, ...], precisions: tuple[str, ...], zone: tzinfo
) -> SafeString:
    shaped: list[tuple[Series, tuple[Point, ...]]] = []
    day_ranges: list[tuple[int, Range]] = []
    for s in series:
        points, ranges = downsample(merge_same_instant(s.points))
        if len(points) >= 2:
            day_ranges.extend((len(shaped), r) for r in ranges)
            shaped.append((s, points))
    if not shaped:
        return mark_safe("")
    t0 = min(p[0].sort_key.timestamp() for _s, pts in shaped for p in pts)
    t1 = max(p[0].sort_key.timestamp() for _s, pts in shaped for p in pts)
    outliers = [o for s, _p in shaped for o in s.outliers if t0 <= o[0].sort_key.timestamp() <= t1]
    # Impossible values do not stretch the scale: they are drawn at its edge, marked.
    values = [p[1] for _s, pts in shaped for p in pts]
    values += [v for _i, (_t, lo, hi) in day_ranges for v in (lo, hi)]
    v0, v1 = _scale(measure, values)
    span_t = (t1 - t0) or 1.0
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(t: float) -> float:
        return PAD_LEFT + (t - t0) / span_t * inner_w

    def y(v: float) -> float:
        return PAD_TOP + (1 - (min(max(v, v0), v1) - v0) / (v1 - v0)) * inner_h

    labels: dict[float, str] = {}

    def label(v: float) -> str:
        if v not in labels:
            labels[v] = _label(v, measure.definition)
        return labels[v]

    times: dict[When, str] = {}

    def when_text(w: When) -> str:
        if w not in times:
            times[w] = escape(format_when(w))
        return times[w]

    parts = [_band(measure, v0, v1, y)]
    for index, (t, lo, hi) in day_ranges:
        parts.append(
            f'<line class="chart-range chart-range-{index}" x1="{_num(x(t))}" y1="{_num(y(lo))}" '
            f'x2="{_num(x(t))}" y2="{_num(y(hi))}"/>'
        )
    summaries = []
    unit = shaped[0][0].unit
    for index, (s, points) in enumerate(shaped):
        xy = [(_num(x(w.sort_key.timestamp())), _num(y(v))) for w, v, _cur in points]
        line = " ".join(f"{cx},{cy}" for cx, cy in xy)
        parts.append(f'<polyline class="chart-line chart-line-{index}" points="{line}"/>')
        name, unit_text = escape(s.label), escape(s.unit)
        for (w, v, current), (cx, cy) in zip(points, xy, strict=True):
            cls = "chart-point chart-point-current" if current else "chart-point"
            parts.append(
                f'<circle class="{cls} chart-point-{index}" cx="{cx}" cy="{cy}" '
                f'r="{3.2 if current else 2.4}"><title>{name} {escape(label(v))} {unit_text}, '
                f"{when_text(w)}</title></circle>"
            )
        last = points[-1]
        parts.append(
            f'<text class="chart-latest chart-latest-{index}" '
            f'x="{_num(x(last[0].sort_key.timestamp()) + 5)}" '
            f'y="{_num(y(last[1]) + 4)}">{escape(label(last[1]))}</text>'
        )
        summaries.append(
            f"{s.label}: {len(points)} points from {format_when(points[0][0])} to "
            f"{format_when(last[0])}, latest {label(last[1])} {s.unit}, lowest "
            f"{label(min(p[1] for p in points))}, highest {label(max(p[1] for p in points))}."
        )
    if day_ranges:
        summaries.append("Dense readings are drawn as each day's mean with its low-high range.")
    for w, v in outliers:
        cx, cy = _num(x(w.sort_key.timestamp())), _num(y(v))
        parts.append(
            f'<g class="chart-outlier"><title>Impossible value {escape(label(v))} {escape(unit)}, '
            f"{escape(format_when(w))}: not plotted as a reading</title>"
            f'<path d="M{cx} {cy} m-4 -4 l8 8 m0 -8 l-8 8"/></g>'
        )
    if outliers:
        summaries.append(f"{len(outliers)} impossible value{'s' if len(outliers) > 1 else ''} marked ✕.")
    axis = (
        f'<line class="chart-axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" '
        f'y2="{HEIGHT - PAD_BOTTOM}"/>'
        f'<line class="chart-axis" x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{HEIGHT - PAD_BOTTOM}"/>'
        f'<text class="chart-label" x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">'
        f"{label(v1)}</text>"
        f'<text class="chart-label" x="{PAD_LEFT - 4}" y="{HEIGHT - PAD_BOTTOM}" text-anchor="end">'
        f"{label(v0)}</text>"
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


def _band(measure: _Shown, v0: float, v1: float, y) -> str:
    """The normal band (the app's adult cut-offs for vitals), shaded behind the lines; never for
    a child, whose normal ranges differ by age."""
    definition = measure.definition
    if definition is None or not measure.adult or measure.unit != display.human_unit(definition.unit):
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
