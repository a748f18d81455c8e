"""SMART App Launch 2.x protocol and HTTP: discovery, PKCE, authorize URL, token calls, revocation.

Plain functions only; no request, session or rendering here. Every failure an EHR (or the
network) can cause becomes an `OAuthError` with a message fit to show a user; secrets, codes
and tokens never appear in messages or logs.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urljoin, urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from smartapp import cachepolicy, keys, safety, transport
from smartapp.models import Ehr

logger = logging.getLogger(__name__)

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITIES_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# When a server omits expires_in (RFC 6749 only RECOMMENDS it) assume a short life: refreshing
# early costs one request, using a dead token costs a failed page. A FHIR 401 forces a refresh anyway.
DEFAULT_EXPIRES_IN = 300
ASSERTION_LIFETIME = 240  # seconds; the IG caps exp at 5 minutes, leave room for clock skew
CAPABILITY_NAMES = (
    "launch-ehr",
    "launch-standalone",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
    "authorize-post",
)
# RFC 6749 4.1.2.1 error codes, with what to tell the user.
AUTHORIZATION_ERRORS = {
    "access_denied": "Access was not granted. You (or the EHR) declined the app's request.",
    "invalid_scope": "The EHR did not accept the data access the app asked for.",
    "invalid_request": "The EHR rejected the sign-in request as malformed.",
    "unauthorized_client": "The EHR does not allow this app to sign in this way.",
    "unsupported_response_type": "The EHR does not support the app's sign-in method.",
    "server_error": "The EHR had an internal error while signing you in.",
    "temporarily_unavailable": "The EHR's sign-in service is temporarily unavailable.",
}


# --- Errors ---------------------------------------------------------------------------------


class OAuthError(Exception):
    """Something went wrong talking to the EHR; `str(exc)` is safe to show a user."""

    status = 502


class DiscoveryError(OAuthError):
    """The EHR's SMART configuration could not be fetched or is unusable."""


class ConfigurationError(OAuthError):
    """The EHR and this app have no compatible way to authorize (PKCE, client auth, keys)."""


class TransportError(OAuthError):
    """The EHR could not be reached in time."""


class TokenError(OAuthError):
    """The token endpoint refused the request (`error` holds the RFC 6749 code when given)."""

    def __init__(self, message: str, error: str = ""):
        super().__init__(message)
        self.error = error


class TokenResponseError(OAuthError):
    """The token endpoint answered, but not with a usable token response."""


# --- HTTP (through smartapp.transport) --------------------------------------------------------

# Discovery documents, CapabilityStatements and JWKS are small; a CapabilityStatement of a large
# server can reach a few hundred KB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


# A token response holds a few tokens, an id_token and some context: far below this.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024


def get_json(url: str, accept: str = "application/json") -> dict[str, Any]:
    """GET a JSON document (discovery, CapabilityStatement, JWKS); no redirects, size-capped."""
    try:
        reply = transport.fetch("GET", url, headers={"Accept": accept}, limit=MAX_DOCUMENT_BYTES)
    except transport.RefusedURL as exc:
        raise DiscoveryError(f"The app does not fetch this address: {exc}") from exc
    except transport.Timeout as exc:
        raise TransportError("The EHR did not answer in time.") from exc
    except transport.TooLarge as exc:
        raise DiscoveryError("The EHR's document is implausibly large.") from exc
    except transport.OutboundError as exc:
        raise TransportError("The EHR could not be reached.") from exc
    if reply.status_code != 200:
        raise DiscoveryError(f"The EHR answered HTTP {reply.status_code}.")
    try:
        data = loads(reply.body)
    except ValueError as exc:
        raise DiscoveryError("The EHR answered with something other than JSON.") from exc
    if not isinstance(data, dict):
        raise DiscoveryError("The EHR answered with an unexpected JSON document.")
    return data


