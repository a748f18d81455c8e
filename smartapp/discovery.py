"""SMART discovery: fetch an EHR's configuration, check it, cache it, and record it on the EHR.

`discover(ehr)` is what launches, callbacks, refreshes and sign-outs use (cached, with a short
memory of failures); `check_configuration(ehr)` is the admin's action (always fetched afresh,
never raises). Both go through one save path, `_record`: the cache, the Ehr row's `discovery`,
`discovered_at` and `discovery_problems`, and one log line per problem.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/conformance.html
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.utils import timezone

from smartapp import cachepolicy, keys, safety
from smartapp.models import Ehr
from smartapp.protocol import ConfigurationError, DiscoveryError, OAuthError, get_json

logger = logging.getLogger(__name__)

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITIES_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities"
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
    _check_endpoints(config)
    _check_pkce(config)
    _check_client_auth(ehr, config)
    _check_the_rest(config, document)
    return config


def _check_endpoints(config: SmartConfig) -> None:
    """Both OAuth endpoints present; every endpoint that carries secrets over https."""
    if not config.authorization_endpoint:
        config.errors.append("No authorization_endpoint.")
    if not config.token_endpoint:
        config.errors.append("No token_endpoint.")
    for name in ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"):
        url = getattr(config, name)
        if url and not safety.is_secure_url(url):
            config.errors.append(f"{name} must use https ({url.split('?')[0]}).")
    if config.introspection_endpoint and not safety.is_secure_url(config.introspection_endpoint):
        # Unused by the app: an insecure one is ignored, it does not disable the EHR.
        config.warnings.append("introspection_endpoint is not https; ignored.")
        config.introspection_endpoint = ""


def _check_pkce(config: SmartConfig) -> None:
    """PKCE is always sent; only an explicit list without S256 is a hard error."""
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


def _check_client_auth(ehr: Ehr, config: SmartConfig) -> None:
    """The EHR accepts the registered client authentication, and the app has what it needs."""
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


def _check_the_rest(config: SmartConfig, document: dict[str, Any]) -> None:
    grant_types = _str_list(document.get("grant_types_supported"))
    if grant_types is not None and "authorization_code" not in grant_types:
        config.warnings.append("grant_types_supported does not list authorization_code.")
    if not config.jwks_uri:
        config.warnings.append(
            "jwks_uri is missing, so id_tokens cannot be verified: launches ask for no openid/fhirUser."
        )
    if not config.capabilities:
        config.warnings.append("No capabilities are advertised.")


# --- Cache and record ----------------------------------------------------------------------------


def _cache_key(ehr: Ehr) -> str:
    return "smart:discovery:" + hashlib.sha256(ehr.iss.encode()).hexdigest()


DISCOVERY_FAILURE_TTL = 15  # seconds a failed discovery is remembered


def _failure_key(ehr: Ehr) -> str:
    return "smart:discovery-failed:" + hashlib.sha256(ehr.iss.encode()).hexdigest()


def problems(config: SmartConfig) -> list[str]:
    """What the configuration lacks, as the admin sees it (errors stop launches; warnings do not)."""
    return [f"Error: {e}" for e in config.errors] + [f"Warning: {w}" for w in config.warnings]


def _record(ehr: Ehr, document: dict[str, Any], source: str) -> SmartConfig:
    """The one save path of a fetched document: cache it, evaluate it, record it where admins look."""
    cachepolicy.set(cachepolicy.DISCOVERY, _cache_key(ehr), (document, source), settings.SMART_DISCOVERY_TTL)
    config = evaluate(ehr, document, source)
    found = problems(config)
    for problem in found:
        logger.warning("ehr=%s discovery: %s", ehr.pk, problem)
    Ehr.objects.filter(pk=ehr.pk).update(
        discovery=document, discovered_at=timezone.now(), discovery_problems=found
    )
    return config


def _has_overrides(ehr: Ehr) -> bool:
    return bool(ehr.authorize_url_override and ehr.token_url_override)


def _fetch(ehr: Ehr, *, use_cache: bool) -> SmartConfig:
    """Fetch and record; a failure is remembered briefly, or the admin's overrides stand in."""
    failed = cachepolicy.get(cachepolicy.DISCOVERY_FAILURE, _failure_key(ehr)) if use_cache else None
    if failed and not _has_overrides(ehr):
        # Failed moments ago: do not send every launch into the same slow timeout.
        raise DiscoveryError(failed)
    try:
        document, source = fetch_document(ehr)
    except OAuthError as exc:
        if not _has_overrides(ehr):
            failure = (_failure_key(ehr), str(exc), DISCOVERY_FAILURE_TTL)
            cachepolicy.set(cachepolicy.DISCOVERY_FAILURE, *failure)
            raise
        logger.warning("discovery failed for ehr=%s; using its endpoint overrides", ehr.pk)
        config = evaluate(ehr, {}, "overrides")
        for problem in problems(config):  # nothing fetched: nothing to record on the EHR
            logger.warning("ehr=%s discovery: %s", ehr.pk, problem)
        return config
    return _record(ehr, document, source)


def discover(ehr: Ehr, *, use_cache: bool = True) -> SmartConfig:
    """The EHR's usable SMART configuration (cached), or a `ConfigurationError`/`DiscoveryError`."""
    cached = cachepolicy.get(cachepolicy.DISCOVERY, _cache_key(ehr)) if use_cache else None
    if cached is None:
        config = _fetch(ehr, use_cache=use_cache)
    else:
        document, source = cached
        config = evaluate(ehr, document, source)
    if config.errors:
        raise ConfigurationError(f"{ehr.name} cannot be used: " + " ".join(config.errors))
    return config


# --- Admin check ---------------------------------------------------------------------------------


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
    return ConfigurationReport(ehr=ehr, config=_record(ehr, document, source))
