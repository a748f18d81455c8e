"""The real-world-shaped patients (sandbox/corpus.py): valid FHIR R4, each shape really there."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pytest
from fhir.resources.R4B import get_fhir_model_class

from sandbox import corpus, synthetic

ANCHOR = date(2026, 11, 29)
NOW = datetime(2026, 11, 29, tzinfo=UTC)
LOINC = "http://loinc.org"


@cache
def _all() -> tuple[dict, ...]:
    return tuple(synthetic.generate(20250115, ANCHOR))


def _chart(pid: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {
        "Patient": [], "Encounter": [], "Observation": [], "Condition": [], "DiagnosticReport": []
    }  # fmt: skip
    for r in _all():
        if r["id"] == pid or r.get("subject", {}).get("reference") == f"Patient/{pid}":
            out[r["resourceType"]].append(r)
    return out


def _loinc(obs: dict) -> set[str]:
    return {c["code"] for c in obs["code"].get("coding", []) if c["system"] == LOINC}


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _by_code(chart: dict, code: str) -> list[dict]:
    return sorted(
        (o for o in chart["Observation"] if code in _loinc(o)), key=lambda o: _when(o["effectiveDateTime"])
    )


def _significant_digits(value: float) -> int:
    return len(repr(value).replace(".", "").replace("-", "").lstrip("0"))


@pytest.mark.parametrize("pid", list(corpus.PATIENTS))
def test_it_gives_every_corpus_patient_a_valid_complete_chart(pid):
    chart = _chart(pid)
    for resources in chart.values():
        for res in resources:
            get_fhir_model_class(res["resourceType"]).model_validate(res)
    (patient,) = chart["Patient"]
    assert any(
        c["code"] == "MR" for ident in patient["identifier"] for c in ident.get("type", {}).get("coding", [])
    )
    assert chart["Encounter"] and chart["Condition"] and chart["Observation"]
    encounters = {e["id"] for e in chart["Encounter"]}
    assert all(
        o["encounter"]["reference"].removeprefix("Encounter/") in encounters for o in chart["Observation"]
    )
    categories = {c["code"] for o in chart["Observation"] for cat in o["category"] for c in cat["coding"]}
    assert categories == {"vital-signs", "laboratory"}
    for o in chart["Observation"]:
        assert _when(o["effectiveDateTime"]) <= NOW


def test_it_ends_the_charts_with_an_in_progress_and_a_finished_encounter():
    def latest(pid: str) -> dict:
        return max(_chart(pid)["Encounter"], key=lambda e: _when(e["period"]["start"]))

    assert latest("pat-ehrstyle")["status"] == "in-progress"
    assert latest("pat-synthea")["status"] == "finished"
    assert latest("pat-child")["status"] == "finished"


def test_it_sends_synthea_values_unrounded_with_ucum_annotations():
    chart = _chart("pat-synthea")
    values = [o["valueQuantity"] for o in chart["Observation"] if "valueQuantity" in o]
    values += [c["valueQuantity"] for o in chart["Observation"] for c in o.get("component", [])]
    assert len(values) > 1500
    assert all(_significant_digits(q["value"]) >= 12 for q in values)
    units = {q["code"] for q in values}
    assert {"{score}", "mL/min/{1.73_m2}", "10*3/uL", "10*6/uL", "mL/min"} <= units
    assert all(q["unit"] == q["code"] for q in values)


def test_it_names_synthea_codes_as_the_generator_does():
    chart = _chart("pat-synthea")
    for res in chart["Observation"] + chart["Condition"]:
        assert "text" not in res["code"]
    for enc in chart["Encounter"]:
        assert enc["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
        assert "text" not in enc["type"][0]
    fsn = {c["code"]["coding"][0]["display"] for c in chart["Condition"]}
    assert "Chronic kidney disease stage 3 (disorder)" in fsn
    assert all(name.endswith(("(disorder)", "(finding)", "(situation)")) for name in fsn)
    types = {enc["type"][0]["coding"][0]["display"] for enc in chart["Encounter"]}
    assert "Encounter for check up (procedure)" in types
    displays = {c["display"] for o in chart["Observation"] for c in o["code"]["coding"]}
    assert "Leukocytes [#/volume] in Blood by Automated count" in displays
    assert "Creatinine [Mass/volume] in Serum or Plasma" in displays
    assert corpus.EGFR[1] in displays and "(CKD-EPI 2021)" in corpus.EGFR[1]
    labs = [o for o in chart["Observation"] if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert labs and not any("referenceRange" in o or "interpretation" in o for o in labs)


def test_it_gives_synthea_twenty_active_problems_and_a_few_resolved():
    statuses = Counter(c["clinicalStatus"]["coding"][0]["code"] for c in _chart("pat-synthea")["Condition"])
    assert statuses["active"] >= 20
    assert 3 <= statuses["resolved"] <= 8


def test_it_records_synthea_vitals_monthly_for_ten_years_with_one_stale_temperature():
    chart = _chart("pat-synthea")
    for code in ("85354-9", "8867-4", "9279-1", "59408-5", "29463-7", "8302-2", "39156-5", "72514-3"):
        series = _by_code(chart, code)
        assert len(series) == 120, code
        span = _when(series[-1]["effectiveDateTime"]) - _when(series[0]["effectiveDateTime"])
        assert span > timedelta(days=9.8 * 365)
    (temperature,) = _by_code(chart, "8310-5")
    assert NOW - _when(temperature["effectiveDateTime"]) > timedelta(days=9.9 * 365)


def test_it_shows_synthea_kidney_function_falling_in_two_separate_series():
    chart = _chart("pat-synthea")
    egfr = _by_code(chart, "98979-8")
    creatinine = _by_code(chart, "2160-0")
    assert 20 <= len(egfr) == len(creatinine)
    assert round(egfr[0]["valueQuantity"]["value"]) == 142
    assert round(egfr[-1]["valueQuantity"]["value"]) == 37
    assert creatinine[-1]["valueQuantity"]["value"] > 2 * creatinine[0]["valueQuantity"]["value"]
    assert {o["valueQuantity"]["code"] for o in egfr} == {"mL/min/{1.73_m2}"}
    clearance = _by_code(chart, "2164-2")
    assert len(clearance) >= 5
    assert {o["valueQuantity"]["code"] for o in clearance} == {"mL/min"}
    egfr_days = {o["effectiveDateTime"] for o in egfr}
    assert all(o["effectiveDateTime"] in egfr_days for o in clearance)  # same draws, other measure
    for code in ("4548-4", "2093-3", "3016-3", "6690-2", "789-8"):
        assert _by_code(chart, code), code


def _values(observations: list[dict]) -> list:
    return [o["valueQuantity"]["value"] for o in observations if "valueQuantity" in o]


def test_it_sends_ehr_style_blood_pressure_split_and_as_a_panel():
    chart = _chart("pat-ehrstyle")
    systolic, diastolic, panels = (_by_code(chart, c) for c in ("8480-6", "8462-4", "85354-9"))
    assert systolic and len(systolic) == len(diastolic)
    assert {o["effectiveDateTime"] for o in systolic} == {o["effectiveDateTime"] for o in diastolic}
    assert panels and not {o["effectiveDateTime"] for o in systolic} & {
        o["effectiveDateTime"] for o in panels
    }
    readings = [
        (s["valueQuantity"]["value"], d["valueQuantity"]["value"]) for s, d in zip(systolic, diastolic)
    ]
    for panel in panels:
        by_code = {next(iter(_loinc(c))): c["valueQuantity"]["value"] for c in panel["component"]}
        readings.append((by_code["8480-6"], by_code["8462-4"]))
    assert any(s >= 180 and d >= 120 for s, d in readings)
    assert sum(1 for s, d in readings if 140 <= s < 180 or 90 <= d < 120) >= 5


def test_it_mixes_units_within_ehr_style_series():
    chart = _chart("pat-ehrstyle")
    for code, units in (
        ("29463-7", {"[lb_av]", "kg"}),
        ("8302-2", {"[in_i]", "cm"}),
        ("8310-5", {"[degF]", "Cel"}),
    ):
        assert {o["valueQuantity"]["code"] for o in _by_code(chart, code)} == units, code
    spo2 = _by_code(chart, "59408-5")
    assert {101, 94.6} <= set(_values(spo2))
    with_oxygen = [o for o in spo2 if o.get("component")]
    assert with_oxygen
    assert {next(iter(_loinc(c))) for o in with_oxygen for c in o["component"]} == {"3151-8", "3150-0"}


def test_it_sends_ehr_style_lab_values_flags_and_ranges():
    chart = _chart("pat-ehrstyle")
    labs = [o for o in chart["Observation"] if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert {o["valueString"] for o in labs if "valueString" in o} >= {"Negative", "<0.1"}
    coded = {
        c["display"] for o in labs if "valueCodeableConcept" in o for c in o["valueCodeableConcept"]["coding"]
    }
    assert coded == {"Positive", "Not detected"}
    assert {o["valueQuantity"].get("comparator") for o in labs if "valueQuantity" in o} >= {"<", ">="}
    flags = {o["interpretation"][0]["coding"][0]["code"] for o in labs if "interpretation" in o}
    assert {"HH", "LL", "H", "L", "A", "N"} <= flags
    potassium = _by_code(chart, "2823-3")
    assert any(o["valueQuantity"]["value"] == 6.8 and o["interpretation"][0]["coding"][0]["code"] == "HH"
               for o in potassium if "valueQuantity" in o)  # fmt: skip
    assert any("interpretation" in o and "referenceRange" not in o for o in labs)
    ranges = [r for o in labs for r in o.get("referenceRange", [])]
    assert any(set(r) == {"text"} for r in ranges)
    applies = {c["system"] for r in ranges for cc in r.get("appliesTo", []) for c in cc["coding"]}
    assert applies == {
        "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender",
        "http://snomed.info/sct",
    }
    assert any("age" in r and "appliesTo" not in r for r in ranges)


def test_it_gives_ehr_style_results_every_status_and_a_cancelled_newest():
    chart = _chart("pat-ehrstyle")
    labs = [o for o in chart["Observation"] if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert {o["status"] for o in labs} == {
        "final", "amended", "corrected", "preliminary", "cancelled", "entered-in-error"
    }  # fmt: skip
    (error,) = [o for o in labs if o["status"] == "entered-in-error"]
    assert error["valueQuantity"]["value"] == 1020
    newest_potassium = _by_code(chart, "2823-3")[-1]
    assert newest_potassium["status"] == "cancelled" and "valueQuantity" not in newest_potassium
    newest_glucose = _by_code(chart, "2345-7")[-1]
    assert newest_glucose["status"] == "entered-in-error"


def _lab_reports(pid: str) -> list[dict]:
    return [
        r for r in _chart(pid)["DiagnosticReport"]
        if any(c["code"] == "LAB" for cat in r["category"] for c in cat["coding"])
    ]  # fmt: skip


def _result_ids(report: dict) -> list[str]:
    return [r["reference"].rsplit("/", 1)[-1] for r in report.get("result", [])]


def test_it_gives_ehr_style_reports_the_awkward_shapes_of_real_systems():
    chart = _chart("pat-ehrstyle")
    reports = {r["id"]: r for r in _lab_reports("pat-ehrstyle")}
    observations = {o["id"]: o for o in chart["Observation"]}
    prelim, amended = reports["eDR-admit-bmp-prelim"], reports["eDR-admit-bmp"]
    assert (prelim["status"], amended["status"]) == ("preliminary", "amended")
    assert prelim["effectiveDateTime"] == amended["effectiveDateTime"]  # one draw, reported twice
    assert prelim["issued"] < amended["issued"]
    assert _result_ids(prelim) == _result_ids(amended)[:-1]
    assert _result_ids(amended)[-1] not in observations  # a reference to nothing
    (troponin,) = reports["eDR-admit-troponin"]["result"]
    assert troponin["reference"].startswith("{fhir-base}/Observation/")  # made absolute when served
    loinc_only = [r for r in reports.values() if "text" not in r["code"]]
    assert loinc_only and all(c["system"] == LOINC for r in loinc_only for c in r["code"]["coding"])
    smear = reports["eDR-admit-smear"]
    assert "result" not in smear and smear["conclusion"]
    assert smear["presentedForm"][0]["contentType"] == "text/html"
    assert reports["eDR-admit-k-cancelled"]["status"] == "cancelled"
    # Every other reference names one of the patient's lab results.
    named = {i for r in reports.values() for i in _result_ids(r)} - {_result_ids(amended)[-1]}
    named -= {troponin["reference"].rsplit("/", 1)[-1]}
    assert named and all(observations[i]["category"][0]["coding"][0]["code"] == "laboratory" for i in named)


def test_it_gives_synthea_reports_as_the_generator_does_and_chen_tidy_ones():
    synthea = _lab_reports("pat-synthea")
    observations = {o["id"] for o in _chart("pat-synthea")["Observation"]}
    assert {r["code"]["coding"][0]["code"] for r in synthea} == {"58410-2", "51990-0", "24323-8", "57698-3"}
    assert all(r["code"]["text"] == r["code"]["coding"][0]["display"] for r in synthea)  # the long name
    assert all(r["result"][0]["reference"].startswith("Observation/") for r in synthea)
    assert all(set(_result_ids(r)) <= observations for r in synthea)
    (note,) = [r for r in _chart("pat-synthea")["DiagnosticReport"] if r not in synthea]
    assert note["presentedForm"] and "result" not in note
    chen = _lab_reports("pat-chen")
    chen_obs = {o["id"] for o in _all() if o["resourceType"] == "Observation"}
    assert chen and all(r["code"]["text"] and set(_result_ids(r)) <= chen_obs for r in chen)
    # pat-garcia has labs and no reports: the dashboard's category grouping is still exercised.
    garcia = [r for r in _all() if r.get("subject", {}).get("reference") == "Patient/pat-garcia"]
    assert any(r["resourceType"] == "Observation" for r in garcia)
    assert not any(r["resourceType"] == "DiagnosticReport" for r in garcia)


def test_it_gives_ehr_style_conditions_partial_and_odd_onsets():
    conditions = _chart("pat-ehrstyle")["Condition"]
    onsets = {k: c[k] for c in conditions for k in c if k.startswith("onset")}
    assert {c.get("onsetDateTime") for c in conditions} >= {"2004", "2011-03"}
    assert onsets["onsetAge"] == {
        "value": 45,
        "unit": "years",
        "system": "http://unitsofmeasure.org",
        "code": "a",
    }
    assert onsets["onsetString"] == "childhood"
    assert set(onsets["onsetPeriod"]) == {"start", "end"}
    categories = Counter(c["category"][0]["coding"][0]["code"] for c in conditions)
    assert categories["problem-list-item"] >= 4 and categories["encounter-diagnosis"] >= 3
    assert all(
        c["code"]["text"] and c["code"]["coding"][0]["system"] == "http://snomed.info/sct" for c in conditions
    )


def test_it_gives_a_four_year_old_child_measures_adult_rules_misread():
    chart = _chart("pat-child")
    birth = date.fromisoformat(chart["Patient"][0]["birthDate"])
    assert 4 <= (ANCHOR - birth).days / 365.25 < 4.2
    weights = _values(_by_code(chart, "29463-7"))
    assert any(len(repr(w).split(".")[1]) == 3 for w in weights)  # to the gram
    for code in ("8302-2", "9843-4", "39156-5", "8310-5", "59408-5"):
        assert _by_code(chart, code), code
    latest_visit = max(chart["Encounter"], key=lambda e: e["period"]["start"])["id"]
    latest = {
        next(iter(_loinc(o))): o["valueQuantity"]["value"]
        for o in chart["Observation"]
        if o["encounter"]["reference"] == f"Encounter/{latest_visit}" and "valueQuantity" in o
    }
    assert 100 <= latest["8867-4"] <= 120 and 22 <= latest["9279-1"] <= 30
    assert "9843-4" in latest


def test_it_leaves_the_older_child_in_place():
    (okafor,) = _chart("pat-okafor")["Patient"]
    assert okafor["birthDate"] == "2015-11-02"
