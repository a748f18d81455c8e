"""Browsers ask every site for /favicon.ico: the app answers with its SVG icon, not a 404."""

from __future__ import annotations

from django.templatetags.static import static


def test_it_sends_favicon_ico_to_the_static_svg(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == static("favicon.svg")
    assert client.post("/favicon.ico").status_code == 405
