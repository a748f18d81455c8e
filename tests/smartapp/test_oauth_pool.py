"""Discovery, JWKS and token calls share one keep-alive pool that never keeps cookies."""

from __future__ import annotations

import responses

from smartapp import oauth


def test_it_reuses_one_session():
    assert oauth._http() is oauth._http()


@responses.activate
def test_it_refuses_cookies_from_the_ehr():
    responses.post(
        "https://ehr.example.org/token",
        json={"error": "invalid_grant"},
        status=400,
        headers={"Set-Cookie": "ehr_session=abc; Path=/"},
    )
    oauth._post_form("https://ehr.example.org/token", {"grant_type": "x"}, {})
    assert len(oauth._http().cookies) == 0
    assert "Cookie" not in responses.calls[0].request.headers
