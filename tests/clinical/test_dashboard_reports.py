"""The dashboard's lab reports query: in the wave when granted, never at the labs' expense."""

from __future__ import annotations

import logging
from datetime import date

import pytest
import requests
import responses
from django.urls import reverse
from responses import matchers

from clinical import dashboard, fhir
from clinical.dashboard import build_dashboard
from clinical.reports import LAB_CATEGORY
from smartapp.models import AuditEvent
from tests.clinical.conftest import ALL_SCOPES, BASE, TOKEN, load
from tests.clinical.helpers import register_all

TODAY = date(2024, 3, 12)
WITH_REPORTS = ALL_SCOPES + " patient/DiagnosticReport.rs"
REPORTS_URL = f"{BASE}/DiagnosticReport"


def build(scopes=WITH_REPORTS, **kwargs):
    client = fhir.FhirClient(BASE, TOKEN, session=requests.Session())
    granted = None if scopes is None else set(scopes.split())
    return build_dashboard(client, "pat-1", "enc-1", granted, today=TODAY, **kwargs)


def layout(panel) -> list[tuple[str, list[str]]]:
    return [(g.title, [m.label for m in g.measures]) for g in panel.groups]


CATEGORY_LAYOUT = [
    ("Electrolytes", ["Potassium"]),
    ("Chemistry", ["Glucose"]),
    ("Diabetes", ["HbA1c"]),
    ("Hematology", ["Hemoglobin"]),
    ("Other", ["Urine culture", "Service comment"]),
]


def reports_calls():
    return [c for c in responses.calls if c.request.url.startswith(REPORTS_URL)]


@responses.activate
def test_it_groups_labs_by_the_reports_asked_for_in_the_same_wave():
    register_all(responses)
    query = {"patient": "pat-1", "category": LAB_CATEGORY, "_sort": "-date", "_count": "100"}
    responses.get(REPORTS_URL, json=load("reports"), match=[matchers.query_param_matcher(query)])
    d = build()
    # Report and category groups in one clinical order: chemistry, diabetes, hematology, other.
    assert layout(d.labs) == [
        ("Basic metabolic panel", ["Potassium", "Glucose"]),  # a relative and an absolute reference
        ("Diabetes", ["HbA1c"]),
        ("CBC (no differential)", ["Hemoglobin"]),
        ("Other", ["Urine culture", "Service comment"]),
    ]
    bmp, cbc = d.labs.groups[0].report, d.labs.groups[2].report
    assert bmp.status_note == "amended" and bmp.full_name == "Basic metabolic 2000 panel - Serum or Plasma"
    assert cbc.status_note == "preliminary"
    assert [r.title for r in d.labs.text_reports] == ["Peripheral smear, pathologist review"]
    assert d.labs.state.ok and d.labs.state.warnings == ()  # another patient's report: dropped quietly
    audited = {(a.resource_type, a.interaction, a.outcome) for a in d.accesses}
    assert ("DiagnosticReport", "search", "ok") in audited
    assert len(reports_calls()) == 1


@responses.activate
def test_without_the_scope_it_asks_nothing_and_groups_by_category():
    register_all(responses)
    responses.get(REPORTS_URL, json=load("reports"))
    d = build(ALL_SCOPES)  # an existing registration: no patient/DiagnosticReport.rs
    assert reports_calls() == []
    assert layout(d.labs) == CATEGORY_LAYOUT and d.labs.text_reports == ()
    assert d.labs.state.ok and d.labs.state.message == ""
    assert "DiagnosticReport" not in {a.resource_type for a in d.accesses}


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 403, "json": {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "No PDFs"}]}},
        {"status": 500},
        {"body": requests.exceptions.ReadTimeout()},
        {"status": 200, "body": "{not json"},
        {"status": 200, "json": {"resourceType": "Patient", "id": "pat-1"}},
    ],
    ids=["refused", "server-error", "timeout", "not-json", "not-a-bundle"],
)
@responses.activate
def test_a_failing_report_query_leaves_the_labs_as_they_were(answer, caplog):
    register_all(responses)
    responses.get(REPORTS_URL, **answer)
    with caplog.at_level(logging.INFO, logger="clinical"):
        d = build()
    assert layout(d.labs) == CATEGORY_LAYOUT
    assert d.labs.state.ok and d.labs.state.message == "" and d.labs.state.warnings == ()
    access = next(a for a in d.accesses if a.resource_type == "DiagnosticReport")
    assert access.outcome in ("denied", "error", "timeout")  # the audit trail still has it
    logged = [r for r in caplog.records if "lab reports not loaded" in r.getMessage()]
    assert len(logged) == 1 and "grouped by category" in logged[0].getMessage()
    assert TOKEN not in caplog.text and "pat-1" not in caplog.text and "No PDFs" not in caplog.text


