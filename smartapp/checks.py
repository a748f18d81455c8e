"""The project's own `check --deploy` checks: settings that pass Django's checks but cannot work.

Reference: https://docs.djangoproject.com/en/5.2/topics/checks/
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from smartapp import keys
from smartapp.models import Ehr


def _private_key_jwt_in_use() -> bool:
    """Whether any registered EHR signs client assertions; False before the first migrate."""
    try:
        return Ehr.objects.filter(auth_method=Ehr.AuthMethod.PRIVATE_KEY_JWT).exists()
    except DatabaseError:
        # The release phase runs the checks before `migrate`: no table yet means no EHR yet.
        return False


@checks.register(checks.Tags.security, deploy=True)
def check_signing_keys(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The signing keys load when a private_key_jwt EHR needs them, and whenever keys are named."""
    needed = _private_key_jwt_in_use()
    if not (settings.SMART_JWKS or settings.SMART_JWKS_FILE):
        if not needed:
            return []
        return [
            checks.Error(
                "An EHR uses private_key_jwt but no signing keys are configured.",
                hint="Set SMART_JWKS_FILE to a private JWKS made by `manage.py generate_jwks PATH`.",
                id="smartapp.E001",
            )
        ]
    try:
        loaded = keys.signing_keys()
    except keys.KeyConfigurationError as exc:
        return [
            checks.Error(
                f"The signing keys cannot be loaded: {exc}.",
                hint="The JWKS endpoint would answer 503 and private_key_jwt launches would fail. "
                "Make the file exist and readable by the app, or generate one with "
                "`manage.py generate_jwks PATH`.",
                id="smartapp.E002",
            )
        ]
    if needed and not loaded:
        return [
            checks.Error(
                "An EHR uses private_key_jwt but the JWKS holds no usable RS384 or ES384 key.",
                hint="Generate one with `manage.py generate_jwks PATH`.",
                id="smartapp.E003",
            )
        ]
    return []


@checks.register(checks.Tags.security, deploy=True)
def check_base_url(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """EHRs send codes to <base>/callback: it must be https."""
    if urlsplit(settings.SMART_APP_BASE_URL).scheme != "https":
        return [
            checks.Error(
                f"SMART_APP_BASE_URL is not https ({settings.SMART_APP_BASE_URL!r}).",
                hint="EHRs redirect the authorization code to <base>/callback; set the public "
                "https origin, e.g. https://smart.hospital.example.",
                id="smartapp.E004",
            )
        ]
    return []


@checks.register(checks.Tags.security, deploy=True)
def check_http_loopback(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Plain http to loopback sends client secrets and tokens in clear: development only."""
    if getattr(settings, "SMART_ALLOW_HTTP_LOOPBACK", False) and not settings.DEBUG:
        return [
            checks.Error(
                "SMART_ALLOW_HTTP_LOOPBACK is on while DEBUG is off.",
                hint="Plain http to loopback is for the sandbox EHR and tests; turn it off in production.",
                id="smartapp.E005",
            )
        ]
    return []
