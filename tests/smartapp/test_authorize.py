"""The authorization request: PKCE, the scopes to ask for, the authorize URL (smartapp.authorize)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

from smartapp import authorize, discovery, keys
from smartapp.models import Ehr
from tests.smartapp.conftest import (
    AUTHORIZE,
    CLIENT_ID,
    ISS,
    SMART_CONFIGURATION,
)

SCOPE = "launch openid fhirUser patient/Patient.rs"


def _config(ehr, **overrides) -> discovery.SmartConfig:
    return discovery.evaluate(ehr, {**SMART_CONFIGURATION, **overrides})


# --- PKCE -----------------------------------------------------------------------------------


def test_it_matches_the_rfc_7636_appendix_b_vector():
    assert authorize.code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_it_makes_fresh_verifiers_of_legal_length():
    first, second = authorize.new_code_verifier(), authorize.new_code_verifier()
    assert first != second
    assert 43 <= len(first) <= 128
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# --- Scopes ---------------------------------------------------------------------------------


def test_it_converts_v2_scopes_when_the_ehr_only_speaks_v1(ehr):
    config = _config(ehr, capabilities=["permission-v1"])
    requested = "launch openid patient/Patient.rs patient/Observation.rs?category=vital-signs user/Task.cud"
    assert authorize.scopes_for(requested, config) == (
        "launch openid patient/Patient.read patient/Observation.read user/Task.write"
    )
    assert authorize.scopes_for("patient/*.cruds", config) == "patient/*.*"


def test_it_keeps_v2_scopes_when_v2_is_advertised(ehr):
    both = _config(ehr, capabilities=["permission-v1", "permission-v2"])
    assert authorize.scopes_for("patient/Patient.rs  openid", both) == "patient/Patient.rs openid"
    unknown = _config(ehr, capabilities=[])
    assert authorize.scopes_for("patient/Patient.rs", unknown) == "patient/Patient.rs"


# --- Authorize URL --------------------------------------------------------------------------


def test_it_builds_the_authorize_url(ehr):
    auth = authorize.build_authorization(
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
        "code_challenge": authorize.code_challenge(auth.code_verifier),
        "code_challenge_method": "S256",
        "nonce": auth.nonce,
    }
    assert len(base64.urlsafe_b64decode(auth.state + "=")) * 8 >= 122


def test_it_omits_nonce_without_openid_and_launch_for_standalone(ehr):
    auth = authorize.build_authorization(
        ehr, _config(ehr), scope="launch/patient patient/Patient.rs", redirect_uri="x"
    )
    params = parse_qs(urlsplit(auth.url).query)
    assert "nonce" not in params
    assert "launch" not in params
    assert auth.nonce == ""


def test_it_keeps_secrets_out_of_reprs(app_keys):
    signing = keys.signing_key(["RS384"])
    assert signing.private_jwk["d"] not in repr(signing)
    ehr = Ehr(iss="https://ehr.example.org/fhir", client_id="c")
    config = discovery.evaluate(ehr, SMART_CONFIGURATION)
    auth = authorize.build_authorization(ehr, config, scope="openid", redirect_uri="https://app/cb")
    assert auth.code_verifier not in repr(auth) and auth.nonce not in repr(auth) and "?" not in repr(auth)
