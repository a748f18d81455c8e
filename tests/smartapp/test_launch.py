"""EHR launch, standalone launch and the start page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from smartapp import session
from smartapp.models import Ehr
from tests.smartapp.conftest import AUTHORIZE, CLIENT_ID, ISS, SMART_CONFIGURATION, WELL_KNOWN


def _params(response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}


def test_it_redirects_an_ehr_launch_to_the_authorize_endpoint(client, smart_ehr, settings):
    settings.SMART_APP_BASE_URL = "https://app.example.org"
    response = client.get("/launch", {"iss": ISS, "launch": "launch-123"})
    assert response.status_code == 302
    assert response["Location"].startswith(AUTHORIZE + "?")
    params = _params(response)
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "https://app.example.org/callback"
    assert params["aud"] == ISS
    assert params["launch"] == "launch-123"
    assert params["scope"] == smart_ehr.ehr_launch_scope
    assert params["code_challenge_method"] == "S256"
    assert params["nonce"]
    pending = client.session[session.PENDING_KEY][params["state"]]
    assert pending["ehr_id"] == smart_ehr.pk
    assert pending["kind"] == "ehr"
    assert pending["nonce"] == params["nonce"]
    assert pending["scope"] == smart_ehr.ehr_launch_scope
    assert params["code_challenge"] != pending["verifier"]


def test_it_always_asks_for_the_launch_scope_on_an_ehr_launch(client, smart_ehr):
    smart_ehr.ehr_launch_scope = "openid fhirUser patient/Patient.rs"  # an admin dropped `launch`
    smart_ehr.save()
    params = _params(client.get("/launch", {"iss": ISS, "launch": "x"}))
    assert params["scope"].split() == ["launch", "openid", "fhirUser", "patient/Patient.rs"]


def test_it_accepts_a_trailing_slash_on_iss(client, smart_ehr):
    assert client.get("/launch", {"iss": ISS + "/", "launch": "x"}).status_code == 302


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example.org/fhir",
        "https://EHR.example.org/fhir",
        ISS + "/../fhir",
        " " + ISS,
        ISS + "/extra",
        "http://ehr.example.org/fhir",
    ],
)
def test_it_refuses_an_unregistered_iss_without_any_outbound_request(client, mocked, ehr, iss):
    response = client.get("/launch", {"iss": iss, "launch": "x"})
    assert response.status_code == 400
    assert b"not registered" in response.content
    assert len(mocked.calls) == 0


def test_it_refuses_a_disabled_ehr(client, mocked, ehr):
    Ehr.objects.filter(pk=ehr.pk).update(enabled=False)
    assert client.get("/launch", {"iss": ISS, "launch": "x"}).status_code == 400
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    "query",
    [
        {"iss": ISS},
        {"iss": ISS, "launch": ""},
        {"iss": ISS, "launch": "x" * 2049},
        {"launch": "x"},
        # PostgreSQL refuses NUL in a query parameter: refused before any lookup (was a 500).
        {"iss": ISS + "\x00", "launch": "x"},
        {"iss": ISS, "launch": "x\x00y"},
        {"iss": ISS + "\n", "launch": "x"},
    ],
)
def test_it_refuses_a_missing_or_oversized_parameter(client, mocked, ehr, query):
    response = client.get("/launch", query)
    assert response.status_code == 400
    assert len(mocked.calls) == 0


def test_it_shows_a_clear_page_when_discovery_fails(client, mocked, ehr):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "code_challenge_methods_supported": ["plain"]})
    response = client.get("/launch", {"iss": ISS, "launch": "x"})
    assert response.status_code == 502
    assert b"S256" in response.content


def test_it_shows_a_clear_page_for_an_unparseable_endpoint_in_discovery(client, mocked, ehr):
    mocked.get(
        WELL_KNOWN, json={**SMART_CONFIGURATION, "authorization_endpoint": "https://[broken/authorize"}
    )
    mocked.get(f"{ISS}/metadata", status=404)
    response = client.get("/launch", {"iss": ISS, "launch": "x"})
    assert response.status_code == 502
    assert b"No authorization_endpoint" in response.content


def test_it_asks_for_no_identity_when_the_ehr_publishes_no_jwks_uri(client, mocked, ehr):
    # An id_token it could not verify would fail every launch at the callback; without openid the
    # launch works, with no signed-in user.
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "jwks_uri": None})
    params = _params(client.get("/launch", {"iss": ISS, "launch": "x"}))
    scopes = params["scope"].split()
    assert "openid" not in scopes and "fhirUser" not in scopes
    assert "launch" in scopes and "patient/Patient.rs" in scopes
    assert "nonce" not in params
    assert client.session[session.PENDING_KEY][params["state"]]["scope"] == params["scope"]


def test_it_converts_scopes_for_a_v1_only_ehr(client, mocked, ehr):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "capabilities": ["launch-ehr", "permission-v1"]})
    scope = _params(client.get("/launch", {"iss": ISS, "launch": "x"}))["scope"]
    assert "patient/Patient.read" in scope.split()
    assert ".rs" not in scope


def test_it_starts_a_standalone_launch(client, smart_ehr):
    response = client.get(reverse("smartapp:standalone", args=[smart_ehr.slug]))
    assert response.status_code == 302
    params = _params(response)
    assert "launch" not in params
    assert params["scope"] == smart_ehr.standalone_scope
    assert params["aud"] == ISS
    assert client.session[session.PENDING_KEY][params["state"]]["kind"] == "standalone"


def test_it_404s_an_unknown_or_disabled_standalone_ehr(client, mocked, ehr):
    assert client.get("/standalone/nope/").status_code == 404
    Ehr.objects.filter(pk=ehr.pk).update(enabled=False)
    assert client.get(f"/standalone/{ehr.slug}/").status_code == 404
    assert len(mocked.calls) == 0


def test_it_keeps_several_pending_states(client, smart_ehr):
    first = _params(client.get("/launch", {"iss": ISS, "launch": "a"}))["state"]
    second = _params(client.get(f"/standalone/{smart_ehr.slug}/"))["state"]
    assert first != second
    assert set(client.session[session.PENDING_KEY]) == {first, second}


def test_it_lists_enabled_ehrs_on_the_start_page(client, ehr):
    Ehr.objects.create(
        name="Hidden EHR",
        slug="hidden",
        iss="https://hidden.example.org",
        client_id="c",
        client_secret="s",
        enabled=False,
    )
    response = client.get("/")
    assert response.status_code == 200
    assert b"Test EHR" in response.content
    assert b"/standalone/test-ehr/" in response.content
    assert b"Hidden EHR" not in response.content
