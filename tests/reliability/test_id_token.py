"""A forged, stale or misdirected id_token at the callback: 401, nobody signed in, no launch stored,
a message naming the check that failed, and neither the id_token nor any other secret in the logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import SESSION_KEY, get_user_model

from smartapp.models import Launch
from tests.reliability.conftest import (
    ACCESS,
    CODE,
    REFRESH,
    TOKEN,
    assert_no_secrets,
    start_ehr_launch,
    token_body,
)
from tests.smartapp.conftest import JWKS_URI, SMART_CONFIGURATION, WELL_KNOWN


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _tampered(keys, nonce):
    header, payload, signature = keys.id_token(nonce=nonce).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "admin"
    return f"{header}.{_b64(json.dumps(claims).encode()).decode()}.{signature}"


def _alg_none(keys, nonce):
    return jwt.encode(keys.claims(nonce=nonce), None, algorithm="none")


def _hs256_with_public_key(keys, nonce):
    pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        _b64(b'{"alg":"HS256","typ":"JWT","kid":"ehr-rsa"}')
        + b"."
        + _b64(json.dumps(keys.claims(nonce=nonce)).encode())
    )
    return (signing_input + b"." + _b64(hmac.new(pem, signing_input, hashlib.sha256).digest())).decode()


def _attacker_key(keys, nonce):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return keys.id_token(key=attacker, nonce=nonce)


FORGERIES = [
    pytest.param(_tampered, "bad signature", id="bad-signature"),
    pytest.param(_attacker_key, "bad signature", id="signed-by-another-key-with-a-known-kid"),
    pytest.param(_alg_none, "disallowed algorithm", id="alg-none"),
    pytest.param(_hs256_with_public_key, "disallowed algorithm", id="hs256-signed-with-the-public-key"),
    pytest.param(lambda k, n: k.id_token(nonce=n, aud="another-client"), "wrong audience", id="wrong-aud"),
    pytest.param(
        lambda k, n: k.id_token(nonce=n, iss="https://evil.example.org"), "wrong issuer", id="wrong-iss"
    ),
    pytest.param(lambda k, n: k.id_token(nonce=n, exp=int(time.time()) - 120), "expired", id="expired"),
    pytest.param(
        lambda k, n: k.id_token(nonce=n, iat=int(time.time()) + 600), "issued in the future", id="iat-future"
    ),
    pytest.param(lambda k, n: k.id_token(nonce=None), "(nonce)", id="nonce-missing"),
    pytest.param(lambda k, n: k.id_token(nonce=n + "x"), "(nonce)", id="nonce-wrong"),
    pytest.param(lambda k, n: "eyJhbGciOi.not-a.jwt", "malformed id_token", id="malformed"),
]


def _callback(client, mocked, id_token, params):
    mocked.post(TOKEN, json=_body(id_token))
    return client.get("/callback", {"code": CODE, "state": params["state"]})


def _body(id_token):
    return token_body(access_token=ACCESS, refresh_token=REFRESH, id_token=id_token)


def _assert_refused(response, message, caplog, *tokens):
    page = response.content.decode()
    assert response.status_code == 401
    assert "Sign-in failed" in page and message in page
    assert Launch.objects.count() == 0
    assert get_user_model().objects.count() == 0
    assert SESSION_KEY not in response.wsgi_request.session
    assert_no_secrets(page, caplog.text, extra=tokens)


@pytest.mark.parametrize(("forge", "message"), FORGERIES)
def test_it_refuses_a_forged_or_misdirected_id_token(
    client, smart_ehr, mocked, ehr_keys, caplog, forge, message
):
    params = start_ehr_launch(client)
    id_token = forge(ehr_keys, params["nonce"])
    response = _callback(client, mocked, id_token, params)
    _assert_refused(response, message, caplog, id_token)


@pytest.mark.parametrize(
    "jwks", [{"status": 503}, {"body": requests.ReadTimeout()}, {"body": "<html>", "status": 200}], ids=str
)
def test_it_refuses_sign_in_when_the_jwks_endpoint_is_down(client, ehr, mocked, ehr_keys, caplog, jwks):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.add("GET", JWKS_URI, **jwks)
    params = start_ehr_launch(client)
    response = _callback(client, mocked, ehr_keys.id_token(nonce=params["nonce"]), params)
    _assert_refused(response, "signing keys could not be fetched", caplog)


def test_it_refetches_the_jwks_once_for_an_unknown_kid_then_refuses(
    client, smart_ehr, mocked, ehr_keys, caplog
):
    params = start_ehr_launch(client)
    response = _callback(client, mocked, ehr_keys.id_token(nonce=params["nonce"], kid="rotated-away"), params)
    _assert_refused(response, "a key the EHR does not publish", caplog)
    assert sum(call.request.url == JWKS_URI for call in mocked.calls) == 2  # cached + one refetch
