"""Run manage.py in a subprocess under a production-like environment (DEBUG off, real secrets)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

# Variables tests/testenv.py relaxes for the in-process suite; a production run must not see them.
_RELAXED = {
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
    "STATIC_MANIFEST",
    "SANDBOX_ENABLED",
    "DATABASE_URL",
    "SECRET_KEY",
    "TOKEN_ENCRYPTION_KEYS",
    "ALLOWED_HOSTS",
    "DEBUG",
    "LOG_LEVEL",
    "STATIC_ROOT",
    "SMART_ALLOW_HTTP_LOOPBACK",
}


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _RELAXED}
    env.update(
        {
            "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "smart.hospital.example",
            "CSRF_TRUSTED_ORIGINS": "https://smart.hospital.example",
            "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
            "SMART_APP_BASE_URL": "https://smart.hospital.example",
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
