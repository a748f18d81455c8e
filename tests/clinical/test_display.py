"""Every display rule of clinical.display: precision, units, flags, ranges, names, ages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from clinical import display
from clinical.display import (
    MEASURES,
    VITALS,
    Flag,
    Range,
    adult_rules_apply,
    age_in_years,
    age_text,
    bp_flag,
    change_text,
    choose_range,
    clinical_name,
    convert,
    encounter_class_name,
    human_unit,
    implausible,
    implausible_bp,
    is_stale,
    lab_flag,
    measure_by_key,
    measure_for,
    normal_band,
    show_number,
    strip_semantic_tag,
    unit_code,
    vital_flag,
)
from clinical.formatting import format_date_only, format_when, zone_label
from clinical.readings import When

D = Decimal
ADULT = 45.0
CHILD = 4.0


def m(key: str):
    measure = measure_by_key(key)
    assert measure is not None, key
    return measure


def text(value: str, key: str | None, **kwargs) -> str:
    return show_number(D(value), m(key) if key else None, **kwargs).text


# --- Measures ------------------------------------------------------------------------------


def test_it_lists_the_vitals_in_panel_order_then_the_labs():
    keys = ["bp", "hr", "rr", "spo2", "temp", "weight", "height", "bmi", "head", "pain"]
    assert [v.key for v in VITALS] == keys
    kinds = [x.kind for x in MEASURES]
    assert kinds == sorted(kinds, key=lambda k: k != "vital")  # vitals first
    assert all(x.group for x in MEASURES if x.kind == "lab")


def test_it_never_puts_one_loinc_code_in_two_measures():
    codes = [code for x in MEASURES for code in x.codes]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize(
    ("codes", "key"),
    [
        (["8867-4"], "hr"),
        (["http://loinc.org|29463-7"], "weight"),
        (["85354-9"], "bp"),
        (["8480-6"], "sys"),
        (["2160-0"], "creatinine"),
        (["33914-3"], "egfr"),
        (["62238-1"], "egfr"),
        (["98979-8"], "egfr"),
        (["48643-1"], "egfr"),
        (["50044-7"], "egfr"),
        (["2164-2"], "creatinine_clearance"),
        (["6690-2"], "wbc"),
        (["4548-4", "17856-6"], "hba1c"),  # two codes of one measure
    ],
)
def test_it_finds_the_measure_by_loinc_code(codes, key):
    assert measure_for(codes).key == key


def test_it_keeps_egfr_per_1_73_m2_and_creatinine_clearance_apart():
    egfr, clearance = measure_for(["33914-3"]), measure_for(["2164-2"])
    assert egfr != clearance
    assert egfr.unit == "mL/min/{1.73_m2}" and clearance.unit == "mL/min"
    assert convert(D(37), "mL/min", "mL/min/{1.73_m2}") is None
    assert convert(D(37), "mL/min/{1.73_m2}", "mL/min") is None


def test_it_knows_no_measure_for_unknown_or_conflicting_codes():
    assert measure_for(["99999-9"]) is None
    assert measure_for([]) is None
    assert measure_for(["8867-4", "9279-1"]) is None  # heart rate and respiratory rate: not guessed


def test_it_has_fixed_clinical_scales_and_the_apps_bands_for_vitals():
    assert m("spo2").scale == (80, 100)
    assert m("hr").scale == (40, 160)
    assert m("temp").scale == (35, 40)
    assert m("bp").scale == (40, 200)
    assert m("hr").normal == (50.0, 100.0)
    assert m("spo2").normal == (92.0, None)
    assert m("creatinine").normal is None  # labs: the sender's range, never the app's


def test_it_follows_overridden_cut_offs_in_the_chart_band(settings):
    settings.CLINICAL_HR_RANGE = (D(60), D(90))
    assert normal_band(m("hr")) == (60.0, 90.0)
    assert normal_band(m("creatinine")) is None


# --- Precision -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "key", "kwargs", "shown"),
    [
        ("179.60435632790262", "sys", {}, "180"),
        ("98.17363457023427", "dia", {}, "98"),
        ("72.4", "hr", {}, "72"),
        ("16.5", "rr", {}, "17"),  # ROUND_HALF_UP, not banker's rounding
        ("97.5", "spo2", {}, "98"),
        ("36.85", "temp", {}, "36.9"),
        ("80.1017321846317", "weight", {}, "80.1"),
        ("13.4567", "weight", {"age_years": 1.5}, "13.457"),  # to the gram under 2 years
        ("13.45", "weight", {"age_years": 1.5}, "13.45"),  # but never more digits than sent
        ("172.72", "height", {}, "173"),
        ("68.03", "height", {"unit": "[in_i]"}, "68.0"),  # one decimal in inches
        ("27.3456", "bmi", {}, "27.3"),
        ("2.2721891592574606", "creatinine", {}, "2.27"),
        ("4.46", "potassium", {}, "4.5"),
        ("139.6", "sodium", {}, "140"),
        ("101.2", "glucose", {}, "101"),
        ("7.25", "hba1c", {}, "7.3"),
        ("13.96", "hemoglobin", {}, "14.0"),
        ("7.234", "wbc", {}, "7.2"),
        ("254.6", "platelets", {}, "255"),
        ("2.345", "tsh", {}, "2.35"),
        ("1.0125", "urine_sg", {}, "1.013"),
        ("37.4", "egfr", {}, "37"),
        ("129.5", "ldl", {}, "130"),
        ("48.2", "hdl", {}, "48"),
        ("150.5", "triglycerides", {}, "151"),
        ("201.4", "cholesterol", {}, "201"),
    ],
)
def test_it_shows_each_measure_at_its_precision(value, key, kwargs, shown):
    assert text(value, key, **kwargs) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1234.5678", "1235"),
        ("12.3456", "12.3"),
        ("0.012345", "0.012"),
        ("0.0421", "0.042"),
        ("0.0015", "0.0015"),
        ("5", "5"),
        ("0", "0"),
    ],
)
def test_it_shows_unknown_measures_at_three_significant_digits(value, shown):
    assert text(value, None) == shown


@pytest.mark.parametrize(
    ("value", "key", "shown"),
    [
        ("5.1", "creatinine", "5.1"),
        ("4", "potassium", "4"),
        ("38", "temp", "38"),
        ("80.10", "weight", "80.1"),
    ],
)
def test_it_never_shows_more_digits_than_the_source_sent(value, key, shown):
    assert text(value, key) == shown


@pytest.mark.parametrize(
    ("value", "key", "shown"),
    [("0.004", "creatinine", "0.004"), ("0.0042", "creatinine", "0.0042"), ("0.3", "hr", "0.3")],
)
def test_it_never_rounds_a_non_zero_value_to_zero(value, key, shown):
    assert text(value, key) == shown
    assert show_number(D(value), m(key)).value != 0


def test_it_never_uses_exponent_notation_or_negative_zero():
    assert text("1E+2", "hr") == "100"
    assert text("1.5E-3", None) == "0.0015"
    assert show_number(D("1E+2"), m("hr")).exact == "100"
    assert text("-0.0", None) == "0"


def test_it_keeps_the_exact_value_and_prefixes_the_comparator():
    shown = show_number(D("2.2721891592574606"), m("creatinine"))
    assert (shown.text, shown.value, shown.exact) == ("2.27", D("2.27"), "2.2721891592574606")
    less = show_number(D("0.1"), m("creatinine"), comparator="<")
    assert (less.text, less.value, less.exact) == ("<0.1", D("0.1"), "<0.1")


def test_it_shows_another_unit_of_a_measure_at_that_units_precision():
    assert text("176.54321", "weight", unit="[lb_av]") == "176.5"
    assert text("3.1416", "creatinine", unit="umol/L") == "3.14"  # unknown here: 3 significant digits
    assert text("2.2721", "creatinine", unit="mg/dl") == "2.27"  # a case slip is still mg/dL


# --- Units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("mL/min/{1.73_m2}", "mL/min/1.73 m²"),
        ("10*3/uL", "×10³/µL"),
        ("10*6/uL", "×10⁶/µL"),
        ("10*9/L", "×10⁹/L"),
        ("Cel", "°C"),
        ("[degF]", "°F"),
        ("[lb_av]", "lb"),
        ("[in_i]", "in"),
        ("mm[Hg]", "mmHg"),
        ("kg/m2", "kg/m²"),
        ("ug/dL", "µg/dL"),
        ("umol/L", "µmol/L"),
        ("{score}", ""),
        ("1", ""),
        ("{beats}/min", "/min"),
        ("/min", "/min"),
        ("%", "%"),
        ("mg/dL", "mg/dL"),
        ("U/L", "U/L"),
        ("furlongs", "furlongs"),  # unknown units pass through
    ],
)
def test_it_shows_ucum_codes_as_clinicians_write_them(code, shown):
    assert human_unit(code) == shown


def test_it_falls_back_to_the_unit_text_without_a_code():
    assert human_unit(None, "hours") == "hours"
    assert human_unit("", "mm[Hg]") == "mmHg"
    assert human_unit("", "{score}") == ""


def test_it_reads_plain_text_unit_codes_as_ucum():
    assert unit_code("lbs") == "[lb_av]"
    assert unit_code(None, "mmHg") == "mm[Hg]"
    assert unit_code("{beats}/min") == "/min"
    assert unit_code("mL/min/1.73m2") == "mL/min/{1.73_m2}"


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        ("176.5", "[lb_av]", "kg", "80.059053305"),
        ("1", "[lb_av]", "kg", "0.45359237"),
        ("70", "[in_i]", "cm", "177.80"),
        ("100.4", "[degF]", "Cel", "38"),
        ("38", "Cel", "[degF]", "100.4"),
        ("3250", "g", "kg", "3.250"),
        ("16", "[oz_av]", "[lb_av]", "1"),
        ("120", "mm[Hg]", "mm[Hg]", "120"),
        ("72", "{beats}/min", "/min", "72"),
        ("40", "mL/min/1.73m2", "mL/min/{1.73_m2}", "40"),
    ],
)
def test_it_converts_exactly_with_decimal(value, source, target, expected):
    assert convert(D(value), source, target) == D(expected)


@pytest.mark.parametrize(
    ("source", "target"), [("kg", "cm"), ("mg/dL", "umol/L"), ("Cel", "kg"), ("mm[Hg]", "kPa"), ("%", "1")]
)
def test_it_does_not_convert_between_different_quantities(source, target):
    assert convert(D(1), source, target) is None


def test_it_shows_a_converted_series_at_its_own_precision():
    kg = convert(D("176.5"), "[lb_av]", "kg")
    assert text(str(kg), "weight") == "80.1"
    cm = convert(D("68"), "[in_i]", "cm")
    assert text(str(cm), "height") == "173"


# --- Reference ranges ----------------------------------------------------------------------

MALE = frozenset({"248153007"})
FEMALE = frozenset({"female"})


def rng(low, high, *, applies=frozenset(), age_low=None, age_high=None, unit="mg/dL") -> Range:
    return Range(
        D(low) if low is not None else None,
        D(high) if high is not None else None,
        unit,
        "",
        frozenset(applies),
        D(age_low) if age_low is not None else None,
        D(age_high) if age_high is not None else None,
    )


def test_it_chooses_the_range_for_the_patients_sex():
    men, women = rng("0.74", "1.35", applies=MALE), rng("0.59", "1.04", applies=FEMALE)
    assert choose_range([men, women], age_years=ADULT, sex="female") is women
    assert choose_range([men, women], age_years=ADULT, sex="male") is men
    assert choose_range([men, women], age_years=ADULT, sex="") is None  # unknown sex: no guess


def test_it_chooses_the_range_for_the_patients_age_at_the_measurement():
    child = rng("0.19", "0.49", age_low="1", age_high="5")
    teen = rng("0.35", "0.86", age_low="11", age_high="14")
    adult = rng("0.6", "1.2", age_low="18")
    ranges = [child, teen, adult]
    assert choose_range(ranges, age_years=4.0, sex="male") is child
    assert choose_range(ranges, age_years=5.9, sex="male") is child  # "1-5 a": until the 6th birthday
    assert choose_range(ranges, age_years=13.2, sex="male") is teen
    assert choose_range(ranges, age_years=52.0, sex="male") is adult
    assert choose_range(ranges, age_years=8.0, sex="male") is None
    assert choose_range(ranges, age_years=None, sex="male") is None


def test_it_prefers_the_specific_range_and_applies_a_general_one_to_everyone():
    general = rng("0.6", "1.3")
    women = rng("0.59", "1.04", applies=FEMALE, age_low="16")
    assert choose_range([general, women], age_years=30.0, sex="female") is women
    assert choose_range([general, women], age_years=30.0, sex="male") is general
    assert choose_range([general], age_years=None, sex="") is general


def test_it_prefers_a_normal_range_to_a_treatment_range():
    treatment = rng(None, "7.0", applies={"treatment"}, unit="%")
    normal = rng("4.0", "5.6", applies={"normal"}, unit="%")
    assert choose_range([treatment, normal], age_years=ADULT, sex="male") is normal
    assert choose_range([treatment], age_years=ADULT, sex="male") is treatment


def test_it_does_not_apply_a_range_for_a_population_it_cannot_check():
    pregnant = rng("0.4", "0.8", applies={"77386006"})
    assert choose_range([pregnant], age_years=30.0, sex="female") is None


@pytest.mark.parametrize(
    ("value", "unit", "years"),
    [("18", "a", "18"), ("6", "mo", "0.5"), ("730.5", "d", "2"), ("52", "wk", None)],
)
def test_it_converts_ages_to_years(value, unit, years):
    result = age_in_years(D(value), unit)
    if years is None:
        assert D("0.99") < result < D(1)
    else:
        assert result == D(years)
    assert age_in_years(D(3), "kg") is None


# --- Lab flags -----------------------------------------------------------------------------


def lab(shown, *, interpretation=(), ranges=(), unit="mg/dL", age=ADULT, sex="male", comparator=""):
    return lab_flag(
        D(shown) if shown is not None else None,
        interpretation=list(interpretation),
        ranges=list(ranges),
        unit=unit,
        age_years=age,
        sex=sex,
        comparator=comparator,
    )


@pytest.mark.parametrize(
    ("code", "text", "level"),
    [
        ("HH", "", "critical"),
        ("LL", "", "critical"),
        ("AA", "", "critical"),
        ("H", "", "high"),
        ("HU", "", "high"),
        (">", "", "high"),
        ("L", "", "low"),
        ("LU", "", "low"),
        ("<", "", "low"),
        ("A", "", "abnormal"),
        ("N", "", "normal"),
        ("H", "Critical value, called to Dr Smith", "critical"),
        ("XYZ", "Borderline", "abnormal"),
    ],
)
def test_it_takes_the_senders_interpretation(code, text, level):
    flag = lab("1.0", interpretation=[(code, text)])
    assert (flag.level, flag.source, flag.code) == (level, "sender", code)


def test_it_labels_an_unknown_interpretation_with_the_senders_words():
    assert lab("1.0", interpretation=[("XYZ", "Borderline")]).label == "Borderline"


def test_it_takes_the_most_severe_of_several_interpretations():
    assert lab("9", interpretation=[("H", ""), ("HH", "")]).level == "critical"


def test_the_senders_interpretation_beats_the_range():
    # The value is inside the range, but the lab called it high: the lab's word stands.
    flag = lab("1.0", interpretation=[("H", "High")], ranges=[rng("0.6", "1.3")])
    assert (flag.level, flag.source) == ("high", "sender")


def test_it_compares_the_range_with_the_displayed_value():
    creatinine = m("creatinine")
    shown = show_number(D("1.304"), creatinine).value  # shown as 1.30: within 0.6-1.30
    assert lab(str(shown), ranges=[rng("0.6", "1.30")]).level == "normal"
    shown = show_number(D("1.306"), creatinine).value  # shown as 1.31: above
    flag = lab(str(shown), ranges=[rng("0.6", "1.30")])
    assert (flag.level, flag.label, flag.source) == ("high", "Above range", "range")
    assert lab("0.5", ranges=[rng("0.6", "1.3")]).level == "low"


def test_it_uses_the_range_for_the_patients_sex_when_flagging():
    ranges = [rng("0.74", "1.35", applies=MALE), rng("0.59", "1.04", applies=FEMALE)]
    assert lab("1.2", ranges=ranges, sex="male").level == "normal"
    assert lab("1.2", ranges=ranges, sex="female").level == "high"


def test_it_converts_a_range_sent_in_another_unit_or_gives_up():
    assert lab("80.1", ranges=[rng("110", "200", unit="[lb_av]")], unit="kg").level == "normal"
    assert lab("2.27", ranges=[rng("53", "115", unit="umol/L")], unit="mg/dL") is None


def test_it_has_no_flag_without_interpretation_or_usable_range():
    assert lab("2.27") is None  # the caller shows "no range sent"
    assert lab("2.27", ranges=[Range(None, None, "", "see report")]) is None  # text only
    assert lab(None, ranges=[rng("0.6", "1.3")]) is None  # "Negative": nothing to compare


def test_it_reads_a_comparator_before_judging():
    assert lab("0.1", comparator="<", ranges=[rng(None, "0.5")]).level == "normal"
    assert lab("0.1", comparator="<", ranges=[rng("0.2", "0.5")]).level == "low"
    assert lab("2", comparator="<", ranges=[rng("0.2", "0.5")]) is None  # could be anything below 2
    assert lab("500", comparator=">", ranges=[rng("0.2", "300")]).level == "high"


# --- The app's vital-sign flags ------------------------------------------------------------


def shown_vital(value: str, key: str, age=ADULT):
    shown = show_number(D(value), m(key), age_years=age).value
    return vital_flag(m(key), shown, age_years=age)


def test_it_flags_heart_and_respiratory_rate_outside_the_apps_ranges():
    assert shown_vital("49", "hr").level == "low"
    assert shown_vital("101", "hr").label == "High"
    assert shown_vital("100.4", "hr") is None  # shown as 100: not above 100
    assert shown_vital("11", "rr").level == "low"
    assert shown_vital("21", "rr").level == "high"
    assert shown_vital("16", "rr") is None
    assert shown_vital("101", "hr").source == "app"


def test_a_spo2_flag_agrees_with_the_number_on_screen(settings):
    settings.CLINICAL_SPO2_LOW = 95
    assert shown_vital("94.6", "spo2") is None  # shown as 95: not below 95
    assert shown_vital("94.4", "spo2").level == "low"  # shown as 94
    settings.CLINICAL_SPO2_LOW = D(92)
    flag = shown_vital("91", "spo2")
    assert (flag.level, flag.label, flag.source) == ("low", "Low", "app")


def test_a_fever_flag_agrees_with_the_number_on_screen():
    flag = shown_vital("37.96", "temp")  # shown as 38.0
    assert (flag.level, flag.label) == ("high", "Fever")
    assert shown_vital("37.94", "temp") is None  # shown as 37.9
    assert shown_vital("34.9", "temp").label == "Low"


def test_it_flags_a_fahrenheit_temperature_in_celsius():
    assert vital_flag(m("temp"), D("100.4"), age_years=ADULT, unit="[degF]").label == "Fever"
    assert vital_flag(m("temp"), D("98.6"), age_years=ADULT, unit="[degF]") is None


def test_it_reads_its_cut_offs_from_settings(settings):
    settings.CLINICAL_HR_RANGE = (D(60), D(90))
    settings.CLINICAL_FEVER_C = D("38.3")
    assert shown_vital("95", "hr").level == "high"
    assert shown_vital("38.1", "temp") is None


def test_it_applies_no_adult_cut_off_to_a_child():
    assert not adult_rules_apply(CHILD)
    assert not adult_rules_apply(17.9)
    assert adult_rules_apply(18.0)
    assert adult_rules_apply(None)  # unknown age: adult rules, labelled as the app's
    for key, value in [("hr", "130"), ("rr", "28"), ("spo2", "85"), ("temp", "38.5")]:
        assert shown_vital(value, key, age=CHILD) is None, key
    assert bp_flag(D(150), D(95), age_years=CHILD) is None


def test_it_gives_bmi_weight_and_height_no_flag():
    assert shown_vital("41.2", "bmi") is None
    assert shown_vital("17.0", "bmi", age=16.0) is None
    assert shown_vital("150", "weight") is None


@pytest.mark.parametrize(
    ("systolic", "diastolic", "level", "label"),
    [
        ("114", "78", None, None),
        ("149", "100", "high", "High"),
        ("140", "80", "high", "High"),
        ("130", "90", "high", "High"),
        ("139", "89", None, None),
        ("181", "100", "critical", "Very high"),
        ("170", "121", "critical", "Very high"),
        ("180", "120", "high", "High"),  # > 180 and/or > 120, not >=
        ("88", "60", "low", "Low"),
        ("92", "50", "low", "Low (MAP)"),  # MAP (92 + 100) / 3 = 64
        ("95", "50", None, None),  # MAP 65
        ("150", None, "high", "High"),
        (None, "125", "critical", "Very high"),
    ],
)
def test_it_flags_one_blood_pressure_reading(systolic, diastolic, level, label):
    flag = bp_flag(D(systolic) if systolic else None, D(diastolic) if diastolic else None, age_years=ADULT)
    if level is None:
        assert flag is None
    else:
        assert (flag.level, flag.label, flag.source) == (level, label, "app")


def test_it_flags_the_displayed_blood_pressure():
    sys_shown = show_number(D("139.6"), m("sys")).value  # shown as 140
    assert bp_flag(sys_shown, D(80), age_years=ADULT).label == "High"
    assert vital_flag(m("sys"), D(150), age_years=ADULT).label == "High"
    assert vital_flag(m("dia"), D(95), age_years=ADULT).label == "High"


def test_the_authority_order_keeps_app_flags_apart_from_lab_flags():
    # A lab result never gets the app's cut-offs: lab_flag has no app tier.
    assert lab("101") is None
    # A vital sign with the sender's interpretation: the caller asks lab_flag first, which wins.
    sender = lab("95", interpretation=[("N", "Normal")])
    app = shown_vital("95", "hr")
    assert sender.source == "sender" and app is None
    assert Flag("high", "High", "app") != Flag("high", "High", "range")


# --- Data quality --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "unit"),
    [
        ("spo2", "101", "%"),
        ("spo2", "-1", "%"),
        ("weight", "0", "kg"),
        ("height", "-3", "cm"),
        ("hr", "0", "/min"),
        ("hr", "301", "/min"),
        ("rr", "101", "/min"),
        ("temp", "24.9", "Cel"),
        ("temp", "45.1", "Cel"),
        ("temp", "114", "[degF]"),
        ("sys", "301", "mm[Hg]"),
        ("egfr", "-1", "mL/min/{1.73_m2}"),
    ],
)
def test_it_warns_about_impossible_values(key, value, unit):
    assert implausible(m(key), D(value), unit)


@pytest.mark.parametrize(
    ("key", "value", "unit"),
    [
        ("spo2", "100", "%"),
        ("weight", "0.6", "kg"),
        ("hr", "250", "/min"),
        ("temp", "33", "Cel"),
        ("temp", "112", "[degF]"),
        ("egfr", "0", "mL/min/{1.73_m2}"),
        ("creatinine", "40", "mg/dL"),
    ],
)
def test_it_keeps_the_limits_narrow(key, value, unit):
    assert implausible(m(key), D(value), unit) is None


def test_it_says_what_is_impossible():
    assert implausible(m("spo2"), D("101"), "%") == "SpO₂ above 100 % is not possible: check the device"
    assert "0 kg" in implausible(m("weight"), D(0), "kg")
    assert implausible(None, D(-5), "mg/dL") is None


def test_it_warns_about_a_systolic_not_above_the_diastolic():
    assert implausible_bp(D(80), D(90))
    assert implausible_bp(D(90), D(90))
    assert implausible_bp(D(310), D(90))
    assert implausible_bp(D(120), D(80)) is None
    assert implausible_bp(None, D(80)) is None


# --- Names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fsn", "shown"),
    [
        ("Diabetes mellitus type 2 (disorder)", "Diabetes mellitus type 2"),
        ("Chronic kidney disease stage 2 (disorder)", "Chronic kidney disease stage 2"),
        ("Encounter for check up (procedure)", "Encounter for check up"),
        ("Body mass index 30+ - obesity (finding)", "Body mass index 30+ - obesity"),
        ("Full-time employment (person)", "Full-time employment"),
        ("Medication review due (situation)", "Medication review due"),
        ("Heart rate (observable entity)", "Heart rate"),
        ("Fracture of radius (left)", "Fracture of radius (left)"),
        ("Hypertension (disorder) in pregnancy", "Hypertension (disorder) in pregnancy"),
        ("Asthma", "Asthma"),
    ],
)
def test_it_strips_only_a_trailing_snomed_semantic_tag(fsn, shown):
    assert strip_semantic_tag(fsn) == shown


def test_it_names_a_known_measure_briefly_with_the_full_name_for_hover():
    long = "Leukocytes [#/volume] in Blood by Automated count"
    assert clinical_name(None, [("http://loinc.org", "6690-2", long)]) == ("WBC", long)
    assert clinical_name("Heart rate", [("http://loinc.org", "8867-4", "Heart rate")]) == ("Heart rate", "")
    creat = "Creatinine [Mass/volume] in Serum or Plasma"
    assert clinical_name("Creatinine", [("http://loinc.org", "2160-0", creat)]) == ("Creatinine", creat)


def test_it_prefers_the_concept_text_then_the_preferred_systems_display():
    snomed = ("http://snomed.info/sct", "44054006", "Diabetes mellitus type 2 (disorder)")
    icd = ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9", "Type 2 diabetes mellitus without complications")
    assert clinical_name("Type 2 diabetes", [snomed, icd])[0] == "Type 2 diabetes"
    short, full = clinical_name(None, [icd, snomed])
    assert short == "Diabetes mellitus type 2"  # SNOMED CT before ICD-10-CM
    assert full == "Type 2 diabetes mellitus without complications"  # the longest text sent
    assert clinical_name(None, [icd]) == ("Type 2 diabetes mellitus without complications", "")
    assert clinical_name(None, [("urn:local", "X1", None)]) == ("X1", "")
    assert clinical_name("", []) == ("", "")


@pytest.mark.parametrize(
    ("code", "display", "shown"),
    [
        ("AMB", None, "Ambulatory"),
        ("AMB", "AMB", "Ambulatory"),
        ("IMP", None, "Inpatient"),
        ("EMER", "", "Emergency"),
        ("HH", None, "Home health"),
        ("VR", None, "Virtual"),
        ("OBSENC", None, "Observation"),
        ("SS", None, "Short stay"),
        ("ACUTE", None, "Inpatient (acute)"),
        ("NONAC", None, "Inpatient (non-acute)"),
        ("PRENC", None, "Pre-admission"),
        ("AMB", "ambulatory", "Ambulatory"),
        ("IMP", "inpatient encounter", "Inpatient encounter"),
        ("XYZ", None, "XYZ"),
    ],
)
def test_it_names_the_encounter_class(code, display, shown):
    system = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    assert encounter_class_name(system, code, display) == shown


def test_it_does_not_read_another_systems_code_as_an_actcode():
    assert encounter_class_name("urn:local:classes", "HH", None) == "HH"


# --- Time ----------------------------------------------------------------------------------

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "shown"),
    [
        (NOW - timedelta(hours=2), "today"),
        (NOW - timedelta(days=1), "yesterday"),
        (NOW - timedelta(days=3), "3 days ago"),
        (NOW - timedelta(days=13), "13 days ago"),
        (NOW - timedelta(days=35), "5 weeks ago"),
        (datetime(2023, 9, 10, tzinfo=UTC), "9 months ago"),
        (date(2022, 7, 1), "23 months ago"),
        (date(2020, 3, 1), "4 years ago"),
        (NOW + timedelta(days=2), "in the future"),
    ],
)
def test_it_says_how_long_ago(when, shown):
    assert age_text(when, NOW) == shown


def test_it_counts_days_in_the_apps_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    late_evening = datetime(2024, 6, 15, 2, 0, tzinfo=UTC)  # 14 June, 22:00 in New York
    assert age_text(late_evening, NOW) == "yesterday"


def test_it_marks_values_older_than_the_window_as_stale(settings):
    assert not is_stale(NOW - timedelta(days=365), NOW, "vital")
    assert is_stale(NOW - timedelta(days=366), NOW, "vital")
    assert not is_stale(NOW - timedelta(days=365), NOW, "lab")
    assert is_stale(NOW - timedelta(days=366), NOW, "lab")
    settings.CLINICAL_STALE_LABS_DAYS = 730
    assert not is_stale(NOW - timedelta(days=700), NOW, "lab")
    assert is_stale(NOW - timedelta(days=700), NOW, "vital")


@pytest.mark.parametrize(
    ("latest", "previous", "key", "shown"),
    [
        ("2.2721891592574606", "1.92", "creatinine", "↑ 0.35"),
        ("37", "49", "egfr", "↓ 12"),
        ("80.12", "80.14", "weight", "no change"),  # both shown as 80.1
        ("80.16", "80.14", "weight", "↑ 0.1"),  # 80.2 - 80.1: what the screen shows
        ("5.1", "4.85", "potassium", "↑ 0.2"),  # 5.1 - 4.9
        ("120", "1E+2", "hr", "↑ 20"),
    ],
)
def test_it_shows_the_change_between_the_displayed_values(latest, previous, key, shown):
    assert change_text(D(latest), D(previous), m(key)) == shown


# --- Dates and the time zone ---------------------------------------------------------------


def test_it_shows_problem_dates_without_clock_times(settings):
    settings.TIME_ZONE = "America/New_York"
    assert format_date_only(When.parse("2024-03-12T02:05:00Z")) == "11 Mar 2024"
    assert format_when(When.parse("2024-03-12T02:05:00Z")) == "11 Mar 2024 22:05"


def test_a_changed_time_zone_is_never_read_from_remembered_texts(settings):
    moment = When.parse("2024-03-12T02:05:00Z")
    settings.TIME_ZONE = "UTC"
    assert format_when(moment) == "12 Mar 2024 02:05"
    settings.TIME_ZONE = "Asia/Tokyo"
    assert format_when(moment) == "12 Mar 2024 11:05"
    # The same instant sent with another offset reads the same; a date is not a midnight time.
    assert format_when(When.parse("2024-03-12T04:05:00+02:00")) == "12 Mar 2024 11:05"
    assert format_when(When.parse("2024-03-12")) == "12 Mar 2024"


@pytest.mark.parametrize(
    ("raw", "shown"), [("2004", "2004"), ("2004-03", "Mar 2004"), ("2004-03-07", "7 Mar 2004")]
)
def test_it_keeps_partial_dates_at_their_precision(raw, shown):
    assert format_date_only(When.parse(raw)) == shown
    assert format_when(When.parse(raw)) == shown
    assert format_date_only(None) == "Date not recorded"


@pytest.mark.parametrize(
    ("zone", "moment", "label"),
    [
        ("UTC", NOW, "UTC"),
        ("Europe/Berlin", datetime(2024, 1, 15, tzinfo=UTC), "CET"),
        ("Europe/Berlin", NOW, "CEST"),
        ("America/New_York", datetime(2024, 1, 15, tzinfo=UTC), "EST"),
        ("Europe/Istanbul", NOW, "UTC+03"),
    ],
)
def test_it_names_the_time_zone_once_per_page(settings, zone, moment, label):
    settings.TIME_ZONE = zone
    assert zone_label(moment) == label
    assert zone_label()  # now, in the configured zone


# --- Settings ------------------------------------------------------------------------------


def test_it_exports_one_api_from_one_module():
    for name in display.__all__:
        assert hasattr(display, name), name


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CLINICAL_HR_RANGE", "100,50", "low < high"),
        ("CLINICAL_HR_RANGE", "50", "2 comma-separated positive numbers"),
        ("CLINICAL_SPO2_LOW", "abc", "a positive number"),
        ("CLINICAL_SPO2_LOW", "101", "at most 100"),
        ("CLINICAL_FEVER_C", "34", "below CLINICAL_FEVER_C"),
        ("CLINICAL_BP_VERY_HIGH", "130,120", "above CLINICAL_BP_HIGH"),
        ("CLINICAL_STALE_LABS_DAYS", "0", "at least 1"),
    ],
)
def test_it_refuses_to_start_with_a_bad_cut_off(monkeypatch, name, value, message):
    import importlib.util

    import smartapp.settings as loaded

    monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_under_test", loaded.__file__)
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImproperlyConfigured, match=message):
        spec.loader.exec_module(module)
