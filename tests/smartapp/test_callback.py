"""The redirect URI: state handling, errors, mix-up defence, code exchange, identity, launches."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client
from django.urls import reverse

from smartapp import authorize, session
from smartapp.identity import stable_username
from smartapp.models import Launch
from tests.smartapp.conftest import ISS, ISSUER, REVOKE, TOKEN, token_body


@pytest.fixture(autouse=True)
def _log_everything(caplog):
    caplog.set_level(logging.DEBUG)


def _start(client, ehr, **query) -> dict[str, str]:
    if query.get("standalone"):
        response = client.get(f"/standalone/{ehr.slug}/")
    else:
        response = client.get("/launch", {"iss": ISS, "launch": query.get("launch", "L1")})
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}


def _finish(client, mocked, ehr_keys, params, *, query=None, **body):
    id_token = ehr_keys.id_token(nonce=params.get("nonce"))
    mocked.post(TOKEN, json=token_body(id_token=id_token, **body))
    return client.get("/callback", {"code": "the-code", "state": params["state"], **(query or {})})


def _secrets_absent(text: str, *extra: str) -> None:
    for value in ("the-code", "test-secret", "AT-", "RT-", *extra):
        assert value not in text, value


def test_it_completes_an_ehr_launch(client, smart_ehr, mocked, ehr_keys, caplog):
    params = _start(client, smart_ehr)
    session_before = client.session.session_key
    response = _finish(client, mocked, ehr_keys, params, fhirContext=[{"reference": "Encounter/enc-1"}])
    launch = Launch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("clinical:dashboard", args=[launch.handle])
    assert (launch.kind, launch.patient_id, launch.encounter_id) == ("ehr", "pat-1", "enc-1")
    assert launch.fhir_user == f"{ISS}/Practitioner/pr-1"
    assert launch.access_token.startswith("AT-") and launch.refresh_token.startswith("RT-")
    assert launch.scope.split()[0] == "launch"
    assert launch.requested_scope == smart_ehr.ehr_launch_scope
    assert launch.fhir_context == [{"reference": "Encounter/enc-1"}]
    assert launch.need_patient_banner is True
    assert launch.smart_style_url == "https://ehr.example.org/style.json"
    assert 3500 < (launch.expires_at.timestamp() - time.time()) <= 3600
    user = get_user_model().objects.get()
    assert launch.user == user
    assert user.username == stable_username(ISS, "user-123")
    assert client.session[SESSION_KEY] == str(user.pk)
    assert client.session.session_key != session_before  # rotated on login
    assert session.LAUNCHES_KEY in client.session and launch.handle in client.session[session.LAUNCHES_KEY]
    assert params["state"] not in client.session[session.PENDING_KEY]
    token_call = next(call for call in mocked.calls if call.request.url == TOKEN)
    form = parse_qs(token_call.request.body)
    assert form["code_verifier"][0] and form["redirect_uri"][0] == "http://localhost:8000/callback"
    _secrets_absent(response.content.decode() + caplog.text, launch.access_token, launch.refresh_token)


@pytest.mark.parametrize("junk", ["\x00", "\ud800"], ids=["nul", "lone-surrogate"])
def test_it_stores_no_value_postgres_would_refuse(client, smart_ehr, mocked, ehr_keys, caplog, junk):
    # NUL (PostgreSQL refuses it) and lone surrogates (no database can encode them) in optional
    # fields: dropped with a warning, and the launch still works. Stored as-is, each was a 500.
    params = _start(client, smart_ehr)
    id_token = ehr_keys.id_token(
        nonce=params["nonce"],
        sub=f"user{junk}",
        fhirUser=f"https://ehr{junk}.example.org/fhir/Practitioner/pr-1",
        given_name=f"A{junk}",
        family_name="B",
    )
    mocked.post(
        TOKEN,
        json=token_body(
            id_token=id_token,
            tenant=f"t{junk}",
            intent=["x"],
            smart_style_url="https://[broken",
            fhirContext=[{"reference": f"Encounter/{junk}"}],
            encounter="enc 1",
        ),
    )
    response = client.get("/callback", {"code": "the-code", "state": params["state"]})
    assert response.status_code == 302
    launch = Launch.objects.get()
    assert (launch.tenant, launch.intent, launch.fhir_context, launch.encounter_id) == ("", "", [], "")
    assert launch.fhir_user == ""
    assert launch.patient_id == "pat-1" and launch.user is not None
    assert launch.iss == ISS
    assert "tenant is not a usable string" in caplog.text


def _launch_as(client, mocked, ehr_keys, ehr, sub: str) -> Launch:
    params = _start(client, ehr)
    id_token = ehr_keys.id_token(nonce=params["nonce"], sub=sub)
    mocked.post(TOKEN, json=token_body(id_token=id_token))
    response = client.get("/callback", {"code": "the-code", "state": params["state"]})
    return Launch.objects.get(handle=response["Location"].rstrip("/").rsplit("/", 1)[-1])


def test_it_ends_the_previous_users_launches_when_another_user_signs_in(client, smart_ehr, mocked, ehr_keys):
    mocked.post(REVOKE, status=200)
    first = _launch_as(client, mocked, ehr_keys, smart_ehr, "user-123")
    again = _launch_as(client, mocked, ehr_keys, smart_ehr, "user-123")
    assert Launch.objects.count() == 2  # the same user keeps both tabs
    other = _launch_as(client, mocked, ehr_keys, smart_ehr, "user-999")
    # login() flushed the session for the new user; the old launches must not linger with tokens.
    assert list(Launch.objects.all()) == [other]
    assert client.session[session.LAUNCHES_KEY] == [other.handle]
    revoked = {parse_qs(c.request.body)["token"][0] for c in mocked.calls if c.request.url == REVOKE}
    assert {first.access_token, first.refresh_token, again.access_token, again.refresh_token} <= revoked


def test_it_completes_a_standalone_launch_without_openid(client, smart_ehr, mocked, ehr_keys):
    smart_ehr.standalone_scope = "launch/patient patient/Patient.rs"
    smart_ehr.save()
    params = _start(client, smart_ehr, standalone=True)
    assert "nonce" not in params
    session_before = client.session.session_key
    mocked.post(TOKEN, json=token_body(scope="launch/patient patient/Patient.rs"))
    response = client.get("/callback", {"code": "c", "state": params["state"]})
    assert response.status_code == 302
    launch = Launch.objects.get()
    assert (launch.kind, launch.user, launch.fhir_user) == ("standalone", None, "")
    # No sign-in, yet the session key is rotated: a planted session id never owns the launch.
    assert client.session.session_key != session_before


def test_it_keeps_two_tabs_on_their_own_patients(client, smart_ehr, mocked, ehr_keys):
    first = _start(client, smart_ehr, launch="tab-1")
    second = _start(client, smart_ehr, launch="tab-2")
    response_b = _finish(client, mocked, ehr_keys, second, patient="pat-B")
    response_a = _finish(client, mocked, ehr_keys, first, patient="pat-A")
    handle_a = response_a["Location"].split("/")[-2]
    handle_b = response_b["Location"].split("/")[-2]
    assert handle_a != handle_b
    assert Launch.objects.get(handle=handle_a).patient_id == "pat-A"
    assert Launch.objects.get(handle=handle_b).patient_id == "pat-B"
    assert set(client.session[session.LAUNCHES_KEY]) == {handle_a, handle_b}


def test_it_refuses_a_missing_state(client, smart_ehr, mocked):
    response = client.get("/callback", {"code": "c"})
    assert response.status_code == 400
    assert b"no state" in response.content
    assert not any(call.request.url == TOKEN for call in mocked.calls)


def test_it_refuses_an_unknown_state(client, smart_ehr, mocked):
    _start(client, smart_ehr)
    response = client.get("/callback", {"code": "c", "state": "forged"})
    assert response.status_code == 400
    assert not any(call.request.url == TOKEN for call in mocked.calls)


def test_it_refuses_a_replayed_state(client, smart_ehr, mocked, ehr_keys):
    params = _start(client, smart_ehr)
    assert _finish(client, mocked, ehr_keys, params).status_code == 302
    replay = client.get("/callback", {"code": "the-code", "state": params["state"]})
    assert replay.status_code == 400
    assert sum(call.request.url == TOKEN for call in mocked.calls) == 1


def test_it_refuses_a_state_from_another_session(client, smart_ehr, mocked):
    params = _start(client, smart_ehr)
    other = Client()
    response = other.get("/callback", {"code": "c", "state": params["state"]})
    assert response.status_code == 400
    assert not any(call.request.url == TOKEN for call in mocked.calls)
    assert params["state"] in client.session[session.PENDING_KEY]  # the real tab is unaffected


def test_it_refuses_an_expired_state(client, smart_ehr, mocked, settings):
    params = _start(client, smart_ehr)
    store = client.session
    store[session.PENDING_KEY][params["state"]]["created"] = time.time() - settings.SMART_STATE_MAX_AGE - 1
    store.save()
    response = client.get("/callback", {"code": "c", "state": params["state"]})
    assert response.status_code == 400
    assert b"took too long" in response.content
    assert b"launch the app again from Test EHR" in response.content
    assert not any(call.request.url == TOKEN for call in mocked.calls)


@pytest.mark.parametrize("error", [*authorize.AUTHORIZATION_ERRORS, "something_new"])
def test_it_shows_a_friendly_page_for_authorization_errors(client, smart_ehr, mocked, error):
    params = _start(client, smart_ehr, standalone=True)
    response = client.get(
        "/callback", {"error": error, "state": params["state"], "error_description": "<b>x"}
    )
    assert response.status_code == (403 if error == "access_denied" else 400)
    assert f"/standalone/{smart_ehr.slug}/".encode() in response.content  # retry link
    assert b"<b>x" not in response.content
    assert params["state"] not in client.session[session.PENDING_KEY]
    assert not any(call.request.url == TOKEN for call in mocked.calls)


def test_it_tells_ehr_launch_users_to_relaunch_after_an_error(client, smart_ehr):
    params = _start(client, smart_ehr)
    response = client.get("/callback", {"error": "access_denied", "state": params["state"]})
    assert b"launch the app again from Test EHR" in response.content


def test_it_accepts_a_matching_rfc_9207_iss(client, smart_ehr, mocked, ehr_keys):
    params = _start(client, smart_ehr)
    assert _finish(client, mocked, ehr_keys, params, query={"iss": ISSUER}).status_code == 302


def test_it_refuses_a_non_ascii_rfc_9207_iss_without_crashing(client, smart_ehr, mocked, ehr_keys):
    params = _start(client, smart_ehr)
    response = client.get(
        "/callback", {"code": "c", "state": params["state"], "iss": "https://ehr.éxample.org"}
    )
    assert response.status_code == 400
    assert b"unexpected issuer" in response.content


def test_it_refuses_a_mismatched_rfc_9207_iss(client, smart_ehr, mocked, ehr_keys):
    params = _start(client, smart_ehr)
    response = client.get(
        "/callback", {"code": "c", "state": params["state"], "iss": "https://evil.example.org"}
    )
    assert response.status_code == 400
    assert b"unexpected issuer" in response.content
    assert not any(call.request.url == TOKEN for call in mocked.calls)


@pytest.mark.parametrize(
    ("mock", "status"),
    [
        ({"status": 400, "json": {"error": "invalid_grant"}}, 502),
        ({"status": 500, "body": "<html>oops</html>"}, 502),
        ({"status": 200, "body": "<html>login</html>"}, 502),
        ({"body": requests.ReadTimeout()}, 502),
        ({"status": 200, "json": {"token_type": "Bearer"}}, 502),
    ],
)
def test_it_shows_an_error_page_when_the_exchange_fails(client, smart_ehr, mocked, caplog, mock, status):
    params = _start(client, smart_ehr)
    mocked.add("POST", TOKEN, **mock)
    response = client.get("/callback", {"code": "the-code", "state": params["state"]})
    assert response.status_code == status
    assert b"launch the app again" in response.content
    assert Launch.objects.count() == 0
    _secrets_absent(response.content.decode() + caplog.text)


def test_it_refuses_a_launch_whose_id_token_fails(client, smart_ehr, mocked, ehr_keys, caplog):
    params = _start(client, smart_ehr)
    mocked.post(TOKEN, json=token_body(id_token=ehr_keys.id_token(nonce="wrong")))
    response = client.get("/callback", {"code": "the-code", "state": params["state"]})
    assert response.status_code == 401
    assert b"nonce" in response.content
    assert Launch.objects.count() == 0
    assert SESSION_KEY not in client.session
    _secrets_absent(response.content.decode() + caplog.text)


def test_it_refuses_a_patient_scope_without_a_patient(client, smart_ehr, mocked, ehr_keys):
    params = _start(client, smart_ehr)
    response = _finish(client, mocked, ehr_keys, params, patient=None)
    assert response.status_code == 502
    assert b"which patient" in response.content


def test_it_refuses_a_missing_code(client, smart_ehr, mocked):
    params = _start(client, smart_ehr)
    assert client.get("/callback", {"state": params["state"]}).status_code == 400


def test_it_ends_the_oldest_launch_when_a_session_holds_too_many(
    client, smart_ehr, mocked, ehr_keys, settings
):
    settings.SMART_MAX_LAUNCHES_PER_SESSION = 2
    handles = []
    for n in range(3):
        params = _start(client, smart_ehr, launch=f"tab-{n}")
        handles.append(
            _finish(client, mocked, ehr_keys, params, patient=f"pat-{n}")["Location"].split("/")[-2]
        )
    assert client.session[session.LAUNCHES_KEY] == handles[1:]
    assert set(Launch.objects.values_list("handle", flat=True)) == set(handles[1:])
    assert client.get(f"/c/{handles[0]}/").status_code == 401  # the evicted tab says its session ended


def test_it_refuses_a_state_consumed_by_a_simultaneous_callback(client, smart_ehr):
    from types import SimpleNamespace

    from django.contrib.sessions.backends.db import SessionStore

    from smartapp import flow

    params = _start(client, smart_ehr)
    key = client.session.session_key
    first, second = SessionStore(key), SessionStore(key)
    # Both requests loaded the session before either consumed the state.
    assert params["state"] in first[session.PENDING_KEY] and params["state"] in second[session.PENDING_KEY]
    flow._take_pending(SimpleNamespace(session=first), params["state"])
    with pytest.raises(flow.FlowError, match="already used"):
        flow._take_pending(SimpleNamespace(session=second), params["state"])
