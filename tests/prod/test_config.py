"""Production configuration: every variable documented, check --deploy clean, static files built."""

from __future__ import annotations

import re

import pytest
from cryptography.fernet import Fernet

from tests.prod.prodenv import ROOT, manage, production_env

_ENV_CALL = re.compile(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""")
_EXAMPLE_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def _documented() -> dict[str, str]:
    """Variable -> the comment block right above it in .env.example."""
    text = (ROOT / ".env.example").read_text()
    documented: dict[str, str] = {}
    comment: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            comment.append(line)
        elif match := _EXAMPLE_LINE.match(line):
            documented[match.group(1)] = "\n".join(comment)
            comment = []
        else:
            comment = []
    return documented


def test_it_documents_every_variable_settings_reads():
    read = set(_ENV_CALL.findall((ROOT / "smartapp" / "settings.py").read_text()))
    assert {"SECRET_KEY", "DATABASE_URL", "TOKEN_ENCRYPTION_KEYS", "DEBUG"} <= read  # the parser works
    documented = _documented()
    assert sorted(read - documented.keys()) == []
    uncommented = [name for name in read if not documented[name].strip("# \n")]
    assert uncommented == []


def test_it_marks_every_production_requirement_as_required():
    documented = _documented()
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "TOKEN_ENCRYPTION_KEYS", "DATABASE_URL"):
        assert "REQUIRED" in documented[name], name


def test_it_passes_check_deploy_under_the_production_environment(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_fails_check_deploy_when_hsts_is_turned_off(tmp_path):
    result = manage(
        production_env(tmp_path, SECURE_HSTS_SECONDS="0"), "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr


@pytest.mark.parametrize(
    "keys",
    ["not-a-fernet-key", Fernet.generate_key().decode() + ",c2hvcnQ="],
    ids=["garbage", "second-key-too-short"],
)
def test_it_refuses_to_start_with_an_invalid_encryption_key(tmp_path, keys):
    result = manage(production_env(tmp_path, TOKEN_ENCRYPTION_KEYS=keys), "check")
    assert result.returncode != 0
    assert "is not a valid Fernet key" in result.stderr
    assert "generate_encryption_key" in result.stderr
    assert "c2hvcnQ=" not in result.stderr  # the key itself is never echoed


@pytest.mark.parametrize("name", ["FHIR_QUERY_THREADS", "FHIR_MAX_WORKERS", "FHIR_PAGE_SIZE"])
def test_it_refuses_to_start_without_room_for_a_single_query(tmp_path, name):
    result = manage(production_env(tmp_path, **{name: "0"}), "check")
    assert result.returncode != 0
    assert f"{name} must be at least 1, got 0" in result.stderr


def test_it_collects_hashed_compressed_static_files(tmp_path):
    static_root = tmp_path / "static"
    result = manage(production_env(tmp_path, STATIC_ROOT=str(static_root)), "collectstatic", "--noinput")
    assert result.returncode == 0, result.stdout + result.stderr
    hashed = [
        p
        for p in (static_root / "css").glob("base.*.css")
        if re.fullmatch(r"base\.[0-9a-f]{12}\.css", p.name)
    ]
    assert len(hashed) == 1
    assert hashed[0].with_name(hashed[0].name + ".gz").is_file()
    assert (static_root / "staticfiles.json").is_file()


def _build_env(tmp_path, **extra: str) -> dict[str, str]:
    """An image build: DEBUG off and none of the runtime secrets or the database."""
    env = production_env(tmp_path, **extra)
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "TOKEN_ENCRYPTION_KEYS", "DATABASE_URL"):
        env.pop(name)
    return env


def test_it_collects_static_files_without_the_runtime_secrets(tmp_path):
    static_root = tmp_path / "static"
    result = manage(_build_env(tmp_path, STATIC_ROOT=str(static_root)), "collectstatic", "--noinput")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (static_root / "staticfiles.json").is_file()


def test_it_generates_the_first_encryption_key_before_any_key_exists(tmp_path):
    result = manage(_build_env(tmp_path), "generate_encryption_key")
    assert result.returncode == 0, result.stderr
    Fernet(result.stdout.strip().encode())  # a valid key


def test_it_still_refuses_to_serve_without_the_runtime_secrets(tmp_path):
    result = manage(_build_env(tmp_path), "check")
    assert result.returncode != 0
    assert "these environment variables are required: SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"SMART_JWKS_FILE": "/nonexistent/smart-jwks.json"}, "smartapp.E002"),
        ({"SMART_APP_BASE_URL": "http://smart.hospital.example"}, "smartapp.E004"),
    ],
    ids=["missing-jwks-file", "http-base-url"],
)
def test_it_fails_check_deploy_on_values_that_cannot_work(tmp_path, overrides, error):
    result = manage(production_env(tmp_path, **overrides), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert error in result.stderr
