"""Token endpoint conformance: PKCE, code reuse, client authentication, refresh, backend services."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from tests.sandbox.flows import (
    APP,
    REDIRECT,
    SECRET,
    assertion,
    exchange,
    pkce,
    standalone,
    token_for,
)

pytestmark = pytest.mark.e2e

# RFC 7636 appendix B.
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def _error(resp: requests.Response, status: int, error: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error
    assert body["error_description"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_it_verifies_the_rfc7636_appendix_b_pkce_vector(sandbox):
    params, _, _ = standalone(sandbox, verifier=RFC7636_VERIFIER, challenge=RFC7636_CHALLENGE)
    resp = exchange(sandbox, params["code"], RFC7636_VERIFIER)
    assert resp.status_code == 200, resp.text


def test_it_refuses_a_wrong_code_verifier(sandbox):
    params, _, _ = standalone(sandbox, verifier=RFC7636_VERIFIER, challenge=RFC7636_CHALLENGE)
    _error(exchange(sandbox, params["code"], RFC7636_VERIFIER[:-1] + "l"), 400, "invalid_grant")


def test_it_refuses_a_missing_code_verifier(sandbox):
    params, _, _ = standalone(sandbox)
    _error(exchange(sandbox, params["code"], ""), 400, "invalid_request")


def test_it_returns_the_smart_token_response(
    sandbox,
):
    params, verifier, request = standalone(sandbox)
    resp = exchange(sandbox, params["code"], verifier)
    body = resp.json()
    assert resp.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["patient"] == "pat-garcia"
    assert body["need_patient_banner"] is True
    assert body["smart_style_url"] == sandbox.base_url + "/smart-style.json"
    assert requests.get(body["smart_style_url"], timeout=5).json()["color_background"]
    assert body["refresh_token"]
    assert set(body["scope"].split()) == set(request["scope"].split())
    jwks = requests.get(sandbox.base_url + "/.well-known/jwks.json", timeout=5).json()
    header = jwt.get_unverified_header(body["id_token"])
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key
    claims = jwt.decode(body["id_token"], key, algorithms=["RS256"], audience=APP, issuer=sandbox.fhir_base)
    assert claims["fhirUser"] == sandbox.fhir_base + "/Practitioner/prac-smith"
    assert claims["nonce"] == request["nonce"]
    assert claims["exp"] > claims["iat"]


def test_it_refuses_a_reused_code_and_revokes_what_it_issued(sandbox):
    params, verifier, _ = standalone(sandbox)
    first = exchange(sandbox, params["code"], verifier)
    assert first.status_code == 200
    _error(exchange(sandbox, params["code"], verifier), 400, "invalid_grant")
    introspection = requests.post(
        sandbox.base_url + "/auth/introspect",
        data={"token": first.json()["access_token"]},
        auth=(APP, SECRET),
        timeout=10,
    )
    assert introspection.json() == {"active": False}


def test_it_refuses_a_redirect_uri_that_differs_from_the_authorization_request(sandbox):
    params, verifier, _ = standalone(sandbox)
    _error(
        exchange(sandbox, params["code"], verifier, redirect_uri="http://localhost:8765/other"),
        400,
        "invalid_grant",
    )


def test_it_refuses_a_code_issued_to_another_client(sandbox):
    params, verifier, _ = standalone(sandbox)
    _error(
        exchange(sandbox, params["code"], verifier, client_id="fault-app", secret="s5"), 400, "invalid_grant"
    )


def test_it_answers_bad_basic_credentials_with_401_and_a_challenge(sandbox):
    params, verifier, _ = standalone(sandbox)
    resp = exchange(sandbox, params["code"], verifier, secret="wrong")
    _error(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_it_accepts_client_secret_post(sandbox):
    params, verifier, _ = standalone(sandbox)
    data = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": APP,
        "client_secret": SECRET,
    }
    assert requests.post(sandbox.token_url, data=data, timeout=10).status_code == 200


def test_it_refuses_two_authentication_methods_at_once(sandbox):
    data = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": APP, "client_secret": SECRET}
    resp = requests.post(sandbox.token_url, data=data, auth=(APP, SECRET), timeout=10)
    _error(resp, 400, "invalid_request")


def test_it_refuses_unknown_grant_types_and_json_bodies(sandbox):
    _error(
        requests.post(sandbox.token_url, data={"grant_type": "password"}, auth=(APP, SECRET), timeout=10),
        400,
        "unsupported_grant_type",
    )
    _error(
        requests.post(
            sandbox.token_url, json={"grant_type": "refresh_token"}, auth=(APP, SECRET), timeout=10
        ),
        400,
        "invalid_request",
    )


def _jwt_exchange(sandbox, client_assertion: str) -> requests.Response:
    params, verifier, _ = standalone(sandbox, client_id="jwt-app")
    data = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion,
    }
    return requests.post(sandbox.token_url, data=data, timeout=10)


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_it_accepts_private_key_jwt_verified_against_the_jwks_url(sandbox, keys, alg):
    kid, key = keys[alg]
    resp = _jwt_exchange(sandbox, assertion(key, kid, alg, sandbox.token_url))
    assert resp.status_code == 200, resp.text


def test_it_rejects_a_replayed_jti(sandbox, keys):
    kid, key = keys["RS384"]
    signed = assertion(key, kid, "RS384", sandbox.token_url)
    assert _jwt_exchange(sandbox, signed).status_code == 200
    _error(_jwt_exchange(sandbox, signed), 401, "invalid_client")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 30},  # stale
        {"exp": int(time.time()) + 3600},  # too far ahead
        {"aud": "http://127.0.0.1:1/wrong"},
        {"sub": "someone-else"},
    ],
)
def test_it_rejects_bad_assertion_claims(sandbox, keys, claims):
    kid, key = keys["ES384"]
    _error(
        _jwt_exchange(sandbox, assertion(key, kid, "ES384", **{"aud": sandbox.token_url, **claims})),
        401,
        "invalid_client",
    )


def test_it_rejects_an_assertion_signed_by_an_unregistered_key(sandbox):
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _error(
        _jwt_exchange(sandbox, assertion(other, "rsa-1", "RS384", sandbox.token_url)), 401, "invalid_client"
    )


def test_it_refuses_rs256_assertions(sandbox, keys):
    kid, key = keys["RS384"]
    _error(_jwt_exchange(sandbox, assertion(key, kid, "RS256", sandbox.token_url)), 401, "invalid_client")


def test_it_serves_backend_services_with_client_credentials(sandbox, keys):
    kid, key = keys["RS384"]
    data = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs system/Observation.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, kid, "RS384", sandbox.token_url),
    }
    body = requests.post(sandbox.token_url, data=data, timeout=10).json()
    assert body["expires_in"] == 300
    assert "refresh_token" not in body
    resp = requests.get(
        sandbox.fhir_base + "/Patient",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    )
    assert resp.json()["total"] >= 8


def test_it_refuses_client_credentials_with_a_secret(sandbox):
    data = {"grant_type": "client_credentials", "scope": "system/Patient.rs"}
    _error(
        requests.post(sandbox.token_url, data=data, auth=(APP, SECRET), timeout=10),
        400,
        "unauthorized_client",
    )


def _refresh(
    sandbox, refresh_token: str, client_id: str = APP, secret: str = SECRET, **extra
) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return requests.post(sandbox.token_url, data=data, auth=(client_id, secret), timeout=10)


def test_it_rotates_refresh_tokens_and_refuses_the_old_one(sandbox):
    body = token_for(sandbox)
    first = _refresh(sandbox, body["refresh_token"])
    assert first.status_code == 200
    new = first.json()
    assert new["refresh_token"] != body["refresh_token"]
    assert new["patient"] == "pat-garcia"
    _error(_refresh(sandbox, body["refresh_token"]), 400, "invalid_grant")
    assert _refresh(sandbox, new["refresh_token"]).status_code == 200


def test_it_keeps_the_refresh_token_when_rotation_is_off(sandbox):
    body = token_for(sandbox, client_id="norotate-app", secret="s3")
    again = _refresh(sandbox, body["refresh_token"], client_id="norotate-app", secret="s3").json()
    assert again["refresh_token"] == body["refresh_token"]
    assert _refresh(sandbox, body["refresh_token"], client_id="norotate-app", secret="s3").status_code == 200


def test_it_only_narrows_scopes_on_refresh(sandbox):
    body = token_for(sandbox)
    narrowed = _refresh(sandbox, body["refresh_token"], scope="patient/*.rs offline_access").json()
    assert narrowed["scope"] == "offline_access patient/*.rs"
    _error(_refresh(sandbox, narrowed["refresh_token"], scope="user/*.rs"), 400, "invalid_scope")


def test_it_gives_no_refresh_token_without_offline_or_online_access(sandbox):
    body = token_for(sandbox, scope="launch/patient patient/*.rs")
    assert "refresh_token" not in body
    assert "id_token" not in body


def test_it_introspects_and_revokes(sandbox):
    body = token_for(sandbox)
    introspect = sandbox.base_url + "/auth/introspect"
    info = requests.post(
        introspect, data={"token": body["access_token"]}, auth=(APP, SECRET), timeout=10
    ).json()
    assert info["active"] is True
    assert info["client_id"] == APP
    assert info["patient"] == "pat-garcia"
    assert info["scope"] == body["scope"]
    assert info["fhirUser"].endswith("/Practitioner/prac-smith")
    unauth = requests.post(introspect, data={"token": body["access_token"]}, timeout=10)
    assert unauth.status_code == 401
    revoke = sandbox.base_url + "/auth/revoke"
    assert (
        requests.post(
            revoke, data={"token": body["refresh_token"]}, auth=(APP, SECRET), timeout=10
        ).status_code
        == 200
    )
    after = requests.post(
        introspect, data={"token": body["access_token"]}, auth=(APP, SECRET), timeout=10
    ).json()
    assert after == {"active": False}
    _error(_refresh(sandbox, body["refresh_token"]), 400, "invalid_grant")


def test_it_pkce_helper_matches_s256(sandbox):
    verifier, challenge = pkce()
    params, _, _ = standalone(sandbox, verifier=verifier, challenge=challenge)
    assert exchange(sandbox, params["code"], verifier).status_code == 200
