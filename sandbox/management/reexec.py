"""Run a sandbox management command under the sandbox settings and database.

`python manage.py runsandbox` starts under the main project's settings (which install the
`sandbox` app only so the command is found). The command then replaces its process with
`manage.py <same args>` under DJANGO_SETTINGS_MODULE=sandbox.settings, with the database chosen
by --db (or SANDBOX_DATABASE_URL). exec (not a child process) keeps one PID, so a supervisor's
signals reach the real server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import CommandError

BASE_DIR = Path(__file__).resolve().parent.parent.parent
SANDBOX_SETTINGS = "sandbox.settings"


def db_url(db_path: str | None) -> str | None:
    return f"sqlite:///{Path(db_path).resolve()}" if db_path else None


def ensure_sandbox_process(command: str, db_path: str | None) -> None:
    """Return if this process already runs with the sandbox settings/DB; else exec one that does."""
    wanted = {"DJANGO_SETTINGS_MODULE": SANDBOX_SETTINGS}
    url = db_url(db_path)
    if url:
        wanted["SANDBOX_DATABASE_URL"] = url
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return
    if command not in sys.argv[1:]:
        raise CommandError(f"run `{command}` from the command line (python manage.py {command} ...)")
    args = sys.argv[sys.argv.index(command) :]
    env = {**os.environ, **wanted}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, str(BASE_DIR / "manage.py"), *args], env)  # noqa: S606


def prepare_database() -> None:
    """Create the SQLite file's directory and apply the sandbox migrations."""
    from django.conf import settings
    from django.core.management import call_command

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
