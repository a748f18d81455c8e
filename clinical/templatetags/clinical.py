"""Template helpers for the dashboard: dates, and inline SVG charts."""

from __future__ import annotations

import html

from django import template
from django.utils.safestring import SafeData, SafeString
from django.utils.text import slugify

from clinical import charts, formatting
from clinical.readings import Measure, Reading, When, looks_numeric

register = template.Library()


@register.filter
def when(value: When | None, empty: str = "Date not recorded") -> str:
    return formatting.format_when(value, empty)


@register.filter
def iso(value: When | None) -> str:
    return formatting.iso(value)


@register.filter
def recent(value: When | None) -> str:
    return formatting.format_recent(value)


@register.filter
def date_only(value: When | None, empty: str = "Not recorded") -> str:
    return formatting.format_date_only(value, empty)


@register.simple_tag
def zone() -> str:
    return formatting.zone_label()


@register.filter
def any_history(measures: list[Measure]) -> bool:
    return any(len(m.history) > 1 for m in measures)


def _stay_start(context) -> float | None:
    """An in-progress inpatient stay's start: its vital-sign charts show the stay, not a year."""
    d = context.get("d")
    encounter = getattr(d, "encounter", None)
    if encounter is None or not encounter.state.ok or not encounter.inpatient or encounter.start is None:
        return None
    return encounter.start.sort_key.timestamp()


@register.simple_tag(takes_context=True)
def chart_span(context, measure: Measure) -> str:
    since = _stay_start(context) if measure.definition and measure.definition.kind == "vital" else None
    return charts.chart_span(measure, since_ts=since)


@register.simple_tag
def measured(m: Measure) -> SafeString:
    """When the latest value was taken: date and time within the last week (order matters
    there), else how long ago, with the exact time on hover."""
    r = m.latest
    if r.when is None:
        return SafeString("Date not recorded")
    exact = _esc(formatting.format_when(r.when))
    shown = _esc(formatting.format_recent(r.when)) if m.fresh else _esc(m.age)
    title = _esc(m.age) if m.fresh else exact
    return SafeString(f'<time datetime="{_esc(formatting.iso(r.when))}" title="{title}">{shown}</time>')


@register.simple_tag(takes_context=True)
def trend_chart(context, measure: Measure, prefix: str, index: int, group: str = "") -> SafeString:
    suffix = f"-{slugify(group)}" if group else ""
    since = _stay_start(context) if prefix == "vitals" else None
    return charts.line_chart(measure, f"{prefix}{suffix}-chart-{index}", since_ts=since)


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
    elif r.unitless:
        unit = ""
    elif not r.absent and (r.number is not None or r.decimal is not None or looks_numeric(r.value)):
        unit = "(no unit)"  # a number whose unit was not sent: never let the reader guess one
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
    elif flag:  # judged and normal, by the EHR's word or its range: said, quietly
        parts.append(f'<span class="flag flag-normal">{_esc(flag.label)}</span>')
    if r.warning:
        parts.append(f'<span class="flag flag-quality">⚠ {_esc(r.warning)}</span>')
    if r.no_range:
        parts.append('<span class="no-range">no range sent</span>')
    elif r.unjudged:
        parts.append('<span class="no-range" title="The range was sent as text only">not judged</span>')
    return SafeString(" ".join(parts))


HISTORY_LIMIT = 50  # rows per history table; the summary line says "latest 50 of N"


@register.simple_tag
def history_rows(readings: list[Reading] | tuple[Reading, ...], lab: bool = False) -> SafeString:
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


# --- Whole rows and history blocks ----------------------------------------------------------
# A lab row had ten template lookups and branches; with up to a few dozen tests and a history
# block each, the template engine's per-node cost was most of the labs panel's render time.


def _change(m: Measure) -> str:
    note = change_note(m)
    return f" {note}" if note else ""


