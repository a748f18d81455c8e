"""The per-row tags: values with the sender's exact value on hover, flags styled by who raised them."""

from __future__ import annotations

import re

from clinical.readings import Flag, Measure, Reading, Series, When
from clinical.templatetags.clinical import (
    HISTORY_LIMIT,
    history_rows,
    lab_history,
    lab_row,
    reading_flag,
    reading_value,
    vital_history,
    vital_row,
)

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


def test_a_judged_normal_value_is_said_quietly_whoever_judged_it():
    within = reading_flag(Reading(WHEN, "4.1", flag=Flag("normal", "Within range", "range")))
    assert within == '<span class="flag flag-normal">Within range</span>'
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


def _creatinine(**kwargs) -> Measure:
    latest = Reading(
        WHEN, "2.27", "mg/dL", 2.27, in_encounter=True, flag=Flag("high", "Above range", "range"),
        reference_range="0.7–1.3 mg/dL",
    )
    earlier = Reading(When.parse("2023-06-01"), "1.92", "mg/dL", 1.92, reference_range="0.7–1.3 mg/dL")
    fields = {
        "key": "creatinine", "label": "Creatinine", "latest": latest, "history": (latest, earlier),
        "full_name": "Creatinine [Mass/volume] in Serum or Plasma", "previous": earlier,
        "change": "↑ 0.35", "change_since": "since Jun 2023", "age": "9 months ago",
        "series": (Series("Creatinine", "mg/dL", ((earlier.when, 1.92, False), (WHEN, 2.27, True))),),
    }
    return Measure(**{**fields, **kwargs})


def test_a_lab_row_carries_flag_change_range_and_this_encounters_mark():
    row = lab_row(_creatinine())
    assert row.startswith('<tr class="flagged flagged-high current">')
    assert '<th scope="row" title="Creatinine [Mass/volume] in Serum or Plasma">Creatinine</th>' in row
    assert '<span class="change" title="previous 1.92 mg/dL, 1 Jun 2023">↑ 0.35 since Jun 2023</span>' in row
    assert '<td data-label="Range">0.7–1.3 mg/dL</td>' in row and "current-mark" in row
    assert "stale-mark" not in row and "attention-open" not in row


def test_a_stale_lab_with_an_open_item_says_both_and_escapes_server_text():
    m = _creatinine(stale=True, open_item="<recollect>", label="<b>Cr</b>", change="")
    row = lab_row(m)
    assert 'class="flagged flagged-high current stale"' in row and "(old)" in row
    assert "&lt;recollect&gt;" in row and "&lt;b&gt;Cr&lt;/b&gt;" in row and "<b>" not in row
    assert 'class="change"' not in row


def test_a_vital_row_marks_this_encounter_and_staleness_only_when_so():
    pulse = Reading(WHEN, "82", "/min", 82.0)
    row = vital_row(Measure("hr", "Heart rate", pulse, (pulse,), stale=True))
    assert row.startswith('<tr class="stale"><th scope="row">Heart rate</th>')
    assert "current-mark" not in row and "(old)" in row


def test_a_lab_history_block_has_its_chart_and_table_and_nothing_for_a_single_result():
    block = lab_history(_creatinine(), 2, "Kidney")
    assert block.startswith('<figure class="chart-box"><figcaption><strong>Creatinine</strong> (mg/dL)')
    assert 'aria-labelledby="labs-kidney-chart-2-t labs-kidney-chart-2-d"' in block
    assert block.count("<tr") == 3  # head + two results
    single = _creatinine()
    assert lab_history(Measure("k", "K", single.latest, (single.latest,)), 1, "Kidney") == ""


def test_history_captions_say_when_only_the_latest_rows_are_shown():
    readings = tuple(Reading(WHEN, str(i), "/min", float(i)) for i in range(HISTORY_LIMIT + 5))
    table = vital_history(Measure("hr", "Heart rate", readings[0], readings))
    assert f"<caption>Heart rate (latest {HISTORY_LIMIT} of {HISTORY_LIMIT + 5})</caption>" in table
    assert table.count("<tr") == HISTORY_LIMIT + 1


def test_a_change_never_hides_that_the_previous_value_was_flagged():
    december = When.parse("2025-12-24")
    low = Reading(december, "38", "mg/dL", 38.0, flag=Flag("critical", "Critical low", "sender", "LL"))
    latest = Reading(WHEN, "212", "mg/dL", 212.0, flag=Flag("high", "Above range", "sender", "H"))

    def glucose(previous: Reading) -> Measure:
        history = (latest, previous)
        change = {"change": "↑ 174", "change_since": "since Dec"}
        return Measure("glucose", "Glucose", latest, history, previous=previous, **change)

    assert '↑ 174 since Dec <span class="was-flagged">(was 38 ⚠ LL)</span>' in lab_row(glucose(low))
    normal = Reading(december, "38", "mg/dL", 38.0, flag=Flag("normal", "Normal", "range"))
    assert "was-flagged" not in lab_row(glucose(normal))
    also_high = Reading(december, "190", "mg/dL", 190.0, flag=Flag("high", "Above range", "sender", "H"))
    assert "was-flagged" not in lab_row(glucose(also_high))  # the same flag again: the arrow says it


def test_a_number_sent_as_text_still_says_it_has_no_unit_and_an_unapplied_range_is_not_judged():
    crp = Reading(WHEN, "<0.1", reference_range="0.0 - 0.9 mg/dL", unjudged=True)
    assert '<span class="unit">(no unit)</span>' in reading_value(crp)
    assert "not judged" in reading_flag(crp)
    assert "(no unit)" not in reading_value(Reading(WHEN, "Not detected"))


def test_a_score_shows_no_unit_and_no_missing_unit_note():
    html = reading_value(Reading(WHEN, "3", "", 3.0, unitless=True))
    assert "(no unit)" not in html and '<span class="unit"></span>' in html
