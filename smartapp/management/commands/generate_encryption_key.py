"""Print a new Fernet key for TOKEN_ENCRYPTION_KEYS."""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Print a new key for TOKEN_ENCRYPTION_KEYS (Fernet: 32 url-safe base64 bytes). Put it FIRST "
        "in the comma-separated list, then run rotate_encryption_keys."
    )
    requires_system_checks: list[str] = []

    def handle(self, *args, **options) -> None:
        self.stdout.write(Fernet.generate_key().decode())