@dataclass(frozen=True)
class FormReply:
    """A token or revocation endpoint's answer, read whole (size-capped) before anything parses it."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        return loads(self.body)  # a ValueError for anything but JSON


def _post_form(url: str, data: dict[str, str], headers: dict[str, str]) -> FormReply:
    """POST a form; the whole call, headers and body, ends within the transport's deadline.

    The answer is returned once it has arrived whole, and parsed after the call is over: a
    token response already received is never thrown away because the clock ran on meanwhile.
    """
    try:
        reply = transport.fetch(
            "POST",
            url,
            data=data,
            headers={"Accept": "application/json", **headers},
            limit=MAX_TOKEN_RESPONSE_BYTES,
        )
    except transport.RefusedURL as exc:
        raise ConfigurationError(f"The app does not send credentials to this address: {exc}") from exc
    except transport.Timeout as exc:
        raise TransportError("The EHR's token service did not answer in time.") from exc
    except transport.TooLarge as exc:
        logger.warning("token endpoint answered with more than %d bytes; refused", MAX_TOKEN_RESPONSE_BYTES)
        message = "The EHR's token service answered with an implausibly large response."
        raise TokenResponseError(message) from exc
    except transport.OutboundError as exc:
        raise TransportError("The EHR's token service could not be reached.") from exc
    return FormReply(reply.status_code, reply.body)


# --- Discovery ------------------------------------------------------------------------------


@dataclass
class SmartConfig:
    """The parts of an EHR's SMART configuration the app uses, after overrides and checks."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str = ""
    introspection_endpoint: str = ""  # shown to the admin; the app has no use for it yet
    jwks_uri: str = ""
    capabilities: list[str] = field(default_factory=list)
    code_challenge_methods: list[str] | None = None
    auth_methods: list[str] | None = None
    signing_algs: list[str] | None = None
    scopes_supported: list[str] | None = None
    iss_parameter_supported: bool = False
    source: str = "smart-configuration"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


def is_secure_url(url: str) -> bool:
    """https, or plain http to loopback in dev/tests (`smartapp.safety`): no secrets in clear."""
    return safety.is_secure_url(url)


def _resolve(base: str, value: Any) -> str:
    """Resolve a possibly relative endpoint against the FHIR base URL."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        resolved = urljoin(base + "/", value)
        return resolved if urlsplit(resolved).scheme in ("http", "https") else ""
    except ValueError:  # "https://[broken": evaluate() then names the endpoint as missing
        return ""


def _str_list(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, str)]


def _from_capability_statement(statement: dict[str, Any]) -> dict[str, Any]:
    """Read the oauth-uris extension of a CapabilityStatement into a smart-configuration shape."""
    # Reference: https://hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html#declaring-support-for-oauth2-endpoints
    document: dict[str, Any] = {"capabilities": []}
    names = {
        "authorize": "authorization_endpoint",
        "token": "token_endpoint",
        "revoke": "revocation_endpoint",
        "introspect": "introspection_endpoint",
    }
    try:
        for rest in statement.get("rest") or []:
            for extension in (rest.get("security") or {}).get("extension") or []:
                if extension.get("url") == OAUTH_URIS_EXTENSION:
                    for inner in extension.get("extension") or []:
                        if inner.get("url") in names and isinstance(inner.get("valueUri"), str):
                            document[names[inner["url"]]] = inner["valueUri"]
                elif extension.get("url") == CAPABILITIES_EXTENSION and extension.get("valueCode"):
                    document["capabilities"].append(extension["valueCode"])
    except (AttributeError, TypeError) as exc:
        raise DiscoveryError("The EHR's CapabilityStatement is malformed.") from exc
    if "authorization_endpoint" not in document or "token_endpoint" not in document:
        raise DiscoveryError("The EHR's CapabilityStatement names no OAuth endpoints.")
    return document


def fetch_document(ehr: Ehr) -> tuple[dict[str, Any], str]:
    """Fetch the SMART configuration: .well-known first, the CapabilityStatement as a fallback."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/conformance.html#using-well-known
    try:
        document = get_json(f"{ehr.iss}/.well-known/smart-configuration")
    except OAuthError as first:
        logger.info("smart-configuration unavailable for ehr=%s (%s); trying /metadata", ehr.pk, first)
        try:
            statement = get_json(f"{ehr.iss}/metadata", accept="application/fhir+json")
        except OAuthError as second:
            raise DiscoveryError(
                f"Could not read {ehr.name}'s SMART configuration ({first} Fallback: {second})"
            ) from second
        return _from_capability_statement(statement), "metadata"
    if document.get("authorization_endpoint") and document.get("token_endpoint"):
        return document, "smart-configuration"
    # A .well-known without endpoints: an older server may still declare them in /metadata.
    try:
        statement = get_json(f"{ehr.iss}/metadata", accept="application/fhir+json")
        return _from_capability_statement(statement), "metadata"
    except OAuthError:
        return document, "smart-configuration"  # evaluate() names what is missing


