"""Who launched the app: strict id_token verification and the Django user it maps to.

Built on mozilla-django-oidc's backend, but configured per EHR at run time (not from its
single-provider OIDC_* settings) and stricter: asymmetric algorithms only, issuer and audience
always checked, one JWKS refetch for an unknown kid, no userinfo call (SMART servers often have
none), and the patient/encounter/refresh token stay with the launch, not with the backend.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-identity-data
Reference: https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import jwt
from django.conf import settings
from django.contrib.auth import login
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from smartapp import cachepolicy, safety
from smartapp.discovery import SmartConfig
from smartapp.models import Ehr
from smartapp.protocol import OAuthError, get_json

logger = logging.getLogger(__name__)

BACKEND_PATH = "smartapp.identity.SmartOIDCBackend"
LEEWAY_SECONDS = 60
# Asymmetric only: HS* would let anyone holding the (public) client_id-side secret forge tokens,
# and accepting HS256 with an RSA public key as the HMAC secret is the classic confusion attack.
ALLOWED_ALGS = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
FHIR_USER_TYPES = ("Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person")
MAX_FHIR_USER = 512  # the Launch column


class IdentityError(OAuthError):
    """The id_token could not be verified; the user is not signed in."""

    status = 401


def _jwks_cache_key(jwks_uri: str) -> str:
    return "smart:jwks:" + hashlib.sha256(jwks_uri.encode()).hexdigest()


def _fetch_jwks(jwks_uri: str, *, use_cache: bool) -> list[dict[str, Any]]:
    key = _jwks_cache_key(jwks_uri)
    if use_cache:
        cached = cachepolicy.get(cachepolicy.JWKS, key)
        if cached is not None:
            return cached
    try:
        document = get_json(jwks_uri)
    except OAuthError as exc:
        raise IdentityError(f"The EHR's signing keys could not be fetched: {exc}") from exc
    keys = [k for k in document.get("keys") or [] if isinstance(k, dict)]
    cachepolicy.set(cachepolicy.JWKS, key, keys, settings.SMART_DISCOVERY_TTL)
    return keys


def _matching(keys: list[dict[str, Any]], kid: str | None, alg: str) -> dict[str, Any] | None:
    kty, crv = ALLOWED_ALGS[alg]
    candidates = [
        k
        for k in keys
        if k.get("kty") == kty
        and (crv is None or k.get("crv") == crv)
        and k.get("alg") in (None, alg)
        and k.get("use") in (None, "sig")
        and (kid is None or k.get("kid") == kid)
    ]
    # Without a kid, only an unambiguous single key is acceptable.
    return candidates[0] if len(candidates) == 1 or (kid is not None and candidates) else None


def absolute_fhir_user(value: str, iss: str) -> str:
    """`fhirUser` as an absolute URL (Epic sends absolute, others relative `Practitioner/123`).

    Only the resource types the IG allows (Patient, Practitioner, PractitionerRole,
    RelatedPerson, Person) are kept; anything else is dropped with a log line.
    """
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-identity-data
    if not value:
        return ""
    try:
        scheme = urlsplit(value).scheme
        absolute = value if scheme in ("http", "https") else urljoin(iss.rstrip("/") + "/", value)
        segments = urlsplit(absolute).path.rstrip("/").split("/")
    except ValueError:  # e.g. "https://[broken"
        segments = []
    if (
        len(segments) < 2
        or segments[-2] not in FHIR_USER_TYPES
        or not safety.FHIR_ID.match(segments[-1])
        or len(absolute) > MAX_FHIR_USER
        or safety.has_control_characters(absolute)
    ):
        logger.warning("fhirUser claim ignored: not a %s reference", "/".join(FHIR_USER_TYPES))
        return ""
    return absolute


def stable_username(issuer: str, sub: str) -> str:
    """A stable, opaque username per (issuer, subject): sub values are only unique per issuer."""
    # surrogatepass: a `sub` holding a lone surrogate still maps to one stable name, not a 500.
    return "smart-" + hashlib.sha256(f"{issuer}\n{sub}".encode("utf-8", "surrogatepass")).hexdigest()[:40]


class SmartOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, with its provider settings per EHR instead of from settings.

    The parent reads one provider's OIDC_* settings in `__init__` through `get_settings`, its hook
    for settings that do not come from django.conf; here that hook answers the provider settings
    from the EHR being signed in to (None until one is), and everything else from settings.
    """

    def __init__(self, ehr: Ehr | None = None, config: SmartConfig | None = None, *args, **kwargs):
        self.ehr, self.config = ehr, config
        self.claims: dict[str, Any] = {}
        super().__init__(*args, **kwargs)

    def _provider_settings(self) -> dict[str, Any]:
        ehr, config = self.ehr, self.config
        return {
            "OIDC_OP_TOKEN_ENDPOINT": config.token_endpoint if config else None,
            "OIDC_OP_USER_ENDPOINT": None,  # SMART servers often have none: the id_token is the identity
            "OIDC_OP_JWKS_ENDPOINT": (config.jwks_uri or None) if config else None,
            "OIDC_RP_CLIENT_ID": ehr.client_id if ehr else None,
            "OIDC_RP_CLIENT_SECRET": None,  # the code exchange is smartapp.token_endpoint's, not ours
            "OIDC_RP_IDP_SIGN_KEY": None,
        }

    def get_settings(self, attr: str, *args: Any) -> Any:
        provider = self._provider_settings()
        if attr in provider:
            return provider[attr]
        return super().get_settings(attr, *args)

    def _configure(self, ehr: Ehr, config: SmartConfig) -> None:
        """Point the backend at this EHR (Django constructs backends without arguments)."""
        self.ehr, self.config = ehr, config
        for name, value in self._provider_settings().items():
            setattr(self, name, value)

    # Only our own callback passes these keyword arguments, so password logins skip this backend.
    def authenticate(
        self,
        request: HttpRequest | None,
        smart_id_token: str | None = None,
        smart_ehr: Ehr | None = None,
        smart_config: SmartConfig | None = None,
        smart_nonce: str | None = None,
    ):
        if not smart_id_token or smart_ehr is None or smart_config is None:
            return None
        self.request = request
        self._configure(smart_ehr, smart_config)
        payload = self.verify_token(smart_id_token, nonce=smart_nonce)
        self.claims = payload
        try:
            return self.get_or_create_user(None, smart_id_token, payload)
        except SuspiciousOperation as exc:
            raise IdentityError("Your EHR identity could not be mapped to a user.") from exc

    @property
    def expected_issuer(self) -> str:
        return (self.config.issuer if self.config else "") or self.ehr.iss

    def retrieve_matching_jwk(self, token: str) -> jwt.PyJWK:
        """The EHR's key for this token; an unknown kid triggers one JWKS refetch, then refusal."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, RecursionError) as exc:
            raise IdentityError("The EHR sent a malformed id_token.") from exc
        alg, kid = header.get("alg"), header.get("kid")
        jwks_uri = self.OIDC_OP_JWKS_ENDPOINT
        if not jwks_uri:
            raise IdentityError("The EHR publishes no jwks_uri, so its id_token cannot be verified.")
        jwk = _matching(_fetch_jwks(jwks_uri, use_cache=True), kid, alg)
        if jwk is None:
            jwk = _matching(_fetch_jwks(jwks_uri, use_cache=False), kid, alg)
        if jwk is None:
            raise IdentityError("The id_token was signed with a key the EHR does not publish.")
        try:
            return jwt.PyJWK(jwk, algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            raise IdentityError("The EHR publishes an unusable signing key.") from exc

    def verify_token(self, token: str, **kwargs) -> dict[str, Any]:
        """Verify signature, alg, iss, aud (+azp), exp, iat and nonce; return the claims."""
        nonce = kwargs.get("nonce") or ""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, RecursionError) as exc:
            raise IdentityError("The EHR sent a malformed id_token.") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            shown = alg[:16] if isinstance(alg, str) else type(alg).__name__
            logger.warning("id_token rejected: disallowed alg %r (ehr=%s)", shown, self.ehr.pk)
            raise IdentityError("The EHR signed the id_token with a disallowed algorithm.")
        key = self.retrieve_matching_jwk(token)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.expected_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except (jwt.InvalidTokenError, RecursionError) as exc:
            logger.warning("id_token rejected (ehr=%s): %s", self.ehr.pk, type(exc).__name__)
            raise IdentityError(f"The EHR's id_token is not valid ({_describe(exc)}).") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.ehr.client_id:
            raise IdentityError("The EHR's id_token was issued to another party (azp).")
        if not nonce or not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            logger.warning("id_token rejected: nonce mismatch (ehr=%s)", self.ehr.pk)
            raise IdentityError("The EHR's id_token does not belong to this sign-in (nonce).")
        return claims

    def get_userinfo(self, access_token, id_token, payload):
        # SMART servers often have no userinfo endpoint; the verified id_token is the identity.
        return payload

    def verify_claims(self, claims) -> bool:
        return isinstance(claims.get("sub"), str) and bool(claims["sub"])

    def get_username(self, claims) -> str:
        # Keyed on the registered EHR, not the token's own `iss` claim: another EHR publishing
        # the same issuer string must not reach this EHR's users.
        return stable_username(self.ehr.iss, claims["sub"])

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=self.get_username(claims))

    def create_user(self, claims):
        # No names, no email: the user may be a patient, and nothing here shows them, so no PHI
        # lands in auth_user (which outlives every launch).
        user = self.UserModel(username=self.get_username(claims))
        user.set_unusable_password()
        user.save()
        return user

    def update_user(self, user, claims):
        return user


def _describe(exc: Exception) -> str:
    return {
        jwt.InvalidSignatureError: "bad signature",
        jwt.ExpiredSignatureError: "expired",
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.ImmatureSignatureError: "issued in the future",
        jwt.MissingRequiredClaimError: "missing claim",
    }.get(type(exc), "malformed")


@dataclass(frozen=True)
class Identity:
    user: Any
    claims: dict[str, Any]
    fhir_user: str


def sign_in(request: HttpRequest, ehr: Ehr, config: SmartConfig, *, id_token: str, nonce: str) -> Identity:
    """Verify the id_token, map it to a Django user and log in (rotating the session key)."""
    backend = SmartOIDCBackend(ehr, config)
    user = backend.authenticate(
        request, smart_id_token=id_token, smart_ehr=ehr, smart_config=config, smart_nonce=nonce
    )
    if user is None:
        raise IdentityError("Your EHR identity could not be verified.")
    claims = backend.claims
    login(request, user, backend=BACKEND_PATH)
    fhir_user = claims.get("fhirUser") if isinstance(claims.get("fhirUser"), str) else ""
    return Identity(user=user, claims=claims, fhir_user=absolute_fhir_user(fhir_user, ehr.iss))
