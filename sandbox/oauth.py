"""The sandbox's OAuth 2.0 / SMART authorization-server logic (views stay thin).

Reference: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote_plus

import jwt
import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from sandbox import faults as fault_mod
from sandbox.scopes import allowed_by_client
from sandbox.store import AuthCode, Client, LaunchContext, SeenJti, SigningKey, Token, token_hash

CODE_TTL = timedelta(seconds=60)
LAUNCH_TTL = timedelta(minutes=5)
ACCESS_TTL = 3600
BACKEND_TTL = 300
OFFLINE_TTL = timedelta(days=30)
ONLINE_TTL = timedelta(hours=8)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300


class OAuthError(Exception):
    """An RFC 6749 error: `error` code, description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400, basic_challenge: bool = False):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic_challenge = basic_challenge


def base_url(request: HttpRequest) -> str:
    return settings.SANDBOX_BASE_URL or f"{request.scheme}://{request.get_host()}"


def fhir_base(request: HttpRequest) -> str:
    return base_url(request) + "/fhir"


def pkce_challenge(verifier: str) -> str:
    """S256: BASE64URL(SHA256(ASCII(code_verifier))) without padding.

    Reference: https://www.rfc-editor.org/rfc/rfc7636#section-4.2
    """
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


# --- Launch contexts -----------------------------------------------------------------------


def create_launch(client: Client, patient_id: str, encounter_id: str, fhir_user: str) -> str:
    token = _new_secret()
    LaunchContext.objects.create(
        token_hash=token_hash(token),
        client=client,
        patient_id=patient_id,
        encounter_id=encounter_id,
        fhir_user=fhir_user,
        expires_at=timezone.now() + LAUNCH_TTL,
    )
    return token


def consume_launch(client: Client, token: str) -> LaunchContext:
    """Single use: marks the launch used; unknown, expired, reused or foreign -> OAuthError."""
    with transaction.atomic():
        ctx = LaunchContext.objects.filter(token_hash=token_hash(token), client=client).first()
        if ctx is None:
            raise OAuthError("invalid_request", "unknown launch parameter")
        if ctx.used_at is not None:
            raise OAuthError("invalid_request", "launch parameter already used")
        if ctx.expires_at <= timezone.now():
            raise OAuthError("invalid_request", "launch parameter expired")
        ctx.used_at = timezone.now()
        ctx.save(update_fields=["used_at"])
        return ctx


# --- Authorization ------------------------------------------------------------------------


def grantable_scopes(client: Client, requested: list[str]) -> list[str]:
    """The requested scopes this client may receive (others are silently dropped, as EHRs do)."""
    registered = client.scope.split()
    dropped = set((client.faults or {}).get("drop_scopes") or [])
    out: list[str] = []
    for s in requested:
        if s not in out and s not in dropped and allowed_by_client(s, registered):
            out.append(s)
    return out


def issue_code(
    client: Client,
    redirect_uri: str,
    scope: list[str],
    code_challenge: str,
    nonce: str,
    patient_id: str,
    encounter_id: str,
    fhir_user: str,
    need_patient_banner: bool,
) -> str:
    code = _new_secret()
    AuthCode.objects.create(
        code_hash=token_hash(code),
        client=client,
        redirect_uri=redirect_uri,
        scope=" ".join(grantable_scopes(client, scope)),
        code_challenge=code_challenge,
        nonce=nonce,
        patient_id=patient_id,
        encounter_id=encounter_id,
        fhir_user=fhir_user,
        need_patient_banner=need_patient_banner,
    )
    return code


# --- Client authentication ----------------------------------------------------------------

_jwks_cache: dict[str, tuple[float, dict]] = {}
_jwks_lock = threading.Lock()


def _fetch_jwks(url: str, force: bool = False) -> dict:
    with _jwks_lock:
        hit = _jwks_cache.get(url)
        if hit and not force and hit[0] > time.monotonic():
            return hit[1]
    try:
        resp = requests.get(url, timeout=5, headers={"Accept": "application/json"})
        resp.raise_for_status()
        data = resp.json()
    except (requests.RequestException, ValueError) as e:
        raise OAuthError("invalid_client", "could not fetch the client's JWKS", 401) from e
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise OAuthError("invalid_client", "the client's JWKS is not a JWK Set", 401)
    with _jwks_lock:
        _jwks_cache[url] = (time.monotonic() + 60, data)
    return data


