"""EHR admin (write-only secret, configuration check) and the management commands."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from smartapp.models import Ehr, Launch
from tests.smartapp.conftest import METADATA, SMART_CONFIGURATION, WELL_KNOWN


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("admin", "admin@example.org", "pw-Correct-Horse-9")
    client.force_login(user)
    return client


def _form_data(ehr: Ehr, **overrides) -> dict[str, str]:
    data = {
        "name": ehr.name,
        "slug": ehr.slug,
        "iss": ehr.iss,
        "enabled": "on",
        "client_id": ehr.client_id,
        "auth_method": ehr.auth_method,
        "client_secret": "",
        "ehr_launch_scope": ehr.ehr_launch_scope,
        "standalone_scope": ehr.standalone_scope,
        "frame_ancestors": ehr.frame_ancestors,
        "authorize_url_override": "",
        "token_url_override": "",
    }
    data.update(overrides)
    return data


def test_it_never_renders_the_client_secret(admin_client, ehr):
    response = admin_client.get(f"/admin/smartapp/ehr/{ehr.pk}/change/")
    assert response.status_code == 200
    assert b"test-secret" not in response.content
    assert b'type="password"' in response.content


def test_it_keeps_the_secret_when_left_blank_and_replaces_it_when_given(admin_client, ehr):
    url = f"/admin/smartapp/ehr/{ehr.pk}/change/"
    assert admin_client.post(url, _form_data(ehr, name="Renamed")).status_code == 302
    ehr.refresh_from_db()
    assert (ehr.name, ehr.client_secret) == ("Renamed", "test-secret")
    assert admin_client.post(url, _form_data(ehr, client_secret="new-secret")).status_code == 302
    ehr.refresh_from_db()
    assert ehr.client_secret == "new-secret"


def test_it_requires_a_secret_for_symmetric_auth(admin_client, db):
    response = admin_client.post(
        "/admin/smartapp/ehr/add/",
        _form_data(Ehr(name="New", slug="new", iss="https://new.example.org/fhir", client_id="c")),
    )
    assert response.status_code == 200
    assert b"needs a client secret" in response.content
    assert not Ehr.objects.filter(slug="new").exists()


def test_it_lists_and_searches_ehrs(admin_client, ehr):
    response = admin_client.get("/admin/smartapp/ehr/", {"q": "ehr.example"})
    assert response.status_code == 200
    assert b"Test EHR" in response.content
    assert b"Test EHR" not in admin_client.get("/admin/smartapp/ehr/", {"q": "nomatch"}).content


def test_it_checks_the_configuration_from_the_admin(admin_client, ehr, mocked):
    document = {
        **SMART_CONFIGURATION,
        "capabilities": ["launch-ehr", "permission-v2"],
        "introspection_endpoint": "introspect",  # relative: resolved against the FHIR base
    }
    mocked.get(WELL_KNOWN, json=document)
    response = admin_client.post(
        "/admin/smartapp/ehr/", {"action": "check_configuration", "_selected_action": [ehr.pk]}
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "Test EHR — usable" in content
    assert "<td>launch-standalone</td><td><strong>missing</strong></td>" in content
    assert "<td>PKCE S256</td><td>yes</td>" in content
    assert f"introspection: <code>{ehr.iss}/introspect</code>" in content
    assert "test-secret" not in content
    ehr.refresh_from_db()
    assert ehr.discovered_at is not None


def test_it_shows_problems_in_the_configuration_check(admin_client, ehr, mocked):
    mocked.get(WELL_KNOWN, status=404)
    mocked.get(METADATA, status=404)
    response = admin_client.post(
        "/admin/smartapp/ehr/", {"action": "check_configuration", "_selected_action": [ehr.pk]}
    )
    assert "Discovery failed" in response.content.decode()


def _register(*args: str) -> str:
    out = StringIO()
    call_command("register_ehr", *args, stdout=out)
    return out.getvalue().strip()


def test_it_registers_an_ehr_idempotently(db):
    base = ["--name", "Sandbox EHR", "--iss", "http://127.0.0.1:9999/fhir/", "--client-id", "app"]
    slug = _register(
        *base,
        "--client-secret",
        "s3cret",
        "--frame-ancestor",
        "http://127.0.0.1:9999",
        "--frame-ancestor",
        "https://ehr.example.org",
    )
    assert slug == "sandbox-ehr"
    ehr = Ehr.objects.get()
    assert ehr.iss == "http://127.0.0.1:9999/fhir"
    assert ehr.frame_ancestors.split() == ["http://127.0.0.1:9999", "https://ehr.example.org"]
    assert ehr.client_secret == "s3cret"
    again = _register(*base, "--scope", "launch openid patient/Patient.rs", "--disabled")
    assert again == slug
    ehr = Ehr.objects.get()
    assert ehr.client_secret == "s3cret"  # kept when not given
    assert ehr.ehr_launch_scope == "launch openid patient/Patient.rs"
    assert ehr.enabled is False


def test_it_registers_a_private_key_jwt_ehr_without_secret_and_a_unique_slug(db, ehr):
    slug = _register(
        "--name",
        "Test EHR",
        "--iss",
        "https://other.example.org/fhir",
        "--client-id",
        "c",
        "--auth-method",
        "private_key_jwt",
        "--standalone-scope",
        "launch/patient openid",
    )
    assert slug == "test-ehr-2"
    assert Ehr.objects.get(slug=slug).standalone_scope == "launch/patient openid"


def test_it_refuses_bad_registrations(db):
    with pytest.raises(CommandError, match="client-secret"):
        _register("--name", "X", "--iss", "https://x.example.org", "--client-id", "c")
    with pytest.raises(CommandError, match="iss"):
        _register("--name", "X", "--iss", "not a url", "--client-id", "c", "--client-secret", "s")


def test_it_generates_a_private_jwks_file(tmp_path):
    path = tmp_path / "keys.json"
    out = StringIO()
    call_command("generate_jwks", str(path), stdout=out)
    assert os.stat(path).st_mode & 0o777 == 0o600
    document = json.loads(path.read_text())
    assert sorted(k["alg"] for k in document["keys"]) == ["ES384", "RS384"]
    assert all("d" in k for k in document["keys"])
    assert "SMART_JWKS_FILE" in out.getvalue()
    with pytest.raises(CommandError, match="exists"):
        call_command("generate_jwks", str(path))


@pytest.mark.parametrize(
    "origin",
    ["https://ehr.example.org/path", "https://a.example.org; script-src *", "http://ehr.example.org", "*"],
)
def test_it_refuses_a_frame_ancestor_that_is_not_a_plain_origin(db, origin):
    with pytest.raises(CommandError, match="frame_ancestors"):
        _register("--name", "X", "--iss", "https://x.example.org/fhir", "--client-id", "c",
                  "--client-secret", "s", "--frame-ancestor", origin)  # fmt: skip
    assert not Ehr.objects.filter(iss="https://x.example.org/fhir").exists()


def test_it_purges_launches_older_than_the_session_lifetime_and_revokes_their_tokens(ehr, mocked):
    revoke_url = "https://ehr.example.org/auth/revoke"
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "revocation_endpoint": revoke_url})
    mocked.post(revoke_url, status=200)
    old = Launch.objects.create(
        handle="old", ehr=ehr, kind="ehr", access_token="AT-old", refresh_token="RT-old"
    )
    Launch.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    fresh = Launch.objects.create(handle="fresh", ehr=ehr, kind="ehr", access_token="AT-new")
    out = StringIO()
    call_command("purge_launches", stdout=out)
    assert "1 launch(es) purged." in out.getvalue()
    assert list(Launch.objects.values_list("handle", flat=True)) == [fresh.handle]
    revoked = [
        parse_qs(call.request.body)["token"][0] for call in mocked.calls if call.request.url == revoke_url
    ]
    assert revoked == ["RT-old", "AT-old"]
