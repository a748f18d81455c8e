"""Server-side inline SVG line charts: no JavaScript library, no CDN, accessible title and summary."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from clinical.dashboard import Series
from clinical.formatting import format_when

WIDTH, HEIGHT = 320.0, 110.0
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 38.0, 8.0, 8.0, 18.0


def _num(value: float) -> str:
    return f"{value:.1f}"


def _label(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"


def line_chart(series: tuple[Series, ...], title: str, chart_id: str) -> SafeString:
    """An SVG of one or more series on shared axes; every text goes through escape()."""
    series = tuple(s for s in series if len(s.points) >= 2)
    if not series:
        return mark_safe("")
    times = [p[0].sort_key.timestamp() for s in series for p in s.points]
    values = [p[1] for s in series for p in s.points]
    t0, t1 = min(times), max(times)
    v0, v1 = min(values), max(values)
    if v1 == v0:
        v0, v1 = v0 - 1, v1 + 1
    span_t = (t1 - t0) or 1.0
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(t: float) -> float:
        return PAD_LEFT + (t - t0) / span_t * inner_w

    def y(v: float) -> float:
        return PAD_TOP + (1 - (v - v0) / (v1 - v0)) * inner_h

    parts = []
    summaries = []
    for index, s in enumerate(series):
        pts = " ".join(f"{_num(x(w.sort_key.timestamp()))},{_num(y(v))}" for w, v, _cur in s.points)
        parts.append(f'<polyline class="chart-line chart-line-{index}" points="{pts}"/>')
        for w, v, current in s.points:
            cls = "chart-point chart-point-current" if current else "chart-point"
            parts.append(
                f'<circle class="{cls} chart-point-{index}" cx="{_num(x(w.sort_key.timestamp()))}" '
                f'cy="{_num(y(v))}" r="{3.2 if current else 2.2}"/>'
            )
        first, last = s.points[0], s.points[-1]
        summaries.append(
            f"{s.label}: {len(s.points)} readings from {format_when(first[0])} to {format_when(last[0])}, "
            f"latest {_label(last[1])} {s.unit}, lowest {_label(min(p[1] for p in s.points))}, "
            f"highest {_label(max(p[1] for p in s.points))}."
        )
    axis = (
        f'<line class="chart-axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" '
        f'y2="{HEIGHT - PAD_BOTTOM}"/>'
        f'<line class="chart-axis" x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{HEIGHT - PAD_BOTTOM}"/>'
        f'<text class="chart-label" x="{PAD_LEFT - 4}" y="{PAD_TOP + 4}" text-anchor="end">'
        f"{_label(v1)}</text>"
        f'<text class="chart-label" x="{PAD_LEFT - 4}" y="{HEIGHT - PAD_BOTTOM}" text-anchor="end">'
        f"{_label(v0)}</text>"
        f'<text class="chart-label" x="{PAD_LEFT}" y="{HEIGHT - 4}">'
        f"{escape(format_when(series[0].points[0][0]))}</text>"
        f'<text class="chart-label" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 4}" text-anchor="end">'
        f"{escape(format_when(series[0].points[-1][0]))}</text>"
    )
    cid = escape(chart_id)
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" role="img" '
        f'aria-labelledby="{cid}-t {cid}-d" focusable="false">'
        f'<title id="{cid}-t">{escape(title)} trend</title>'
        f'<desc id="{cid}-d">{escape(" ".join(summaries))}</desc>'
        f"{axis}{''.join(parts)}</svg>"
    )
    return mark_safe(svg)  # noqa: S308 - every interpolated text is escaped above, numbers are formatted
