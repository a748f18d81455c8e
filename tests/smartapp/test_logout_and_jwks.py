"""Logout (revocation, session flush, CSRF) and the public JWKS endpoint."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client
from django.utils import timezone

from smartapp import keys, session
from smartapp.models import Launch
from tests.smartapp.conftest import REVOKE, SMART_CONFIGURATION, WELL_KNOWN


def _signed_in(client, ehr, *handles: str) -> list[Launch]:
    user = get_user_model().objects.create_user("smart-u")
    client.force_login(user)
    launches = [
        Launch.objects.create(
            handle=h,
            ehr=ehr,
            kind="ehr",
            access_token=f"AT-{h}",
            refresh_token=f"RT-{h}",
            expires_at=timezone.now() + timedelta(hours=1),
            patient_id=f"pat-{h}",
        )
        for h in handles
    ]
    store = client.session
    store[session.LAUNCHES_KEY] = list(handles)
    store.save()
    return launches


def test_it_revokes_tokens_and_ends_the_session_on_logout(client, smart_ehr, mocked):
    mocked.post(REVOKE, status=200)
    _signed_in(client, smart_ehr, "a", "b")
    Launch.objects.create(handle="other-session", ehr=smart_ehr, kind="ehr", access_token="AT-x")
    response = client.post("/logout")
    assert response.status_code == 200
    assert b"signed out" in response.content
    revoked = sorted(
        parse_qs(call.request.body)["token"][0] for call in mocked.calls if call.request.url == REVOKE
    )
    assert revoked == ["AT-a", "AT-b", "RT-a", "RT-b"]
    assert list(Launch.objects.values_list("handle", flat=True)) == ["other-session"]
    assert SESSION_KEY not in client.session
    assert session.LAUNCHES_KEY not in client.session
    for token in ("AT-a", "RT-a"):
        assert token not in response.content.decode()


def test_it_logs_out_even_when_the_ehr_offers_no_revocation(client, mocked, ehr):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "revocation_endpoint": None})
    _signed_in(client, ehr, "a")
    assert client.post("/logout").status_code == 200
    assert Launch.objects.count() == 0
    assert not any(call.request.url == REVOKE for call in mocked.calls)


def test_it_logs_out_even_when_revocation_fails(client, smart_ehr, mocked):
    mocked.post(REVOKE, status=503)
    _signed_in(client, smart_ehr, "a")
    assert client.post("/logout").status_code == 200
    assert Launch.objects.count() == 0


def test_it_requires_post_and_csrf_for_logout(db, ehr):
    csrf_client = Client(enforce_csrf_checks=True)
    _signed_in(csrf_client, ehr, "a")
    assert csrf_client.get("/logout").status_code == 405
    assert csrf_client.post("/logout").status_code == 403
    assert Launch.objects.count() == 1


def test_it_serves_the_public_jwks(client, app_keys):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response["Cache-Control"]
    document = response.json()
    assert sorted(k["alg"] for k in document["keys"]) == ["ES384", "RS384"]
    for jwk in document["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
        jwt.PyJWK(jwk, algorithm=jwk["alg"])  # parses as a public key
    assert {k["kid"] for k in document["keys"]} == {k["kid"] for k in app_keys["keys"]}


def test_it_serves_an_empty_jwks_without_keys(client, settings):
    settings.SMART_JWKS, settings.SMART_JWKS_FILE = "", ""
    assert client.get("/.well-known/jwks.json").json() == {"keys": []}


def test_it_answers_503_uncached_when_the_keys_are_misconfigured(client, settings, caplog):
    settings.SMART_JWKS = "{not json"
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 503
    assert response["Cache-Control"] == "no-store"
    assert "keys" not in response.json()
    assert "signing keys are misconfigured" in caplog.text


def test_it_generates_development_keys_only_in_debug(settings, tmp_path):
    path = tmp_path / "var" / "dev-jwks.json"
    settings.SMART_JWKS, settings.SMART_JWKS_FILE = "", str(path)
    settings.DEBUG = False
    with pytest.raises(keys.KeyConfigurationError, match="does not exist"):
        keys.signing_keys()
    assert not path.exists()
    settings.DEBUG = True
    assert sorted(k.alg for k in keys.signing_keys()) == ["ES384", "RS384"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert keys.signing_key(["ES384"]).alg == "ES384"


def test_it_refuses_a_public_only_jwks(settings, app_private_jwks):
    public = keys.SigningKey("k", "RS384", json.loads(app_private_jwks)["keys"][0]).public_jwk()
    settings.SMART_JWKS = json.dumps({"keys": [public]})
    with pytest.raises(keys.KeyConfigurationError, match="private"):
        keys.signing_keys()


def test_it_ignores_var_in_git():
    root = Path(__file__).resolve().parents[2]
    assert "/var/" in (root / ".gitignore").read_text().split()


def test_sign_out_never_sends_a_moved_launchs_tokens_to_the_new_issuer(client, smart_ehr, mocked):
    mocked.post(REVOKE, status=200)
    _signed_in(client, smart_ehr, "here", "moved")
    Launch.objects.filter(handle="moved").update(iss="https://old.example.org/fhir")
    client.post("/logout")
    revoked = {parse_qs(call.request.body)["token"][0] for call in mocked.calls if call.request.url == REVOKE}
    assert revoked == {"AT-here", "RT-here"}  # the moved launch's tokens went nowhere
    assert not Launch.objects.exists()


def test_the_start_page_lists_only_launches_that_still_work(client, smart_ehr):
    _signed_in(client, smart_ehr, "kept", "moved")
    Launch.objects.filter(handle="moved").update(iss="https://old.example.org/fhir")
    html = client.get("/").content.decode()
    assert "/c/kept/" in html and "/c/moved/" not in html
    smart_ehr.enabled = False
    smart_ehr.save()
    assert "Your open launches" not in client.get("/").content.decode()
