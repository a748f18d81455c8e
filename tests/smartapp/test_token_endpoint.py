"""Token calls: client authentication, code exchange, token responses, refresh, revocation, retry."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses

from smartapp import discovery, keys, protocol, token_endpoint, token_response
from smartapp.models import Ehr
from smartapp.protocol import ConfigurationError, TokenError, TokenResponseError, TransportError
from tests.smartapp.conftest import (
    CLIENT_ID,
    REVOKE,
    SMART_CONFIGURATION,
    TOKEN,
    token_body,
)

SCOPE = "launch openid fhirUser patient/Patient.rs"


def _config(ehr, **overrides) -> discovery.SmartConfig:
    return discovery.evaluate(ehr, {**SMART_CONFIGURATION, **overrides})


# --- Token exchange: client authentication -------------------------------------------------


def _exchange(ehr, config=None):
    return token_endpoint.exchange_code(
        ehr,
        config or _config(ehr),
        code="the-code",
        code_verifier="the-verifier",
        redirect_uri="https://app.example.org/callback",
        requested_scope=SCOPE,
    )


def _form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_it_exchanges_a_code_with_client_secret_basic(mocked, ehr):
    mocked.post(TOKEN, json=token_body(scope=SCOPE))
    result = _exchange(ehr)
    assert result.patient == "pat-1"
    request = mocked.calls[0].request
    assert (
        request.headers["Authorization"] == "Basic " + base64.b64encode(b"test-client:test-secret").decode()
    )
    form = _form(mocked.calls[0])
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://app.example.org/callback",
        "code_verifier": "the-verifier",
    }
    assert "access_token" not in repr(result) and result.access_token not in repr(result)


def test_it_exchanges_a_code_with_client_secret_post(mocked, ehr):
    ehr.auth_method = Ehr.AuthMethod.CLIENT_SECRET_POST
    mocked.post(TOKEN, json=token_body(scope=SCOPE))
    _exchange(ehr)
    assert "Authorization" not in mocked.calls[0].request.headers
    form = _form(mocked.calls[0])
    assert (form["client_id"], form["client_secret"]) == ("test-client", "test-secret")


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_it_signs_private_key_jwt_assertions(mocked, ehr, app_keys, alg):
    ehr.auth_method = Ehr.AuthMethod.PRIVATE_KEY_JWT
    config = _config(ehr, token_endpoint_auth_signing_alg_values_supported=[alg])
    mocked.post(TOKEN, json=token_body(scope=SCOPE))
    mocked.post(TOKEN, json=token_body(scope=SCOPE))
    _exchange(ehr, config)
    _exchange(ehr, config)
    form = _form(mocked.calls[0])
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in form and "Authorization" not in mocked.calls[0].request.headers
    assertion = form["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    public = next(k for k in keys.public_jwks()["keys"] if k["alg"] == alg)
    assert "d" not in public
    assert header == {"alg": alg, "kid": public["kid"], "typ": "JWT"}
    claims = jwt.decode(assertion, jwt.PyJWK(public, algorithm=alg).key, algorithms=[alg], audience=TOKEN)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN
    assert 0 < claims["exp"] - time.time() <= 300
    second = jwt.decode(_form(mocked.calls[1])["client_assertion"], options={"verify_signature": False})
    assert second["jti"] != claims["jti"]


def test_it_explains_missing_signing_keys(mocked, ehr, settings):
    settings.SMART_JWKS, settings.SMART_JWKS_FILE = "", ""
    ehr.auth_method = Ehr.AuthMethod.PRIVATE_KEY_JWT
    with pytest.raises(ConfigurationError, match="signing keys"):
        _exchange(ehr)
    assert len(mocked.calls) == 0


# --- Token exchange: responses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mock", "error", "message"),
    [
        (
            {"status": 400, "json": {"error": "invalid_grant", "error_description": "x"}},
            TokenError,
            "invalid_grant",
        ),
        ({"status": 401, "json": {"error": "invalid_client"}}, TokenError, "credentials"),
        ({"status": 503, "body": "<html>down</html>"}, TokenError, "HTTP 503"),
        ({"status": 400, "body": "<html>bad</html>"}, TokenError, "HTTP 400"),
        ({"status": 200, "body": "<html>login</html>"}, TokenResponseError, "other than JSON"),
        ({"status": 200, "body": "{not json"}, TokenResponseError, "other than JSON"),
        ({"status": 200, "body": "[" * 5000}, TokenResponseError, "other than JSON"),  # RecursionError
        ({"status": 400, "body": "[" * 5000}, TokenError, "HTTP 400"),
        ({"status": 200, "json": ["a"]}, TokenResponseError, "unexpected"),
        ({"status": 200, "json": token_body(access_token=None)}, TokenResponseError, "no access_token"),
        ({"status": 200, "json": token_body(token_type="mac")}, TokenResponseError, "Bearer"),
        ({"status": 200, "json": token_body(token_type=None)}, TokenResponseError, "Bearer"),
        ({"status": 200, "json": token_body(expires_in="soon")}, TokenResponseError, "expires_in"),
        ({"status": 200, "json": token_body(expires_in=0)}, TokenResponseError, "expired"),
        ({"status": 200, "json": token_body(expires_in="1e400")}, TokenResponseError, "expires_in"),
        ({"status": 200, "json": token_body(expires_in="Infinity")}, TokenResponseError, "expires_in"),
        ({"status": 200, "json": token_body(patient=None)}, TokenResponseError, "patient"),
        ({"status": 200, "json": token_body(patient="x" * 257)}, TokenResponseError, "invalid patient"),
        ({"status": 200, "json": token_body(patient="a/../b")}, TokenResponseError, "invalid patient"),
        ({"body": requests.ReadTimeout()}, TransportError, "in time"),
        ({"body": requests.ConnectionError()}, TransportError, "reached"),
    ],
)
def test_it_turns_token_endpoint_failures_into_clear_errors(mocked, ehr, caplog, mock, error, message):
    mocked.add(responses.POST, TOKEN, **mock)
    with pytest.raises(error, match=message):
        _exchange(ehr)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "the-code" not in logged and "test-secret" not in logged


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("encounter", "e 1"),
        ("encounter", ["enc-1"]),
        ("tenant", {"id": 1}),
        ("tenant", "t" * 257),
        ("tenant", "acme\x00"),
        ("intent", 7),
        ("intent", "reconcile\nmeds"),
        ("smart_style_url", ["https://ehr.example.org/style.json"]),
        ("smart_style_url", "https://ehr.example.org/" + "s" * 500),
    ],
)
def test_it_drops_an_unusable_optional_hint_and_keeps_the_sign_in(mocked, ehr, caplog, field, value):
    # Epic and Oracle Health add and vary these; a bad one must not cost the clinician the launch.
    mocked.post(TOKEN, json=token_body(scope=SCOPE, **{field: value}))
    tokens = _exchange(ehr)
    assert getattr(tokens, field) == ""
    assert tokens.access_token and tokens.patient == "pat-1"
    assert f"{field} is not a" in caplog.text


def test_it_drops_malformed_scope_values_and_a_nul_bearing_fhir_context(mocked, ehr, caplog):
    body = token_body(scope=SCOPE + " bad\x00scope", fhirContext=[{"reference": "Encounter/e\x00"}])
    mocked.post(TOKEN, json=body)
    tokens = _exchange(ehr)
    assert tokens.scope == SCOPE  # the valid grants stay, the junk value is not stored
    assert tokens.fhir_context == []
    assert "1 malformed scope value(s) ignored" in caplog.text
    assert "fhirContext is too large or holds a NUL" in caplog.text


def test_it_keeps_a_long_epic_style_patient_id_whole(mocked, ehr):
    long_id = "e" + "Xy9.-" * 20  # 101 characters: longer than FHIR's 64, as some EHRs send
    mocked.post(TOKEN, json=token_body(patient=long_id, scope=SCOPE))
    assert _exchange(ehr).patient == long_id


def test_it_accepts_bearer_in_any_case_and_string_expiry(mocked, ehr):
    mocked.post(TOKEN, json=token_body(token_type="BEARER", expires_in="1800", scope=SCOPE))
    assert _exchange(ehr).expires_in == 1800


def test_it_assumes_a_short_life_when_expires_in_is_missing(mocked, ehr, caplog):
    mocked.post(TOKEN, json=token_body(expires_in=None, scope=SCOPE))
    result = _exchange(ehr)
    assert result.expires_in == token_response.DEFAULT_EXPIRES_IN == 300
    assert "expires_in missing" in caplog.text


def test_it_ignores_a_malformed_fhir_context_with_a_warning(mocked, ehr, caplog):
    mocked.post(TOKEN, json=token_body(fhirContext="x", scope=SCOPE))
    result = _exchange(ehr)
    assert result.fhir_context == []
    assert "fhirContext is not a list" in caplog.text


def test_it_records_a_narrower_granted_scope(mocked, ehr):
    mocked.post(TOKEN, json=token_body(scope="launch patient/Patient.rs", id_token=None))
    assert _exchange(ehr).scope == "launch patient/Patient.rs"


def test_it_treats_an_omitted_scope_as_the_requested_one(mocked, ehr):
    mocked.post(TOKEN, json=token_body(scope=None))
    assert _exchange(ehr).scope == SCOPE


def test_it_keeps_context_and_ignores_unknown_keys(mocked, ehr):
    context = [{"reference": "DocumentReference/d1"}]
    mocked.post(
        TOKEN,
        json=token_body(
            scope=SCOPE, fhirContext=context, intent="reconcile", tenant="t1", vendor_extra={"a": 1}
        ),
    )
    result = _exchange(ehr)
    assert (result.fhir_context, result.intent, result.tenant) == (context, "reconcile", "t1")
    assert (result.encounter, result.need_patient_banner) == ("enc-1", True)


# --- Refresh and revocation -----------------------------------------------------------------


def test_it_refreshes_with_the_same_client_auth(mocked, ehr):
    mocked.post(TOKEN, json=token_body(scope=SCOPE))
    token_endpoint.refresh(ehr, _config(ehr), refresh_token="RT-old", granted_scope=SCOPE)
    form = _form(mocked.calls[0])
    assert form == {"grant_type": "refresh_token", "refresh_token": "RT-old"}
    assert mocked.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_it_revokes_where_offered_and_never_raises(mocked, ehr):
    mocked.post(REVOKE, status=200)
    assert token_endpoint.revoke(ehr, _config(ehr), token="RT-1", hint="refresh_token") is True
    assert _form(mocked.calls[0]) == {"token": "RT-1", "token_type_hint": "refresh_token"}
    mocked.replace(responses.POST, REVOKE, body=requests.ConnectionError())
    assert token_endpoint.revoke(ehr, _config(ehr), token="RT-1", hint="refresh_token") is False
    no_endpoint = _config(ehr, revocation_endpoint=None)
    assert token_endpoint.revoke(ehr, no_endpoint, token="RT-1", hint="refresh_token") is False
    assert len(mocked.calls) == 2


def test_it_caps_an_absurd_token_lifetime_at_a_day(mocked, ehr):
    mocked.post(TOKEN, json=token_body(expires_in=10**9, scope=SCOPE))
    assert _exchange(ehr).expires_in == token_response.MAX_EXPIRES_IN == 86400


@pytest.mark.parametrize(
    "glitch", [{"status": 400, "body": ""}, {"status": 502, "body": "<html>bad gateway</html>"}]
)
def test_it_retries_the_code_exchange_once_after_a_glitch_without_an_oauth_error(
    mocked, ehr, glitch, monkeypatch
):
    monkeypatch.setattr(token_endpoint, "TOKEN_RETRY_DELAY", 0)
    mocked.add(responses.POST, TOKEN, **glitch)
    mocked.add(responses.POST, TOKEN, json=token_body(scope=SCOPE))
    assert _exchange(ehr).access_token
    assert len([c for c in mocked.calls if c.request.url == TOKEN]) == 2


def test_it_does_not_retry_a_real_refusal(mocked, ehr):
    mocked.add(responses.POST, TOKEN, status=400, json={"error": "invalid_grant"})
    with pytest.raises(TokenError, match="invalid_grant"):
        _exchange(ehr)
    assert len([c for c in mocked.calls if c.request.url == TOKEN]) == 1


def test_it_refuses_an_implausibly_large_token_response(mocked, ehr, monkeypatch, caplog):
    monkeypatch.setattr(protocol, "MAX_TOKEN_RESPONSE_BYTES", 2000)
    mocked.post(TOKEN, json=token_body(scope=SCOPE, padding="x" * 5000))
    with pytest.raises(TokenResponseError, match="implausibly large"):
        _exchange(ehr)
    assert "AT-" not in caplog.text