def _assertion_key(client: Client, header: dict):
    kid = header.get("kid")
    alg = header.get("alg")
    kty = "RSA" if alg == "RS384" else "EC"
    for attempt in (False, True):
        jwks = client.jwks if client.jwks else _fetch_jwks(client.jwks_url, force=attempt)
        candidates = [
            k for k in jwks.get("keys", []) if k.get("kty") == kty and (not kid or k.get("kid") == kid)
        ]
        if candidates:
            try:
                return jwt.PyJWK(candidates[0], algorithm=alg).key
            except jwt.PyJWTError as e:
                raise OAuthError("invalid_client", "the matching JWK is unusable", 401) from e
        if client.jwks:
            break
    raise OAuthError("invalid_client", "no key in the client's JWKS matches the assertion", 401)


def _verify_assertion(assertion: str, audience: str | list[str], body_client_id: str) -> Client:
    """private_key_jwt. Reference: https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html"""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise OAuthError("invalid_client", "client_assertion is not a JWT", 401) from e
    if header.get("alg") not in ASSERTION_ALGS:
        raise OAuthError("invalid_client", "client_assertion alg must be RS384 or ES384", 401)
    client_id = unverified.get("iss")
    client = Client.objects.filter(client_id=client_id).first() if isinstance(client_id, str) else None
    if client is None or not client.is_asymmetric:
        raise OAuthError("invalid_client", "unknown client or client not registered for private_key_jwt", 401)
    if body_client_id and body_client_id != client.client_id:
        raise OAuthError("invalid_client", "client_id does not match the assertion", 401)
    key = _assertion_key(client, header)
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=[header["alg"]],
            audience=audience,
            issuer=client.client_id,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise OAuthError("invalid_client", "client_assertion expired", 401) from e
    except jwt.InvalidAudienceError as e:
        raise OAuthError("invalid_client", "client_assertion aud must be the token endpoint URL", 401) from e
    except jwt.PyJWTError as e:
        raise OAuthError("invalid_client", f"client_assertion rejected: {e}", 401) from e
    if claims["sub"] != client.client_id:
        raise OAuthError("invalid_client", "client_assertion sub must equal iss (client_id)", 401)
    now = time.time()
    if claims["exp"] > now + MAX_ASSERTION_LIFETIME + 5:
        raise OAuthError("invalid_client", "client_assertion exp is more than 5 minutes ahead", 401)
    SeenJti.objects.filter(expires_at__lt=timezone.now()).delete()
    try:
        with transaction.atomic():
            SeenJti.objects.create(
                client=client,
                jti=str(claims["jti"])[:255],
                expires_at=timezone.now() + timedelta(seconds=max(claims["exp"] - now, 0) + 60),
            )
    except IntegrityError as e:
        raise OAuthError("invalid_client", "client_assertion jti already used", 401) from e
    return client


def authenticate_client(request: HttpRequest, audience: str | list[str]) -> Client:
    """client_secret_basic, client_secret_post or private_key_jwt — exactly one of them.

    Reference: https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
    """
    post = request.POST
    header = request.META.get("HTTP_AUTHORIZATION", "")
    methods = [
        bool(header.lower().startswith("basic ")),
        "client_secret" in post,
        "client_assertion" in post or "client_assertion_type" in post,
    ]
    if sum(methods) > 1:
        raise OAuthError("invalid_request", "use exactly one client authentication method")
    if methods[0]:
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode()
            cid, secret = raw.split(":", 1)
        except (ValueError, UnicodeDecodeError) as e:
            raise OAuthError(
                "invalid_client", "malformed Basic credentials", 401, basic_challenge=True
            ) from e
        cid, secret = unquote_plus(cid), unquote_plus(secret)
        client = Client.objects.filter(client_id=cid).first()
        if client is None or not client.check_secret(secret):
            raise OAuthError("invalid_client", "client authentication failed", 401, basic_challenge=True)
        if post.get("client_id") and post["client_id"] != cid:
            raise OAuthError("invalid_request", "client_id does not match the credentials")
        return client
    if methods[1]:
        client = Client.objects.filter(client_id=post.get("client_id", "")).first()
        if client is None or not client.check_secret(post.get("client_secret", "")):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client
    if methods[2]:
        if post.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}", 401)
        return _verify_assertion(post.get("client_assertion", ""), audience, post.get("client_id", ""))
    raise OAuthError("invalid_client", "client authentication required", 401)


# --- Tokens ---------------------------------------------------------------------------------


@dataclass
class Grant:
    client: Client
    scope: list[str]
    patient_id: str = ""
    encounter_id: str = ""
    fhir_user: str = ""
    need_patient_banner: bool = True
    nonce: str = ""
    grant_id: str = ""


def _ttl(client: Client, default: int) -> int:
    ttl = (client.faults or {}).get("access_token_ttl")
    return int(ttl) if ttl else default


