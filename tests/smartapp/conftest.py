"""Fixtures for the launch core: a mocked EHR (discovery, JWKS, token endpoint) and id_tokens."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.cache import cache
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from smartapp import keys

ISS = "https://ehr.example.org/fhir"
ISSUER = "https://ehr.example.org/auth"
AUTHORIZE = "https://ehr.example.org/auth/authorize"
TOKEN = "https://ehr.example.org/auth/token"
REVOKE = "https://ehr.example.org/auth/revoke"
JWKS_URI = "https://ehr.example.org/auth/jwks"
WELL_KNOWN = f"{ISS}/.well-known/smart-configuration"
METADATA = f"{ISS}/metadata"
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"

SMART_CONFIGURATION: dict[str, Any] = {
    "issuer": ISSUER,
    "authorization_endpoint": AUTHORIZE,
    "token_endpoint": TOKEN,
    "revocation_endpoint": REVOKE,
    "jwks_uri": JWKS_URI,
    "capabilities": [
        "launch-ehr",
        "launch-standalone",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "permission-v2",
        "sso-openid-connect",
    ],
    "code_challenge_methods_supported": ["S256"],
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
}


class EhrKeys:
    """The mocked EHR's id_token signing keys and a helper to mint id_tokens."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk = RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True)
        rsa_jwk.update({"kid": "ehr-rsa", "use": "sig"})
        ec_jwk = ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        ec_jwk.update({"kid": "ehr-ec", "use": "sig"})
        self.jwks = {"keys": [rsa_jwk, ec_jwk]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "user-123",
            "aud": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "nonce": "the-nonce",
            "fhirUser": "Practitioner/pr-1",
            "given_name": "Ada",
            "family_name": "Lovelace",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def id_token(
        self, alg: str = "RS256", kid: str | None = "ehr-rsa", key: Any = None, **claims: Any
    ) -> str:
        if key is None:
            key = self.ec if alg.startswith("ES") else self.rsa
            if alg.startswith("ES") and kid == "ehr-rsa":
                kid = "ehr-ec"
        headers = {"kid": kid} if kid else {}
        return jwt.encode(self.claims(**claims), key, algorithm=alg, headers=headers)


@pytest.fixture(scope="session")
def ehr_keys() -> EhrKeys:
    return EhrKeys()


@pytest.fixture(scope="session")
def app_private_jwks() -> str:
    return json.dumps(keys.generate_private_jwks())


@pytest.fixture
def app_keys(settings, app_private_jwks):
    """Configure the app's private_key_jwt signing keys."""
    settings.SMART_JWKS = app_private_jwks
    return json.loads(app_private_jwks)


@pytest.fixture
def mocked(db):
    """`responses` mock: any unmocked outbound request fails the test."""
    cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def smart_ehr(mocked, ehr, ehr_keys):
    """The shared `ehr` fixture, with discovery and JWKS mocked."""
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.get(JWKS_URI, json=ehr_keys.jwks)
    return ehr


def token_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "access_token": "AT-" + uuid.uuid4().hex,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "launch openid fhirUser online_access patient/Patient.rs patient/Encounter.rs "
        "patient/Observation.rs patient/Condition.rs",
        "refresh_token": "RT-" + uuid.uuid4().hex,
        "patient": "pat-1",
        "encounter": "enc-1",
        "need_patient_banner": True,
        "smart_style_url": "https://ehr.example.org/style.json",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}
