"""Discovery: fetch, fallback, checks, cache, the one save path and the admin report (smartapp.discovery)."""

from __future__ import annotations

import json

import pytest
import requests
from django.core.exceptions import ValidationError

from smartapp import authorize, discovery, protocol
from smartapp.models import Ehr
from tests.smartapp.conftest import (
    AUTHORIZE,
    ISS,
    METADATA,
    SMART_CONFIGURATION,
    TOKEN,
    WELL_KNOWN,
)

SCOPE = "launch openid fhirUser patient/Patient.rs"


def _config(ehr, **overrides) -> discovery.SmartConfig:
    return discovery.evaluate(ehr, {**SMART_CONFIGURATION, **overrides})


# --- Discovery ------------------------------------------------------------------------------


def test_it_discovers_caches_and_records_the_configuration(mocked, ehr):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    config = discovery.discover(ehr)
    assert config.token_endpoint == TOKEN
    assert config.issuer == "https://ehr.example.org/auth"
    assert config.has("launch-ehr")
    discovery.discover(ehr)
    assert len(mocked.calls) == 1  # second call served from the cache
    ehr.refresh_from_db()
    assert ehr.discovery["token_endpoint"] == TOKEN
    assert ehr.discovered_at is not None
    assert mocked.calls[0].request.headers["Accept"] == "application/json"


def test_it_tries_the_capability_statement_when_well_known_names_no_endpoints(mocked, ehr):
    mocked.get(WELL_KNOWN, json={"capabilities": ["launch-ehr"]})
    mocked.get(METADATA, json=CAPABILITY_STATEMENT)
    config = discovery.discover(ehr)
    assert (config.token_endpoint, config.source) == (TOKEN, "metadata")


def test_it_asks_a_capability_statement_era_server_for_v1_scopes(mocked, ehr):
    mocked.get(WELL_KNOWN, status=404)
    mocked.get(METADATA, json=CAPABILITY_STATEMENT)
    config = discovery.discover(ehr)
    assert authorize.scopes_for("launch patient/Patient.rs", config) == "launch patient/Patient.read"


def test_it_remembers_a_failed_discovery_briefly(mocked, ehr):
    mocked.get(WELL_KNOWN, status=503)
    mocked.get(METADATA, status=503)
    for _ in range(3):
        with pytest.raises(protocol.DiscoveryError):
            discovery.discover(ehr)
    assert len(mocked.calls) == 2  # one attempt (well-known + metadata), not three
    with pytest.raises(protocol.DiscoveryError):
        discovery.discover(ehr, use_cache=False)  # the admin's check always asks again
    assert len(mocked.calls) == 4


def test_it_records_what_discovery_lacks_where_admins_look(mocked, ehr):
    document = {k: v for k, v in SMART_CONFIGURATION.items() if k != "code_challenge_methods_supported"}
    mocked.get(WELL_KNOWN, json=document)
    discovery.discover(ehr)
    ehr.refresh_from_db()
    assert ehr.discovery_problems == [
        "Warning: code_challenge_methods_supported is missing; sending PKCE S256 anyway."
    ]


def test_it_warns_when_authorization_code_is_not_a_listed_grant_type(ehr):
    config = _config(ehr, grant_types_supported=["client_credentials"])
    assert "grant_types_supported does not list authorization_code." in config.warnings
    assert "grant_types_supported" not in " ".join(_config(ehr).warnings)


def test_it_resolves_relative_endpoints_against_the_fhir_base(mocked, ehr):
    mocked.get(
        WELL_KNOWN,
        json={**SMART_CONFIGURATION, "authorization_endpoint": "auth/authorize", "token_endpoint": "/token"},
    )
    config = discovery.discover(ehr)
    assert config.authorization_endpoint == f"{ISS}/auth/authorize"
    assert config.token_endpoint == "https://ehr.example.org/token"


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITY_STATEMENT = {
    "resourceType": "CapabilityStatement",
    "rest": [
        {
            "security": {
                "extension": [
                    {
                        "url": OAUTH_URIS,
                        "extension": [
                            {"url": "authorize", "valueUri": AUTHORIZE},
                            {"url": "token", "valueUri": TOKEN},
                        ],
                    }
                ]
            }
        }
    ],
}


def test_it_falls_back_to_the_capability_statement(mocked, ehr):
    mocked.get(WELL_KNOWN, status=404)
    mocked.get(METADATA, json=CAPABILITY_STATEMENT)
    config = discovery.discover(ehr)
    assert (config.authorization_endpoint, config.token_endpoint, config.source) == (
        AUTHORIZE,
        TOKEN,
        "metadata",
    )
    assert any("code_challenge_methods_supported is missing" in w for w in config.warnings)


def test_it_refuses_an_ehr_offering_only_plain_pkce(mocked, ehr):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "code_challenge_methods_supported": ["plain"]})
    with pytest.raises(protocol.ConfigurationError, match="plain"):
        discovery.discover(ehr)


def test_it_refuses_an_ehr_without_s256(ehr):
    config = _config(ehr, code_challenge_methods_supported=[])
    assert any("S256" in error for error in config.errors)


