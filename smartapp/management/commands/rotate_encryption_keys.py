"""Re-encrypt every stored secret under the newest TOKEN_ENCRYPTION_KEYS key.

After this has run, the older keys can be dropped from TOKEN_ENCRYPTION_KEYS. The ciphertext
is read raw (a Cast skips the field's decryption) and written back raw (a Value skips its
encryption), so each value is decrypted once, by `crypto.rotate`, and never double-encrypted.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models.functions import Cast

from smartapp import crypto
from smartapp.models import Ehr, Launch

# model -> encrypted fields
ENCRYPTED_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    Ehr: ("client_secret",),
    Launch: ("access_token", "refresh_token"),
}


def rotate_model(model: type[models.Model], fields: tuple[str, ...]) -> int:
    """Rotate `fields` of every row of `model`; returns the number of values re-encrypted."""
    raw = {f"raw_{name}": Cast(name, output_field=models.TextField()) for name in fields}
    rotated = 0
    rows = model._default_manager.annotate(**raw).values_list("pk", *raw).order_by("pk")
    for pk, *ciphertexts in rows.iterator(chunk_size=500):
        updates = {}
        for name, ciphertext in zip(fields, ciphertexts, strict=True):
            if not ciphertext:
                continue
            try:
                updates[name] = models.Value(crypto.rotate(ciphertext), output_field=models.TextField())
            except (crypto.DecryptionError, InvalidToken) as exc:  # rotate() raises the latter
                raise CommandError(
                    f"{model._meta.label} pk={pk} field {name}: cannot be decrypted with any configured "
                    "key; nothing was changed. Is an old key missing from TOKEN_ENCRYPTION_KEYS?"
                ) from exc
        if updates:
            # Only if the row still holds what was read: a token refreshed meanwhile was written
            # under the newest key already, and must not be overwritten with the old token.
            unchanged = {
                f"raw_{name}": ciphertext or "" for name, ciphertext in zip(fields, ciphertexts, strict=True)
            }
            written = model._default_manager.annotate(**raw).filter(pk=pk, **unchanged).update(**updates)
            rotated += len(updates) if written else 0
    return rotated


class Command(BaseCommand):
    help = (
        "Re-encrypt EHR client secrets and launch tokens under the newest TOKEN_ENCRYPTION_KEYS key "
        "(all or nothing). Afterwards the older keys can be removed."
    )

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            for model, fields in ENCRYPTED_FIELDS.items():
                count = rotate_model(model, fields)
                self.stdout.write(f"{model._meta.label}: {count} value(s) re-encrypted")
        self.stdout.write(self.style.SUCCESS("All secrets are encrypted under the newest key."))
