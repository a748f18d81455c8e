"""The one rule for what the app sends requests to, the one FHIR id pattern, and origins.

Two kinds of outbound URL:

- **registered**: an EHR an admin registered (its `iss`) and the endpoints its discovery document
  names. https only; plain http only to a loopback host, and only with `DEBUG` or the test-only
  `SMART_ALLOW_HTTP_LOOPBACK` (the dev sandbox on http://127.0.0.1:9000). Private addresses are
  fine here: hospitals run EHRs on their own networks.
- **public only**: a URL the EHR hands us at run time (the `smart_style_url`) and fetches nobody
  vouched for. Besides the rule above, every address its host resolves to must be a public one:
  loopback, private, link-local, multicast, reserved, unspecified and shared (CGNAT) addresses are
  refused, whatever the notation (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`, `localhost`,
  `metadata.google.internal`: `getaddrinfo` normalises them all). The transport connects to one of
  the addresses it checked, so a DNS answer that changes between check and connect (rebinding)
  gains nothing. Loopback passes only under the same DEBUG/test allowance.

Besides: `normalize_origin` (the one origin rule for frame ancestors, used by the model's
validator and the CSP) and `has_control_characters` (for values the EHR or a browser hands us).

Reference: https://owasp.org/www-community/attacks/Server_Side_Request_Forgery
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

# FHIR ids are [A-Za-z0-9-.]{1,64}; Epic's run longer, so allow more length but never other
# characters (an id is put into a URL path). \Z, not $: "$" would let a trailing newline through.
# Reference: https://hl7.org/fhir/R4/datatypes.html#id
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,256}\Z")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedURL(Exception):
    """The URL breaks the outbound rule; nothing was sent. `str(exc)` is safe to show."""


def http_loopback_allowed() -> bool:
    """Plain http to loopback (and loopback at all for public-only URLs): dev and tests only."""
    return bool(settings.DEBUG or getattr(settings, "SMART_ALLOW_HTTP_LOOPBACK", False))


def is_loopback_host(host: str) -> bool:
    """`localhost` (and *.localhost) or a literal loopback address, by name: no DNS lookup."""
    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split(url: str) -> SplitResult:
    """`urlsplit`, with a RefusedURL (not a ValueError) for what cannot be a URL to fetch."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port out of range)
    except (ValueError, TypeError) as exc:
        raise RefusedURL("The address is not a valid URL.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedURL("Only https URLs are fetched.")
    if parts.username is not None or parts.password is not None:
        raise RefusedURL("URLs with credentials in them are not fetched.")
    return parts


def check_url(url: str, *, public_only: bool = False) -> SplitResult:
    """The URL's parts if the app may send a request to it, else RefusedURL (see the module doc).

    No DNS lookup here (it has no time limit): a literal address in any notation, and
    `localhost`, are judged now; a name is resolved and judged by the transport when it connects.
    """
    parts = split(url)
    if parts.scheme == "http" and not (is_loopback_host(parts.hostname) and http_loopback_allowed()):
        raise RefusedURL("Only https URLs are fetched.")
    if public_only:
        host = parts.hostname
        if is_loopback_host(host) and not http_loopback_allowed():
            raise RefusedURL("The address is internal; the app does not fetch from it.")
        for address in literal_addresses(host):
            if not address_allowed(address, public_only=True):
                raise RefusedURL("The address is internal; the app does not fetch from it.")
    return parts


def literal_addresses(host: str) -> list[Address]:
    """The address(es) a numeric host means in any notation the resolver accepts; [] for a name."""
    try:
        infos = _getaddrinfo(host.strip("[]"), 0, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def is_secure_url(url: str) -> bool:
    """True when `check_url` accepts `url` as a registered URL (no DNS lookup)."""
    try:
        check_url(url)
    except RefusedURL:
        return False
    return True


def is_public(address: Address) -> bool:
    """A globally routable unicast address (IPv4-mapped and 6to4/Teredo forms judged by their IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def address_allowed(address: Address, *, public_only: bool) -> bool:
    if not public_only or is_public(address):
        return True
    return address.is_loopback and http_loopback_allowed()


# Indirection so tests can stand in for DNS (metadata.google.internal does not resolve here).
_getaddrinfo = socket.getaddrinfo


def resolve(host: str, port: int, *, public_only: bool) -> list[tuple[int, str]]:
    """(family, address) pairs for host:port; RefusedURL if a public-only host has ANY bad address.

    Every address is checked, not just the first: a name that resolves to one public and one
    internal address could be connected to either.
    """
    try:
        infos = _getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise UnresolvableHost(f"The host {host!r} could not be resolved.") from exc
    pairs: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not address_allowed(address, public_only=public_only):
            raise RefusedURL("The address is internal; the app does not fetch from it.")
        if (family, str(sockaddr[0])) not in pairs:
            pairs.append((family, str(sockaddr[0])))
    if not pairs:
        raise UnresolvableHost(f"The host {host!r} has no usable address.")
    return pairs


class UnresolvableHost(OSError):
    """DNS gave no address: a network failure ("could not be reached"), not a refusal."""


# --- Origins (frame ancestors, CSP) ----------------------------------------------------------------

# scheme://host[:port] and nothing else: no path, query, wildcard, quote, semicolon or space,
# so an origin typed into the admin can never add a directive to the policy.
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
)


def normalize_origin(value: str) -> str | None:
    """`value` as a CSP-safe origin (lower-case scheme://host[:port]), or None if it is not one.

    Plain http is accepted only for loopback hosts (the dev sandbox); an EHR in production is
    always https.
    """
    candidate = value.strip().lower().rstrip("/")
    match = _ORIGIN.fullmatch(candidate)
    if match is None:
        return None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return None
    if match.group("scheme") == "http" and not is_loopback_host(match.group("host")):
        return None
    return candidate


def origin_of_url(url: str) -> str | None:
    """The CSP-safe origin of an absolute URL (e.g. an authorization endpoint), or None."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc or "@" in parts.netloc:
        return None
    return normalize_origin(f"{parts.scheme}://{parts.netloc}")


# --- Values handed to us ---------------------------------------------------------------------------

# Control characters, and lone surrogates (JSON's "\ud800" decodes to one; no database can
# encode it).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def has_control_characters(value: str) -> bool:
    """No SMART parameter or hint legitimately holds one, and PostgreSQL refuses NUL in text."""
    return _CONTROL.search(value) is not None
