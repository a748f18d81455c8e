"""The management commands and settings guards, run as a person would (subprocesses)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def _run(args: list[str], **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DEBUG": "True", **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    full_env.pop("SANDBOX_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_registers_a_client_idempotently_in_the_sandbox_db(tmp_path):
    db = tmp_path / "sb.sqlite3"
    args = [
        "sandbox_register_client",
        "--client-id",
        "cli-app",
        "--client-secret",
        "s",
        "--redirect-uri",
        "http://localhost:8000/callback",
        "--redirect-uri",
        "http://localhost:8000/cb2",
        "--launch-url",
        "http://localhost:8000/launch",
        "--name",
        "CLI app",
        "--db",
        str(db),
    ]
    first = _run(args, SANDBOX_ENABLED="True")
    assert first.returncode == 0, first.stderr
    assert "Registered sandbox client cli-app" in first.stdout
    second = _run(args, SANDBOX_ENABLED="True")
    assert second.returncode == 0, second.stderr
    assert "Updated sandbox client cli-app" in second.stdout
    rows = (
        sqlite3.connect(db)
        .execute("select client_id, redirect_uris, secret_hash from sandbox_client")
        .fetchall()
    )
    assert len(rows) == 1
    assert rows[0][1].split("\n") == ["http://localhost:8000/callback", "http://localhost:8000/cb2"]
    assert rows[0][2] and rows[0][2] != "s"  # stored as a digest


def test_it_refuses_sandbox_settings_without_debug():
    env = {**os.environ, "DEBUG": "False", "DJANGO_SETTINGS_MODULE": "sandbox.settings"}
    env.pop("SANDBOX_ALLOW_WITHOUT_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "dev/test only" in result.stderr


def test_it_adds_no_models_or_migrations_to_the_main_project():
    code = (
        "import django; django.setup(); from django.apps import apps; "
        "from django.db.migrations.loader import MigrationLoader; "
        "print(len(list(apps.get_app_config('sandbox').get_models())),"
        " 'sandbox' in MigrationLoader(None, ignore_no_migrations=True).migrated_apps)"
    )
    env = {
        **os.environ,
        "DEBUG": "True",
        "SANDBOX_ENABLED": "True",
        "DJANGO_SETTINGS_MODULE": "smartapp.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "False"]
