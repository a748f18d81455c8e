"""The outbound transport against a misbehaving server on loopback (issue 14, D1 and D4).

Every call ends within its deadline + 1 s whatever the server does; the deadline is 1 s here.
"""

from __future__ import annotations

import pytest

from clinical import fhir, panels, style
from smartapp import discovery, identity, protocol, token_endpoint, transport
from smartapp.models import Ehr
from tests.misbehaving import (
    Elapsed,
    MisbehavingServer,
    chunked_trickle,
    content_length_trickle,
    json_reply,
    late_headers,
    never_closes,
    trickled_headers,
)
from tests.smartapp.conftest import SMART_CONFIGURATION

DEADLINE = 1.0
BOUND = DEADLINE + 1.0  # the brief: each call ends within its deadline + 1 s


@pytest.fixture(autouse=True)
def _short_deadline(settings):
    settings.SMART_HTTP_DEADLINE = DEADLINE
    settings.SMART_STYLE_DEADLINE = DEADLINE


@pytest.mark.parametrize(
    "route",
    [late_headers(), trickled_headers(), content_length_trickle(), chunked_trickle(), never_closes()],
    ids=["late-headers", "trickled-headers", "content-length-trickle", "chunked-trickle", "never-closes"],
)
def test_it_ends_every_call_at_the_deadline_whatever_the_server_does(route):
    with MisbehavingServer({"/x": route}) as server, Elapsed() as took, pytest.raises(transport.Timeout):
        transport.fetch("GET", server.base_url + "/x", limit=1024 * 1024)
    assert DEADLINE - 0.1 < took.seconds < BOUND


def test_it_returns_a_body_that_arrived_whole_before_the_deadline():
    with MisbehavingServer({"/x": json_reply({"ok": True}, delay=DEADLINE - 0.4)}) as server:
        reply = transport.fetch("GET", server.base_url + "/x", limit=1024)
    assert reply.status_code == 200 and reply.json() == {"ok": True}


def test_it_reuses_a_kept_alive_connection_and_still_holds_the_deadline_on_it():
    routes = {"/ok": json_reply({"ok": True}), "/slow": content_length_trickle()}
    with MisbehavingServer(routes) as server:
        session = transport.new_session()
        transport.fetch("GET", server.base_url + "/ok", limit=1024, session=session)
        with Elapsed() as took, pytest.raises(transport.Timeout):
            transport.fetch("GET", server.base_url + "/slow", limit=1024, session=session)
        assert server.connections == 1  # the trickle came on the pooled connection
        assert transport.fetch("GET", server.base_url + "/ok", limit=1024, session=session).status_code == 200
    assert took.seconds < BOUND


def test_it_stops_reading_past_the_size_cap():
    big = json_reply({"pad": "x" * 5000})
    with MisbehavingServer({"/x": big}) as server, pytest.raises(transport.TooLarge):
        transport.fetch("GET", server.base_url + "/x", limit=1000)


def test_it_tells_a_timeout_from_an_unreachable_server():
    with MisbehavingServer({}) as server:
        port = server.port
    with pytest.raises(transport.Unreachable):
        transport.fetch("GET", f"http://127.0.0.1:{port}/x", limit=1024)


