"""Embedding diagnostics: an iframe navigation the browser will refuse is logged and shown to admins."""

from __future__ import annotations

import logging
from io import StringIO
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from smartapp.models import Ehr, Launch
from smartapp.session import new_handle, remember_launch
from tests.smartapp.conftest import ISS

IFRAME = {"HTTP_SEC_FETCH_DEST": "iframe"}
EHR_PAGE = {"HTTP_REFERER": "https://ehr.example.org/chart/123"}


def _refused_at(ehr: Ehr):
    return Ehr.objects.get(pk=ehr.pk).framing_refused_at


def _warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "smartapp.security" and r.levelno == logging.WARNING
    ]


@pytest.fixture
def unframed(smart_ehr) -> Ehr:
    """The mocked EHR, registered without a frame ancestor (register_ehr's default)."""
    Ehr.objects.filter(pk=smart_ehr.pk).update(frame_ancestors="")
    smart_ehr.refresh_from_db()
    return smart_ehr


def test_it_records_an_iframe_launch_from_an_ehr_without_frame_ancestors(client, unframed, caplog):
    response = client.get("/launch", {"iss": ISS, "launch": "x"}, **IFRAME, **EHR_PAGE)
    assert response.status_code == 302  # the launch itself goes on; the browser refuses the page later
    assert _refused_at(unframed) is not None
    [warning] = _warnings(caplog)
    assert "'Test EHR'" in warning and "no frame ancestor" in warning
    assert "https://ehr.example.org" in warning  # the origin to add, from the Referer


def test_it_records_an_iframe_launch_from_a_page_not_among_the_frame_ancestors(client, smart_ehr, caplog):
    client.get("/launch", {"iss": ISS, "launch": "x"}, HTTP_REFERER="https://portal.example.net/", **IFRAME)
    assert _refused_at(smart_ehr) is not None
    assert "https://portal.example.net" in _warnings(caplog)[0]


def test_it_says_nothing_when_the_frame_is_allowed_or_not_a_frame(client, smart_ehr, caplog):
    client.get("/launch", {"iss": ISS, "launch": "x"}, **IFRAME, **EHR_PAGE)  # a registered ancestor
    client.get("/launch", {"iss": ISS, "launch": "x"}, HTTP_SEC_FETCH_DEST="document")  # top level
    client.get("/launch", {"iss": ISS, "launch": "x"}, **IFRAME)  # no Referer: the ancestors exist
    assert _refused_at(smart_ehr) is None
    assert _warnings(caplog) == []


def test_it_records_an_iframe_dashboard_request_for_an_ehr_without_frame_ancestors(client, unframed, caplog):
    launch = Launch.objects.create(
        handle=new_handle(), ehr=unframed, kind=Launch.Kind.EHR, access_token="t", patient_id="pat-1"
    )
    session = client.session
    remember_launch(SimpleNamespace(session=session), launch)
    session.save()
    client.get(f"/c/{launch.handle}/p/pat-2/", **IFRAME)  # any launch view; this one calls no EHR
    assert _refused_at(unframed) is not None
    assert "'Test EHR'" in _warnings(caplog)[0]


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-Correct-Horse-9")
    client.force_login(user)
    return client


def test_it_shows_a_refused_embedding_to_the_admin_until_the_ancestors_change(admin_client, unframed, mocked):
    from django.utils import timezone

    Ehr.objects.filter(pk=unframed.pk).update(framing_refused_at=timezone.now())
    listing = admin_client.get("/admin/smartapp/ehr/").content.decode()
    assert "embedding refused" in listing
    page = admin_client.get(f"/admin/smartapp/ehr/{unframed.pk}/change/").content.decode()
    assert "the browser refused it: no frame ancestor is registered" in page
    check = admin_client.post(
        "/admin/smartapp/ehr/", {"action": "check_configuration", "_selected_action": [unframed.pk]}
    ).content.decode()
    assert "the browser refused it" in check and "no frame ancestor is registered" in check

    from tests.smartapp.test_admin_and_commands import _form_data

    unframed.refresh_from_db()
    saved = admin_client.post(
        f"/admin/smartapp/ehr/{unframed.pk}/change/", _form_data(unframed, frame_ancestors="https://ehr.example.org")
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert _refused_at(unframed) is None


def _register(*extra: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("register_ehr", "--name", "X", "--iss", "https://x.example.org/fhir", "--client-id", "c",
                 "--client-secret", "s", *extra, stdout=out, stderr=err)  # fmt: skip
    return out.getvalue(), err.getvalue()


def test_it_warns_when_register_ehr_has_no_frame_ancestor(db):
    out, err = _register()
    assert out.strip() == "x"
    assert "Warning: no --frame-ancestor" in err
    _, err = _register("--frame-ancestor", "https://x.example.org")
    assert err == ""
    _, err = _register()  # an update without the flag keeps the stored ancestor: nothing to warn about
    assert err == ""
