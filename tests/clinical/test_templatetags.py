"""The per-row tags: values with the sender's exact value on hover, flags styled by who raised them."""

from __future__ import annotations

import re

from clinical.readings import Flag, Reading, When
from clinical.templatetags.clinical import HISTORY_LIMIT, history_rows, reading_flag, reading_value

WHEN = When.parse("2024-03-12T14:05:00Z")


def test_it_shows_the_displayed_value_and_keeps_the_exact_one_for_hover_and_screen_readers():
    html = reading_value(Reading(WHEN, "2.27", "mg/dL", 2.27, exact="2.2721891592574606 mg/dL"))
    assert '<span class="value" title="Sent as 2.2721891592574606 mg/dL">2.27</span>' in html
    assert '<span class="visually-hidden"> (sent as 2.2721891592574606 mg/dL)</span>' in html
    assert "title" not in reading_value(Reading(WHEN, "98", "%", 98.0))  # nothing rounded: no hover


def test_it_says_no_unit_only_for_a_numeric_value_without_one():
    assert "(no unit)" in reading_value(Reading(WHEN, "3", "", 3.0))
    assert "(no unit)" not in reading_value(Reading(WHEN, "Negative", ""))
    assert "value-absent" in reading_value(Reading(WHEN, "No value (Asked But Declined)", absent=True))


def test_it_marks_a_status_other_than_final():
    assert '<span class="status-note">(preliminary)</span>' in reading_value(
        Reading(WHEN, "5", "mmol/L", 5.0, status_note="preliminary")
    )


def test_the_ehrs_flag_and_the_apps_own_cut_off_look_different():
    sender = reading_flag(Reading(WHEN, "6.8", flag=Flag("critical", "Critical high", "sender", "HH")))
    assert sender == '<span class="flag flag-critical">⚠ Critical high (HH)</span>'
    ranged = reading_flag(Reading(WHEN, "2.3", flag=Flag("high", "Above range", "range")))
    assert ranged == '<span class="flag flag-high">▲ Above range</span>'
    app = reading_flag(Reading(WHEN, "38.0", flag=Flag("high", "Fever", "app")))
    assert 'class="flag flag-app flag-high"' in app and "<small>(app)</small>" in app


def test_a_value_within_range_is_not_flagged_but_the_ehrs_normal_is_shown_quietly():
    assert reading_flag(Reading(WHEN, "4.1", flag=Flag("normal", "Within range", "range"))) == ""
    normal = reading_flag(Reading(WHEN, "4.1", flag=Flag("normal", "Normal", "sender", "N")))
    assert normal == '<span class="flag flag-normal">Normal</span>'


def test_it_says_no_range_sent_and_shows_data_quality_warnings():
    assert "no range sent" in reading_flag(Reading(WHEN, "2.27", no_range=True))
    warning = reading_flag(Reading(WHEN, "101", warning="SpO₂ above 100 % is not possible: check the device"))
    assert 'class="flag flag-quality"' in warning and "not possible" in warning


def test_it_escapes_server_text():
    r = Reading(
        WHEN, "<script>", "<u>", status_note="<b>", flag=Flag("high", "<x>", "sender", "<y>"), exact="<e>"
    )
    assert "<script>" not in reading_value(r) and "&lt;script&gt;" in reading_value(r)
    assert "<e>" not in reading_value(r) and "&lt;e&gt;" in reading_value(r)
    assert "<x>" not in reading_flag(r) and "&lt;y&gt;" in reading_flag(r)


def test_history_rows_stop_at_the_limit_and_mark_this_encounter_and_flags():
    rows = [
        Reading(WHEN, str(i), "/min", float(i), in_encounter=i == 0, flag=Flag("high", "High", "app"))
        for i in range(HISTORY_LIMIT + 10)
    ]
    vitals = history_rows(rows)
    assert vitals.count("<tr") == HISTORY_LIMIT
    assert vitals.startswith('<tr class="current">') and "flag-app" in vitals
    labs = history_rows(
        [Reading(WHEN, "5", flag=Flag("low", "Low", "sender", "L"), reference_range="<b>")], lab=True
    )
    assert re.match(r'<tr class="flagged flagged-low">', labs) and "&lt;b&gt;" in labs
