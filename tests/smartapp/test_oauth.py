"""Protocol and HTTP: discovery, PKCE, scopes, authorize URL, client auth, token responses."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import responses
from django.core.exceptions import ValidationError

from smartapp import keys, oauth
from smartapp.models import Ehr
from tests.smartapp.conftest import (
    AUTHORIZE,
    CLIENT_ID,
    ISS,
    METADATA,
    REVOKE,
    SMART_CONFIGURATION,
    TOKEN,
    WELL_KNOWN,
    token_body,
)

SCOPE = "launch openid fhirUser patient/Patient.rs"


def _config(ehr, **overrides) -> oauth.SmartConfig:
    return oauth.evaluate(ehr, {**SMART_CONFIGURATION, **overrides})


# --- PKCE -----------------------------------------------------------------------------------


def test_it_matches_the_rfc_7636_appendix_b_vector():
    assert oauth.code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_it_makes_fresh_verifiers_of_legal_length():
    first, second = oauth.new_code_verifier(), oauth.new_code_verifier()
    assert first != second
    assert 43 <= len(first) <= 128
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# --- Scopes ---------------------------------------------------------------------------------


def test_it_converts_v2_scopes_when_the_ehr_only_speaks_v1(ehr):
    config = _config(ehr, capabilities=["permission-v1"])
    requested = "launch openid patient/Patient.rs patient/Observation.rs?category=vital-signs user/Task.cud"
    assert oauth.scopes_for(requested, config) == (
        "launch openid patient/Patient.read patient/Observation.read user/Task.write"
    )
    assert oauth.scopes_for("patient/*.cruds", config) == "patient/*.*"


def test_it_keeps_v2_scopes_when_v2_is_advertised(ehr):
    both = _config(ehr, capabilities=["permission-v1", "permission-v2"])
    assert oauth.scopes_for("patient/Patient.rs  openid", both) == "patient/Patient.rs openid"
    unknown = _config(ehr, capabilities=[])
    assert oauth.scopes_for("patient/Patient.rs", unknown) == "patient/Patient.rs"


# --- Discovery ------------------------------------------------------------------------------


def test_it_discovers_caches_and_records_the_configuration(mocked, ehr):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    config = oauth.discover(ehr)
    assert config.token_endpoint == TOKEN
    assert config.issuer == "https://ehr.example.org/auth"
    assert config.has("launch-ehr")
    oauth.discover(ehr)
    assert len(mocked.calls) == 1  # second call served from the cache
    ehr.refresh_from_db()
    assert ehr.discovery["token_endpoint"] == TOKEN
    assert ehr.discovered_at is not None
    assert mocked.calls[0].request.headers["Accept"] == "application/json"


def test_it_tries_the_capability_statement_when_well_known_names_no_endpoints(mocked, ehr):
    mocked.get(WELL_KNOWN, json={"capabilities": ["launch-ehr"]})
    mocked.get(METADATA, json=CAPABILITY_STATEMENT)
    config = oauth.discover(ehr)
    assert (config.token_endpoint, config.source) == (TOKEN, "metadata")


def test_it_asks_a_capability_statement_era_server_for_v1_scopes(mocked, ehr):
    mocked.get(WELL_KNOWN, status=404)
    mocked.get(METADATA, json=CAPABILITY_STATEMENT)
    config = oauth.discover(ehr)
    assert oauth.scopes_for("launch patient/Patient.rs", config) == "launch patient/Patient.read"


def test_it_remembers_a_failed_discovery_briefly(mocked, ehr):
    mocked.get(WELL_KNOWN, status=503)
    mocked.get(METADATA, status=503)
    for _ in range(3):
        with pytest.raises(oauth.DiscoveryError):
            oauth.discover(ehr)
    assert len(mocked.calls) == 2  # one attempt (well-known + metadata), not three
    with pytest.raises(oauth.DiscoveryError):
        oauth.discover(ehr, use_cache=False)  # the admin's check always asks again
    assert len(mocked.calls) == 4


def test_it_records_what_discovery_lacks_where_admins_look(mocked, ehr):
    document = {k: v for k, v in SMART_CONFIGURATION.items() if k != "code_challenge_methods_supported"}
    mocked.get(WELL_KNOWN, json=document)
    oauth.discover(ehr)
    ehr.refresh_from_db()
    assert ehr.discovery_problems == [
        "Warning: code_challenge_methods_supported is missing; sending PKCE S256 anyway."
    ]


def test_it_warns_when_authorization_code_is_not_a_listed_grant_type(ehr):
    config = _config(ehr, grant_types_supported=["client_credentials"])
    assert "grant_types_supported does not list authorization_code." in config.warnings
    assert "grant_types_supported" not in " ".join(_config(ehr).warnings)


def test_it_resolves_relative_endpoints_against_the_fhir_base(mocked, ehr):
    mocked.get(
        WELL_KNOWN,
        json={**SMART_CONFIGURATION, "authorization_endpoint": "auth/authorize", "token_endpoint": "/token"},
    )
    config = oauth.discover(ehr)
    assert config.authorization_endpoint == f"{ISS}/auth/authorize"
    assert config.token_endpoint == "https://ehr.example.org/token"


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITY_STATEMENT = {
    "resourceType": "CapabilityStatement",
    "rest": [
        {
            "security": {
                "extension": [
                    {
                        "url": OAUTH_URIS,
                        "extension": [
                            {"url": "authorize", "valueUri": AUTHORIZE},
                            {"url": "token", "valueUri": TOKEN},
                        ],
                    }
                ]
            }
        }
    ],
}


def test_it_falls_back_to_the_capability_statement(mocked, ehr):
    mocked.get(WELL_KNOWN, status=404)
    mocked.get(METADATA, json=CAPABILITY_STATEMENT)
    config = oauth.discover(ehr)
    assert (config.authorization_endpoint, config.token_endpoint, config.source) == (
        AUTHORIZE,
        TOKEN,
        "metadata",
    )
    assert any("code_challenge_methods_supported is missing" in w for w in config.warnings)


def test_it_refuses_an_ehr_offering_only_plain_pkce(mocked, ehr):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "code_challenge_methods_supported": ["plain"]})
    with pytest.raises(oauth.ConfigurationError, match="plain"):
        oauth.discover(ehr)


def test_it_refuses_an_ehr_without_s256(ehr):
    config = _config(ehr, code_challenge_methods_supported=[])
    assert any("S256" in error for error in config.errors)


def test_it_refuses_an_ehr_without_a_suitable_auth_method(ehr):
    config = _config(ehr, token_endpoint_auth_methods_supported=["private_key_jwt"])
    assert any("client_secret_basic" in error for error in config.errors)


def test_it_degrades_with_warnings_when_fields_are_missing(ehr):
    document = {
        k: v
        for k, v in SMART_CONFIGURATION.items()
        if k
        not in {"code_challenge_methods_supported", "token_endpoint_auth_methods_supported", "capabilities"}
    }
    config = oauth.evaluate(ehr, document)
    assert config.errors == []
    assert len(config.warnings) == 3


def test_it_reports_an_unreachable_ehr_as_a_clear_error(mocked, ehr):
    mocked.get(WELL_KNOWN, body=requests.ConnectTimeout())
    mocked.get(METADATA, body=requests.ConnectTimeout())
    with pytest.raises(oauth.DiscoveryError, match="did not answer in time"):
        oauth.discover(ehr)


def test_it_uses_endpoint_overrides(mocked, ehr):
    ehr.authorize_url_override = "https://other.example.org/authz"
    ehr.token_url_override = "https://other.example.org/token"
    mocked.get(WELL_KNOWN, status=500)
    mocked.get(METADATA, status=500)
    config = oauth.discover(ehr)
    assert config.authorization_endpoint == "https://other.example.org/authz"
    assert config.token_endpoint == "https://other.example.org/token"


# --- Authorize URL --------------------------------------------------------------------------


def test_it_builds_the_authorize_url(ehr):
    auth = oauth.build_authorization(
        ehr, _config(ehr), scope=SCOPE, redirect_uri="https://app.example.org/callback", launch="L1"
    )
    url = urlsplit(auth.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == AUTHORIZE
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert params == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "https://app.example.org/callback",
        "scope": SCOPE,
        "state": auth.state,
        "aud": ISS,
        "launch": "L1",
        "code_challenge": oauth.code_challenge(auth.code_verifier),
        "code_challenge_method": "S256",
        "nonce": auth.nonce,
    }
    assert len(base64.urlsafe_b64decode(auth.state + "=")) * 8 >= 122


def test_it_omits_nonce_without_openid_and_launch_for_standalone(ehr):
    auth = oauth.build_authorization(
        ehr, _config(ehr), scope="launch/patient patient/Patient.rs", redirect_uri="x"
    )
    params = parse_qs(urlsplit(auth.url).query)
    assert "nonce" not in params
    assert "launch" not in params
    assert auth.nonce == ""


# --- Token exchange: client authentication -------------------------------------------------


def _exchange(ehr, config=None):
    return oauth.exchange_code(
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
    with pytest.raises(oauth.ConfigurationError, match="signing keys"):
        _exchange(ehr)
    assert len(mocked.calls) == 0


# --- Token exchange: responses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mock", "error", "message"),
    [
        (
            {"status": 400, "json": {"error": "invalid_grant", "error_description": "x"}},
            oauth.TokenError,
            "invalid_grant",
        ),
        ({"status": 401, "json": {"error": "invalid_client"}}, oauth.TokenError, "credentials"),
        ({"status": 503, "body": "<html>down</html>"}, oauth.TokenError, "HTTP 503"),
        ({"status": 400, "body": "<html>bad</html>"}, oauth.TokenError, "HTTP 400"),
        ({"status": 200, "body": "<html>login</html>"}, oauth.TokenResponseError, "other than JSON"),
        ({"status": 200, "body": "{not json"}, oauth.TokenResponseError, "other than JSON"),
        ({"status": 200, "body": "[" * 5000}, oauth.TokenResponseError, "other than JSON"),  # RecursionError
        ({"status": 400, "body": "[" * 5000}, oauth.TokenError, "HTTP 400"),
        ({"status": 200, "json": ["a"]}, oauth.TokenResponseError, "unexpected"),
        ({"status": 200, "json": token_body(access_token=None)}, oauth.TokenResponseError, "no access_token"),
        ({"status": 200, "json": token_body(token_type="mac")}, oauth.TokenResponseError, "Bearer"),
        ({"status": 200, "json": token_body(token_type=None)}, oauth.TokenResponseError, "Bearer"),
        ({"status": 200, "json": token_body(expires_in="soon")}, oauth.TokenResponseError, "expires_in"),
        ({"status": 200, "json": token_body(expires_in=0)}, oauth.TokenResponseError, "expired"),
        ({"status": 200, "json": token_body(expires_in="1e400")}, oauth.TokenResponseError, "expires_in"),
        ({"status": 200, "json": token_body(expires_in="Infinity")}, oauth.TokenResponseError, "expires_in"),
        ({"status": 200, "json": token_body(patient=None)}, oauth.TokenResponseError, "patient"),
        ({"status": 200, "json": token_body(patient="x" * 257)}, oauth.TokenResponseError, "invalid patient"),
        ({"status": 200, "json": token_body(patient="a/../b")}, oauth.TokenResponseError, "invalid patient"),
        ({"body": requests.ReadTimeout()}, oauth.TransportError, "in time"),
        ({"body": requests.ConnectionError()}, oauth.TransportError, "reached"),
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
    assert result.expires_in == oauth.DEFAULT_EXPIRES_IN == 300
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
    oauth.refresh(ehr, _config(ehr), refresh_token="RT-old", granted_scope=SCOPE)
    form = _form(mocked.calls[0])
    assert form == {"grant_type": "refresh_token", "refresh_token": "RT-old"}
    assert mocked.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_it_revokes_where_offered_and_never_raises(mocked, ehr):
    mocked.post(REVOKE, status=200)
    assert oauth.revoke(ehr, _config(ehr), token="RT-1", hint="refresh_token") is True
    assert _form(mocked.calls[0]) == {"token": "RT-1", "token_type_hint": "refresh_token"}
    mocked.replace(responses.POST, REVOKE, body=requests.ConnectionError())
    assert oauth.revoke(ehr, _config(ehr), token="RT-1", hint="refresh_token") is False
    no_endpoint = _config(ehr, revocation_endpoint=None)
    assert oauth.revoke(ehr, no_endpoint, token="RT-1", hint="refresh_token") is False
    assert len(mocked.calls) == 2


def test_it_reports_capabilities_for_the_admin(mocked, ehr):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "capabilities": ["launch-ehr"]})
    report = oauth.check_configuration(ehr)
    capabilities = dict(report.capabilities)
    assert capabilities["PKCE S256"] is True
    assert capabilities["launch-ehr"] is True
    assert capabilities["launch-standalone"] is False
    assert report.ok


def test_it_reports_a_fetch_failure_for_the_admin(mocked, ehr):
    mocked.get(WELL_KNOWN, status=404)
    mocked.get(METADATA, body="<html>", status=200)
    report = oauth.check_configuration(ehr)
    assert not report.ok
    assert "other than JSON" in report.fetch_error
    assert json.dumps(report.capabilities)  # renders without a config


# --- Transport security of what discovery names ------------------------------------------------


@pytest.mark.parametrize(
    "field", ["authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"]
)
def test_it_refuses_plain_http_endpoints_that_would_carry_secrets_in_clear(ehr, field):
    config = _config(ehr, **{field: "http://attacker.example.net/x"})
    assert any(field in error and "https" in error for error in config.errors)


def test_it_allows_plain_http_only_on_loopback(ehr):
    config = _config(ehr, token_endpoint="http://127.0.0.1:9000/auth/token")
    assert config.errors == []


def test_it_does_not_follow_a_redirect_from_the_discovery_document(mocked, ehr):
    mocked.get(WELL_KNOWN, status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    mocked.get(METADATA, status=302, headers={"Location": "http://10.0.0.5/"})
    with pytest.raises(oauth.DiscoveryError):
        oauth.discover(ehr)
    assert [call.request.url for call in mocked.calls] == [WELL_KNOWN, METADATA]


@pytest.mark.parametrize("iss", ["http://ehr.example.org/fhir", "ftp://ehr.example.org/fhir"])
def test_it_refuses_to_register_an_issuer_without_tls(db, iss):
    ehr = Ehr(name="X", slug="x", iss=iss, client_id="c", client_secret="s")
    with pytest.raises(ValidationError, match="https"):
        ehr.full_clean()


def test_it_caps_an_absurd_token_lifetime_at_a_day(mocked, ehr):
    mocked.post(TOKEN, json=token_body(expires_in=10**9, scope=SCOPE))
    assert _exchange(ehr).expires_in == oauth.MAX_EXPIRES_IN == 86400


def test_it_keeps_secrets_out_of_reprs(app_keys):
    signing = keys.signing_key(["RS384"])
    assert signing.private_jwk["d"] not in repr(signing)
    ehr = Ehr(iss="https://ehr.example.org/fhir", client_id="c")
    config = oauth.evaluate(ehr, SMART_CONFIGURATION)
    auth = oauth.build_authorization(ehr, config, scope="openid", redirect_uri="https://app/cb")
    assert auth.code_verifier not in repr(auth) and auth.nonce not in repr(auth) and "?" not in repr(auth)


@pytest.mark.parametrize(
    "glitch", [{"status": 400, "body": ""}, {"status": 502, "body": "<html>bad gateway</html>"}]
)
def test_it_retries_the_code_exchange_once_after_a_glitch_without_an_oauth_error(
    mocked, ehr, glitch, monkeypatch
):
    monkeypatch.setattr(oauth, "TOKEN_RETRY_DELAY", 0)
    mocked.add(responses.POST, TOKEN, **glitch)
    mocked.add(responses.POST, TOKEN, json=token_body(scope=SCOPE))
    assert _exchange(ehr).access_token
    assert len([c for c in mocked.calls if c.request.url == TOKEN]) == 2


def test_it_does_not_retry_a_real_refusal(mocked, ehr):
    mocked.add(responses.POST, TOKEN, status=400, json={"error": "invalid_grant"})
    with pytest.raises(oauth.TokenError, match="invalid_grant"):
        _exchange(ehr)
    assert len([c for c in mocked.calls if c.request.url == TOKEN]) == 1


def test_an_insecure_introspection_endpoint_is_ignored_not_fatal(ehr):
    config = _config(ehr, introspection_endpoint="http://ehr.example.org/introspect")
    assert config.errors == [] and config.introspection_endpoint == ""
    assert any("introspection_endpoint is not https" in w for w in config.warnings)


def test_it_refuses_an_implausibly_large_token_response(mocked, ehr, monkeypatch, caplog):
    monkeypatch.setattr(oauth, "MAX_TOKEN_RESPONSE_BYTES", 2000)
    mocked.post(TOKEN, json=token_body(scope=SCOPE, padding="x" * 5000))
    with pytest.raises(oauth.TokenResponseError, match="implausibly large"):
        _exchange(ehr)
    assert "AT-" not in caplog.text


def test_it_refuses_an_implausibly_large_discovery_document(mocked, ehr, monkeypatch):
    monkeypatch.setattr(oauth, "MAX_DOCUMENT_BYTES", 1000)
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "padding": "x" * 2000})
    mocked.get(METADATA, status=404)
    with pytest.raises(oauth.DiscoveryError, match="implausibly large"):
        oauth.discover(ehr)
