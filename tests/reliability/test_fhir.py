"""FHIR faults on the dashboard: each panel says what failed while the rest of the page still
renders (200), paging stays bounded, the token never leaves the FHIR server, nothing leaks.

The e2e cases inject the faults in the sandbox EHR, so they cross a real network (timeouts,
truncated JSON, Retry-After headers); the in-process cases need responses no sandbox sends."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.clinical.conftest import BASE, load
from tests.clinical.conftest import TOKEN as FHIR_TOKEN
from tests.clinical.helpers import register_all
from tests.reliability.conftest import assert_no_secrets

E2E = pytest.mark.e2e


@pytest.fixture
def dash(rbrowser, rstack):
    """A fresh standalone launch for pat-garcia; returns (browser, dashboard URL)."""
    page = rbrowser.standalone_launch(patient="pat-garcia")
    assert page.status_code == 200 and "/c/" in page.url, page.text[:300]
    yield rbrowser, page.url
    rstack.sandbox.reset_faults()


def _dashboard_with(dash, rstack, **faults):
    browser, url = dash
    rstack.sandbox.set_faults(rstack.client_id, **faults)
    page = browser.get(url)
    assert page.status_code == 200, page.text[:300]
    return page.text


@E2E
@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        pytest.param(
            {"fhir_status": 403, "resource_type": "Observation"},
            "Not authorized: the EHR refused access to vital signs.",
            id="403",
        ),
        pytest.param(
            {"fhir_status": 404, "resource_type": "Patient"}, "The EHR has no record of the patient", id="404"
        ),
        pytest.param(
            {"fhir_status": 410, "resource_type": "Condition"},
            "The EHR has no record of the problem list",
            id="410",
        ),
        pytest.param(
            {"fhir_status": 429, "retry_after": 7, "resource_type": "Observation"},
            "The EHR is busy and did not send vital signs. Try again in 7 s.",
            id="429-retry-after",
        ),
        pytest.param(
            {"fhir_status": 500, "resource_type": "Condition"},
            "Could not load the problem list: the EHR reported an error (500).",
            id="500",
        ),
        pytest.param(
            {"fhir_status": 503, "retry_after": 2, "resource_type": "Observation"},
            "Could not load lab results: the EHR reported an error (503).",
            id="503",
        ),
        pytest.param(
            {"slow_ms": 2500, "resource_type": "Observation"},
            "The EHR did not send vital signs in time.",
            id="timeout",
        ),
        pytest.param(
            {"malformed_json": True, "resource_type": "Observation"},
            "Could not load vital signs: the EHR&#x27;s answer was not FHIR JSON.",
            id="invalid-json",
        ),
        pytest.param(
            {"invalid_resources": True, "resource_type": "Patient"},
            "Could not load the patient&#x27;s details: the Patient could not be read.",
            id="invalid-patient",
        ),
        pytest.param(
            {"invalid_resources": True, "resource_type": "Condition"},
            "could not be read.",
            id="invalid-conditions",
        ),
    ],
)
def test_it_keeps_the_dashboard_up_through_a_fhir_fault(dash, rstack, leaks, faults, expected):
    html = _dashboard_with(dash, rstack, **faults)
    assert expected in html
    assert "Clinical summary" in html
    if faults.get("resource_type") != "Patient":
        assert "Garcia" in html  # the banner survived the other panel's fault
    leaks.check(html)


@E2E
def test_it_refreshes_once_on_a_persistent_401_then_says_access_ended(dash, rstack, leaks):
    rstack.sandbox.reset_stats()
    html = _dashboard_with(dash, rstack, fhir_status=401, resource_type="Condition")
    assert "The EHR no longer accepts this session&#x27;s access" in html
    assert rstack.sandbox.stats()["token"].get("refresh_token", 0) == 1  # one refresh, no loop
    leaks.check(html)


@E2E
def test_it_does_not_follow_a_looping_next_link_of_a_measure(rbrowser, rstack, leaks):
    """Vital signs come from $lastn (the sandbox offers it) or one page per measure: a looping
    `next` is never followed (loop detection itself is covered in tests/clinical/test_fhir.py)."""
    page = rbrowser.standalone_launch(patient="pat-brooks")
    rstack.sandbox.set_faults(rstack.client_id, looping_next=True, resource_type="Observation")
    html = rbrowser.get(page.url).text
    assert "Heart rate" in html and "History and charts show the latest" in html
    leaks.check(html)


@E2E
def test_it_caps_an_enormous_observation_history(rbrowser, rstack, leaks):
    page = rbrowser.standalone_launch(patient="pat-brooks")
    assert page.status_code == 200
    assert "History and charts show the latest 100 readings of Blood pressure, Heart rate" in page.text
    leaks.check(page.text)


# --- In process: responses no sandbox sends ----------------------------------------------------


@pytest.fixture
def owned(make_launch, own):
    launch = make_launch()
    own(launch)
    return reverse("clinical:dashboard", kwargs={"handle": launch.handle})


def test_it_never_sends_the_token_to_a_next_link_on_another_host(client, mocked, owned, caplog):
    labs = load("labs")
    labs["link"] = [{"relation": "next", "url": "https://evil.example.org/fhir/Observation?page=2"}]
    register_all(mocked, labs=labs)
    response = client.get(owned)
    html = response.content.decode()
    assert response.status_code == 200
    assert "pointed outside the FHIR server and was not followed" in html
    assert not any("evil.example.org" in call.request.url for call in mocked.calls)
    assert_no_secrets(html, caplog.text, extra=[FHIR_TOKEN])


def test_it_never_sends_the_token_to_a_next_link_with_credentials_or_another_port(client, mocked, owned):
    labs = load("labs")
    labs["link"] = [{"relation": "next", "url": "https://user:pw@ehr.example.org:8443/fhir/Observation?p=2"}]
    register_all(mocked, labs=labs)
    assert client.get(owned).status_code == 200
    assert all(call.request.url.startswith(BASE + "/") for call in mocked.calls)


def test_it_caps_one_enormous_bundle_page(client, mocked, owned, settings, caplog):
    template = load("labs")["entry"][0]
    entries = [{**template, "resource": {**template["resource"], "id": f"o{i}"}} for i in range(3000)]
    register_all(
        mocked, labs={"resourceType": "Bundle", "type": "searchset", "total": 3000, "entry": entries}
    )
    response = client.get(owned)
    assert response.status_code == 200
    assert f"Showing the latest {settings.FHIR_MAX_ENTRIES} of 3000" in response.content.decode()
    assert_no_secrets(response.content.decode(), caplog.text, extra=[FHIR_TOKEN])


def test_it_reports_a_bundle_of_the_wrong_type(client, mocked, owned):
    register_all(mocked, conditions=load("patient"))
    html = client.get(owned).content.decode()
    assert "Could not load the problem list: the search result is not a Bundle." in html


def test_it_refuses_a_redirect_from_the_fhir_server(client, mocked, owned):
    register_all(mocked)
    mocked.replace(
        "GET", f"{BASE}/Patient/pat-1", status=302, headers={"Location": "https://evil.example.org/"}
    )
    html = client.get(owned).content.decode()
    assert "unexpected redirect (302)" in html
    assert not any("evil.example.org" in call.request.url for call in mocked.calls)