def test_it_never_follows_a_redirect():
    def redirect(request, send, stopping):
        send(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n")

    with MisbehavingServer({"/x": redirect}) as server:
        reply = transport.fetch("GET", server.base_url + "/x", limit=1024)
    assert reply.status_code == 302 and len(server.requests) == 1


def test_it_hands_each_call_to_the_timing_hook():
    seen: list[transport.Exchange] = []
    with MisbehavingServer({"/x": content_length_trickle()}) as server, pytest.raises(transport.Timeout):
        transport.fetch("GET", server.base_url + "/x", limit=1024, observer=seen.append)
    (exchange,) = seen
    assert exchange.outcome == "timeout" and exchange.status_code == 200
    assert DEADLINE - 0.1 < exchange.ended - exchange.started < BOUND


# --- Each caller, against D1's trickle ---------------------------------------------------------


@pytest.fixture
def trickling():
    routes = {
        "/fhir/.well-known/smart-configuration": content_length_trickle(),
        "/fhir/Patient/pat-1": content_length_trickle(),
        "/fhir/Observation": content_length_trickle(),
        "/jwks": content_length_trickle(),
        "/token": content_length_trickle(),
        "/revoke": content_length_trickle(),
        "/style.json": content_length_trickle(),
    }
    with MisbehavingServer(routes) as server:
        yield server


def _local_ehr(server) -> Ehr:
    return Ehr(pk=1, name="Slow", iss=server.base_url + "/fhir", client_id="c", client_secret="s")


def _config(server) -> discovery.SmartConfig:
    document = {
        **SMART_CONFIGURATION,
        "token_endpoint": server.base_url + "/token",
        "revocation_endpoint": server.base_url + "/revoke",
        "jwks_uri": server.base_url + "/jwks",
    }
    return discovery.evaluate(_local_ehr(server), document)


def test_discovery_ends_at_the_deadline(trickling):
    with Elapsed() as took, pytest.raises(protocol.TransportError, match="did not answer in time"):
        protocol.get_json(trickling.base_url + "/fhir/.well-known/smart-configuration")
    assert took.seconds < BOUND


def test_the_jwks_fetch_ends_at_the_deadline(trickling, db):
    with Elapsed() as took, pytest.raises(identity.IdentityError, match="did not answer in time"):
        identity._fetch_jwks(trickling.base_url + "/jwks", use_cache=False)
    assert took.seconds < BOUND


def test_the_token_call_ends_within_both_attempts(trickling, monkeypatch):
    monkeypatch.setattr(token_endpoint, "TOKEN_RETRY_DELAY", 0)
    server = trickling
    with Elapsed() as took, pytest.raises(protocol.TransportError, match="did not answer in time"):
        token_endpoint.exchange_code(
            _local_ehr(server),
            _config(server),
            code="c",
            code_verifier="v",
            redirect_uri="https://app/cb",
            requested_scope="launch",
        )
    assert took.seconds < BOUND  # a timeout is no glitch worth a retry: one attempt
    assert took.seconds < token_endpoint.longest_token_call()


def test_revocation_ends_at_the_deadline(trickling):
    with Elapsed() as took:
        ehr, config = _local_ehr(trickling), _config(trickling)
        revoked = token_endpoint.revoke(ehr, config, token="t", hint="access_token")
    assert revoked is False
    assert took.seconds < BOUND


def test_a_fhir_read_and_search_end_at_the_deadline(trickling):
    client = fhir.FhirClient(trickling.base_url + "/fhir", "t")
    with Elapsed() as took, pytest.raises(fhir.Timeout, match="did not answer in time"):
        client.read("Patient", "pat-1")
    assert took.seconds < BOUND
    with Elapsed() as took, pytest.raises(fhir.Timeout):
        client.search("Observation", {"patient": "pat-1"})
    assert took.seconds < BOUND
    assert [a.outcome for a in client.accesses] == ["timeout", "timeout"]
    assert len(client.wait_intervals) == 2


def test_the_style_fetch_ends_at_its_deadline(trickling):
    url = trickling.base_url + "/style.json"
    with Elapsed() as took:
        assert style.fetch(url, fhir_base=trickling.base_url + "/fhir") == {}
    assert took.seconds < BOUND


# --- D4: plain http to loopback only with DEBUG or the test-only allowance ------------------------


def test_without_debug_or_the_allowance_no_plain_http_leaves_the_app(settings, db):
    settings.DEBUG = False
    settings.SMART_ALLOW_HTTP_LOOPBACK = False
    with MisbehavingServer({"/token": json_reply({})}) as server:
        with pytest.raises(protocol.ConfigurationError, match="https"):
            protocol.post_form(server.base_url + "/token", {"client_secret": "s"}, {})
        config = _config(server)
        assert any("token_endpoint must use https" in error for error in config.errors)
        with pytest.raises(fhir.RefusedURL):
            fhir.FhirClient(server.base_url + "/fhir", "t").read("Patient", "p")
        with pytest.raises(Exception, match="https"):
            Ehr(name="X", slug="x", iss=server.base_url + "/fhir", client_id="c").full_clean()
    assert server.requests == []


def test_debug_allows_plain_http_to_loopback(settings):
    settings.DEBUG = True
    settings.SMART_ALLOW_HTTP_LOOPBACK = False
    with MisbehavingServer({"/x": json_reply({"ok": 1})}) as server:
        assert transport.fetch("GET", server.base_url + "/x", limit=1024).json() == {"ok": 1}


@pytest.mark.parametrize("route", [late_headers(), never_closes()], ids=["late-headers", "never-closes"])
def test_a_fhir_timeout_is_shown_as_a_timeout_not_as_unreachable(route):
    with MisbehavingServer({"/fhir/Observation": route}) as server:
        client = fhir.FhirClient(server.base_url + "/fhir", "t")
        with pytest.raises(fhir.FhirError) as raised:
            client.search("Observation", {"patient": "pat-1"})
    assert isinstance(raised.value, fhir.Timeout)
    state = panels.error_state(raised.value, "vital signs")
    assert state.message == "The EHR did not send vital signs in time."
    assert "reached" not in state.message
