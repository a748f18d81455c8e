"""Labs grouped by the lab's own reports (clinical/reports.py), else by category."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from clinical.fhir import parse_resource
from clinical.labs import build_labs
from clinical.names import report_name
from clinical.readings import Person
from clinical.reports import group_labs, observation_id, read_report

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ADULT = Person(date(1968, 9, 3), "female")
LOINC = "http://loinc.org"
BASE = "https://ehr.example.org/fhir/r4"
BMP_OLD = ("Observation/k-old", "Observation/na-old", "Observation/creat-old")
BMP_NEW = ("Observation/k-new", "Observation/na-new", "Observation/creat-new")
LAB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}


def obs(rid: str, code: str, when: str, value: float, ucum: str = "mg/dL", **extra):
    return parse_resource(
        {
            "resourceType": "Observation",
            "id": rid,
            "status": extra.pop("status", "final"),
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": "Patient/p"},
            "effectiveDateTime": when,
            "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": ucum},
            **extra,
        },
        "Observation",
    )


def report(rid: str, when: str, *refs: str, code=None, issued: str | None = None, **extra):
    data = {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": extra.pop("status", "final"),
        "category": [LAB],
        "code": code or {"text": f"Report {rid}"},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when,
        "issued": issued or when,
        "result": [{"reference": r} if r else {"display": "Potassium"} for r in refs],
        **extra,
    }
    if not refs:
        del data["result"]
    return read_report(parse_resource(data, "DiagnosticReport"), BASE)


# The patient's labs: two basic metabolic panels a month apart, a blood count, a lipid panel.
OBSERVATIONS = [
    obs("k-new", "2823-3", "2026-11-28T08:00:00Z", 4.1, "mmol/L"),
    obs("na-new", "2951-2", "2026-11-28T08:00:00Z", 139, "mmol/L"),
    obs("creat-new", "2160-0", "2026-11-28T08:00:00Z", 1.1),
    obs("k-old", "2823-3", "2026-10-28T08:00:00Z", 4.4, "mmol/L"),
    obs("na-old", "2951-2", "2026-10-28T08:00:00Z", 137, "mmol/L"),
    obs("creat-old", "2160-0", "2026-10-28T08:00:00Z", 1.0),
    obs("hgb", "718-7", "2026-11-28T08:00:00Z", 12.9, "g/dL"),
    obs("ldl", "13457-7", "2026-06-01T08:00:00Z", 131),
    obs("tsh", "3016-3", "2026-05-01T08:00:00Z", 2.1, "m[IU]/L"),
]


def labs(observations=OBSERVATIONS):
    return build_labs(observations, "", ADULT, NOW)


def layout(groups) -> list[tuple[str, list[str]]]:
    return [(g.title, [m.key for m in g.measures]) for g in groups]


def test_without_reports_labs_keep_the_category_groups():
    groups, text = group_labs(labs(), OBSERVATIONS, None)
    assert layout(groups) == [
        ("Kidney", ["creatinine"]),
        ("Electrolytes", ["sodium", "potassium"]),
        ("Lipids", ["ldl"]),
        ("Hematology", ["hemoglobin"]),
        ("Thyroid", ["tsh"]),
    ]
    assert all(g.report is None for g in groups) and text == ()
    assert group_labs(labs(), OBSERVATIONS, ())[0] == groups  # no reports at all: the same


def test_each_measure_goes_to_the_newest_report_listing_its_latest_reading():
    reports = [
        report("bmp-old", "2026-10-28T08:00:00Z", *BMP_OLD),
        report("cbc", "2026-11-28T08:00:00Z", "Observation/hgb"),
        report("bmp-new", "2026-11-28T08:00:00Z", *BMP_NEW),
        report("lipids", "2026-06-01T08:00:00Z", "Observation/ldl"),
    ]
    groups, _text = group_labs(labs(), OBSERVATIONS, reports)
    # Report groups by the clinical order of their members (not by arrival), then the rest.
    assert layout(groups) == [
        ("Report bmp-new", ["creatinine", "sodium", "potassium"]),
        ("Report lipids", ["ldl"]),
        ("Report cbc", ["hemoglobin"]),
        ("Thyroid", ["tsh"]),  # in no report: its category group, after the reports
    ]
    assert [g.report.id if g.report else None for g in groups] == ["bmp-new", "lipids", "cbc", None]
    assert len({g.key for g in groups}) == len(groups)  # chart ids stay unique


def test_a_later_amendment_of_the_same_draw_wins_over_the_preliminary_report():
    draw = "2026-11-28T08:00:00Z"
    reports = [
        report("prelim", draw, *BMP_NEW, issued="2026-11-28T09:00:00Z", status="preliminary"),
        report("amended", draw, *BMP_NEW, issued="2026-11-28T11:30:00Z", status="amended"),
    ]
    groups, _ = group_labs(labs(), OBSERVATIONS, reports)
    first = groups[0]
    assert first.report.id == "amended" and first.report.status_note == "amended"
    assert "prelim" not in [g.report.id for g in groups if g.report]  # superseded: not shown empty


def test_a_report_listing_only_an_older_reading_does_not_claim_the_measure():
    reports = [report("bmp-old", "2026-10-28T08:00:00Z", "Observation/k-old", "Observation/na-old")]
    groups, text = group_labs(labs(), OBSERVATIONS, reports)
    assert all(g.report is None for g in groups)  # the latest potassium and sodium are in no report
    assert text == ()  # its results were read: not a text report either


@pytest.mark.parametrize(
    "ref",
    [
        "Observation/k-new",
        "Observation/k-new/_history/3",
        f"{BASE}/Observation/k-new",
        "HTTPS://EHR.example.org:443/fhir/r4/Observation/k-new",
        "urn:uuid:k-new",
    ],
)
def test_it_reads_result_references_in_the_forms_servers_send(ref):
    groups, _ = group_labs(labs(), OBSERVATIONS, [report("r", "2026-11-28T08:00:00Z", ref)])
    (found,) = [g for g in groups if g.report is not None]
    assert found.report.id == "r" and [m.key for m in found.measures] == ["potassium"]


@pytest.mark.parametrize(
    "ref",
    [
        "https://other.example.org/fhir/r4/Observation/k-new",  # the same id on another server
        "http://ehr.example.org/fhir/r4/Observation/k-new",  # not the scheme of our base
        "https://ehr.example.org/fhir/Observation/k-new",  # outside the base path
        f"{BASE}/Observation/k-new?_format=json",
        "Media/k-new",  # not an Observation
        "#k-new",  # a contained resource
        "Observation?code=2823-3",  # a conditional reference
        "Observation/missing",  # no such Observation among the patient's
        None,  # a display only
    ],
)
def test_it_ignores_references_it_cannot_tie_to_the_patients_observations(ref):
    groups, _ = group_labs(labs(), OBSERVATIONS, [report("r", "2026-11-28T08:00:00Z", ref)])
    assert all(g.report is None for g in groups)


def test_a_reference_typed_as_another_resource_is_ignored():
    raw = {
        "resourceType": "DiagnosticReport",
        "id": "r",
        "status": "final",
        "code": {"text": "Panel"},
        "result": [{"reference": "Observation/k-new", "type": "DocumentReference"}],
    }
    typed = read_report(parse_resource(raw, "DiagnosticReport"), BASE)
    assert typed.results == frozenset()


def test_an_observation_of_another_patient_is_never_claimed():
    # The patient's labs never hold another patient's Observation (dashboard.only_patient drops
    # them), so a report naming one groups nothing and loses nothing.
    foreign = report("r", "2026-11-28T08:00:00Z", "Observation/other-patient")
    groups, _ = group_labs(labs(), OBSERVATIONS, [foreign])
    assert sum(len(g.measures) for g in groups) == len(labs())


def test_creatinine_and_egfr_stay_together_in_creatinines_report():
    observations = [
        *OBSERVATIONS,
        obs("egfr-new", "98979-8", "2026-11-28T08:05:00Z", 58, "mL/min/{1.73_m2}"),
    ]
    reports = [
        report("bmp", "2026-11-28T08:00:00Z", "Observation/k-new", "Observation/creat-new"),
        report("egfr", "2026-11-28T08:05:00Z", "Observation/egfr-new", code={"text": "eGFR"}),
    ]
    groups, _ = group_labs(labs(observations), observations, reports)
    assert layout(groups)[0] == ("Report bmp", ["creatinine", "egfr", "potassium"])
    assert "eGFR" not in [g.title for g in groups]
    # Only eGFR in a report: creatinine joins it.
    groups, _ = group_labs(labs(observations), observations, reports[1:])
    assert layout(groups)[0] == ("eGFR", ["creatinine", "egfr"])


def test_a_narrative_report_is_listed_as_text_and_cancelled_ones_are_not():
    narrative = report(
        "smear",
        "2026-11-27T10:00:00Z",
        code={"coding": [{"system": "urn:oid:1.2.3", "code": "PATH1", "display": "Peripheral smear review"}]},
        conclusion="Normocytic anaemia;\n no blasts seen. " + "x" * 400,
        presentedForm=[{"contentType": "text/html", "data": "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}],
    )
    cancelled = report("gone", "2026-11-27T11:00:00Z", conclusion="Specimen lost", status="cancelled")
    dangling = report("dangling", "2026-11-26T10:00:00Z", "Observation/missing", conclusion="See report")
    assert cancelled is None
    groups, text = group_labs(labs(), OBSERVATIONS, [narrative, dangling])
    assert [r.id for r in text] == ["smear", "dangling"]
    assert text[0].title == "Peripheral smear review" and text[0].narrative
    assert text[0].conclusion.startswith("Normocytic anaemia; no blasts seen.")
    assert len(text[0].conclusion) == 300 and text[0].conclusion.endswith("…")
    assert all(g.report is None for g in groups)


def test_a_report_is_dated_by_collection_then_issue_and_marked_when_not_final():
    period = report("p", "2026-11-28T08:00:00Z", status="corrected")
    assert period.when.sort_key == datetime(2026, 11, 28, 8, tzinfo=UTC) and period.status_note == "corrected"
    raw = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "X"}}
    raw["issued"] = "2026-11-28T09:00:00Z"
    undated = read_report(parse_resource(raw, "DiagnosticReport"), BASE)
    assert undated.when.sort_key == datetime(2026, 11, 28, 9, tzinfo=UTC) and undated.status_note == ""


BMP_LONG = "Basic metabolic 2000 panel - Serum or Plasma"
CMP_LONG = "Comprehensive metabolic 2000 panel - Serum or Plasma"


@pytest.mark.parametrize(
    ("text", "coding", "title"),
    [
        ("Basic Metabolic Panel", ("24321-2", BMP_LONG), "Basic Metabolic Panel"),  # the EHR's own name
        (None, ("24321-2", BMP_LONG), "Basic metabolic panel"),
        (BMP_LONG, ("24321-2", BMP_LONG), "Basic metabolic panel"),  # Synthea: text = the long name
        ("Lipid Panel", ("57698-3", "Lipid Panel"), "Lipid panel"),
        (None, ("51990-0", "Basic metabolic panel - Blood"), "Basic metabolic panel"),
        (None, ("24323-8", CMP_LONG), "Comprehensive metabolic panel"),
        (None, ("58410-2", "CBC panel - Blood by Automated count"), "CBC"),
        (None, ("57698-3", "Lipid panel with direct LDL - Serum or Plasma"), "Lipid panel"),
        (None, ("24357-6", "Urinalysis macro (dipstick) panel - Urine"), "Urinalysis (dipstick)"),
        (None, ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), "HbA1c"),  # a one-test report
        # Not in the table: the panel year and the specimen dropped.
        (None, ("24326-1", "Electrolytes 1998 panel - Serum or Plasma"), "Electrolytes panel"),
    ],
)
def test_report_names_are_short_clinical_names(text, coding, title):
    short, full = report_name(text, [(LOINC, *coding)])
    assert short == title and full in ("", coding[1])


def test_a_snomed_report_name_loses_its_semantic_tag():
    short, full = report_name(None, [("http://snomed.info/sct", "1", "Bone marrow examination (procedure)")])
    assert (short, full) == ("Bone marrow examination", "Bone marrow examination (procedure)")
    assert observation_id("urn:uuid:not a uuid!", BASE) == ""


def test_report_and_category_groups_share_one_clinical_order():
    # Kidney (no report) before the lipid report; the lipid report before Thyroid (no report).
    lipids = report("lipids", "2026-06-01T08:00:00Z", "Observation/ldl")
    groups, _ = group_labs(labs(), OBSERVATIONS, [lipids])
    titles = [g.title for g in groups]
    assert titles.index("Kidney") < titles.index("Report lipids") < titles.index("Thyroid")


def test_a_result_the_report_lists_but_the_app_never_received_is_said():
    bmp = report("bmp", "2026-11-28T08:00:00Z", *BMP_NEW)
    data = (*bmp.listed, ("no-such-obs", "Chloride"), ("gone", ""))
    groups, _ = group_labs(labs(), OBSERVATIONS, [replace(bmp, listed=data)])
    (home,) = [g for g in groups if g.report is not None]
    assert home.not_received == ("Chloride", "a result not named")
    groups, _ = group_labs(labs(), OBSERVATIONS, [bmp])
    assert all(g.not_received == () for g in groups)  # everything it lists was received
