"""Tokens and secrets are encrypted at rest, and rotated keys keep decrypting."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from smartapp import crypto
from smartapp.models import Ehr


def test_it_round_trips_and_never_stores_plaintext(ehr):
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM smartapp_ehr WHERE id = %s", [ehr.id])
        (stored,) = cursor.fetchone()
    assert stored != "test-secret"
    assert "test-secret" not in stored
    assert Ehr.objects.get(pk=ehr.pk).client_secret == "test-secret"


def test_it_decrypts_with_an_old_key_after_rotation(settings):
    old_key = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [old_key]
    ciphertext = crypto.encrypt("refresh-abc")
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]
    assert crypto.decrypt(ciphertext) == "refresh-abc"
    rotated = crypto.rotate(ciphertext)
    settings.TOKEN_ENCRYPTION_KEYS = settings.TOKEN_ENCRYPTION_KEYS[:1]
    assert crypto.decrypt(rotated) == "refresh-abc"


def test_it_raises_a_clear_error_for_an_unknown_key(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    ciphertext = crypto.encrypt("x")
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(ciphertext)