def _store_token(kind: str, grant: Grant, ttl: timedelta) -> str:
    value = _new_secret()
    Token.objects.create(
        token_hash=token_hash(value),
        kind=kind,
        grant_id=grant.grant_id,
        client=grant.client,
        scope=" ".join(grant.scope),
        patient_id=grant.patient_id,
        encounter_id=grant.encounter_id,
        fhir_user=grant.fhir_user,
        need_patient_banner=grant.need_patient_banner,
        expires_at=timezone.now() + ttl,
    )
    return value


def signing_key() -> SigningKey:
    from sandbox.seed import signing_key as get_key

    return get_key()


def id_token(grant: Grant, issuer: str, fhir_base_url: str) -> str:
    """OpenID Connect id_token, RS256. Reference: https://openid.net/specs/openid-connect-core-1_0.html#IDToken"""
    key = signing_key()
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": grant.fhir_user.replace("/", "-") or grant.client.client_id,
        "aud": grant.client.client_id,
        "exp": now + 3600,
        "iat": now,
        "auth_time": now,
    }
    if "fhirUser" in grant.scope and grant.fhir_user:
        claims["fhirUser"] = f"{fhir_base_url}/{grant.fhir_user}"
    if grant.nonce:
        claims["nonce"] = grant.nonce
    if "profile" in grant.scope and grant.fhir_user:
        claims["profile"] = f"{fhir_base_url}/{grant.fhir_user}"
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})


def public_jwks() -> dict:
    from cryptography.hazmat.primitives import serialization

    key = signing_key()
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": key.kid, "use": "sig", "alg": "RS256"})
    return {"keys": [jwk]}


def token_response(
    grant: Grant,
    issuer: str,
    fhir_base_url: str,
    style_url: str,
    refresh: str | None,
    default_ttl: int = ACCESS_TTL,
) -> dict:
    ttl = _ttl(grant.client, default_ttl)
    body: dict = {
        "access_token": _store_token(Token.Kind.ACCESS, grant, timedelta(seconds=ttl)),
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": " ".join(grant.scope),
    }
    if grant.patient_id:
        body["patient"] = grant.patient_id
    if grant.encounter_id:
        body["encounter"] = grant.encounter_id
    if "openid" in grant.scope and ({"fhirUser", "profile"} & set(grant.scope)):
        body["id_token"] = id_token(grant, issuer, fhir_base_url)
    if refresh:
        body["refresh_token"] = refresh
    if not grant.scope or any(not s.startswith("system/") for s in grant.scope):
        body["need_patient_banner"] = grant.need_patient_banner
        body["smart_style_url"] = style_url
    return body


def _refresh_ttl(scope: list[str]) -> timedelta | None:
    if "offline_access" in scope:
        return OFFLINE_TTL
    if "online_access" in scope:
        return ONLINE_TTL
    return None


def exchange_code(client: Client, code: str, redirect_uri: str, verifier: str) -> Grant:
    """authorization_code grant. Reference: https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3"""
    if not code:
        raise OAuthError("invalid_request", "code is required")
    with transaction.atomic():
        row = AuthCode.objects.filter(code_hash=token_hash(code)).first()
        if row is None or row.client_id != client.pk:
            raise OAuthError("invalid_grant", "unknown authorization code")
        replayed = row.used_at is not None
        if replayed:
            # A replayed code revokes what it issued. Reference: RFC 6749 section 4.1.2
            Token.objects.filter(grant_id=f"code-{row.pk}").update(revoked=True)
        else:
            row.used_at = timezone.now()
            row.save(update_fields=["used_at"])
    if replayed:
        raise OAuthError("invalid_grant", "authorization code already used")
    if row.created_at + CODE_TTL < timezone.now():
        raise OAuthError("invalid_grant", "authorization code expired")
    if redirect_uri != row.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    if not verifier:
        raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
    if not (43 <= len(verifier) <= 128) or not hmac.compare_digest(
        pkce_challenge(verifier), row.code_challenge
    ):
        raise OAuthError("invalid_grant", "code_verifier does not match code_challenge")
    return Grant(
        client=client,
        scope=row.scope.split(),
        patient_id=row.patient_id,
        encounter_id=row.encounter_id,
        fhir_user=row.fhir_user,
        need_patient_banner=row.need_patient_banner,
        nonce=row.nonce,
        grant_id=f"code-{row.pk}",
    )


def new_refresh_token(grant: Grant) -> str | None:
    ttl = _refresh_ttl(grant.scope)
    return _store_token(Token.Kind.REFRESH, grant, ttl) if ttl else None