def evaluate(ehr: Ehr, document: dict[str, Any], source: str = "smart-configuration") -> SmartConfig:
    """Turn a discovery document into a `SmartConfig`, listing hard errors and soft warnings."""
    base = ehr.iss
    config = SmartConfig(
        issuer=document.get("issuer") if isinstance(document.get("issuer"), str) else "",
        authorization_endpoint=ehr.authorize_url_override
        or _resolve(base, document.get("authorization_endpoint")),
        token_endpoint=ehr.token_url_override or _resolve(base, document.get("token_endpoint")),
        revocation_endpoint=_resolve(base, document.get("revocation_endpoint")),
        introspection_endpoint=_resolve(base, document.get("introspection_endpoint")),
        jwks_uri=_resolve(base, document.get("jwks_uri")),
        capabilities=_str_list(document.get("capabilities")) or [],
        code_challenge_methods=_str_list(document.get("code_challenge_methods_supported")),
        auth_methods=_str_list(document.get("token_endpoint_auth_methods_supported")),
        signing_algs=_str_list(document.get("token_endpoint_auth_signing_alg_values_supported")),
        scopes_supported=_str_list(document.get("scopes_supported")),
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
        source=source,
    )
    if not config.authorization_endpoint:
        config.errors.append("No authorization_endpoint.")
    if not config.token_endpoint:
        config.errors.append("No token_endpoint.")
    for name in ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"):
        url = getattr(config, name)
        if url and not is_secure_url(url):
            config.errors.append(f"{name} must use https ({url.split('?')[0]}).")
    if config.introspection_endpoint and not is_secure_url(config.introspection_endpoint):
        # Unused by the app: an insecure one is ignored, it does not disable the EHR.
        config.warnings.append("introspection_endpoint is not https; ignored.")
        config.introspection_endpoint = ""

    # PKCE is always sent; only an explicit list without S256 is a hard error.
    methods = config.code_challenge_methods
    if methods is None:
        config.warnings.append("code_challenge_methods_supported is missing; sending PKCE S256 anyway.")
    elif "S256" not in methods:
        config.errors.append(
            "The EHR offers only 'plain' PKCE, which is insecure; S256 is required."
            if methods
            else "The EHR does not offer PKCE with S256."
        )
    elif "plain" in methods:
        config.warnings.append("The EHR also offers 'plain' PKCE; the app always uses S256.")

    if config.auth_methods is None:
        config.warnings.append(f"token_endpoint_auth_methods_supported is missing; using {ehr.auth_method}.")
    elif ehr.auth_method not in config.auth_methods:
        config.errors.append(
            f"The EHR does not accept {ehr.auth_method} client authentication "
            f"(it offers: {', '.join(config.auth_methods) or 'nothing'})."
        )
    if ehr.is_confidential_asymmetric:
        if config.signing_algs is not None and not set(config.signing_algs) & set(keys.SUPPORTED_ALGS):
            config.errors.append("The EHR accepts neither RS384 nor ES384 client assertions.")
    elif not ehr.client_secret:
        config.errors.append(f"{ehr.auth_method} needs a client secret, and none is stored.")

    grant_types = _str_list(document.get("grant_types_supported"))
    if grant_types is not None and "authorization_code" not in grant_types:
        config.warnings.append("grant_types_supported does not list authorization_code.")
    if not config.jwks_uri:
        config.warnings.append(
            "jwks_uri is missing, so id_tokens cannot be verified: launches ask for no openid/fhirUser."
        )
    if not config.capabilities:
        config.warnings.append("No capabilities are advertised.")
    return config