@responses.activate
def test_a_server_refusing_the_sort_is_asked_again_without_it():
    register_all(responses)
    base = {"patient": "pat-1", "category": LAB_CATEGORY, "_count": "100"}
    refused = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "_sort is not supported"}]}
    sorted_query = [matchers.query_param_matcher({**base, "_sort": "-date"})]
    responses.get(REPORTS_URL, status=400, json=refused, match=sorted_query)
    responses.get(REPORTS_URL, json=load("reports"), match=[matchers.query_param_matcher(base)])
    d = build()
    assert d.labs.groups[0].title == "Basic metabolic panel"  # ordered here, not by the server
    outcomes = [a.outcome for a in d.accesses if a.resource_type == "DiagnosticReport"]
    assert sorted(outcomes) == ["error", "ok"] and len(reports_calls()) == 2


@responses.activate
def test_a_bug_while_grouping_by_report_still_shows_the_labs(monkeypatch, caplog):
    register_all(responses)
    responses.get(REPORTS_URL, json=load("reports"))

    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(dashboard, "lab_reports", broken)
    with caplog.at_level(logging.ERROR, logger="clinical"):
        d = build()
    assert layout(d.labs) == CATEGORY_LAYOUT and d.labs.state.ok
    assert "lab report grouping failed (KeyError)" in caplog.text


@responses.activate
def test_the_reports_are_not_asked_for_when_the_labs_themselves_are_not_granted():
    register_all(responses)
    responses.get(REPORTS_URL, json=load("reports"))
    d = build("patient/Patient.rs patient/Condition.rs patient/DiagnosticReport.rs")
    assert d.labs.state.status == "unauthorized" and reports_calls() == []


@responses.activate
def test_a_granular_report_grant_is_honoured():
    register_all(responses)
    responses.get(REPORTS_URL, json=load("reports"))
    d = build(ALL_SCOPES + f" patient/DiagnosticReport.rs?category={LAB_CATEGORY}")
    assert d.labs.groups[0].title == "Basic metabolic panel"
    assert "v2-0074%7CLAB" in reports_calls()[0].request.url
    # A grant for other categories only (imaging) does not cover lab reports: not asked, no message.
    responses.calls.reset()
    imaging = "http://terminology.hl7.org/CodeSystem/v2-0074|RAD"
    d = build(ALL_SCOPES + f" patient/DiagnosticReport.rs?category={imaging}")
    assert reports_calls() == [] and layout(d.labs) == CATEGORY_LAYOUT and d.labs.state.message == ""


@responses.activate
def test_the_labs_panel_alone_also_asks_for_the_reports():
    register_all(responses)
    responses.get(REPORTS_URL, json=load("reports"))
    d = build(panels=["labs"])
    assert d.labs.groups[0].title == "Basic metabolic panel" and len(reports_calls()) == 1


@responses.activate
def test_the_page_shows_report_groups_escaped_and_never_the_attached_document(client, make_launch, own):
    launch = make_launch(scope=WITH_REPORTS)
    own(launch)
    register_all(responses)
    responses.get(REPORTS_URL, json=load("reports"))
    response = client.get(reverse("clinical:dashboard", kwargs={"handle": launch.handle}))
    html = response.content.decode()
    assert response.status_code == 200
    long_name = "Basic metabolic 2000 panel - Serum or Plasma"
    assert f'<span class="group-title" title="{long_name}">Basic metabolic panel</span>' in html
    assert '<span class="status-note">(amended)</span>' in html
    assert "Potassium critical: called to &lt;b&gt;RN Ortiz&lt;/b&gt;." in html  # the conclusion, escaped
    assert "Peripheral smear, pathologist review" in html and "text report — open it in the EHR" in html
    assert "Full report" not in html and "alert(" not in html  # presentedForm is never rendered
    assert "Wrong chart report" not in html  # another patient's report
    assert "Basic metabolic panel: charts and all results" in html
    assert AuditEvent.objects.filter(resource_type="DiagnosticReport", interaction="search").count() == 1


@responses.activate
def test_the_page_without_reports_looks_as_before(client, make_launch, own):
    launch = make_launch()  # ALL_SCOPES: no DiagnosticReport
    own(launch)
    register_all(responses)
    html = client.get(reverse("clinical:dashboard", kwargs={"handle": launch.handle})).content.decode()
    assert '<caption><span class="group-title">Electrolytes</span></caption>' in html
    assert "Reports sent as text" not in html and "Not authorized" not in html
