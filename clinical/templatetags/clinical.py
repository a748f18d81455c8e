"""Template helpers for the dashboard: dates, and inline SVG charts."""

from __future__ import annotations

import html

from django import template
from django.utils.safestring import SafeData, SafeString
from django.utils.text import slugify

from clinical import charts, formatting
from clinical.readings import Measure, Reading, When

register = template.Library()


@register.filter
def when(value: When | None, empty: str = "Date not recorded") -> str:
    return formatting.format_when(value, empty)


@register.filter
def iso(value: When | None) -> str:
    return formatting.iso(value)


@register.filter
def date_only(value: When | None, empty: str = "Not recorded") -> str:
    return formatting.format_date_only(value, empty)


@register.simple_tag
def zone() -> str:
    return formatting.zone_label()


@register.filter
def any_history(measures: list[Measure]) -> bool:
    return any(len(m.history) > 1 for m in measures)


@register.simple_tag
def trend_chart(measure: Measure, prefix: str, index: int, group: str = "") -> SafeString:
    suffix = f"-{slugify(group)}" if group else ""
    return charts.line_chart(measure, f"{prefix}{suffix}-chart-{index}")


# Per-row markup as tags: an {% include %} per history row (up to 50 per measure, two per lab
# row) was a large part of the dashboard's render time. The template markup they replaced is
# kept as their specification in tests/clinical/test_templatetags.py.
_FLAG_MARKS = {"critical": "⚠ ", "high": "▲ ", "low": "▼ "}


def _esc(value: object) -> str:
    """conditional_escape without its lazy-string wrapper: this runs a few thousand times a page."""
    return value if isinstance(value, SafeData) else html.escape(str(value))


@register.simple_tag
def reading_value(r: Reading) -> SafeString:
    if r.unit:
        unit = _esc(r.unit)
    elif not r.absent and r.number is not None:
        unit = "(no unit)"
    else:
        unit = ""
    note = f' <span class="status-note">({_esc(r.status_note)})</span>' if r.status_note else ""
    absent = " value-absent" if r.absent else ""
    # The exact value the EHR sent stays one hover (and one screen-reader phrase) away.
    title = f' title="Sent as {_esc(r.exact)}"' if r.exact else ""
    exact = f'<span class="visually-hidden"> (sent as {_esc(r.exact)})</span>' if r.exact else ""
    extra = f' <span class="components">{_esc(r.components)}</span>' if r.components else ""
    return SafeString(
        f'<span class="value{absent}"{title}>{_esc(r.value)}</span>{exact} <span class="unit">{unit}</span>'
        f"{note}{extra}\n"
    )


@register.simple_tag
def reading_flag(r: Reading) -> SafeString:
    """The flag, styled by who raised it: the EHR, its reference range, or the app's own cut-off."""
    parts = []
    flag = r.flag
    if flag and flag.level != "normal":
        code = f" ({_esc(flag.code)})" if flag.code else ""
        mark = _FLAG_MARKS.get(flag.level, "")
        if flag.source == "app":
            parts.append(
                f'<span class="flag flag-app flag-{_esc(flag.level)}" title="The app\'s own cut-off, '
                f'not the EHR\'s">{mark}{_esc(flag.label)} <small>(app)</small></span>'
            )
        else:
            parts.append(f'<span class="flag flag-{_esc(flag.level)}">{mark}{_esc(flag.label)}{code}</span>')
    elif flag and flag.source == "sender":
        parts.append(f'<span class="flag flag-normal">{_esc(flag.label)}</span>')
    if r.warning:
        parts.append(f'<span class="flag flag-quality">⚠ {_esc(r.warning)}</span>')
    if r.no_range:
        parts.append('<span class="no-range">no range sent</span>')
    return SafeString(" ".join(parts))


HISTORY_LIMIT = 50  # rows per history table; the summary line says "latest 50 of N"


@register.simple_tag
def history_rows(readings: list[Reading], lab: bool = False) -> SafeString:
    """A history table's rows (the latest HISTORY_LIMIT) in one pass.

    A template loop with a filter and two tags per row was most of the dashboard's render time.
    Vitals rows mark readings of the current encounter; lab rows carry flag and reference range.
    """
    rows = []
    for r in readings[:HISTORY_LIMIT]:
        when_text = _esc(formatting.format_when(r.when, "Date not recorded"))
        if lab:
            flagged = r.flag and r.flag.level != "normal"
            css = f' class="flagged flagged-{_esc(r.flag.level)}"' if flagged else ""
            rows.append(
                f"<tr{css}><td>{when_text}</td><td>{reading_value(r)}</td><td>{reading_flag(r)}</td>"
                f"<td>{_esc(r.reference_range or '—')}</td></tr>"
            )
        else:
            css = ' class="current"' if r.in_encounter else ""
            rows.append(f"<tr{css}><td>{when_text}</td><td>{reading_value(r)}</td><td>{reading_flag(r)}</td></tr>")
    return SafeString("".join(rows))