def _cache_key(ehr: Ehr) -> str:
    return "smart:discovery:" + hashlib.sha256(ehr.iss.encode()).hexdigest()


DISCOVERY_FAILURE_TTL = 15  # seconds a failed discovery is remembered


def _failure_key(ehr: Ehr) -> str:
    return "smart:discovery-failed:" + hashlib.sha256(ehr.iss.encode()).hexdigest()


def discover(ehr: Ehr, *, use_cache: bool = True) -> SmartConfig:
    """The EHR's usable SMART configuration (cached), or a `ConfigurationError`/`DiscoveryError`."""
    cached = cachepolicy.get(cachepolicy.DISCOVERY, _cache_key(ehr)) if use_cache else None
    if cached is None:
        failed = cachepolicy.get(cachepolicy.DISCOVERY_FAILURE, _failure_key(ehr)) if use_cache else None
        if failed and not (ehr.authorize_url_override and ehr.token_url_override):
            # Failed moments ago: do not send every launch into the same slow timeout.
            raise DiscoveryError(failed)
        try:
            document, source = fetch_document(ehr)
        except OAuthError as exc:
            if ehr.authorize_url_override and ehr.token_url_override:
                logger.warning("discovery failed for ehr=%s; using its endpoint overrides", ehr.pk)
                document, source = {}, "overrides"
            else:
                failure = (_failure_key(ehr), str(exc), DISCOVERY_FAILURE_TTL)
                cachepolicy.set(cachepolicy.DISCOVERY_FAILURE, *failure)
                raise
        else:
            ttl = settings.SMART_DISCOVERY_TTL
            cachepolicy.set(cachepolicy.DISCOVERY, _cache_key(ehr), (document, source), ttl)
        config = evaluate(ehr, document, source)
        # Fetched (not cached): record what it lacks where admins look, and log it once.
        problems = [f"Error: {e}" for e in config.errors] + [f"Warning: {w}" for w in config.warnings]
        for problem in problems:
            logger.warning("ehr=%s discovery: %s", ehr.pk, problem)
        if source != "overrides":
            Ehr.objects.filter(pk=ehr.pk).update(
                discovery=document, discovered_at=timezone.now(), discovery_problems=problems
            )
    else:
        document, source = cached
        config = evaluate(ehr, document, source)
    if config.errors:
        raise ConfigurationError(f"{ehr.name} cannot be used: " + " ".join(config.errors))
    return config


# --- PKCE, scopes, authorize URL ------------------------------------------------------------


def code_challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier)) without padding."""
    # Reference: https://www.rfc-editor.org/rfc/rfc7636#section-4.2
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_code_verifier() -> str:
    """A 86-character verifier (512 bits) from the CSPRNG; RFC 7636 allows 43-128."""
    return secrets.token_urlsafe(64)


def _v1_scope(scope: str) -> str:
    """One v2 resource scope in v1 form (`.rs` → `.read`); other scopes unchanged."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-fhir-resources
    prefix, _, rest = scope.partition("/")
    if prefix not in ("patient", "user", "system") or "." not in rest:
        return scope
    resource, _, permissions = rest.partition(".")
    permissions = permissions.split("?", 1)[0]  # v1 has no granular (query) scopes
    if permissions in ("read", "write", "*") or not permissions or set(permissions) - set("cruds"):
        return f"{prefix}/{resource}.{permissions}"
    reads, writes = set(permissions) & set("rs"), set(permissions) & set("cud")
    if reads and writes:
        return f"{prefix}/{resource}.*"
    return f"{prefix}/{resource}.{'read' if reads else 'write'}"


