"""How the app authenticates to an EHR's token and revocation endpoints.

client_secret_basic (HTTP Basic), client_secret_post (form fields) or private_key_jwt (a signed
assertion, RS384 or ES384, from `smartapp.keys`), per the EHR's registration.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/client-confidential-asymmetric.html
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from urllib.parse import quote_plus

from smartapp import keys
from smartapp.discovery import SmartConfig
from smartapp.models import Ehr
from smartapp.protocol import ConfigurationError

logger = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 240  # seconds; the IG caps exp at 5 minutes, leave room for clock skew


def signed_assertion(client_id: str, audience: str, allowed_algs: list[str] | None = None) -> str:
    """A one-use client assertion: iss = sub = client id, aud = the token URL, a unique jti,
    exp within 5 minutes; the header carries alg, kid and typ. Raises KeyConfigurationError.

    Reference: https://build.fhir.org/ig/HL7/smart-app-launch/client-confidential-asymmetric.html
    """
    key = keys.signing_key(allowed_algs)
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(32),
    }
    return key.sign(claims)


def client_assertion(ehr: Ehr, token_endpoint: str, allowed_algs: list[str] | None = None) -> str:
    """A private_key_jwt client assertion (RS384 or ES384) for one token-endpoint call."""
    try:
        return signed_assertion(ehr.client_id, token_endpoint, allowed_algs)
    except keys.KeyConfigurationError as exc:
        logger.error("private_key_jwt unusable for ehr=%s: %s", ehr.pk, exc)
        raise ConfigurationError("The app's signing keys are not configured for this EHR.") from exc


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
