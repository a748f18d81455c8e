"""The settings refuse unsafe production configurations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _import_settings(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "DATABASE_URL", "ALLOWED_HOSTS", "DEBUG"}
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import smartapp.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_to_start_without_production_secrets():
    result = _import_settings({"DEBUG": "False"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "TOKEN_ENCRYPTION_KEYS" in result.stderr


def test_it_starts_in_debug_with_demo_defaults():
    result = _import_settings({"DEBUG": "True", "SANDBOX_ENABLED": "False"})
    assert result.returncode == 0, result.stderr


def test_it_refuses_the_sandbox_without_debug():
    result = _import_settings(
        {
            "DEBUG": "False",
            "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "example.org",
            "TOKEN_ENCRYPTION_KEYS": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=",
            "DATABASE_URL": "sqlite:///tmp.sqlite3",
            "SANDBOX_ENABLED": "True",
        }
    )
    assert result.returncode != 0
    assert "sandbox" in result.stderr.lower()