def scopes_for(requested: str, config: SmartConfig) -> str:
    """The scope string to send: v2 as configured, or v1 for an EHR that does not advertise v2.

    v1 when the EHR lists permission-v1 without permission-v2, or when its configuration came
    from the CapabilityStatement (a SMART v1-era server) and does not list permission-v2.
    """
    v1_only = config.has("permission-v1") or config.source == "metadata"
    if v1_only and not config.has("permission-v2"):
        converted: list[str] = []
        for scope in requested.split():
            v1 = _v1_scope(scope)
            if v1 not in converted:
                converted.append(v1)
        return " ".join(converted)
    return " ".join(requested.split())


IDENTITY_SCOPES = ("openid", "fhirUser")


def verifiable_scopes(requested: list[str], config: SmartConfig) -> list[str]:
    """Without a jwks_uri no id_token can be verified, so identity is not asked for at all.

    Asking would make every launch fail at the callback; without it the launch still works,
    with no signed-in user (the admin's "Check configuration" names the missing jwks_uri).
    """
    if config.jwks_uri or not set(IDENTITY_SCOPES) & set(requested):
        return requested
    logger.warning("the EHR publishes no jwks_uri; launching without openid/fhirUser")
    return [scope for scope in requested if scope not in IDENTITY_SCOPES]


@dataclass(frozen=True)
class AuthorizationRequest:
    """A ready authorize redirect plus what the callback must remember (kept server-side)."""

    url: str = field(repr=False)  # carries the nonce
    state: str = field(default="")
    code_verifier: str = field(default="", repr=False)
    nonce: str = field(default="", repr=False)
    scope: str = ""


def build_authorization(
    ehr: Ehr,
    config: SmartConfig,
    *,
    scope: str,
    redirect_uri: str,
    launch: str | None = None,
    aud: str | None = None,
) -> AuthorizationRequest:
    """The authorize URL (GET) with state, PKCE S256, aud and, for EHR launch, `launch`.

    `aud` is the `iss` exactly as the EHR sent it on an EHR launch (the registered issuer otherwise).
    """
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#obtain-authorization-code
    state = secrets.token_urlsafe(32)  # 256 bits; the IG asks for at least 122
    verifier = new_code_verifier()
    nonce = secrets.token_urlsafe(32) if "openid" in scope.split() else ""
    params = {
        "response_type": "code",
        "client_id": ehr.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "aud": aud or ehr.iss,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if launch is not None:
        params["launch"] = launch
    if nonce:
        params["nonce"] = nonce
    parts = urlsplit(config.authorization_endpoint)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier, nonce=nonce, scope=scope)


# --- Client authentication and token calls --------------------------------------------------


