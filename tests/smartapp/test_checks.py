"""The project's `check --deploy` checks (smartapp/checks.py)."""

from __future__ import annotations

import pytest

from smartapp import checks
from smartapp.models import Ehr


def _ids(messages) -> list[str]:
    return [m.id for m in messages]


@pytest.fixture
def no_keys(settings):
    settings.SMART_JWKS = ""
    settings.SMART_JWKS_FILE = ""
    return settings


@pytest.fixture
def jwt_ehr(ehr):
    Ehr.objects.filter(pk=ehr.pk).update(auth_method=Ehr.AuthMethod.PRIVATE_KEY_JWT)
    return ehr


def test_it_needs_no_keys_when_no_ehr_signs_assertions(no_keys, ehr):
    assert checks.check_signing_keys() == []


def test_it_fails_when_a_private_key_jwt_ehr_has_no_keys(no_keys, jwt_ehr):
    assert _ids(checks.check_signing_keys()) == ["smartapp.E001"]


def test_it_fails_on_a_missing_jwks_file_when_an_ehr_needs_it(no_keys, jwt_ehr, tmp_path):
    no_keys.SMART_JWKS_FILE = str(tmp_path / "absent.json")
    assert _ids(checks.check_signing_keys()) == ["smartapp.E002"]


@pytest.mark.parametrize("kind", ["absent", "directory", "not-json", "binary"])
def test_it_fails_on_an_unusable_jwks_file_even_without_such_an_ehr(no_keys, db, tmp_path, kind):
    path = tmp_path / "jwks.json"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-json":
        path.write_text("{")
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00")
    no_keys.SMART_JWKS_FILE = str(path)
    [error] = checks.check_signing_keys()
    assert error.id == "smartapp.E002" and "SMART_JWKS_FILE" in error.msg


def test_it_passes_with_usable_keys(no_keys, jwt_ehr, app_private_jwks, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(app_private_jwks)
    no_keys.SMART_JWKS_FILE = str(path)
    assert checks.check_signing_keys() == []


def test_it_fails_when_the_jwks_holds_no_usable_key(no_keys, jwt_ehr):
    no_keys.SMART_JWKS = '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}'
    assert _ids(checks.check_signing_keys()) == ["smartapp.E003"]


def test_it_checks_keys_before_the_first_migrate(no_keys, monkeypatch):
    from django.db import ProgrammingError

    def no_table(*args, **kwargs):
        raise ProgrammingError("relation smartapp_ehr does not exist")

    monkeypatch.setattr(Ehr.objects, "filter", no_table)
    assert checks.check_signing_keys() == []  # no table yet: no EHR needs keys yet


@pytest.mark.parametrize(
    ("url", "ids"),
    [
        ("https://smart.hospital.example", []),
        ("http://smart.hospital.example", ["smartapp.E004"]),
        ("http://localhost:8000", ["smartapp.E004"]),
    ],
)
def test_it_requires_an_https_base_url(settings, url, ids):
    settings.SMART_APP_BASE_URL = url
    assert _ids(checks.check_base_url()) == ids


@pytest.mark.parametrize(
    ("debug", "allow", "ids"),
    [(False, True, ["smartapp.E005"]), (True, True, []), (False, False, [])],
)
def test_it_refuses_http_loopback_without_debug(settings, debug, allow, ids):
    settings.DEBUG = debug
    settings.SMART_ALLOW_HTTP_LOOPBACK = allow
    assert _ids(checks.check_http_loopback()) == ids


def test_it_reads_a_missing_loopback_setting_as_off(settings):
    del settings.SMART_ALLOW_HTTP_LOOPBACK
    assert checks.check_http_loopback() == []
