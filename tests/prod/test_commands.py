"""generate_encryption_key and rotate_encryption_keys."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.db import connection

from smartapp.models import Ehr, Launch


def _raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_it_generates_a_valid_fernet_key():
    out = io.StringIO()
    call_command("generate_encryption_key", stdout=out)
    key = out.getvalue().strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"
    other = io.StringIO()
    call_command("generate_encryption_key", stdout=other)
    assert other.getvalue().strip() != key


@pytest.mark.django_db
def test_it_re_encrypts_every_secret_under_the_newest_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    ehr = Ehr.objects.create(
        name="E", slug="e", iss="https://e.example.org/fhir", client_id="c", client_secret="cs-1"
    )
    no_secret = Ehr.objects.create(name="J", slug="j", iss="https://j.example.org/fhir", client_id="c")
    launch = Launch.objects.create(
        handle="h1", ehr=ehr, kind="ehr", access_token="at-1", refresh_token="rt-1"
    )
    bare = Launch.objects.create(handle="h2", ehr=ehr, kind="ehr", access_token="at-2")

    settings.TOKEN_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "smartapp.Ehr: 1 value(s)" in out.getvalue()
    assert "smartapp.Launch: 3 value(s)" in out.getvalue()

    newest_only = Fernet(new.encode())
    assert newest_only.decrypt(_raw("smartapp_ehr", "client_secret", ehr.pk).encode()) == b"cs-1"
    assert newest_only.decrypt(_raw("smartapp_launch", "access_token", launch.pk).encode()) == b"at-1"
    assert newest_only.decrypt(_raw("smartapp_launch", "refresh_token", launch.pk).encode()) == b"rt-1"
    assert newest_only.decrypt(_raw("smartapp_launch", "access_token", bare.pk).encode()) == b"at-2"
    assert _raw("smartapp_launch", "refresh_token", bare.pk) == ""
    assert _raw("smartapp_ehr", "client_secret", no_secret.pk) == ""
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(_raw("smartapp_ehr", "client_secret", ehr.pk).encode())

    settings.TOKEN_ENCRYPTION_KEYS = [new]  # the old key can now be dropped
    assert Ehr.objects.get(pk=ehr.pk).client_secret == "cs-1"
    assert Launch.objects.get(pk=launch.pk).refresh_token == "rt-1"


@pytest.mark.django_db
def test_it_changes_nothing_when_a_value_cannot_be_decrypted(settings):
    lost, kept = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [kept]
    first = Ehr.objects.create(
        name="A", slug="a", iss="https://a.example.org/fhir", client_id="c", client_secret="a"
    )
    settings.TOKEN_ENCRYPTION_KEYS = [lost]
    second = Ehr.objects.create(
        name="B", slug="b", iss="https://b.example.org/fhir", client_id="c", client_secret="b"
    )
    before = _raw("smartapp_ehr", "client_secret", first.pk)

    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), kept]
    with pytest.raises(CommandError, match=f"smartapp.Ehr pk={second.pk} field client_secret"):
        call_command("rotate_encryption_keys", stdout=io.StringIO())
    assert _raw("smartapp_ehr", "client_secret", first.pk) == before  # rolled back


@pytest.mark.django_db
def test_it_never_overwrites_a_token_refreshed_during_rotation(settings, monkeypatch):
    from smartapp import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    ehr = Ehr.objects.create(
        name="E", slug="e", iss="https://e.example.org/fhir", client_id="c", client_secret="s"
    )
    launch = Launch.objects.create(
        handle="h1", ehr=ehr, kind="ehr", access_token="at-1", refresh_token="rt-1"
    )
    settings.TOKEN_ENCRYPTION_KEYS = [new, old]
    real_rotate = crypto.rotate

    def rotate_while_a_refresh_lands(ciphertext: str) -> str:
        # A refresh in another process stores new tokens after the launch row was read.
        if crypto.decrypt(ciphertext) == "at-1":
            Launch.objects.filter(pk=launch.pk).update(access_token="at-2", refresh_token="rt-2")
        return real_rotate(ciphertext)

    monkeypatch.setattr(crypto, "rotate", rotate_while_a_refresh_lands)
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    fresh = Launch.objects.get(pk=launch.pk)
    assert (fresh.access_token, fresh.refresh_token) == ("at-2", "rt-2")
