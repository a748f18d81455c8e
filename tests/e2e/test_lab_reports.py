"""Labs grouped by the EHR's reports, end to end against the sandbox; categories without them."""

from __future__ import annotations

import re

import pytest

from smartapp.models import DEFAULT_EHR_LAUNCH_SCOPE
from tests.e2e.test_dashboard_data import visible_text

pytestmark = pytest.mark.e2e

# What registrations made before lab reports were a default ask for.
OLD_EHR_LAUNCH_SCOPE = DEFAULT_EHR_LAUNCH_SCOPE.replace(" patient/DiagnosticReport.rs", "")
CATEGORY_CAPTIONS = ["Kidney", "Electrolytes", "Chemistry", "Diabetes", "Hematology", "Liver"]


def _captions(html: str) -> list[str]:
    """The lab tables' titles, in page order."""
    labs = html[html.index('id="panel-labs"') : html.index("</section>", html.index('id="panel-labs"'))]
    title = r'<table class="data labs">\s*<caption><span class="group-title"[^>]*>([^<]+)</span>'
    return re.findall(title, labs)


@pytest.fixture
def registered_scope(stack):
    """Set the registered EHR's EHR-launch scopes for one test, then put the default back."""

    def set_scope(scope: str) -> None:
        stack.app.manage(
            "register_ehr", "--name", "Sandbox EHR", "--iss", stack.sandbox.fhir_base,
            "--client-id", stack.client_id, "--scope", scope,
        )  # fmt: skip

    yield set_scope
    set_scope(DEFAULT_EHR_LAUNCH_SCOPE)


def test_an_ehr_launch_shows_pat_ehrstyles_labs_grouped_by_report(browser, stack):
    page = browser.ehr_launch(patient="pat-ehrstyle")
    assert page.status_code == 200
    captions = _captions(page.text)
    # Clinical order of the members (kidney, electrolytes, diabetes, blood count, liver), then the
    # reports of tests the app does not know, then categories for results in no report.
    assert captions[:5] == [
        "Basic Metabolic Panel",
        "Potassium",
        "Hemoglobin A1C",
        "CBC with differential",  # LOINC long name in coding.display only, shortened
        "Hepatic function panel",
    ]
    # Equal rank (tests the app does not know): the newer report first; the CRPs are in none.
    assert captions[5:] == ["Troponin I", "Urinalysis (dipstick)", "SARS-CoV-2 PCR", "Other"]
    text = visible_text(page.text)
    assert "Basic Metabolic Panel" in text and "(amended)" in text and "(preliminary)" in text
    assert "Critical potassium 6.8 mmol/L called to and read back by RN J. Ortiz." in text
    # The absolute reference of the troponin report named the troponin: it is in that group.
    troponin = page.text.index(">Troponin I</span>")
    assert "<th scope=\"row\"" in page.text[troponin : troponin + 3000]
    assert "Peripheral Smear, Pathologist Review" in text and "text report — open it in the EHR" in text
    assert "alert('report')" not in page.text and "mild anisocytosis.</p>" not in page.text
    assert "Not authorized" not in text and "could not" not in text.lower()


def test_a_registration_without_the_report_scope_groups_by_category_with_no_error(
    browser, stack, registered_scope
):
    registered_scope(OLD_EHR_LAUNCH_SCOPE)
    page = browser.ehr_launch(patient="pat-ehrstyle")
    assert page.status_code == 200
    assert _captions(page.text) == [*CATEGORY_CAPTIONS, "Other"]
    text = visible_text(page.text)
    assert "Basic Metabolic Panel" not in text and "Reports sent as text" not in text
    assert "Not authorized" not in text and "DiagnosticReport" not in text
    assert "Potassium" in text and "6.8" in text  # the labs themselves are all there


@pytest.mark.parametrize("how", ["refused at consent", "failing"])
def test_when_the_ehr_refuses_or_fails_the_reports_the_labs_are_grouped_by_category(browser, stack, how):
    if how == "failing":
        stack.sandbox.set_faults(stack.client_id, resource_type="DiagnosticReport", fhir_status=500)
        try:
            page = browser.standalone_launch(patient="pat-ehrstyle")
        finally:
            stack.sandbox.reset_faults(stack.client_id)
    else:
        page = browser.standalone_launch(patient="pat-ehrstyle", untick=("patient/DiagnosticReport.rs",))
    assert page.status_code == 200
    assert _captions(page.text) == [*CATEGORY_CAPTIONS, "Other"]
    text = visible_text(page.text)
    assert "Basic Metabolic Panel" not in text
    assert "Not authorized" not in text and "did not send" not in text and "Could not" not in text
    assert "Potassium" in text and "Troponin I" in text
