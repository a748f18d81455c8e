"""The token endpoint misbehaving during the code exchange: every failure is a 502 page that says
what went wrong, creates no launch, signs nobody in, and leaks no code, token or secret."""

from __future__ import annotations

import time

import pytest
import requests
from django.contrib.auth import SESSION_KEY

from smartapp.models import Launch
from tests.reliability.conftest import (
    ACCESS,
    CODE,
    REFRESH,
    TOKEN,
    assert_no_secrets,
    good_token,
    start_ehr_launch,
    token_body,
)

CANARY_BODY = {"access_token": ACCESS, "refresh_token": REFRESH}

FAILURES = [
    pytest.param(
        {"status": 400, "json": {"error": "invalid_request", "error_description": ACCESS}},
        "refused to issue a token (invalid_request)",
        id="400-invalid_request",
    ),
    pytest.param(
        {"status": 401, "json": {"error": "invalid_client"}},
        "(invalid_client)",
        id="401-invalid_client",
    ),
    pytest.param({"status": 401, "body": ""}, "token service answered HTTP 401", id="401-no-body"),
    pytest.param(
        {"status": 500, "json": {"error": "server_error"}},
        "refused to issue a token (server_error)",
        id="500-json",
    ),
    pytest.param(
        {"status": 503, "body": "<html><body>Maintenance</body></html>", "content_type": "text/html"},
        "token service failed (HTTP 503)",
        id="503-html",
    ),
    pytest.param({"body": requests.ConnectTimeout()}, "did not answer in time", id="connect-timeout"),
    pytest.param({"body": requests.ReadTimeout()}, "did not answer in time", id="read-timeout"),
    pytest.param({"body": requests.ConnectionError()}, "could not be reached", id="connection-refused"),
    pytest.param(
        {"status": 200, "body": '{"access_token": "'}, "something other than JSON", id="invalid-json"
    ),
    pytest.param(
        {"status": 200, "body": "<html>Sign in</html>", "content_type": "text/html"},
        "something other than JSON",
        id="html-200",
    ),
    pytest.param({"status": 200, "json": [CANARY_BODY]}, "unexpected JSON document", id="json-array"),
    pytest.param(
        {"status": 200, "json": token_body(access_token="")}, "no access_token", id="empty-access-token"
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=12345)}, "no access_token", id="numeric-token"
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=ACCESS, token_type="mac")},
        "not a Bearer token",
        id="token-type-mac",
    ),
    pytest.param(
        {
            "status": 200,
            "json": {k: v for k, v in token_body(access_token=ACCESS).items() if k != "token_type"},
        },
        "not a Bearer token",
        id="token-type-missing",
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=ACCESS, expires_in="soon")},
        "invalid expires_in",
        id="expires-in-text",
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=ACCESS, expires_in=True)},
        "invalid expires_in",
        id="expires-in-bool",
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=ACCESS, expires_in=-5)},
        "already expired",
        id="expires-in-negative",
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=ACCESS, patient="")},
        "did not say which patient",
        id="patient-empty",
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=ACCESS, scope=["patient/Patient.rs"])},
        "invalid scope",
        id="scope-list",
    ),
    pytest.param(
        {"status": 200, "json": token_body(access_token=ACCESS, refresh_token=42)},
        "invalid refresh_token",
        id="refresh-token-number",
    ),
    pytest.param(
        {"status": 302, "headers": {"Location": "https://evil.example.org/token"}},
        "token service answered HTTP 302",
        id="redirect-not-followed",
    ),
]


@pytest.mark.parametrize(("mock", "message"), FAILURES)
def test_it_refuses_a_broken_token_response(client, smart_ehr, mocked, caplog, mock, message):
    params = start_ehr_launch(client)
    mocked.add("POST", TOKEN, **mock)
    response = client.get("/callback", {"code": CODE, "state": params["state"]})
    page = response.content.decode()
    assert response.status_code == 502
    assert "Sign-in failed" in page and message in page
    assert "launch the app again from Test EHR" in page
    assert Launch.objects.count() == 0
    assert SESSION_KEY not in client.session
    assert not any("evil.example.org" in call.request.url for call in mocked.calls)
    assert_no_secrets(page, caplog.text)


def test_it_assumes_five_minutes_when_expires_in_is_missing(client, smart_ehr, mocked, ehr_keys, caplog):
    params = start_ehr_launch(client)
    mocked.post(TOKEN, json=good_token(ehr_keys, params["nonce"], expires_in=None))
    response = client.get("/callback", {"code": CODE, "state": params["state"]})
    assert response.status_code == 302
    remaining = Launch.objects.get().expires_at.timestamp() - time.time()
    assert 290 < remaining <= 300
    assert "expires_in missing" in caplog.text
    assert_no_secrets(caplog.text)


def test_it_keeps_a_narrower_grant_and_logs_what_is_missing(client, smart_ehr, mocked, ehr_keys, caplog):
    params = start_ehr_launch(client)
    narrow = "launch openid fhirUser patient/Patient.rs"
    mocked.post(TOKEN, json=good_token(ehr_keys, params["nonce"], scope=narrow))
    assert client.get("/callback", {"code": CODE, "state": params["state"]}).status_code == 302
    launch = Launch.objects.get()
    assert launch.scope == narrow and launch.requested_scope != narrow
    assert "patient/Condition.rs" in caplog.text and "fewer scopes" in caplog.text
    assert_no_secrets(caplog.text)
