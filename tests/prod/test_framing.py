"""Only launch and dashboard pages may be framed, and only by the enabled EHRs' origins."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from smartapp import security
from smartapp.models import Ehr


def _directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in policy.split("; ")}


def _make_ehr(slug: str, frame_ancestors: str, enabled: bool = True, **extra) -> Ehr:
    return Ehr.objects.create(
        name=slug,
        slug=slug,
        iss=f"https://{slug}.example.org/fhir",
        client_id="c",
        client_secret="s",
        frame_ancestors=frame_ancestors,
        enabled=enabled,
        **extra,
    )


FRAMEABLE_URLS = [
    reverse("smartapp:home"),
    reverse("smartapp:launch"),
    reverse("smartapp:callback"),
    reverse("smartapp:standalone", kwargs={"slug": "any"}),
    reverse("clinical:dashboard", kwargs={"handle": "not-a-real-handle"}),
    reverse("smartapp:logout"),  # signing out inside the EHR's iframe shows its page there
]
NOT_FRAMEABLE_URLS = [
    "/admin/login/",
    reverse("smartapp:jwks"),
    "/healthz",
    "/no-such-page",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", FRAMEABLE_URLS)
def test_it_lets_exactly_the_enabled_ehrs_frame_launch_and_dashboard_pages(client, url):
    _make_ehr("epic", "https://epic.example.org https://hyperspace.example.org:8443")
    _make_ehr("oracle", "https://oracle.example.com")
    _make_ehr("retired", "https://retired.example.net", enabled=False)
    response = client.get(url)
    assert _directives(response)["frame-ancestors"] == (
        "https://epic.example.org https://hyperspace.example.org:8443 https://oracle.example.com"
    )
    assert "X-Frame-Options" not in response


@pytest.mark.django_db
@pytest.mark.parametrize("url", NOT_FRAMEABLE_URLS)
def test_it_forbids_framing_everything_else(client, url):
    _make_ehr("epic", "https://epic.example.org")
    response = client.get(url)
    assert _directives(response)["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_it_forbids_framing_launch_pages_when_no_ehr_registers_an_origin(client):
    _make_ehr("epic", "")
    response = client.get(reverse("smartapp:launch"))
    assert _directives(response)["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_it_sets_a_strict_policy_everywhere(client):
    for url in ("/admin/login/", reverse("smartapp:launch")):
        directives = _directives(client.get(url))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["object-src"] == "'none'"
        assert directives["base-uri"] == "'none'"
        assert directives["img-src"] == "'self' data:"


BASE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "style-src-attr": "'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
}


@pytest.mark.django_db
def test_it_sends_exactly_these_directives(client):
    _make_ehr("epic", "https://epic.example.org", authorize_url_override="https://login.epic.example.org/a")
    assert _directives(client.get(reverse("smartapp:launch"))) == {
        **BASE_POLICY,
        "form-action": "'self' https://login.epic.example.org",
        "frame-ancestors": "https://epic.example.org",
    }
    assert _directives(client.get("/admin/login/")) == {
        **BASE_POLICY,
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }


@pytest.mark.django_db
def test_it_allows_forms_to_redirect_to_enabled_ehrs_authorize_endpoints(client):
    _make_ehr("epic", "", authorize_url_override="https://login.epic.example.org/oauth2/authorize")
    _make_ehr("cerner", "", discovery={"authorization_endpoint": "https://auth.cerner.example.com/a?x=1"})
    _make_ehr("off", "", enabled=False, authorize_url_override="https://off.example.org/authorize")
    assert _directives(client.get(reverse("smartapp:home")))["form-action"] == (
        "'self' https://auth.cerner.example.com https://login.epic.example.org"
    )
    assert _directives(client.get("/admin/login/"))["form-action"] == "'self'"


@pytest.mark.django_db
def test_it_refreshes_the_cached_origins_when_an_ehr_changes(client):
    ehr = _make_ehr("epic", "https://epic.example.org")
    url = reverse("smartapp:launch")
    assert _directives(client.get(url))["frame-ancestors"] == "https://epic.example.org"
    assert client.get(url)  # served from the cache now
    ehr.frame_ancestors = "https://new.epic.example.org"
    ehr.save()
    assert _directives(client.get(url))["frame-ancestors"] == "https://new.epic.example.org"
    ehr.enabled = False
    ehr.save()
    assert _directives(client.get(url))["frame-ancestors"] == "'none'"
    other = _make_ehr("other", "https://other.example.org")
    assert _directives(client.get(url))["frame-ancestors"] == "https://other.example.org"
    other.delete()
    assert _directives(client.get(url))["frame-ancestors"] == "'none'"


@pytest.mark.django_db
def test_it_serves_the_origins_from_the_cache_between_changes(client, django_assert_num_queries):
    _make_ehr("epic", "https://epic.example.org")
    url = reverse("smartapp:launch")
    client.get(url)
    with django_assert_num_queries(1):  # the DB cache lookup only; no Ehr query
        client.get(url)


@pytest.mark.django_db
def test_it_ignores_malicious_or_malformed_origins(client, caplog):
    _make_ehr(
        "evil",
        "https://ok.example.org https://x.example.org;script-src * 'unsafe-inline' "
        "* https://*.example.org https://path.example.org/app javascript:alert(1) "
        "http://plain-http.example.org https://user@host.example.org 'self' data:",
    )
    with caplog.at_level(logging.WARNING, logger="smartapp.security"):
        response = client.get(reverse("smartapp:launch"))
    directives = _directives(response)
    assert directives["frame-ancestors"] == "https://ok.example.org"
    assert directives["script-src"] == "'self'"
    assert response["Content-Security-Policy"].count(";") == len(directives) - 1
    assert sum("ignoring invalid frame ancestor" in r.getMessage() for r in caplog.records) == 11


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://EHR.Example.org", "https://ehr.example.org"),
        ("https://ehr.example.org/", "https://ehr.example.org"),
        ("https://ehr.example.org:8443", "https://ehr.example.org:8443"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("https://ehr.example.org:99999", None),
        ("http://ehr.example.org", None),
        ("ftp://ehr.example.org", None),
        ("https://ehr.example.org/path", None),
        ("https://ehr.example.org?x", None),
        ("https://ehr.example.org;", None),
        ("https://ehr.example.org'", None),
        ("https://-bad.example.org", None),
        ("", None),
    ],
)
def test_it_accepts_only_plain_origins(value, expected):
    assert security.normalize_origin(value) == expected


@pytest.mark.django_db
def test_it_leaves_exempt_apps_alone(client, settings):
    settings.SMART_CSP_EXEMPT_APPS = ["smartapp"]
    response = client.get(reverse("smartapp:launch"))
    assert "Content-Security-Policy" not in response
    assert response["X-Frame-Options"] == "DENY"  # Django's own clickjacking default still applies
