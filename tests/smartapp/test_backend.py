"""Backend services: the client assertion, the client_credentials call, caching and errors."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from django.core.cache import cache

from smartapp import backend, cachepolicy, keys
from smartapp.models import BackendRegistration
from tests.smartapp.conftest import SMART_CONFIGURATION, TOKEN, WELL_KNOWN

SCOPE = "system/Patient.rs system/Observation.rs system/Condition.rs system/Encounter.rs"


@pytest.fixture
def reg(ehr) -> BackendRegistration:
    return BackendRegistration.objects.create(ehr=ehr, client_id="backend-client", scope=SCOPE)


@pytest.fixture
def discovered(mocked):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    return mocked


def _token_reply(mocked, **body):
    payload = {"access_token": "BT-1", "token_type": "Bearer", "expires_in": 300, "scope": SCOPE, **body}
    return mocked.post(TOKEN, json=payload)


def _public_key(alg):
    jwk = next(k for k in keys.public_jwks()["keys"] if k["alg"] == alg)
    return jwt.PyJWK(jwk, algorithm=alg).key, jwk["kid"]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_it_signs_the_assertion_with_the_registered_alg(reg, discovered, app_keys, alg):
    reg.alg = alg
    reg.save()
    call = _token_reply(discovered)
    backend.get_token(reg)
    form = parse_qs(call.calls[0].request.body)
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == [SCOPE]
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assertion = form["client_assertion"][0]
    header = jwt.get_unverified_header(assertion)
    key, kid = _public_key(alg)
    assert header == {"alg": alg, "kid": kid, "typ": "JWT"}
    claims = jwt.decode(assertion, key, algorithms=[alg], audience=TOKEN)
    assert claims["iss"] == claims["sub"] == "backend-client"
    assert claims["aud"] == TOKEN
    assert 0 < claims["exp"] - time.time() <= 300
    assert len(claims["jti"]) >= 32


def test_it_uses_a_new_jti_each_time(reg, discovered, app_keys):
    call = _token_reply(discovered)
    backend.get_token(reg, use_cache=False)
    backend.get_token(reg, use_cache=False)
    assertions = [parse_qs(c.request.body)["client_assertion"][0] for c in call.calls]
    jtis = {jwt.decode(a, options={"verify_signature": False})["jti"] for a in assertions}
    assert len(jtis) == 2


def test_it_caches_the_token_until_shortly_before_expiry(reg, discovered, app_keys):
    call = _token_reply(discovered, expires_in=300)
    first = backend.get_token(reg)
    second = backend.get_token(reg)
    assert first.access_token == second.access_token == "BT-1"
    assert call.call_count == 1
    entry = cache.get(backend._cache_key(reg, TOKEN))
    assert "BT-1" not in str(entry)  # stored encrypted


def test_it_asks_again_when_the_cached_token_is_about_to_expire(reg, discovered, app_keys, monkeypatch):
    call = _token_reply(discovered, expires_in=300)
    backend.get_token(reg)
    real = time.time
    monkeypatch.setattr(backend.time, "time", lambda: real() + 300 - backend.EXPIRY_SKEW + 1)
    backend.get_token(reg)
    assert call.call_count == 2


def test_it_does_not_cache_a_very_short_token(reg, discovered, app_keys):
    call = _token_reply(discovered, expires_in=20)
    backend.get_token(reg)
    backend.get_token(reg)
    assert call.call_count == 2


def test_a_cache_outage_means_a_new_token_not_a_failure(reg, discovered, app_keys, monkeypatch):
    real_get, real_set = cache.get, cache.set

    def broken(real):
        def call(key, *args, **kwargs):
            if "backend-token" in key:
                raise OSError("cache down")
            return real(key, *args, **kwargs)

        return call

    monkeypatch.setattr(cachepolicy.cache, "get", broken(real_get))
    monkeypatch.setattr(cachepolicy.cache, "set", broken(real_set))
    call = _token_reply(discovered)
    assert backend.get_token(reg).access_token == "BT-1"
    assert backend.get_token(reg).access_token == "BT-1"
    assert call.call_count == 2


def test_forget_token_drops_the_cached_one(reg, discovered, app_keys):
    call = _token_reply(discovered)
    token = backend.get_token(reg)
    backend.forget_token(reg, token)
    backend.get_token(reg)
    assert call.call_count == 2


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (401, {"error": "invalid_client"}, "invalid_client"),
        (400, {"error": "invalid_scope"}, "invalid_scope"),
        (503, {"error": "temporarily_unavailable"}, "temporarily_unavailable"),
        (500, None, "HTTP 500"),
    ],
)
def test_token_endpoint_errors_become_backend_errors(reg, discovered, app_keys, status, body, words):
    if body is None:
        discovered.post(TOKEN, body="oops", status=status)
    else:
        discovered.post(TOKEN, json=body, status=status)
    with pytest.raises(backend.BackendError, match=words):
        backend.get_token(reg)


def test_an_unreachable_token_endpoint_is_a_backend_error(reg, discovered, app_keys):
    discovered.post(TOKEN, body=responses.ConnectionError("refused"))
    with pytest.raises(backend.BackendError, match="could not be reached"):
        backend.get_token(reg)


def test_a_missing_signing_key_is_a_backend_error(reg, discovered, settings):
    settings.SMART_JWKS = ""
    settings.SMART_JWKS_FILE = ""
    with pytest.raises(backend.BackendError, match="signing key"):
        backend.get_token(reg)


def test_check_reports_success_and_ungranted_scopes(reg, discovered, app_keys):
    _token_reply(discovered, scope="system/Patient.rs")
    report = backend.check(reg)
    assert report.ok
    assert "Not granted: system/Observation.rs" in report.message


def test_check_reports_the_token_endpoint_error(reg, discovered, app_keys):
    discovered.post(TOKEN, json={"error": "invalid_client"}, status=401)
    report = backend.check(reg)
    assert not report.ok
    assert "invalid_client" in report.message


def test_a_launch_only_discovery_problem_does_not_block_backend_services(reg, mocked, app_keys):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "code_challenge_methods_supported": ["plain"]})
    _token_reply(mocked)
    assert backend.get_token(reg).access_token == "BT-1"


def test_the_scope_must_be_system_scopes(ehr):
    from django.core.exceptions import ValidationError

    reg = BackendRegistration(ehr=ehr, client_id="c", scope="patient/Patient.rs")
    with pytest.raises(ValidationError):
        reg.full_clean()


def _check(admin_client, ehr):
    response = admin_client.post(
        "/admin/smartapp/ehr/", {"action": "check_configuration", "_selected_action": [ehr.pk]}
    )
    assert response.status_code == 200
    return response.content.decode()


def test_check_configuration_shows_the_backend_token_error(admin_client, reg, discovered, app_keys):
    discovered.post(TOKEN, json={"error": "invalid_client", "error_description": "x"}, status=401)
    content = _check(admin_client, reg.ehr)
    assert "Backend services" in content
    assert "refused a backend token" in content
    assert "invalid_client" in content


def test_check_configuration_shows_a_granted_backend_token(admin_client, reg, discovered, app_keys):
    _token_reply(discovered)
    content = _check(admin_client, reg.ehr)
    assert "Token issued." in content
    assert "BT-1" not in content


def test_the_registration_is_in_the_admin_with_a_token_check(admin_client, reg, discovered, app_keys):
    response = admin_client.get(f"/admin/smartapp/backendregistration/{reg.pk}/change/")
    assert response.status_code == 200
    assert "backend-client" in response.content.decode()
    discovered.post(TOKEN, json={"error": "invalid_client"}, status=401)
    response = admin_client.post(
        "/admin/smartapp/backendregistration/",
        {"action": "check_token", "_selected_action": [reg.pk]},
        follow=True,
    )
    assert "invalid_client" in response.content.decode()