def client_assertion(ehr: Ehr, token_endpoint: str, allowed_algs: list[str] | None = None) -> str:
    """A private_key_jwt client assertion (RS384 or ES384) for one token-endpoint call."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/client-confidential-asymmetric.html#authenticating-to-the-token-endpoint
    try:
        key = keys.signing_key(allowed_algs)
    except keys.KeyConfigurationError as exc:
        logger.error("private_key_jwt unusable for ehr=%s: %s", ehr.pk, exc)
        raise ConfigurationError("The app's signing keys are not configured for this EHR.") from exc
    now = int(time.time())
    claims = {
        "iss": ehr.client_id,
        "sub": ehr.client_id,
        "aud": token_endpoint,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(32),
    }
    return key.sign(claims)


def client_auth(ehr: Ehr, config: SmartConfig, endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
    """Form fields and headers that authenticate the app, per the EHR's auth method."""
    # Reference: https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
    method = ehr.auth_method
    if method == Ehr.AuthMethod.PRIVATE_KEY_JWT:
        assertion = client_assertion(ehr, endpoint, config.signing_algs)
        return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}, {}
    if method == Ehr.AuthMethod.CLIENT_SECRET_POST:
        return {"client_id": ehr.client_id, "client_secret": ehr.client_secret}, {}
    credentials = f"{quote_plus(ehr.client_id)}:{quote_plus(ehr.client_secret)}"
    return {}, {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


@dataclass
class TokenResponse:
    """A validated token response: the fields the app uses; unknown extra keys are ignored."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str = ""
    id_token: str = ""
    patient: str = ""
    encounter: str = ""
    fhir_context: list[Any] = field(default_factory=list)
    need_patient_banner: bool | None = None
    smart_style_url: str = ""
    intent: str = ""
    tenant: str = ""
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # never let a token reach a log or traceback through repr()
        return f"TokenResponse(scope={self.scope!r}, expires_in={self.expires_in}, patient={self.patient!r})"


def _error_from(response: FormReply) -> OAuthError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = body["error"][:64]
        logger.warning("token endpoint refused: HTTP %s error=%s", response.status_code, error)
        if error == "invalid_grant":
            message = "The EHR no longer accepts this authorization (invalid_grant). Please sign in again."
        elif error == "invalid_client":
            message = "The EHR did not accept the app's credentials (invalid_client)."
        else:
            message = f"The EHR refused to issue a token ({error})."
        return TokenError(message, error=error)
    logger.warning("token endpoint failed: HTTP %s without an OAuth error body", response.status_code)
    if response.status_code >= 500:
        return TokenError(f"The EHR's token service failed (HTTP {response.status_code}).")
    return TokenError(f"The EHR's token service answered HTTP {response.status_code}.")


MAX_EXPIRES_IN = 24 * 3600
# The Launch columns these hints are stored in.
MAX_STYLE_URL, MAX_INTENT, MAX_TENANT = 500, 128, 256


def _expires_in(value: Any, warnings: list[str]) -> int:
    if value is None:
        warnings.append(f"expires_in missing; assuming {DEFAULT_EXPIRES_IN} s")
        return DEFAULT_EXPIRES_IN
    if isinstance(value, bool):
        raise TokenResponseError("The EHR's token response has an invalid expires_in.")
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError) as exc:
        raise TokenResponseError("The EHR's token response has an invalid expires_in.") from exc
    if seconds <= 0:
        raise TokenResponseError("The EHR issued a token that has already expired.")
    # A token claiming to live for more than a day is treated as a day: the app re-checks then.
    return min(seconds, MAX_EXPIRES_IN)


def _optional_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TokenResponseError(f"The EHR's token response has an invalid {name}.")
    return value


# Control characters, and lone surrogates (JSON's "\ud800" decodes to one; no database can
# encode it).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def has_control_characters(value: str) -> bool:
    """No SMART parameter or hint legitimately holds one, and PostgreSQL refuses NUL in text."""
    return _CONTROL.search(value) is not None


def loads(body: bytes | str) -> Any:
    """json.loads, with a ValueError (not a RecursionError) for absurdly nested input."""
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _optional_hint(body: dict[str, Any], name: str, max_length: int, warnings: list[str]) -> str:
    """An optional launch hint (tenant, intent, style URL): a bad one is dropped, not fatal.

    Dropped rather than truncated (a cut URL or tenant is a different one) and never stored with
    control characters (PostgreSQL refuses NUL in text).
    """
    value = body.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > max_length or has_control_characters(value):
        warnings.append(f"{name} is not a usable string; ignored.")
        return ""
    return value


def _context_id(body: dict[str, Any], name: str) -> str:
    """A launch-context id (`patient`, `encounter`): a valid id or nothing, never truncated."""
    value = _optional_str(body, name)
    if value and not safety.FHIR_ID.match(value):
        raise TokenResponseError(f"The EHR's token response has an invalid {name} id.")
    return value


def _optional_context_id(body: dict[str, Any], name: str, warnings: list[str]) -> str:
    """Optional context (`encounter`): an invalid id drops that context, not the whole sign-in."""
    try:
        return _context_id(body, name)
    except TokenResponseError:
        warnings.append(f"{name} is not a valid FHIR id; ignored.")
        return ""


# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
MAX_FHIR_CONTEXT_BYTES = 64 * 1024
_UNSTORABLE_ESCAPE = re.compile(r"\\u(0000|d[89a-f])", re.IGNORECASE)  # in json.dumps output


def _granted_scope(body: dict[str, Any], requested_scope: str, warnings: list[str]) -> str:
    granted = body.get("scope")
    if granted is None:
        # RFC 6749 5.1: an omitted scope means the requested scope was granted.
        return requested_scope
    if not isinstance(granted, str):
        raise TokenResponseError("The EHR's token response has an invalid scope.")
    tokens = granted.split()
    valid = [token for token in tokens if _SCOPE_TOKEN.fullmatch(token)]
    if len(valid) != len(tokens):
        warnings.append(f"{len(tokens) - len(valid)} malformed scope value(s) ignored.")
    return " ".join(valid)


def _fhir_context(body: dict[str, Any], warnings: list[str]) -> list[Any]:
    """fhirContext: extra context the dashboard does not need, so a malformed one is dropped."""
    value = body.get("fhirContext") or []
    if not isinstance(value, list):
        warnings.append("fhirContext is not a list; ignored.")
        return []
    stored = json.dumps(value)
    if len(stored) > MAX_FHIR_CONTEXT_BYTES or _UNSTORABLE_ESCAPE.search(stored):
        warnings.append("fhirContext is too large or holds a NUL or lone surrogate; ignored.")
        return []
    return value


def parse_token_response(response: FormReply, requested_scope: str) -> TokenResponse:
    """Validate a token-endpoint response; any non-conformance is a `TokenResponseError`/`TokenError`."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#response-5
    if response.status_code != 200:
        raise _error_from(response)
    try:
        body = response.json()
    except ValueError as exc:
        logger.warning("token endpoint answered 200 with a non-JSON body")
        raise TokenResponseError("The EHR's token service answered with something other than JSON.") from exc
    if not isinstance(body, dict):
        raise TokenResponseError("The EHR's token service answered with an unexpected JSON document.")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenResponseError("The EHR's token response has no access_token.")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenResponseError("The EHR issued a token that is not a Bearer token.")
    warnings: list[str] = []
    banner = body.get("need_patient_banner")
    result = TokenResponse(
        access_token=access_token,
        expires_in=_expires_in(body.get("expires_in"), warnings),
        scope=_granted_scope(body, requested_scope, warnings),
        refresh_token=_optional_str(body, "refresh_token"),
        id_token=_optional_str(body, "id_token"),
        patient=_context_id(body, "patient"),
        encounter=_optional_context_id(body, "encounter", warnings),
        fhir_context=_fhir_context(body, warnings),
        need_patient_banner=banner if isinstance(banner, bool) else None,
        smart_style_url=_optional_hint(body, "smart_style_url", MAX_STYLE_URL, warnings),
        intent=_optional_hint(body, "intent", MAX_INTENT, warnings),
        tenant=_optional_hint(body, "tenant", MAX_TENANT, warnings),
        warnings=warnings,
    )
    narrowed = set(requested_scope.split()) - set(result.scope.split())
    if narrowed:
        logger.info("EHR granted fewer scopes than requested; missing: %s", " ".join(sorted(narrowed)))
    for warning in warnings:
        logger.warning("token response: %s", warning)
    return result


def needs_patient(scope: str) -> bool:
    """Patient-level scopes mean nothing without a patient in context."""
    return any(s == "launch/patient" or s.startswith("patient/") for s in scope.split())


TOKEN_RETRY_DELAY = 0.3  # seconds


def _worth_one_retry(response: FormReply) -> bool:
    """A 5xx, or a 400 that carries no RFC 6749 error code: a glitch, not a refusal."""
    if response.status_code >= 500:
        return True
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and isinstance(body.get("error"), str))


