"""The app's database, read and changed from outside the app (tests and scripts, no Django setup).

Launch tokens are stored Fernet-encrypted; with the app server's own key (its environment) they
can be decrypted here to check that none of them ever leaks into a page or a log.
"""

from __future__ import annotations

import contextlib
import sqlite3

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tests.stack import Stack


def _fernet(stack: Stack) -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in stack.app.env["TOKEN_ENCRYPTION_KEYS"].split(",")])


def _sqlite_path(stack: Stack) -> str:
    url = stack.app.env["DATABASE_URL"]
    assert url.startswith("sqlite:///"), "the e2e leak checks read the app's SQLite database"
    return url.removeprefix("sqlite:///")


def launch_tokens(stack: Stack, handle: str) -> tuple[str, str]:
    """(access token, refresh token) of one launch, read from the app's SQLite database."""
    with sqlite3.connect(_sqlite_path(stack), timeout=10) as db:
        row = db.execute(
            "SELECT access_token, refresh_token FROM smartapp_launch WHERE handle = ?", (handle,)
        ).fetchone()
    assert row is not None, "no such launch"
    fernet = _fernet(stack)
    return tuple(fernet.decrypt(v.encode()).decode() if v else "" for v in row)  # type: ignore[return-value]


def app_tokens(stack: Stack) -> set[str]:
    """Every access/refresh token the app currently holds (read from its SQLite DB, decrypted)."""
    fernet = _fernet(stack)
    found: set[str] = set()
    with sqlite3.connect(_sqlite_path(stack), timeout=10) as db:
        for row in db.execute("SELECT access_token, refresh_token FROM smartapp_launch"):
            for value in row:
                if value:
                    with contextlib.suppress(InvalidToken):
                        found.add(fernet.decrypt(value.encode()).decode())
    return found


EXPIRE_SNIPPET = (
    "from datetime import timedelta; from django.utils import timezone; "
    "from smartapp.models import Launch; "
    "print(Launch.objects.update(expires_at=timezone.now() - timedelta(seconds=5)))"
)


def expire_launches(stack: Stack) -> int:
    """Make every launch's access token expired now, in the app's own database."""
    url = stack.app.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10) as db:
            return db.execute("UPDATE smartapp_launch SET expires_at = '2000-01-01 00:00:00'").rowcount
    output = stack.app.manage("shell", "--no-imports", "-c", EXPIRE_SNIPPET).stdout.strip()
    return int(output.splitlines()[-1])
