"""/launch and /standalone with hostile or broken input: a clear 4xx/5xx page, no outbound request
to anything but the registered EHR, nothing secret in the page or the logs."""

from __future__ import annotations

import pytest
import requests

from smartapp import session
from tests.reliability.conftest import ISS, assert_no_secrets, authorize_params
from tests.smartapp.conftest import METADATA, WELL_KNOWN

INTERNAL_ISSUERS = [
    "http://169.254.169.254/latest/meta-data",
    "http://127.0.0.1:22/fhir",
    "http://localhost:8000/admin",
    "http://[::1]/fhir",
    "http://10.0.0.5/fhir",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "https://ehr.example.org@evil.example.org/fhir",
    "https://ehr.example.org.evil.example.org/fhir",
]


def _page(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize("iss", INTERNAL_ISSUERS)
def test_it_sends_no_request_for_an_iss_aiming_at_an_internal_address(client, mocked, ehr, caplog, iss):
    response = client.get("/launch", {"iss": iss, "launch": "x"})
    assert response.status_code == 400
    assert "not registered with the EHR" in _page(response)
    assert len(mocked.calls) == 0
    assert iss not in caplog.text  # the hostile value is not echoed into the logs
    assert_no_secrets(_page(response), caplog.text)


@pytest.mark.parametrize("iss", ["HTTPS://ehr.example.org/fhir", "https://ehr.example.org/FHIR"])
def test_it_refuses_a_scheme_or_path_case_variant_of_the_iss(client, mocked, ehr, iss):
    response = client.get("/launch", {"iss": iss, "launch": "x"})
    assert response.status_code == 400
    assert "Unknown EHR" in _page(response)
    assert len(mocked.calls) == 0


def test_it_accepts_an_iss_with_several_trailing_slashes(client, smart_ehr):
    params = authorize_params(client.get("/launch", {"iss": ISS + "///", "launch": "x"}))
    # The IG: on an EHR launch, aud is the launch's iss value, exactly as the EHR sent it.
    assert params["aud"] == ISS + "///"


@pytest.mark.parametrize("iss", [ISS + "/?x=1", ISS + "#frag", ISS + "/%2e%2e/"])
def test_it_refuses_an_iss_with_a_query_fragment_or_dot_segment(client, mocked, ehr, iss):
    response = client.get("/launch", {"iss": iss, "launch": "x"})
    assert response.status_code == 400
    assert len(mocked.calls) == 0


def test_it_refuses_an_empty_iss_with_a_specific_message(client, mocked, ehr):
    response = client.get("/launch", {"iss": "", "launch": "x"})
    assert response.status_code == 400
    assert "no valid iss parameter" in _page(response)
    assert len(mocked.calls) == 0


def test_it_refuses_an_iss_longer_than_2048_characters(client, mocked, ehr):
    response = client.get("/launch", {"iss": ISS + "/" + "a" * 2048, "launch": "x"})
    assert response.status_code == 400
    assert "no valid iss parameter" in _page(response)
    assert "`" not in _page(response)  # no markdown artefacts on the page
    assert len(mocked.calls) == 0


def test_it_answers_400_not_500_for_nul_and_control_characters_in_iss(client, mocked, ehr):
    response = client.get("/launch?iss=https%3A%2F%2Fehr.example.org%2Ffhir%00%0d%0a&launch=x")
    assert response.status_code == 400
    assert len(mocked.calls) == 0


def test_it_refuses_a_100k_character_launch_without_any_request(client, mocked, ehr, caplog):
    huge = "L" * 100_000
    response = client.get("/launch", {"iss": ISS, "launch": huge})
    assert response.status_code == 400
    assert "valid launch parameter" in _page(response)
    assert len(mocked.calls) == 0
    assert huge[:200] not in caplog.text


def test_it_passes_a_launch_of_exactly_2048_characters_through(client, smart_ehr):
    launch = "L" * 2048
    assert authorize_params(client.get("/launch", {"iss": ISS, "launch": launch}))["launch"] == launch


def test_it_keeps_two_pending_states_for_a_repeated_launch(client, smart_ehr):
    first = authorize_params(client.get("/launch", {"iss": ISS, "launch": "same"}))
    second = authorize_params(client.get("/launch", {"iss": ISS, "launch": "same"}))
    assert first["state"] != second["state"] and first["nonce"] != second["nonce"]
    assert first["code_challenge"] != second["code_challenge"]
    assert {first["state"], second["state"]} <= set(client.session[session.PENDING_KEY])


def test_it_bounds_the_session_when_a_launch_is_repeated_many_times(client, smart_ehr, settings):
    states = [
        authorize_params(client.get("/launch", {"iss": ISS, "launch": "again"}))["state"] for _ in range(25)
    ]
    pending = client.session[session.PENDING_KEY]
    assert len(pending) == settings.SMART_MAX_PENDING_STATES
    assert states[-1] in pending and states[0] not in pending


def test_it_uses_only_the_registered_ehr_when_iss_is_sent_twice(client, smart_ehr, mocked):
    response = client.get(f"/launch?iss=https://evil.example.org/fhir&iss={ISS}&launch=x")
    assert authorize_params(response)["aud"] == ISS
    assert all("evil" not in call.request.url for call in mocked.calls)


def test_it_refuses_a_post_to_launch(client, mocked, ehr):
    response = client.post("/launch", {"iss": ISS, "launch": "x"})
    assert response.status_code == 405
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("slug", ["..%2F..%2Fadmin", "UPPER", "a" * 300, "%3Cscript%3E"])
def test_it_404s_hostile_standalone_slugs(client, mocked, ehr, slug):
    response = client.get(f"/standalone/{slug}/")
    assert response.status_code == 404
    assert "<script>" not in _page(response)
    assert len(mocked.calls) == 0


def test_it_explains_a_discovery_timeout_on_launch(client, mocked, ehr, caplog):
    mocked.get(WELL_KNOWN, body=requests.ReadTimeout())
    mocked.get(METADATA, body=requests.ReadTimeout())
    response = client.get("/launch", {"iss": ISS, "launch": "x"})
    assert response.status_code == 502
    assert "Cannot reach the EHR" in _page(response) and "did not answer in time" in _page(response)
    assert session.PENDING_KEY not in client.session
    assert_no_secrets(_page(response), caplog.text)


def test_it_explains_discovery_that_answers_html_on_launch(client, mocked, ehr):
    mocked.get(WELL_KNOWN, body="<html>login</html>", status=200)
    mocked.get(METADATA, status=404)
    response = client.get("/launch", {"iss": ISS, "launch": "x"})
    assert response.status_code == 502
    assert "something other than JSON" in _page(response)
    assert "<html>login" not in _page(response)


def test_it_explains_discovery_without_a_token_endpoint_on_launch(client, mocked, ehr):
    from tests.smartapp.conftest import SMART_CONFIGURATION

    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "token_endpoint": None})
    response = client.get("/launch", {"iss": ISS, "launch": "x"})
    assert response.status_code == 502
    assert "No token_endpoint" in _page(response)