def _token_call(ehr: Ehr, config: SmartConfig, grant: dict[str, str]) -> FormReply:
    """POST a grant to the token endpoint, with one retry after a glitch that is not a refusal.

    Field lesson (Epic): token endpoints occasionally fail without an OAuth error. The retry
    carries a fresh client assertion; a code or refresh token the first call consumed just gets
    invalid_grant.
    """
    fields, headers = client_auth(ehr, config, config.token_endpoint)
    response = _post_form(config.token_endpoint, {**grant, **fields}, headers)
    if _worth_one_retry(response):
        logger.info(
            "token endpoint answered HTTP %s without an OAuth error; retrying once", response.status_code
        )
        time.sleep(TOKEN_RETRY_DELAY)
        fields, headers = client_auth(ehr, config, config.token_endpoint)
        response = _post_form(config.token_endpoint, {**grant, **fields}, headers)
    return response


def longest_token_call() -> float:
    """Seconds a token call may take at worst: two attempts at the transport's deadline, and the pause."""
    return 2 * transport.longest_call() + TOKEN_RETRY_DELAY


def exchange_code(
    ehr: Ehr, config: SmartConfig, *, code: str, code_verifier: str, redirect_uri: str, requested_scope: str
) -> TokenResponse:
    """Swap an authorization code for tokens (with PKCE and the EHR's client authentication)."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#obtain-access-token
    grant = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    result = parse_token_response(_token_call(ehr, config, grant), requested_scope)
    if needs_patient(result.scope) and not result.patient:
        raise TokenResponseError("The EHR did not say which patient this launch is for.")
    return result


def refresh(ehr: Ehr, config: SmartConfig, *, refresh_token: str, granted_scope: str) -> TokenResponse:
    """Use a refresh token (same client authentication as the code exchange)."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#refresh-access-token
    grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return parse_token_response(_token_call(ehr, config, grant), granted_scope)


