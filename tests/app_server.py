"""Start the app itself as a real server (gunicorn, production-like settings) for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests import dbtemplates
from tests.net import REPO, free_port, wait_until_ready


@dataclass
class AppServer:
    base_url: str
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a management command against this server's database and settings."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def app_env(db_path: Path, port: int, **overrides: str) -> dict[str, str]:
    """The production-like environment of an app server (plain HTTP on loopback only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
    env.update(
        {
            "DEBUG": "False",
            "SECRET_KEY": "e2e-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "TOKEN_ENCRYPTION_KEYS": "ZTJlLWtleS1lMmUta2V5LWUyZS1rZXktZTJlLWtleTE=",
            "DATABASE_URL": f"sqlite:///{db_path}",
            "SMART_APP_BASE_URL": f"http://localhost:{port}",
            "SECURE_SSL_REDIRECT": "False",
            "SECURE_PROXY_SSL_HEADER": "False",
            "STATIC_MANIFEST": "False",
            "WHITENOISE_USE_FINDERS": "True",
            "SANDBOX_ENABLED": "False",
            "SMART_ALLOW_HTTP_LOOPBACK": "True",  # the sandbox EHR is http://127.0.0.1
            "LOG_LEVEL": "INFO",
            "DJANGO_SETTINGS_MODULE": "smartapp.settings",
        }
    )
    env.update(overrides)
    return env


def _migrate(env: dict[str, str], db_path: Path) -> None:
    """A fresh app database: every migration and the cache table."""
    builder = AppServer(base_url="", env={**env, "DATABASE_URL": f"sqlite:///{db_path}"})
    builder.manage("migrate", "--noinput")
    builder.manage("createcachetable")


def start_app(db_path: Path, port: int | None = None, workers: int = 2, **env_overrides: str) -> AppServer:
    """Migrate a fresh database and serve the app with gunicorn on http://localhost:PORT."""
    port = port or free_port()
    env = app_env(db_path, port, **env_overrides)
    server = AppServer(base_url=f"http://localhost:{port}", env=env)
    if env["DATABASE_URL"] == f"sqlite:///{db_path}" and not Path(db_path).exists():
        dbtemplates.copy_of("app", Path(db_path), lambda path: _migrate(env, path))
    else:
        server.manage("migrate", "--noinput")
        server.manage("createcachetable")
    server.log_path = db_path.with_suffix(".log")
    log = server.log_path.open("w")
    server.process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "smartapp.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "8",
            "--worker-class",
            "gthread",
            "--timeout",
            "60",
            "--graceful-timeout",
            "2",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", server.process)
    except Exception:
        server.stop()
        raise
    return server
