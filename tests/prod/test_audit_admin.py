"""The audit trail is visible to permitted staff in admin, and nobody can alter it there."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from smartapp.models import AuditEvent

CHANGELIST = "/admin/smartapp/auditevent/"


@pytest.fixture
def events(ehr):
    make = AuditEvent.objects.create
    return [
        make(
            ehr=ehr,
            patient_id="pat-1",
            resource_type="Observation",
            interaction="search",
            count=12,
            outcome="ok",
        ),
        make(ehr=ehr, patient_id="pat-2", resource_type="Condition", interaction="search", outcome="denied"),
    ]


@pytest.fixture
def auditor(db, client):
    user = get_user_model().objects.create_user("auditor", password="pw-123-long-enough", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(user)
    return user


def test_it_lists_and_searches_events_for_staff_with_view_permission(client, auditor, events):
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert b"pat-1" in response.content and b"pat-2" in response.content
    searched = client.get(CHANGELIST, {"q": "pat-2"})
    assert list(searched.context["cl"].result_list) == [events[1]]
    filtered = client.get(CHANGELIST, {"outcome__exact": "denied"})
    assert list(filtered.context["cl"].result_list) == [events[1]]
    assert client.get(CHANGELIST, {"at__year": events[0].at.year}).status_code == 200


def test_it_shows_an_event_read_only(client, auditor, events):
    url = f"{CHANGELIST}{events[0].pk}/change/"
    response = client.get(url)
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    assert client.post(url, {"patient_id": "tampered"}).status_code == 403
    events[0].refresh_from_db()
    assert events[0].patient_id == "pat-1"


@pytest.mark.parametrize("user_kind", ["auditor", "superuser"])
def test_it_refuses_add_and_delete_to_everyone(client, db, events, user_kind):
    if user_kind == "superuser":
        client.force_login(get_user_model().objects.create_superuser("root", password="pw-123-long-enough"))
    else:
        user = get_user_model().objects.create_user("a", password="pw-123-long-enough", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__endswith="_auditevent"))
        client.force_login(user)
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.get(f"{CHANGELIST}{events[0].pk}/delete/").status_code == 403
    assert client.post(f"{CHANGELIST}{events[0].pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [events[0].pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert AuditEvent.objects.count() == 2


def test_it_requires_staff(client, db, events):
    assert client.get(CHANGELIST).status_code == 302
    plain = get_user_model().objects.create_user("plain", password="pw-123-long-enough")
    client.force_login(plain)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_hides_the_trail_from_staff_without_view_permission(client, db, events):
    client.force_login(
        get_user_model().objects.create_user("s", password="pw-123-long-enough", is_staff=True)
    )
    assert client.get(CHANGELIST).status_code == 403
