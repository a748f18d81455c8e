"""Every outbound call shares one keep-alive pool per origin that never keeps cookies."""

from __future__ import annotations

import responses

from smartapp import protocol, transport


def test_it_reuses_one_session_per_origin():
    a = transport.session_for("https://ehr.example.org/auth/token")
    assert a is transport.session_for("https://EHR.example.org:443/fhir")
    assert a is not transport.session_for("https://ehr.example.org:8443/fhir")
    assert a is not transport.session_for("https://ehr.example.org/style.json", public_only=True)
    assert a.trust_env is False  # no proxy variables, no ~/.netrc credentials


@responses.activate
def test_it_refuses_cookies_from_the_ehr():
    responses.post(
        "https://ehr.example.org/token",
        json={"error": "invalid_grant"},
        status=400,
        headers={"Set-Cookie": "ehr_session=abc; Path=/"},
    )
    protocol.post_form("https://ehr.example.org/token", {"grant_type": "x"}, {})
    assert len(transport.session_for("https://ehr.example.org/token").cookies) == 0
    assert "Cookie" not in responses.calls[0].request.headers
