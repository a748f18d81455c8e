"""The sandbox's consent page says what each scope means, beside the raw scope, grouped by resource."""

from __future__ import annotations

import html
import re

import pytest
import requests

from sandbox.scopes import describe, describe_all
from tests.sandbox.flows import APP, auth_params, csrf, login

CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item"


@pytest.mark.parametrize(
    ("scope", "group", "sentence"),
    [
        ("patient/Observation.rs", "Vital signs, lab results and other observations (Observation)",
         "Read and search this patient's observations"),
        ("patient/Observation.read", "Vital signs, lab results and other observations (Observation)",
         "Read and search this patient's observations"),  # SMART v1 reads as v2
        ("user/Condition.rs", "Problems and diagnoses (Condition)",
         "Read and search problems and diagnoses of any patient you may see in the EHR"),
        (f"patient/Condition.rs?category={CATEGORY}", "Problems and diagnoses (Condition)",
         "Read and search this patient's problems and diagnoses, only problem-list entries"),
        ("patient/*.cruds", "All clinical data",
         "Create, read, update, delete and search this patient's clinical data of every kind"),
        ("system/Encounter.s", "Visits and admissions (Encounter)",
         "Search visits and admissions of any patient, with no user signed in"),
        ("launch", "What the app opens with", "Open with the patient and encounter you have open in the EHR"),
        ("launch/patient", "What the app opens with", "Open with a patient chosen when the app starts"),
        ("openid", "Who you are", "Confirm to the app who you are (OpenID Connect sign-in)"),
        ("fhirUser", "Who you are",
         "Tell the app which user record is yours (your Practitioner or Patient record)"),
        ("offline_access", "How long the app keeps access",
         "Keep access after you sign out or close the browser, until you revoke it"),
        ("online_access", "How long the app keeps access",
         "Keep access only while you stay signed in to the EHR"),
        ("patient/Immunization.rs", "Immunization", "Read and search this patient's Immunization records"),
        ("nonsense", "Other permissions", "A permission this sandbox does not describe"),
    ],
)  # fmt: skip
def test_it_describes_a_scope_in_words(scope, group, sentence):
    assert describe(scope) == (group, sentence)


def test_it_groups_identity_context_resources_then_duration():
    scopes = ["offline_access", "patient/Condition.rs", "openid", "launch", "patient/Immunization.rs", "x"]
    groups = [g for g, _ in describe_all([*scopes, "fhirUser"])]
    assert groups == [
        "Who you are", "What the app opens with", "Problems and diagnoses (Condition)", "Immunization",
        "How long the app keeps access", "Other permissions",
    ]  # fmt: skip


@pytest.mark.e2e
def test_it_shows_words_and_raw_scopes_on_the_consent_page(sandbox):
    scope = (
        f"launch/patient openid fhirUser online_access patient/Patient.rs patient/Observation.read "
        f"patient/Condition.rs?category={CATEGORY}"
    )
    browser = requests.Session()
    login(browser, sandbox)
    page = browser.get(sandbox.authorize_url, params=auth_params(sandbox, APP, scope), timeout=10)
    if 'name="patient"' in page.text:
        page = browser.post(page.url, data={"patient": "pat-garcia", "csrfmiddlewaretoken": csrf(page.text)})
    assert page.status_code == 200 and 'name="scope"' in page.text, page.text[:500]
    text = html.unescape(page.text)
    for wanted in scope.split():
        group, sentence = describe(wanted)
        assert f"<legend>{group}</legend>" in text
        # the sentence labels the checkbox; the raw scope stands beside it
        assert re.search(
            rf'value="{re.escape(wanted)}" checked> {re.escape(sentence)}</label>\s*'
            rf'<code class="raw-scope"[^>]*>{re.escape(wanted)}</code>',
            text,
        ), wanted
