"""Template helpers for the dashboard: dates, and inline SVG charts."""

from __future__ import annotations

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString

from clinical import charts, formatting
from clinical.dashboard import Measure, Reading, When

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


# The two per-row partials as tags: an {% include %} per history row (up to 50 per measure, two
# per lab row) was a large part of the dashboard's render time. Same markup as the partials
# templates/clinical/_reading_value.html and _flag.html (tests/clinical/test_templatetags.py).
_FLAG_MARKS = {"critical": "⚠ ", "high": "▲ ", "low": "▼ "}


@register.simple_tag
def reading_value(r: Reading) -> SafeString:
    if r.unit:
        unit = conditional_escape(r.unit)
    elif not r.absent and r.number is not None:
        unit = "(no unit)"
    else:
        unit = ""
    note = format_html(' <span class="status-note">({})</span>', r.status_note) if r.status_note else ""
    return format_html(
        '<span class="value{}">{}</span> <span class="unit">{}</span>{}\n',
        " value-absent" if r.absent else "",
        r.value,
        unit,
        note,
    )


@register.simple_tag
def reading_flag(r: Reading) -> SafeString:
    flag = r.flag
    if not flag:
        return SafeString("")
    code = format_html(" ({})", flag.code) if flag.code else ""
    return format_html(
        '<span class="flag flag-{}">{}{}{}</span>',
        flag.level,
        _FLAG_MARKS.get(flag.level, ""),
        flag.label,
        code,
    )


HISTORY_LIMIT = 50  # rows per history table; the summary line says "latest 50 of N"
_CURRENT = SafeString(' class="current"')


@register.simple_tag
def history_rows(readings: list[Reading], lab: bool = False) -> SafeString:
    """A history table's rows (the latest HISTORY_LIMIT) in one pass.

    A template loop with a filter and two tags per row was most of the dashboard's render time.
    Vitals rows mark readings of the current encounter; lab rows carry flag and reference range.
    """
    rows = []
    for r in readings[:HISTORY_LIMIT]:
        when_text = formatting.format_when(r.when, "Date not recorded")
        if lab:
            css = format_html(' class="flagged flagged-{}"', r.flag.level) if r.flag else ""
            rows.append(
                format_html(
                    "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    css,
                    when_text,
                    reading_value(r),
                    reading_flag(r),
                    r.reference_range or "—",
                )
            )
        else:
            css = _CURRENT if r.in_encounter else ""
            rows.append(format_html("<tr{}><td>{}</td><td>{}</td></tr>", css, when_text, reading_value(r)))
    return SafeString("".join(rows))
