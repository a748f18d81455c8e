"""/callback with missing, forged, replayed and mixed-up responses: no token request unless the
response is the one this browser is waiting for, a specific message, nothing secret shown or logged."""

from __future__ import annotations

import pytest

from smartapp import session
from smartapp.models import Ehr, Launch
from tests.reliability.conftest import (
    ACCESS,
    CODE,
    REFRESH,
    TOKEN,
    assert_no_secrets,
    good_token,
    start_ehr_launch,
)
from tests.smartapp.conftest import ISS, SMART_CONFIGURATION, WELL_KNOWN


def _token_calls(mocked) -> int:
    return sum(call.request.url == TOKEN for call in mocked.calls)


def _page(response) -> str:
    return response.content.decode()


def test_it_refuses_an_empty_state_parameter(client, smart_ehr, mocked, caplog):
    start_ehr_launch(client)
    response = client.get("/callback", {"code": CODE, "state": ""})
    assert response.status_code == 400
    assert "has no state parameter" in _page(response)
    assert _token_calls(mocked) == 0
    assert_no_secrets(_page(response), caplog.text)


def test_it_refuses_an_error_response_with_a_forged_state(client, smart_ehr, mocked):
    params = start_ehr_launch(client)
    response = client.get("/callback", {"error": "access_denied", "state": "forged"})
    assert response.status_code == 403
    assert "Access was not granted" in _page(response)
    assert "Start again" in _page(response)  # no EHR known for a forged state: the generic retry
    assert params["state"] in client.session[session.PENDING_KEY]  # the real one is untouched


def test_it_refuses_a_state_replayed_after_a_failed_exchange(client, smart_ehr, mocked):
    params = start_ehr_launch(client)
    mocked.post(TOKEN, status=500, body="<html>down</html>")
    assert client.get("/callback", {"code": CODE, "state": params["state"]}).status_code == 502
    replay = client.get("/callback", {"code": CODE, "state": params["state"]})
    assert replay.status_code == 400
    assert "already used" in _page(replay)
    assert _token_calls(mocked) == 2  # the failed exchange was retried once; the replay sent none


def test_it_offers_a_standalone_retry_link_for_an_expired_standalone_state(
    client, smart_ehr, mocked, settings
):
    response = client.get(f"/standalone/{smart_ehr.slug}/")
    state = response["Location"].split("state=")[1].split("&")[0]
    store = client.session
    store[session.PENDING_KEY][state]["created"] -= settings.SMART_STATE_MAX_AGE + 5
    store.save()
    expired = client.get("/callback", {"code": CODE, "state": state})
    assert expired.status_code == 400
    assert "took too long" in _page(expired)
    assert f'href="/standalone/{smart_ehr.slug}/"' in _page(expired)
    assert _token_calls(mocked) == 0


def test_it_refuses_an_empty_code_and_consumes_the_state(client, smart_ehr, mocked):
    params = start_ehr_launch(client)
    response = client.get("/callback", {"code": "", "state": params["state"]})
    assert response.status_code == 400
    assert "has no authorization code" in _page(response)
    assert params["state"] not in client.session[session.PENDING_KEY]
    assert _token_calls(mocked) == 0


def test_it_refuses_a_code_longer_than_4096_characters(client, smart_ehr, mocked, caplog):
    params = start_ehr_launch(client)
    response = client.get("/callback", {"code": "C" * 4097, "state": params["state"]})
    assert response.status_code == 400
    assert "has no authorization code" in _page(response)
    assert _token_calls(mocked) == 0
    assert "C" * 200 not in caplog.text


def test_it_reports_a_replayed_code_that_the_ehr_refuses(client, smart_ehr, mocked, caplog):
    params = start_ehr_launch(client)
    mocked.post(TOKEN, status=400, json={"error": "invalid_grant", "error_description": f"code {CODE} used"})
    response = client.get("/callback", {"code": CODE, "state": params["state"]})
    assert response.status_code == 502
    assert "no longer accepts this authorization (invalid_grant)" in _page(response)
    assert Launch.objects.count() == 0
    assert_no_secrets(_page(response), caplog.text)


def test_it_never_shows_the_ehrs_error_description_or_error_uri(client, smart_ehr, mocked, caplog):
    params = start_ehr_launch(client)
    response = client.get(
        "/callback",
        {
            "error": "server_error",
            "error_description": f"<script>x</script> {ACCESS}",
            "error_uri": "https://evil.example.org/phish",
            "state": params["state"],
        },
    )
    assert response.status_code == 400
    assert "internal error while signing you in" in _page(response)
    assert "evil.example.org" not in _page(response) and "<script>x" not in _page(response)
    assert_no_secrets(_page(response), caplog.text)


