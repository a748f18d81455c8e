"""One sandbox EHR per test session (real HTTP), plus keys and a JWKS server for private_key_jwt."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.sandbox.flows import APP, REDIRECT
from tests.sandbox_server import SandboxServer, start_sandbox
from tests.static_server import serve_bytes

pytestmark = pytest.mark.e2e

# The data's "today" for the conformance tests: fixed, so dates in assertions are exact.
ANCHOR = "2025-01-15"


def _public_jwk(private, kid: str, alg: str) -> dict:
    algo = jwt.algorithms.RSAAlgorithm if alg == "RS384" else jwt.algorithms.ECAlgorithm
    jwk = json.loads(algo.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


@pytest.fixture(scope="session")
def keys() -> dict:
    return {
        "RS384": ("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ES384": ("ec-1", ec.generate_private_key(ec.SECP384R1())),
    }


@pytest.fixture(scope="session")
def jwks_url(keys) -> Iterator[str]:
    """The app's JWKS, served on a loopback port like a real app would."""
    body = json.dumps({"keys": [_public_jwk(k, kid, alg) for alg, (kid, k) in keys.items()]}).encode()
    with serve_bytes(body, "application/json") as base:
        yield f"{base}/.well-known/jwks.json"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory, jwks_url) -> Iterator[SandboxServer]:
    clients = [
        {
            "client_id": APP,
            "client_secret": "app-secret",
            "redirect_uris": [REDIRECT, "http://localhost:8765/other"],
            "launch_url": "http://localhost:8765/launch",
            "name": "Dashboard",
        },
        {
            "client_id": "jwt-app",
            "jwks_url": jwks_url,
            "redirect_uris": [REDIRECT],
            "launch_url": "http://localhost:8765/launch",
        },
        {
            "client_id": "norotate-app",
            "client_secret": "s3",
            "redirect_uris": [REDIRECT],
            "rotate_refresh_tokens": False,
        },
        {
            "client_id": "narrow-app",
            "client_secret": "s4",
            "redirect_uris": [REDIRECT],
            "scope": "openid fhirUser launch/patient patient/Patient.rs patient/Observation.rs",
        },
        {"client_id": "fault-app", "client_secret": "s5", "redirect_uris": [REDIRECT]},
    ]
    db = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3"
    with start_sandbox(db, clients, anchor=ANCHOR) as server:
        yield server
