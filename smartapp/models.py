"""The EHR registry and per-launch contexts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from smartapp import safety, scopes
from smartapp.crypto import EncryptedTextField

# What the dashboard reads. DiagnosticReport only groups the labs: a grant without it (an older
# registration, an EHR that refuses it) shows them grouped by category instead.
DASHBOARD_RESOURCES = ("Patient", "Encounter", "Observation", "Condition", "DiagnosticReport")
# What a population export reads (no lab reports there).
POPULATION_RESOURCES = ("Patient", "Encounter", "Observation", "Condition")
DEFAULT_EHR_LAUNCH_SCOPE = "launch openid fhirUser online_access " + " ".join(
    f"patient/{t}.rs" for t in DASHBOARD_RESOURCES
)
DEFAULT_STANDALONE_SCOPE = "launch/patient openid fhirUser online_access " + " ".join(
    f"patient/{t}.rs" for t in DASHBOARD_RESOURCES
)


def validate_frame_ancestors(value: str) -> None:
    """Each entry must be a plain origin (scheme://host[:port]), so nothing can reach the CSP header."""
    bad = [origin for origin in value.split() if safety.normalize_origin(origin) is None]
    if bad:
        raise ValidationError(
            "Not an origin (https://host[:port]; http only for localhost): %(bad)s",
            params={"bad": ", ".join(bad[:5])},
            code="invalid_origin",
        )


def validate_issuer(value: str) -> None:
    """An EHR's FHIR base must be https (plain http only for a loopback dev sandbox)."""
    if not safety.is_secure_url(value):
        raise ValidationError("The issuer must be an https URL.", code="insecure_issuer")


def normalize_issuer(iss: str) -> str:
    """The one normalisation applied to an issuer: strip trailing slashes (nothing else)."""
    return (iss or "").strip().rstrip("/")


class Ehr(models.Model):
    """An EHR (FHIR server + SMART authorization server) that may launch this app."""

    class AuthMethod(models.TextChoices):
        CLIENT_SECRET_BASIC = "client_secret_basic", "client_secret_basic (HTTP Basic)"
        CLIENT_SECRET_POST = "client_secret_post", "client_secret_post (form body)"
        PRIVATE_KEY_JWT = "private_key_jwt", "private_key_jwt (signed assertion)"

    name = models.CharField(max_length=200, help_text="Shown to users on the standalone launch page.")
    slug = models.SlugField(max_length=100, unique=True, help_text="Used in the standalone launch URL.")
    iss = models.URLField(
        "issuer (FHIR base URL)",
        max_length=500,
        unique=True,
        validators=[validate_issuer],
        help_text="The FHIR base URL the EHR sends as `iss`. Stored without a trailing slash.",
    )
    client_id = models.CharField(max_length=255, help_text="The client_id this EHR issued to the app.")
    auth_method = models.CharField(
        "client authentication",
        max_length=32,
        choices=AuthMethod.choices,
        default=AuthMethod.CLIENT_SECRET_BASIC,
        help_text="How the app authenticates at the token endpoint.",
    )
    client_secret = EncryptedTextField(
        blank=True, default="", help_text="Encrypted at rest. Leave blank for private_key_jwt."
    )
    ehr_launch_scope = models.TextField(
        "EHR launch scopes",
        default=DEFAULT_EHR_LAUNCH_SCOPE,
        help_text="Space-separated scopes for EHR launch.",
    )
    standalone_scope = models.TextField(
        "standalone scopes",
        default=DEFAULT_STANDALONE_SCOPE,
        help_text="Space-separated scopes for standalone launch.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled EHRs cannot launch the app.")
    frame_ancestors = models.TextField(
        blank=True,
        default="",
        validators=[validate_frame_ancestors],
        help_text="Origins allowed to embed the app in an iframe, space-separated (e.g. https://ehr.example.org).",
    )
    framing_refused_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When this EHR last tried to show the app in an iframe that the browser had to refuse "
        "(no matching frame ancestor). Cleared when the frame ancestors are changed.",
    )
    authorize_url_override = models.URLField(
        max_length=500,
        blank=True,
        default="",
        help_text="Use instead of the discovered authorization_endpoint.",
    )
    token_url_override = models.URLField(
        max_length=500, blank=True, default="", help_text="Use instead of the discovered token_endpoint."
    )
    discovery = models.JSONField(
        null=True, blank=True, editable=False, help_text="Last fetched .well-known/smart-configuration."
    )
    discovered_at = models.DateTimeField(null=True, blank=True, editable=False)
    discovery_problems = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="What the last discovery found missing or wrong (errors stop launches; warnings do not).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "EHR"
        verbose_name_plural = "EHRs"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.iss = normalize_issuer(self.iss)
        super().save(*args, **kwargs)

    @property
    def is_confidential_asymmetric(self) -> bool:
        return self.auth_method == self.AuthMethod.PRIVATE_KEY_JWT

    def scope_list(self, standalone: bool = False) -> list[str]:
        return (self.standalone_scope if standalone else self.ehr_launch_scope).split()