def test_it_refuses_an_ehr_without_a_suitable_auth_method(ehr):
    config = _config(ehr, token_endpoint_auth_methods_supported=["private_key_jwt"])
    assert any("client_secret_basic" in error for error in config.errors)


def test_it_degrades_with_warnings_when_fields_are_missing(ehr):
    document = {
        k: v
        for k, v in SMART_CONFIGURATION.items()
        if k
        not in {"code_challenge_methods_supported", "token_endpoint_auth_methods_supported", "capabilities"}
    }
    config = discovery.evaluate(ehr, document)
    assert config.errors == []
    assert len(config.warnings) == 3


def test_it_reports_an_unreachable_ehr_as_a_clear_error(mocked, ehr):
    mocked.get(WELL_KNOWN, body=requests.ConnectTimeout())
    mocked.get(METADATA, body=requests.ConnectTimeout())
    with pytest.raises(protocol.DiscoveryError, match="did not answer in time"):
        discovery.discover(ehr)


def test_it_uses_endpoint_overrides(mocked, ehr):
    ehr.authorize_url_override = "https://other.example.org/authz"
    ehr.token_url_override = "https://other.example.org/token"
    mocked.get(WELL_KNOWN, status=500)
    mocked.get(METADATA, status=500)
    config = discovery.discover(ehr)
    assert config.authorization_endpoint == "https://other.example.org/authz"
    assert config.token_endpoint == "https://other.example.org/token"


def test_it_reports_capabilities_for_the_admin(mocked, ehr):
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "capabilities": ["launch-ehr"]})
    report = discovery.check_configuration(ehr)
    capabilities = dict(report.capabilities)
    assert capabilities["PKCE S256"] is True
    assert capabilities["launch-ehr"] is True
    assert capabilities["launch-standalone"] is False
    assert report.ok


def test_it_reports_a_fetch_failure_for_the_admin(mocked, ehr):
    mocked.get(WELL_KNOWN, status=404)
    mocked.get(METADATA, body="<html>", status=200)
    report = discovery.check_configuration(ehr)
    assert not report.ok
    assert "other than JSON" in report.fetch_error
    assert json.dumps(report.capabilities)  # renders without a config


# --- Transport security of what discovery names ------------------------------------------------


@pytest.mark.parametrize(
    "field", ["authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"]
)
def test_it_refuses_plain_http_endpoints_that_would_carry_secrets_in_clear(ehr, field):
    config = _config(ehr, **{field: "http://attacker.example.net/x"})
    assert any(field in error and "https" in error for error in config.errors)


def test_it_allows_plain_http_only_on_loopback(ehr):
    config = _config(ehr, token_endpoint="http://127.0.0.1:9000/auth/token")
    assert config.errors == []


def test_it_does_not_follow_a_redirect_from_the_discovery_document(mocked, ehr):
    mocked.get(WELL_KNOWN, status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    mocked.get(METADATA, status=302, headers={"Location": "http://10.0.0.5/"})
    with pytest.raises(protocol.DiscoveryError):
        discovery.discover(ehr)
    assert [call.request.url for call in mocked.calls] == [WELL_KNOWN, METADATA]


@pytest.mark.parametrize("iss", ["http://ehr.example.org/fhir", "ftp://ehr.example.org/fhir"])
def test_it_refuses_to_register_an_issuer_without_tls(db, iss):
    ehr = Ehr(name="X", slug="x", iss=iss, client_id="c", client_secret="s")
    with pytest.raises(ValidationError, match="https"):
        ehr.full_clean()


def test_an_insecure_introspection_endpoint_is_ignored_not_fatal(ehr):
    config = _config(ehr, introspection_endpoint="http://ehr.example.org/introspect")
    assert config.errors == [] and config.introspection_endpoint == ""
    assert any("introspection_endpoint is not https" in w for w in config.warnings)


def test_it_refuses_an_implausibly_large_discovery_document(mocked, ehr, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_DOCUMENT_BYTES", 1000)
    mocked.get(WELL_KNOWN, json={**SMART_CONFIGURATION, "padding": "x" * 2000})
    mocked.get(METADATA, status=404)
    with pytest.raises(protocol.DiscoveryError, match="implausibly large"):
        discovery.discover(ehr)


def test_the_admins_check_records_what_discovery_lacks_as_discover_does(mocked, ehr):
    """One save path: Check configuration updates discovery_problems too (it used to leave them stale)."""
    Ehr.objects.filter(pk=ehr.pk).update(discovery_problems=["Error: something old"])
    document = {k: v for k, v in SMART_CONFIGURATION.items() if k != "code_challenge_methods_supported"}
    mocked.get(WELL_KNOWN, json=document)
    report = discovery.check_configuration(ehr)
    ehr.refresh_from_db()
    assert report.ok
    assert ehr.discovery == document and ehr.discovered_at is not None
    assert ehr.discovery_problems == [
        "Warning: code_challenge_methods_supported is missing; sending PKCE S256 anyway."
    ]
    mocked.calls.reset()
    discovery.discover(ehr)  # and it filled the cache discover() reads
    assert len(mocked.calls) == 0
