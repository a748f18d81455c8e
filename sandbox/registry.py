"""Client registration, shared by the management command and the test-only endpoint."""

from __future__ import annotations

from urllib.parse import urlsplit

from sandbox.store import Client


class RegistrationError(ValueError):
    pass


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise RegistrationError(f"{what} must be an absolute http(s) URL without fragment: {url!r}")


def register_client(
    client_id: str,
    redirect_uris: list[str],
    launch_url: str = "",
    client_secret: str = "",
    jwks_url: str = "",
    jwks: dict | None = None,
    scope: str = "",
    name: str = "",
    rotate_refresh_tokens: bool = True,
    consent_on_ehr_launch: bool = False,
) -> tuple[Client, bool]:
    """Create or update a client (idempotent); returns (client, created)."""
    if not client_id:
        raise RegistrationError("client_id is required")
    if sum(bool(x) for x in (client_secret, jwks_url, jwks)) != 1:
        raise RegistrationError("give exactly one of client_secret, jwks_url or jwks")
    if not redirect_uris:
        raise RegistrationError("at least one redirect URI is required")
    for uri in redirect_uris:
        _check_url(uri, "redirect URI")
    if launch_url:
        _check_url(launch_url, "launch URL")
    if jwks_url:
        _check_url(jwks_url, "JWKS URL")
    if jwks is not None and not (isinstance(jwks, dict) and isinstance(jwks.get("keys"), list)):
        raise RegistrationError("jwks must be a JWK Set")
    client, created = Client.objects.get_or_create(client_id=client_id)
    client.name = name or client.name or client_id
    client.set_secret(client_secret)
    client.jwks_url = jwks_url
    client.jwks = jwks
    client.redirect_uris = "\n".join(redirect_uris)
    client.launch_url = launch_url
    client.scope = " ".join(scope.split())
    client.rotate_refresh_tokens = rotate_refresh_tokens
    client.consent_on_ehr_launch = consent_on_ehr_launch
    client.save()
    return client, created


def from_dict(data: dict) -> tuple[Client, bool]:
    """register_client from a JSON object (the test helper's and endpoint's format)."""
    if not isinstance(data, dict):
        raise RegistrationError("a client must be a JSON object")
    uris = data.get("redirect_uris") or ([data["redirect_uri"]] if data.get("redirect_uri") else [])
    allowed = {
        "client_id",
        "client_secret",
        "jwks_url",
        "jwks",
        "redirect_uris",
        "redirect_uri",
        "launch_url",
        "scope",
        "name",
        "rotate_refresh_tokens",
        "consent_on_ehr_launch",
    }
    unknown = set(data) - allowed
    if unknown:
        raise RegistrationError(f"unknown client fields: {', '.join(sorted(unknown))}")
    return register_client(
        client_id=str(data.get("client_id", "")),
        redirect_uris=list(uris),
        launch_url=data.get("launch_url", ""),
        client_secret=data.get("client_secret", ""),
        jwks_url=data.get("jwks_url", ""),
        jwks=data.get("jwks"),
        scope=data.get("scope", ""),
        name=data.get("name", ""),
        rotate_refresh_tokens=bool(data.get("rotate_refresh_tokens", True)),
        consent_on_ehr_launch=bool(data.get("consent_on_ehr_launch", False)),
    )