def revoke(ehr: Ehr, config: SmartConfig, *, token: str, hint: str) -> bool:
    """Revoke one token where the EHR offers revocation; failures are logged, never raised."""
    # Reference: https://www.rfc-editor.org/rfc/rfc7009#section-2.1
    if not config.revocation_endpoint or not token:
        return False
    try:
        fields, headers = client_auth(ehr, config, config.revocation_endpoint)
        response = _post_form(
            config.revocation_endpoint, {"token": token, "token_type_hint": hint, **fields}, headers
        )
    except OAuthError as exc:
        logger.warning("token revocation failed for ehr=%s: %s", ehr.pk, exc)
        return False
    if response.status_code != 200:
        logger.warning("token revocation for ehr=%s answered HTTP %s", ehr.pk, response.status_code)
        return False
    return True


# --- Admin check ----------------------------------------------------------------------------


@dataclass
class ConfigurationReport:
    """What the admin's "check configuration" shows for one EHR."""

    ehr: Ehr
    config: SmartConfig | None
    fetch_error: str = ""

    @property
    def capabilities(self) -> list[tuple[str, bool]]:
        present = set(self.config.capabilities) if self.config else set()
        methods = (self.config.code_challenge_methods or []) if self.config else []
        return [("PKCE S256", "S256" in methods), *((name, name in present) for name in CAPABILITY_NAMES)]

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.config.errors


def check_configuration(ehr: Ehr) -> ConfigurationReport:
    """Fetch discovery afresh and report capabilities, errors and warnings (never raises)."""
    try:
        document, source = fetch_document(ehr)
    except OAuthError as exc:
        return ConfigurationReport(ehr=ehr, config=None, fetch_error=str(exc))
    cachepolicy.set(cachepolicy.DISCOVERY, _cache_key(ehr), (document, source), settings.SMART_DISCOVERY_TTL)
    Ehr.objects.filter(pk=ehr.pk).update(discovery=document, discovered_at=timezone.now())
    return ConfigurationReport(ehr=ehr, config=evaluate(ehr, document, source))