def test_it_shows_a_generic_page_for_an_error_without_state(client, mocked, ehr):
    response = client.get("/callback", {"error": "temporarily_unavailable"})
    assert response.status_code == 400
    assert "temporarily unavailable" in _page(response)
    assert len(mocked.calls) == 0


def test_it_treats_a_response_with_both_code_and_error_as_an_error(client, smart_ehr, mocked):
    params = start_ehr_launch(client)
    response = client.get("/callback", {"code": CODE, "error": "access_denied", "state": params["state"]})
    assert response.status_code == 403
    assert _token_calls(mocked) == 0
    assert Launch.objects.count() == 0


def test_it_refuses_an_iss_naming_another_registered_ehr(client, smart_ehr, mocked, caplog):
    Ehr.objects.create(
        name="Other EHR", slug="other", iss="https://other.example.org/fhir", client_id="c", client_secret="s"
    )
    params = start_ehr_launch(client)
    response = client.get(
        "/callback", {"code": CODE, "state": params["state"], "iss": "https://other.example.org/fhir"}
    )
    assert response.status_code == 400
    assert "unexpected issuer" in _page(response)
    assert _token_calls(mocked) == 0
    assert_no_secrets(_page(response), caplog.text)


def test_it_refuses_an_empty_iss_response_parameter(client, smart_ehr, mocked):
    params = start_ehr_launch(client)
    response = client.get("/callback", {"code": CODE, "state": params["state"], "iss": ""})
    assert response.status_code == 400
    assert "unexpected issuer" in _page(response)
    assert _token_calls(mocked) == 0


def test_it_requires_iss_when_the_ehr_promises_rfc_9207(client, ehr, mocked, ehr_keys):
    mocked.get(
        WELL_KNOWN, json={**SMART_CONFIGURATION, "authorization_response_iss_parameter_supported": True}
    )
    params = start_ehr_launch(client)
    response = client.get("/callback", {"code": CODE, "state": params["state"]})
    assert response.status_code == 400
    assert "missing its issuer" in _page(response)
    assert _token_calls(mocked) == 0


def test_it_accepts_the_fhir_base_as_the_returned_iss(client, smart_ehr, mocked, ehr_keys, caplog):
    params = start_ehr_launch(client)
    mocked.post(TOKEN, json=good_token(ehr_keys, params["nonce"]))
    response = client.get("/callback", {"code": CODE, "state": params["state"], "iss": ISS})
    assert response.status_code == 302
    assert Launch.objects.get().access_token == ACCESS
    assert_no_secrets(_page(response), response["Location"], caplog.text)


def test_it_refuses_a_callback_for_an_ehr_disabled_meanwhile(client, smart_ehr, mocked):
    params = start_ehr_launch(client)
    Ehr.objects.filter(pk=smart_ehr.pk).update(enabled=False)
    response = client.get("/callback", {"code": CODE, "state": params["state"]})
    assert response.status_code == 400
    assert "no longer enabled" in _page(response)
    assert _token_calls(mocked) == 0


def test_it_refuses_a_post_to_the_callback(client, smart_ehr, mocked):
    params = start_ehr_launch(client)
    response = client.post("/callback", {"code": CODE, "state": params["state"]})
    assert response.status_code == 405
    assert _token_calls(mocked) == 0
    assert params["state"] in client.session[session.PENDING_KEY]


@pytest.mark.parametrize("state", ["\x00", "a" * 5000, "' OR 1=1 --", "../../etc"])
def test_it_answers_400_for_junk_states(client, smart_ehr, mocked, state):
    start_ehr_launch(client)
    response = client.get("/callback", {"code": CODE, "state": state})
    assert response.status_code == 400
    assert _token_calls(mocked) == 0


def test_it_never_puts_tokens_in_the_dashboard_redirect(client, smart_ehr, mocked, ehr_keys):
    params = start_ehr_launch(client)
    mocked.post(TOKEN, json=good_token(ehr_keys, params["nonce"]))
    response = client.get("/callback", {"code": CODE, "state": params["state"]})
    assert response.status_code == 302
    for value in (ACCESS, REFRESH, CODE, params["state"]):
        assert value not in response["Location"]
