"""The per-row tags render exactly what the partials they replace in loops render."""

from __future__ import annotations

import dataclasses
import itertools

from django.template import Context, Template

from clinical.dashboard import Flag, Reading, When
from clinical.templatetags.clinical import history_rows, reading_flag, reading_value

WHEN = When.parse("2024-03-12T14:05:00Z")
FLAGS = [
    None,
    Flag("critical", "Critical high", "HH"),
    Flag("high", "Above reference range", derived=True),
    Flag("low", "Low", "L"),
    Flag("abnormal", "<b>odd</b>", "A&B"),
    Flag("normal", "Normal", "N"),
]


def readings():
    for value, unit, number, absent, note, flag in itertools.product(
        ["142/91", "<script>x</script>", "No value recorded"],
        ["", "mmHg", "<i>u</i>"],
        [None, 3.5],
        [False, True],
        ["", "preliminary", '"quoted"'],
        FLAGS,
    ):
        yield Reading(WHEN, value, unit, number, status_note=note, absent=absent, flag=flag)


# The auto-escaped template markup the tags replaced, kept here as their specification.
VALUE_TEMPLATE = (
    '<span class="value{% if r.absent %} value-absent'
    '{% endif %}">{{ r.value }}</span> <span class="unit">{% if r.unit %}{{ r.unit }}'
    "{% elif not r.absent and r.number is not None %}(no unit){% endif %}</span>"
    '{% if r.status_note %} <span class="status-note">({{ r.status_note }})</span>{% endif %}\n'
)
FLAG_TEMPLATE = (
    '{% if r.flag %}<span class="flag flag-{{ r.flag.level }}">'
    '{% if r.flag.level == "critical" %}⚠ {% elif r.flag.level == "high" %}▲ '
    '{% elif r.flag.level == "low" %}▼ {% endif %}{{ r.flag.label }}'
    "{% if r.flag.code %} ({{ r.flag.code }}){% endif %}</span>{% endif %}"
)


def test_it_renders_reading_values_like_the_template_it_replaced():
    for r in readings():
        assert reading_value(r) == Template(VALUE_TEMPLATE).render(Context({"r": r}))


def test_it_renders_flags_like_the_template_it_replaced():
    for r in readings():
        assert reading_flag(r) == Template(FLAG_TEMPLATE).render(Context({"r": r}))


def test_it_escapes_server_text():
    r = Reading(WHEN, "<script>", "<u>", status_note="<b>", flag=Flag("high", "<x>", "<y>"))
    assert "<script>" not in reading_value(r) and "&lt;script&gt;" in reading_value(r)
    assert "<x>" not in reading_flag(r) and "&lt;y&gt;" in reading_flag(r)


# The template loops that `history_rows` replaced, kept here as its specification.
VITALS_LOOP = (
    '{% load clinical %}{% for r in rows|slice:":50" %}<tr{% if r.in_encounter %} class="current"{% endif %}>'
    "<td>{{ r.when|when }}</td><td>{% reading_value r %}</td></tr>{% endfor %}"
)
LABS_LOOP = (
    '{% load clinical %}{% for r in rows|slice:":50" %}'
    '<tr{% if r.flag %} class="flagged flagged-{{ r.flag.level }}"{% endif %}>'
    "<td>{{ r.when|when }}</td><td>{% reading_value r %}</td><td>{% reading_flag r %}</td>"
    '<td>{{ r.reference_range|default:"—" }}</td></tr>{% endfor %}'
)


def history():
    for i, r in enumerate(readings()):
        yield dataclasses.replace(
            r,
            when=None if i % 7 == 0 else r.when,
            in_encounter=i % 3 == 0,
            reference_range=["", "4.0–5.6 %", "<b>&</b>"][i % 3],
        )


def test_it_renders_history_rows_like_the_loops_it_replaced():
    rows = list(history())
    for start in range(0, len(rows), 60):  # chunks longer than the 50-row limit
        chunk = rows[start : start + 60]
        assert history_rows(chunk) == Template(VITALS_LOOP).render(Context({"rows": chunk}))
        assert history_rows(chunk, lab=True) == Template(LABS_LOOP).render(Context({"rows": chunk}))
