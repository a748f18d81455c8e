"""Authorization endpoint conformance: strict client, redirect, PKCE, aud, state, iss, consent."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.flows import APP, REDIRECT, auth_params, query, standalone

pytestmark = pytest.mark.e2e


def _authorize(sandbox, method: str = "GET", **overrides) -> requests.Response:
    params = auth_params(sandbox, **overrides)
    if method == "POST":
        return requests.post(sandbox.authorize_url, data=params, allow_redirects=False, timeout=10)
    return requests.get(sandbox.authorize_url, params=params, allow_redirects=False, timeout=10)


def test_it_shows_an_error_page_for_an_unknown_client(sandbox):
    resp = _authorize(sandbox, client_id="nobody")
    assert resp.status_code == 400
    assert "Unknown client_id" in resp.text
    assert "Location" not in resp.headers


def test_it_refuses_an_unregistered_redirect_uri_without_redirecting(sandbox):
    resp = _authorize(sandbox, redirect_uri=REDIRECT + "/evil")
    assert resp.status_code == 400
    assert "redirect_uri" in resp.text
    assert "Location" not in resp.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"aud": "https://other.example.org/fhir"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": ""}, "invalid_scope"),
        ({"scope": "launch openid patient/*.rs"}, "invalid_request"),
    ],
)
def test_it_redirects_errors_back_with_state_and_iss(sandbox, overrides, error):
    resp = _authorize(sandbox, state="s-123", **overrides)
    params = query(resp)
    assert params["error"] == error
    assert params["state"] == "s-123"
    assert params["iss"] == sandbox.fhir_base
    assert "code" not in params


def test_it_requires_state(sandbox):
    params = query(_authorize(sandbox, state=None))
    assert params["error"] == "invalid_request"
    assert "state" in params["error_description"]


def test_it_accepts_authorize_post_and_sends_unauthenticated_users_to_login(sandbox):
    resp = _authorize(sandbox, method="POST")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/auth/authorize/")
    follow = requests.get(sandbox.base_url + resp.headers["Location"], allow_redirects=False, timeout=10)
    # No session cookie carried: the transaction is unknown to this browser.
    assert follow.status_code == 400


def test_it_issues_a_code_with_state_and_iss_after_login_picker_and_consent(sandbox):
    params, _, request = standalone(sandbox)
    assert params["state"] == request["state"]
    assert params["iss"] == sandbox.fhir_base
    assert len(params["code"]) >= 32


def test_it_redirects_access_denied_when_the_user_denies(sandbox):
    params, _, request = standalone(sandbox, action="deny")
    assert params["error"] == "access_denied"
    assert params["state"] == request["state"]
    assert params["iss"] == sandbox.fhir_base


def test_it_drops_unticked_scopes_from_the_grant(sandbox):
    from tests.sandbox.flows import exchange

    params, verifier, _ = standalone(sandbox, untick=("offline_access",))
    body = exchange(sandbox, params["code"], verifier).json()
    assert "offline_access" not in body["scope"].split()
    assert "patient/*.rs" in body["scope"].split()
    assert "refresh_token" not in body


def test_it_grants_only_the_scopes_the_client_is_registered_for(sandbox):
    from tests.sandbox.flows import exchange

    scope = "launch/patient openid fhirUser patient/Patient.read patient/Condition.rs patient/Observation.rs"
    params, verifier, _ = standalone(sandbox, client_id="narrow-app", scope=scope)
    body = exchange(sandbox, params["code"], verifier, client_id="narrow-app", secret="s4").json()
    assert set(body["scope"].split()) == {
        "launch/patient",
        "openid",
        "fhirUser",
        "patient/Patient.read",
        "patient/Observation.rs",
    }


def test_it_gives_a_patient_login_their_own_record(sandbox):
    from tests.sandbox.flows import exchange

    params, verifier, _ = standalone(sandbox, username="maria.garcia", patient="pat-chen")
    body = exchange(sandbox, params["code"], verifier).json()
    assert body["patient"] == "pat-garcia"


def test_it_completes_an_ehr_launch_without_interaction_and_the_launch_is_single_use(sandbox):
    launch = sandbox.create_launch(APP, "pat-chen", "enc-chen-current")
    assert launch["iss"] == sandbox.fhir_base
    assert launch["launch_url"].startswith("http://localhost:8765/launch?iss=")
    params = auth_params(sandbox, scope="launch openid fhirUser patient/*.rs", launch=launch["launch"])
    first = requests.get(sandbox.authorize_url, params=params, allow_redirects=False, timeout=10)
    assert "code" in query(first)
    second = requests.get(sandbox.authorize_url, params=params, allow_redirects=False, timeout=10)
    assert query(second)["error"] == "invalid_request"
    assert "already used" in query(second)["error_description"]


def test_it_refuses_a_launch_token_issued_for_another_client(sandbox):
    launch = sandbox.create_launch("jwt-app", "pat-chen")
    params = auth_params(sandbox, scope="launch patient/*.rs", launch=launch["launch"])
    resp = requests.get(sandbox.authorize_url, params=params, allow_redirects=False, timeout=10)
    assert query(resp)["error"] == "invalid_request"
