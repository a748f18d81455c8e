"""id_token verification: every claim check, key handling, and the user mapping."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model

from smartapp import discovery
from smartapp.identity import IdentityError, SmartOIDCBackend, absolute_fhir_user, stable_username
from tests.smartapp.conftest import ISS, ISSUER, JWKS_URI, SMART_CONFIGURATION


@pytest.fixture
def config(ehr) -> discovery.SmartConfig:
    return discovery.evaluate(ehr, SMART_CONFIGURATION)


@pytest.fixture
def jwks_mock(mocked, ehr_keys):
    mocked.get(JWKS_URI, json=ehr_keys.jwks)
    return mocked


def _verify(ehr, config, token, nonce="the-nonce"):
    backend = SmartOIDCBackend()
    return backend.authenticate(
        None, smart_id_token=token, smart_ehr=ehr, smart_config=config, smart_nonce=nonce
    )


def test_it_verifies_a_good_id_token_and_creates_the_user(jwks_mock, ehr, config, ehr_keys):
    user = _verify(ehr, config, ehr_keys.id_token())
    assert user.username == stable_username(ISS, "user-123")  # keyed on the registered EHR
    # The name claims (a patient's name, on a patient launch) are not copied into auth_user.
    assert (user.first_name, user.last_name, user.email) == ("", "", "")
    assert not user.has_usable_password()
    again = _verify(ehr, config, ehr_keys.id_token(given_name=None, family_name=None))
    assert again.pk == user.pk
    assert len(jwks_mock.calls) == 1  # JWKS cached


def test_it_accepts_es256_and_a_single_key_without_kid(jwks_mock, ehr, config, ehr_keys):
    assert _verify(ehr, config, ehr_keys.id_token(alg="ES256")) is not None
    assert _verify(ehr, config, ehr_keys.id_token(alg="ES256", kid=None)) is not None


def test_it_uses_the_ehr_base_as_issuer_when_discovery_names_none(jwks_mock, ehr, ehr_keys):
    config = discovery.evaluate(ehr, {**SMART_CONFIGURATION, "issuer": None})
    assert _verify(ehr, config, ehr_keys.id_token(iss=ISS)) is not None
    with pytest.raises(IdentityError):
        _verify(ehr, config, ehr_keys.id_token(iss=ISSUER))


def _tampered_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k: _tampered_signature(k.id_token()), "bad signature"),
        (lambda k: k.id_token(aud="someone-else"), "wrong audience"),
        (lambda k: k.id_token(aud=None), "missing claim"),
        (lambda k: k.id_token(iss="https://evil.example.org"), "wrong issuer"),
        (lambda k: k.id_token(exp=int(time.time()) - 3600), "expired"),
        (lambda k: k.id_token(iat=int(time.time()) + 3600), "issued in the future"),
        (lambda k: k.id_token(nonce="other-nonce"), "nonce"),
        (lambda k: k.id_token(nonce=None), "nonce"),
        (lambda k: k.id_token(aud=["test-client", "other"]), "azp"),
        (lambda k: k.id_token(azp="other"), "azp"),
        (lambda k: k.id_token(sub=None), "missing claim"),
        (lambda k: k.id_token(kid="unknown-kid"), "does not publish"),
        (lambda k: "not-a-jwt", "malformed"),
    ],
)
def test_it_rejects_tampered_id_tokens(jwks_mock, ehr, config, ehr_keys, make, message):
    with pytest.raises(IdentityError, match=message):
        _verify(ehr, config, make(ehr_keys))
    assert get_user_model().objects.count() == 0


def test_it_accepts_multiple_audiences_with_matching_azp(jwks_mock, ehr, config, ehr_keys):
    assert _verify(ehr, config, ehr_keys.id_token(aud=["test-client", "other"], azp="test-client"))


def test_it_rejects_alg_none(jwks_mock, ehr, config, ehr_keys):
    token = jwt.encode(ehr_keys.claims(), None, algorithm="none")
    with pytest.raises(IdentityError, match="disallowed algorithm"):
        _verify(ehr, config, token)
    assert len(jwks_mock.calls) == 0


def test_it_rejects_an_absurdly_nested_id_token_header_without_crashing(jwks_mock, ehr, config):
    header = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()
    with pytest.raises(IdentityError, match="malformed"):
        _verify(ehr, config, f"{header}.e30.c2ln")


@pytest.mark.parametrize("alg", [["RS256"], {"RS256": 1}, 256])
def test_it_rejects_a_non_string_alg_without_crashing(jwks_mock, ehr, config, ehr_keys, alg):
    header = base64.urlsafe_b64encode(json.dumps({"alg": alg, "kid": "ehr-rsa"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(ehr_keys.claims()).encode()).rstrip(b"=")
    with pytest.raises(IdentityError, match="disallowed algorithm"):
        _verify(ehr, config, f"{header.decode()}.{payload.decode()}.c2ln")
    assert len(jwks_mock.calls) == 0


def test_it_rejects_hs256_signed_with_the_public_key(jwks_mock, ehr, config, ehr_keys):
    public_pem = ehr_keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"ehr-rsa"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(ehr_keys.claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    token = b".".join([header, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    with pytest.raises(IdentityError, match="disallowed algorithm"):
        _verify(ehr, config, token)


def test_it_refuses_a_token_signed_by_an_unpublished_key_with_a_known_kid(jwks_mock, ehr, config, ehr_keys):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(IdentityError, match="bad signature"):
        _verify(ehr, config, ehr_keys.id_token(key=attacker))


def test_it_refetches_the_jwks_once_for_an_unknown_kid(mocked, ehr, config, ehr_keys):
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rotated.public_key(), as_dict=True)
    new_jwk["kid"] = "rotated"
    mocked.get(JWKS_URI, json=ehr_keys.jwks)
    mocked.get(JWKS_URI, json={"keys": [*ehr_keys.jwks["keys"], new_jwk]})
    assert _verify(ehr, config, ehr_keys.id_token()) is not None  # caches the old set
    assert _verify(ehr, config, ehr_keys.id_token(key=rotated, kid="rotated")) is not None
    assert len(mocked.calls) == 2
    with pytest.raises(IdentityError):
        _verify(ehr, config, ehr_keys.id_token(kid="still-unknown"))
    assert len(mocked.calls) == 3  # exactly one refetch per unknown kid


def test_it_refuses_when_the_ehr_publishes_no_jwks_uri(mocked, ehr, ehr_keys):
    config = discovery.evaluate(ehr, {**SMART_CONFIGURATION, "jwks_uri": None})
    with pytest.raises(IdentityError, match="jwks_uri"):
        _verify(ehr, config, ehr_keys.id_token())


def test_it_skips_password_logins(db):
    from django.contrib.auth import authenticate

    assert authenticate(None, username="x", password="y") is None


def test_it_maps_fhir_user_to_an_absolute_url():
    assert absolute_fhir_user("Practitioner/pr-1", ISS) == f"{ISS}/Practitioner/pr-1"
    absolute = "https://epic.example.org/api/FHIR/R4/Practitioner/abc"
    assert absolute_fhir_user(absolute, ISS) == absolute
    assert absolute_fhir_user("", ISS) == ""
    assert absolute_fhir_user("Patient/p-9", ISS) == f"{ISS}/Patient/p-9"


@pytest.mark.parametrize(
    "value",
    [
        "Observation/o-1",
        "Practitioner",
        "https://evil.example.org/",
        "a/b/c",
        "https://[broken/Practitioner/1",  # urlsplit raises
        "Practitioner/pr\x00-1",  # PostgreSQL would refuse to store it
        "Practitioner/" + "x" * 600,  # longer than the column
    ],
)
def test_it_drops_a_fhir_user_that_names_no_user_resource(value):
    assert absolute_fhir_user(value, ISS) == ""


def test_it_derives_usernames_per_issuer_and_subject():
    assert stable_username("https://a", "1") == stable_username("https://a", "1")
    assert stable_username("https://a", "1") != stable_username("https://b", "1")
    assert len(stable_username("https://a", "1")) <= 150
