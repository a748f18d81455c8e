"""Template helpers for the dashboard: dates, and inline SVG charts."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from clinical import charts, formatting
from clinical.dashboard import Measure, When

register = template.Library()


@register.filter
def when(value: When | None, empty: str = "Date not recorded") -> str:
    return formatting.format_when(value, empty)


@register.filter
def iso(value: When | None) -> str:
    return formatting.iso(value)


@register.simple_tag
def trend_chart(measure: Measure, prefix: str, index: int) -> SafeString:
    return charts.line_chart(measure.series, measure.label, f"{prefix}-chart-{index}")
