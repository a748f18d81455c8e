"""Observations as EHRs send them, turned into what the panels show (clinical/readings.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from clinical.attention import abnormal
from clinical.fhir import parse_resource
from clinical.labs import build_labs, lab_groups
from clinical.readings import Person
from clinical.vitals import build_vitals

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ADULT = Person(date(1968, 9, 3), "female")
LOINC = "http://loinc.org"


def obs(code: str, when: str, value=None, unit: str = "", ucum: str = "", **extra) -> object:
    data = {
        "resourceType": "Observation",
        "id": f"o-{code}-{abs(hash((code, when, value))) % 10**9}",
        "status": extra.pop("status", "final"),
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when,
        **extra,
    }
    if value is not None:
        data["valueQuantity"] = {
            "value": value,
            "unit": unit or ucum,
            "system": "http://unitsofmeasure.org",
            "code": ucum or unit,
        }
    return parse_resource(data, "Observation")


def by_key(measures):
    return {m.key: m for m in measures}


def test_separate_systolic_and_diastolic_readings_are_one_blood_pressure():
    vitals = by_key(
        build_vitals(
            [
                obs("8480-6", "2026-11-28T09:00:00Z", 184.4, ucum="mm[Hg]"),
                obs("8462-4", "2026-11-28T09:00:00Z", 121.2, ucum="mm[Hg]"),
            ],
            "",
            ADULT,
            NOW,
        )
    )
    bp = vitals["bp"]
    assert (
        bp.latest.value == "184/121"
        and bp.latest.flag.label == "Very high"
        and bp.latest.flag.source == "app"
    )
    assert "sys" not in vitals and "dia" not in vitals


def test_a_series_in_pounds_and_kilograms_is_shown_in_kilograms_and_says_so():
    weight = by_key(
        build_vitals(
            [
                obs("29463-7", "2026-11-28T09:00:00Z", 176.4, "lb", "[lb_av]"),
                obs("29463-7", "2026-05-01T09:00:00Z", 80.1017321846317, ucum="kg"),
            ],
            "",
            ADULT,
            NOW,
        )
    )["weight"]
    assert weight.latest.value == "80.0" and weight.latest.unit == "kg"
    assert "lb" in weight.latest.exact and weight.converted == "lb converted to kg"
    assert weight.history[1].value == "80.1" and weight.change == "↓ 0.1"
    assert [p[1] for p in weight.series[0].points] == [80.1, 80.0]


def test_an_impossible_spo2_is_a_data_quality_warning_not_a_point():
    spo2 = by_key(
        build_vitals(
            [
                obs("59408-5", "2026-11-28T09:00:00Z", 101, ucum="%"),
                obs("59408-5", "2026-11-27T09:00:00Z", 94.6, ucum="%"),
                obs("59408-5", "2026-11-26T09:00:00Z", 97, ucum="%"),
            ],
            "",
            ADULT,
            NOW,
        )
    )["spo2"]
    assert "not possible" in spo2.latest.warning and spo2.latest.flag is None
    assert spo2.history[1].value == "95"  # 94.6 shown as 95 is not "low" (< 92)
    assert [p[1] for p in spo2.series[0].points] == [97.0, 95.0]
    assert [o[1] for o in spo2.series[0].outliers] == [101.0]


def test_the_latest_lab_skips_cancelled_results_marks_preliminary_ones_and_says_no_range():
    labs = by_key(
        build_labs(
            [
                obs("2160-0", "2026-11-28T09:00:00Z", 9.9, ucum="mg/dL", status="cancelled"),
                obs("2160-0", "2026-11-20T09:00:00Z", 2.2721891592574606, ucum="mg/dL", status="preliminary"),
                obs("2160-0", "2026-02-20T09:00:00Z", 1.92, ucum="mg/dL"),
            ],
            "",
            ADULT,
            NOW,
        )
    )
    creatinine = labs["creatinine"]
    assert creatinine.latest.value == "2.27" and creatinine.latest.status_note == "preliminary"
    assert creatinine.latest.no_range and creatinine.latest.flag is None
    assert creatinine.change == "↑ 0.35" and creatinine.age == "9 days ago" and not creatinine.stale


def test_a_sex_specific_range_is_chosen_and_an_old_value_is_stale():
    ranges = [
        {"low": {"value": 13.5}, "high": {"value": 17.5}, "appliesTo": [{"coding": [{"code": "male"}]}]},
        {"low": {"value": 12.0}, "high": {"value": 15.5}, "appliesTo": [{"coding": [{"code": "female"}]}]},
    ]
    hgb = by_key(
        build_labs([obs("718-7", "2024-01-10", 12.8, ucum="g/dL", referenceRange=ranges)], "", ADULT, NOW)
    )["hemoglobin"]
    assert hgb.latest.flag.level == "normal" and hgb.latest.reference_range == "12.0–15.5"
    assert hgb.stale
    male = by_key(
        build_labs(
            [obs("718-7", "2026-11-10", 12.8, ucum="g/dL", referenceRange=ranges)],
            "",
            Person(date(1970, 1, 1), "male"),
            NOW,
        )
    )["hemoglobin"]
    assert male.latest.flag.level == "low"


def test_the_strip_puts_critical_first_then_labs_then_vitals_and_leaves_out_stale_values():
    labs = build_labs(
        [
            obs(
                "2823-3",
                "2026-11-28T09:00:00Z",
                6.8,
                ucum="mmol/L",
                interpretation=[{"coding": [{"code": "HH"}]}],
            ),
            obs(
                "2345-7",
                "2026-11-28T09:00:00Z",
                212,
                ucum="mg/dL",
                interpretation=[{"coding": [{"code": "H"}]}],
            ),
            obs("4548-4", "2020-01-01", 9.9, ucum="%", interpretation=[{"coding": [{"code": "H"}]}]),
        ],
        "",
        ADULT,
        NOW,
    )
    vitals = build_vitals([obs("8867-4", "2026-11-28T09:00:00Z", 120, ucum="/min")], "", ADULT, NOW)
    strip = abnormal(vitals, labs, NOW)
    assert [m.key for m in strip.recent] == ["potassium", "glucose", "hr"] and strip.older == []


def test_a_childs_normal_vitals_are_not_flagged_by_adult_rules():
    child = Person(date(2022, 11, 9), "female")
    vitals = by_key(build_vitals([obs("8867-4", "2026-11-28T09:00:00Z", 114, ucum="/min")], "", child, NOW))
    assert vitals["hr"].latest.flag is None


def test_a_critical_value_that_came_back_down_stays_in_view_and_a_cancelled_repeat_is_owed():
    hh = [{"coding": [{"code": "HH"}]}]
    high = [{"coding": [{"code": "H"}]}]
    cancelled = obs(
        "2823-3", "2026-11-28T04:00:00Z", status="cancelled", note=[{"text": "Hemolyzed, recollect"}]
    )
    potassium = by_key(
        build_labs(
            [
                obs("2823-3", "2026-11-26T19:25:00Z", 6.8, ucum="mmol/L", interpretation=hh),
                obs("2823-3", "2026-11-27T01:48:00Z", 5.6, ucum="mmol/L", interpretation=high),
                cancelled,
            ],
            "",
            ADULT,
            NOW,
        )
    )["potassium"]
    assert potassium.latest.value == "5.6" and potassium.recent_critical.value == "6.8"
    assert potassium.severity == 0 and potassium.open_item.endswith("Hemolyzed, recollect")
    assert potassium.change == "↓ 1.2" and potassium.change_since == "since 26 Nov"


def test_older_abnormal_results_and_body_size_stay_out_of_the_recent_strip():
    high = [{"coding": [{"code": "H"}]}]
    labs = build_labs(
        [
            obs("4548-4", "2026-03-01", 7.4, ucum="%", interpretation=high),
            obs("2951-2", "2026-11-20", 140, ucum="mmol/L"),  # the last draw: HbA1c is from the one before
        ],
        "",
        ADULT,
        NOW,
    )
    vitals = build_vitals(
        [obs("39156-5", "2026-11-28T09:00:00Z", 31.2, ucum="kg/m2", interpretation=high)], "", ADULT, NOW
    )
    strip = abnormal(vitals, labs, NOW)
    assert strip.recent == [] and [m.key for m in strip.older] == ["hba1c"]


def test_the_last_visits_results_are_recent_however_long_ago_and_labs_and_vitals_count_apart(settings):
    settings.TIME_ZONE = "America/New_York"
    high = [{"coding": [{"code": "H"}]}]
    labs = build_labs(
        [
            obs("2823-3", "2026-10-12T14:30:00Z", 5.4, ucum="mmol/L", interpretation=high),  # last draw
            obs("2345-7", "2026-10-12T04:10:00Z", 162, ucum="mg/dL", interpretation=high),  # same day
            obs("4548-4", "2026-06-01", 7.4, ucum="%", interpretation=high),  # the draw before
        ],
        "",
        ADULT,
        NOW,
    )
    # Today's vital signs do not fold away the abnormal labs of the last draw, seven weeks ago.
    vitals = build_vitals(
        [
            obs("8867-4", "2026-11-28T13:55:00Z", 112, ucum="/min"),
            obs("9279-1", "2026-09-01T13:55:00Z", 26, ucum="/min"),
        ],
        "",
        ADULT,
        NOW,
    )
    strip = abnormal(vitals, labs, NOW)
    assert [m.key for m in strip.recent] == ["potassium", "glucose", "hr"]
    assert [m.key for m in strip.older] == ["hba1c", "rr"]
    settings.CLINICAL_ATTENTION_DAYS = 200  # a longer window simply counts back from now
    assert [m.key for m in abnormal(vitals, labs, NOW).older] == []


def test_labs_keep_a_fixed_clinical_order_kidney_first_creatinine_beside_egfr():
    labs = build_labs(
        [
            obs("2823-3", "2026-11-28", 4.1, ucum="mmol/L"),
            obs("98979-8", "2026-11-20", 42, ucum="mL/min/{1.73_m2}"),
            obs("3094-0", "2026-11-27", 31, ucum="mg/dL"),
            obs("2160-0", "2026-11-10", 1.42, ucum="mg/dL"),
            obs("2951-2", "2026-11-28", 133, ucum="mmol/L"),
        ],
        "",
        ADULT,
        NOW,
    )
    groups = [(g, [m.key for m in ms]) for g, ms in lab_groups(labs)]
    assert groups == [("Kidney", ["creatinine", "egfr", "bun"]), ("Electrolytes", ["sodium", "potassium"])]


def test_a_number_beside_a_range_sent_only_as_text_is_marked_not_judged():
    text_range = [{"text": "0.0 - 0.9 mg/dL"}]
    crp = build_labs(
        [obs("1988-5", "2026-11-27T01:48:00Z", valueString="<0.1", referenceRange=text_range)], "", ADULT, NOW
    )[0]
    assert crp.latest.unjudged and not crp.latest.no_range and crp.latest.flag is None
    expected = [{"text": "Negative"}]
    dipstick = obs("5792-7", "2026-11-27T01:48:00Z", valueString="Negative", referenceRange=expected)
    negative = build_labs([dipstick], "", ADULT, NOW)[0]
    assert not negative.latest.unjudged  # a word beside its expected word: nothing a number would miss


def test_a_cancelled_newer_result_says_when_it_was_cancelled(settings):
    settings.TIME_ZONE = "UTC"
    potassium = by_key(
        build_labs(
            [
                obs("2823-3", "2026-11-27T01:48:00Z", 5.6, ucum="mmol/L"),
                obs("2823-3", "2026-11-27T20:00:00Z", status="cancelled", note=[{"text": "Clotted"}]),
                obs("2823-3", "2026-11-28T04:00:00Z", status="cancelled", note=[{"text": "Hemolyzed"}]),
            ],
            "",
            ADULT,
            NOW,
        )
    )["potassium"]
    assert potassium.open_item == "A newer result (28 Nov 2026 04:00) was cancelled: Hemolyzed"


def test_a_score_has_no_unit_to_miss_and_changes_at_its_own_precision():
    pain = by_key(
        build_vitals(
            [
                obs("72514-3", "2026-10-30T14:45:00Z", 3.1734, ucum="{score}"),
                obs("72514-3", "2026-09-30T14:45:00Z", 4.3402, ucum="{score}"),
            ],
            "",
            ADULT,
            NOW,
        )
    )["pain"]
    assert pain.latest.value == "3" and pain.latest.unit == "" and pain.latest.unitless
    assert pain.change == "↓ 1"  # as displayed (3 and 4), not 1.17 from the unrounded values