@register.simple_tag
def change_note(m: Measure) -> SafeString:
    """The change since the previous value, dated; and that value itself when it was flagged at
    another level: "↑ 174 since Dec 2025" must not hide that the previous glucose was a critical 38."""
    if not m.change:
        return SafeString("")
    previous = m.previous
    title = was = ""
    if previous is not None:
        title = (
            f' title="previous {_esc(previous.value)} {_esc(previous.unit)}, '
            f'{_esc(formatting.format_when(previous.when, "Date not recorded"))}"'
        )
        flag = previous.flag
        latest_level = m.latest.flag.level if m.latest.flag else "normal"
        # Said when it tells something the arrow does not: a flag of another level (a critical
        # 38 before today's high 212), not the same "High" again on a chronic value.
        if flag is not None and flag.level not in ("normal", latest_level):
            mark = _FLAG_MARKS.get(flag.level, "")
            said = _esc(flag.code or flag.label)
            was = f' <span class="was-flagged">(was {_esc(previous.value)} {mark}{said})</span>'
    return SafeString(f'<span class="change"{title}>{_esc(m.change)} {_esc(m.change_since)}{was}</span>')


_CURRENT_MARK = (
    '<span class="current-mark" aria-label="recorded in this encounter" '
    'title="recorded in this encounter">●</span> '
)


def _when_cell(m: Measure) -> str:
    current = _CURRENT_MARK if m.latest.in_encounter else ""
    stale = ' <span class="stale-mark">(old)</span>' if m.stale else ""
    return f"{current}{measured(m)}{stale}"


def _row_head(m: Measure) -> str:
    title = f' title="{_esc(m.full_name)}"' if m.full_name else ""
    return f'<th scope="row"{title}>{_esc(m.label)}</th>'


@register.simple_tag
def lab_row(m: Measure) -> SafeString:
    """One test's latest result: value with its change, flag, the range it was judged by, when."""
    r = m.latest
    classes = []
    if r.flag and r.flag.level != "normal":
        classes.append(f"flagged flagged-{_esc(r.flag.level)}")
    if r.in_encounter:
        classes.append("current")
    if m.stale:
        classes.append("stale")
    open_item = f' <span class="attention-open">{_esc(m.open_item)}</span>' if m.open_item else ""
    return SafeString(
        f'<tr class="{" ".join(classes)}">{_row_head(m)}'
        f'<td data-label="Result">{reading_value(r)}{_change(m)}{open_item}</td>'
        f'<td data-label="Flag">{reading_flag(r)}</td>'
        f'<td data-label="Range">{_esc(r.reference_range or "—")}</td>'
        f'<td data-label="When">{_when_cell(m)}</td></tr>\n'
    )


@register.simple_tag
def vital_row(m: Measure) -> SafeString:
    """One vital sign's latest reading: value and flag, when, and the change since the last one."""
    r = m.latest
    classes = " ".join(c for c in ("current" if r.in_encounter else "", "stale" if m.stale else "") if c)
    return SafeString(
        f'<tr class="{classes}">{_row_head(m)}<td>{reading_value(r)} {reading_flag(r)}</td>'
        f"<td>{_when_cell(m)}{_change(m)}</td></tr>\n"
    )


def _history_caption(m: Measure) -> str:
    count = len(m.history)
    more = f" (latest {HISTORY_LIMIT} of {count})" if count > HISTORY_LIMIT else ""
    return f"<caption>{_esc(m.label)}{more}</caption>"


@register.simple_tag
def lab_history(m: Measure, index: int, group_key: str) -> SafeString:
    """A test's chart (when it has a numeric series) and its table of results, for its group's
    "charts and all results"; nothing for a test with a single result."""
    if len(m.history) < 2:
        return SafeString("")
    chart = ""
    if m.series:
        unit = _esc(m.series[0].unit or "no unit")
        svg = charts.line_chart(m, f"labs-{slugify(group_key)}-chart-{index}")
        chart = (
            f'<figure class="chart-box"><figcaption><strong>{_esc(m.label)}</strong> ({unit})'
            f"</figcaption>{svg}</figure>"
        )
    return SafeString(
        f'{chart}<table class="data">{_history_caption(m)}<thead><tr><th scope="col">When</th>'
        '<th scope="col">Result</th><th scope="col">Flag</th><th scope="col">Reference range</th>'
        f"</tr></thead><tbody>{history_rows(m.history, lab=True)}</tbody></table>\n"
    )


@register.simple_tag
def vital_history(m: Measure) -> SafeString:
    """A vital sign's table of readings (the accessible alternative to its chart)."""
    return SafeString(
        f'<table class="data">{_history_caption(m)}<thead><tr><th scope="col">When</th>'
        '<th scope="col">Value</th><th scope="col">Flag</th></tr></thead>'
        f"<tbody>{history_rows(m.history)}</tbody></table>\n"
    )