class Launch(models.Model):
    """One authorized launch: its tokens and context (patient, encounter, user).

    A browser session may hold several (two tabs, two patients); each is addressed by an opaque
    `handle` in the dashboard URL, and the session lists the handles it owns. Tokens are
    encrypted and never leave the server.
    """

    class Kind(models.TextChoices):
        EHR = "ehr", "EHR launch"
        STANDALONE = "standalone", "Standalone launch"

    handle = models.CharField(max_length=64, unique=True)
    ehr = models.ForeignKey(Ehr, on_delete=models.CASCADE, related_name="launches")
    iss = models.URLField(
        max_length=500,
        blank=True,
        default="",
        db_default="",  # rows an older release inserts during a rolling deploy get bound on first use
        help_text="The FHIR base the tokens were issued for; if an admin moves the EHR's iss, "
        "this launch ends rather than send its token to the new address.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField(blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    requested_scope = models.TextField(blank=True, default="")
    scope = models.TextField(blank=True, default="", help_text="Scopes actually granted.")
    patient_id = models.CharField(max_length=256, blank=True, default="")
    encounter_id = models.CharField(max_length=256, blank=True, default="")
    fhir_user = models.CharField(max_length=512, blank=True, default="")
    fhir_context = models.JSONField(default=list, blank=True)
    need_patient_banner = models.BooleanField(null=True, blank=True)
    smart_style_url = models.URLField(max_length=500, blank=True, default="")
    intent = models.CharField(max_length=128, blank=True, default="")
    tenant = models.CharField(max_length=256, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.handle[:8]}… on {self.ehr_id}"

    def save(self, *args, **kwargs):
        if not self.iss and self.ehr_id:
            self.iss = self.ehr.iss
        super().save(*args, **kwargs)

    @property
    def usable(self) -> bool:
        """False once an admin disabled the EHR or moved its issuer since this launch began."""
        return self.ehr.enabled and self.ehr.iss == self.iss

    def granted_scopes(self) -> set[str]:
        return set(self.scope.split())

    def scopes_not_granted(self) -> list[str]:
        """Scopes the app asked for that the EHR (or the user, at consent) did not grant.

        Compared in v2 form, so an EHR answering `patient/Observation.read` to a request for
        `patient/Observation.rs` is not reported as refusing it.
        """
        granted = {scopes.v2_form(scope) for scope in self.scope.split()}
        return [scope for scope in self.requested_scope.split() if scopes.v2_form(scope) not in granted]

    def expires_within(self, seconds: float) -> bool:
        """True when the access token is expired or will be within `seconds`."""
        if self.expires_at is None:
            return False
        return self.expires_at <= timezone.now() + timedelta(seconds=seconds)


class AuditEvent(models.Model):
    """One FHIR access by the app: who, which EHR and patient, what type, how many, outcome.

    Deliberately holds no clinical values, no tokens and no launch handles.
    """

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        DENIED = "denied", "Not authorized (401/403)"
        NOT_FOUND = "not_found", "Not found"
        ERROR = "error", "Error"
        TIMEOUT = "timeout", "Timed out"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    fhir_user = models.CharField(max_length=512, blank=True, default="")
    ehr = models.ForeignKey(Ehr, null=True, blank=True, on_delete=models.SET_NULL)
    patient_id = models.CharField(max_length=256, blank=True, default="", db_index=True)
    resource_type = models.CharField(max_length=64)
    interaction = models.CharField(max_length=16, help_text="read or search")
    count = models.PositiveIntegerField(null=True, blank=True, help_text="Resources returned.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.interaction} {self.resource_type} {self.outcome}"


DEFAULT_BACKEND_SCOPE = " ".join(f"system/{t}.rs" for t in POPULATION_RESOURCES)


def validate_system_scope(value: str) -> None:
    """Backend services ask only for `system/` scopes (the IG: no user, no patient context)."""
    bad = [scope for scope in value.split() if not scope.startswith("system/")]
    if bad or not value.split():
        raise ValidationError(
            "Backend services use system/ scopes only: %(bad)s",
            params={"bad": ", ".join(bad[:5]) or "(none given)"},
            code="not_system_scope",
        )


def validate_fhir_id(value: str) -> None:
    if value and not safety.FHIR_ID.match(value):
        raise ValidationError("Not a FHIR id (letters, digits, '-' and '.', up to 64).", code="invalid_id")


class BackendRegistration(models.Model):
    """An EHR's optional SMART Backend Services registration, for population exports without a user.

    Reference: https://build.fhir.org/ig/HL7/smart-app-launch/backend-services.html
    """

    class Alg(models.TextChoices):
        RS384 = "RS384", "RS384 (RSA)"
        ES384 = "ES384", "ES384 (elliptic curve)"

    ehr = models.OneToOneField(Ehr, on_delete=models.CASCADE, related_name="backend")
    enabled = models.BooleanField(default=True, help_text="Untick to stop population exports from this EHR.")
    client_id = models.CharField(
        "backend client id",
        max_length=255,
        help_text="The client_id the EHR issued for backend services (may differ from the launch client).",
    )
    scope = models.TextField(
        "system scopes",
        default=DEFAULT_BACKEND_SCOPE,
        validators=[validate_system_scope],
        help_text="Space-separated system/ scopes asked for with client_credentials.",
    )
    alg = models.CharField(
        "signing algorithm",
        max_length=8,
        choices=Alg.choices,
        default=Alg.RS384,
        help_text="How the client assertion is signed (the app's key of that type, from its JWKS).",
    )
    group_id = models.CharField(
        "group id",
        max_length=64,
        blank=True,
        default="",
        validators=[validate_fhir_id],
        help_text="Export this FHIR Group (Group/[id]/$export); blank: every patient (Patient/$export).",
    )
    since = models.CharField(
        max_length=40,
        blank=True,
        default="",
        editable=False,
        help_text="transactionTime of the last complete export, sent as _since on the next run.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "backend services registration"

    def __str__(self) -> str:
        return f"{self.client_id} on {self.ehr}"

    def scope_list(self) -> list[str]:
        return self.scope.split()