def refresh(client: Client, value: str, scope: str) -> tuple[Grant, str]:
    """refresh_token grant with optional rotation. Reference: https://www.rfc-editor.org/rfc/rfc6749#section-6"""
    if not value:
        raise OAuthError("invalid_request", "refresh_token is required")
    faults = client.faults or {}
    row = Token.objects.filter(token_hash=token_hash(value), kind=Token.Kind.REFRESH).first()
    if row is None or row.client_id != client.pk:
        raise OAuthError("invalid_grant", "unknown refresh token")
    if faults.get("revoke_refresh_tokens"):
        Token.objects.filter(grant_id=row.grant_id).update(revoked=True)
        raise OAuthError("invalid_grant", "refresh token revoked")
    with transaction.atomic():
        # Re-read inside the write transaction: two concurrent refreshes cannot both rotate.
        row = Token.objects.get(pk=row.pk)
        if not row.is_active():
            raise OAuthError("invalid_grant", "refresh token expired or revoked")
        granted = row.scope.split()
        wanted = scope.split() if scope else granted
        if not set(wanted) <= set(granted):
            raise OAuthError("invalid_scope", "a refresh may only narrow the granted scopes")
        rotate = faults.get("refresh_rotation", client.rotate_refresh_tokens)
        grant = Grant(
            client=client,
            scope=[s for s in granted if s in wanted],
            patient_id=row.patient_id,
            encounter_id=row.encounter_id,
            fhir_user=row.fhir_user,
            need_patient_banner=row.need_patient_banner,
            grant_id=row.grant_id,
        )
        if rotate:
            row.revoked = True
            row.save(update_fields=["revoked"])
            new_value = _store_token(
                Token.Kind.REFRESH,
                Grant(**{**grant.__dict__, "scope": granted}),
                row.expires_at - timezone.now(),
            )
        else:
            new_value = value
    return grant, new_value


def client_credentials(client: Client, scope: str, auth_was_jwt: bool) -> Grant:
    """Backend services. Reference: https://hl7.org/fhir/smart-app-launch/STU2.2/backend-services.html"""
    if not auth_was_jwt:
        raise OAuthError("unauthorized_client", "client_credentials requires private_key_jwt")
    wanted = scope.split()
    if not wanted:
        raise OAuthError("invalid_scope", "scope is required")
    if any(not s.startswith("system/") for s in wanted):
        raise OAuthError("invalid_scope", "only system/ scopes are allowed for client_credentials")
    granted = grantable_scopes(client, wanted)
    if not granted:
        raise OAuthError("invalid_scope", "none of the requested scopes is allowed for this client")
    return Grant(
        client=client, scope=granted, need_patient_banner=False, grant_id=f"cc-{secrets.token_hex(6)}"
    )


def access_token(value: str) -> Token | None:
    """The active access token with this value, or None."""
    row = (
        Token.objects.select_related("client")
        .filter(token_hash=token_hash(value), kind=Token.Kind.ACCESS)
        .first()
    )
    return row if row and row.is_active() else None


def introspect(value: str, issuer: str, fhir_base_url: str) -> dict:
    """Reference: https://www.rfc-editor.org/rfc/rfc7662#section-2.2"""
    row = (
        Token.objects.select_related("client").filter(token_hash=token_hash(value)).first() if value else None
    )
    if row is None or not row.is_active():
        return {"active": False}
    out = {
        "active": True,
        "scope": row.scope,
        "client_id": row.client.client_id,
        "token_type": "Bearer" if row.kind == Token.Kind.ACCESS else "refresh_token",
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.issued_at.timestamp()),
        "iss": issuer,
    }
    if row.patient_id:
        out["patient"] = row.patient_id
    if row.encounter_id:
        out["encounter"] = row.encounter_id
    if row.fhir_user:
        out["fhirUser"] = f"{fhir_base_url}/{row.fhir_user}"
        out["sub"] = row.fhir_user.replace("/", "-")
    return out


def revoke(client: Client, value: str) -> None:
    """Reference: https://www.rfc-editor.org/rfc/rfc7009#section-2.1 (unknown tokens are not an error)."""
    row = Token.objects.filter(token_hash=token_hash(value)).first() if value else None
    if row is None or row.client_id != client.pk:
        return
    if row.kind == Token.Kind.REFRESH:
        Token.objects.filter(grant_id=row.grant_id).update(revoked=True)
    else:
        row.revoked = True
        row.save(update_fields=["revoked"])


def token_fault(client: Client) -> int | None:
    """An injected token-endpoint failure status, if one fires now."""
    status = (client.faults or {}).get("token_status")
    if status and fault_mod.consume(client.pk, "token_status", "token_status_times"):
        return int(status)
    return None
