"""The one outbound URL rule (issue 14, D3): every internal-address notation is refused, whatever
the spelling, and a public-only fetch connects to the address it checked (no DNS rebinding)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clinical import style
from smartapp import safety, transport
from tests.misbehaving import MisbehavingServer, json_reply

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def no_loopback(settings):
    """Production: neither DEBUG nor the test-only allowance."""
    settings.DEBUG = False
    settings.SMART_ALLOW_HTTP_LOOPBACK = False


class FakeDns(dict):
    """Names in the dict resolve to its addresses (recorded in `asked`), the rest as usual."""

    def __init__(self):
        super().__init__()
        self.asked: list[str] = []

    def getaddrinfo(self, host, port, *args, **kwargs):
        numeric_only = kwargs.get("flags", 0) & socket.AI_NUMERICHOST
        if host not in self or numeric_only:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.asked.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in self[host]
        ]


@pytest.fixture
def dns(monkeypatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(safety, "_getaddrinfo", fake.getaddrinfo)
    return fake


D3_HOSTS = [
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "localhost",
    "167772165",  # 10.0.0.5
    "169.254.169.254",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[fe80::1]",
    "0.0.0.0",
    "224.0.0.1",
    "100.64.0.1",  # shared (CGNAT)
    "192.168.1.1",
    "sub.localhost",
]


@pytest.mark.parametrize("host", D3_HOSTS)
def test_it_refuses_every_internal_notation_before_any_lookup(no_loopback, host):
    url = f"https://{host}/style.json"
    with pytest.raises(safety.RefusedURL):
        safety.check_url(url, public_only=True)
    assert style.style_url_allowed(url, "https://ehr.example.org/fhir") is False


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "localhost"])
def test_a_style_url_on_loopback_is_fetched_only_under_the_test_allowance(settings, host):
    settings.SMART_ALLOW_HTTP_LOOPBACK = True
    assert style.style_url_allowed(f"https://{host}/style.json", "https://ehr.example.org/fhir")


@pytest.mark.parametrize(
    "addresses",
    [["169.254.169.254"], ["93.184.216.34", "10.0.0.5"], ["2606:2800:220:1::1", "::1"]],
    ids=["metadata", "one-of-two-internal", "ipv6-loopback-among-public"],
)
def test_a_name_is_refused_when_any_address_is_internal_and_nothing_connects(no_loopback, dns, addresses):
    dns["metadata.google.internal"] = addresses
    url = "https://metadata.google.internal/computeMetadata/v1/"
    assert style.style_url_allowed(url, "https://ehr.example.org/fhir")  # a name: judged on connect
    with pytest.raises(transport.RefusedURL):
        transport.fetch("GET", url, limit=1024, public_only=True)
    assert style.fetch(url) == {}
    assert dns.asked == ["metadata.google.internal"] * 2


def test_the_registered_rule_allows_private_networks_but_not_plain_http(no_loopback):
    assert safety.is_secure_url("https://10.1.2.3/fhir")  # an EHR on the hospital network
    assert not safety.is_secure_url("http://10.1.2.3/fhir")
    assert not safety.is_secure_url("http://localhost:9000/fhir")
    assert not safety.is_secure_url("https://user:pw@ehr.example.org/fhir")
    assert not safety.is_secure_url("ftp://ehr.example.org/fhir")


def test_the_fhir_id_pattern_refuses_a_trailing_newline():
    assert safety.FHIR_ID.match("pat-1.2")
    assert not safety.FHIR_ID.match("pat-1\n")
    assert not safety.FHIR_ID.match("a" * 257)


# --- Pinning: connect to the checked address, verify TLS against the name ------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for style.test (and nothing else)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "style.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("style.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


def test_a_public_only_fetch_connects_to_the_checked_address_with_tls_on_the_name(
    settings, dns, certificate
):
    settings.SMART_ALLOW_HTTP_LOOPBACK = True  # the "public" address here is loopback
    cert_path, context = certificate
    with MisbehavingServer({"/style.json": json_reply({"color_text": "#101010"})}, tls=context) as server:
        dns["style.test"] = ["127.0.0.1"]
        session = transport.new_session(public_only=True)
        session.verify = str(cert_path)
        url = f"https://style.test:{server.port}/style.json"
        reply = transport.fetch("GET", url, limit=1024, public_only=True, session=session)
        assert reply.json() == {"color_text": "#101010"}
        assert server.requests[0].headers["host"] == f"style.test:{server.port}"
        # The same name rebound to an internal address: refused when connecting, nothing sent.
        settings.SMART_ALLOW_HTTP_LOOPBACK = False
        fresh = transport.new_session(public_only=True)
        fresh.verify = str(cert_path)
        with pytest.raises(transport.RefusedURL):
            transport.fetch("GET", url, limit=1024, public_only=True, session=fresh)
    assert len(server.requests) == 1


def test_the_deadline_holds_over_tls(settings, dns, certificate):
    from tests.misbehaving import Elapsed, content_length_trickle

    settings.SMART_HTTP_DEADLINE = 1.0
    cert_path, context = certificate
    with MisbehavingServer({"/x": content_length_trickle()}, tls=context) as server:
        dns["style.test"] = ["127.0.0.1"]
        session = transport.new_session()
        session.verify = str(cert_path)
        with Elapsed() as took, pytest.raises(transport.Timeout):
            transport.fetch("GET", f"https://style.test:{server.port}/x", limit=1024, session=session)
    assert took.seconds < 2.0


def test_public_means_global_unicast():
    assert safety.is_public(ipaddress.ip_address("93.184.216.34"))
    assert not safety.is_public(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert not safety.is_public(ipaddress.ip_address("2002:7f00:1::"))  # 6to4 of 127.0.0.1
