"""Tables of the sandbox EHR (imported by sandbox/models.py under the sandbox settings only)."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import models
from django.utils import timezone


def token_hash(value: str) -> str:
    """Tokens, codes and secrets are stored as SHA-256 digests, never in clear."""
    return hashlib.sha256(value.encode()).hexdigest()


class Client(models.Model):
    """A registered SMART app (confidential: client secret or JWKS URL)."""

    client_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True, default="")
    secret_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    jwks_url = models.URLField(max_length=500, blank=True, default="")
    jwks = models.JSONField(null=True, blank=True, help_text="Registered JWKS (instead of a URL).")
    redirect_uris = models.TextField(help_text="One per line, matched exactly.")
    launch_url = models.URLField(max_length=500, blank=True, default="")
    scope = models.TextField(blank=True, default="", help_text="Allowed scopes; blank = everything.")
    rotate_refresh_tokens = models.BooleanField(default=True)
    consent_on_ehr_launch = models.BooleanField(
        default=False, help_text="Show the consent page on EHR launch too (real EHRs usually skip it)."
    )
    faults = models.JSONField(default=dict, blank=True, help_text="Fault/latency injection settings.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "sandbox"
        ordering = ["client_id"]

    def __str__(self) -> str:
        return self.client_id

    def set_secret(self, secret: str) -> None:
        self.secret_hash = token_hash(secret) if secret else ""

    def check_secret(self, secret: str) -> bool:
        return bool(self.secret_hash) and hmac.compare_digest(self.secret_hash, token_hash(secret))

    @property
    def is_asymmetric(self) -> bool:
        return bool(self.jwks_url or self.jwks)

    def redirect_uri_list(self) -> list[str]:
        return [u.strip() for u in self.redirect_uris.splitlines() if u.strip()]

    def app_home_url(self) -> str:
        """The app's standalone entry point: the launch URL's origin + "/"."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.launch_url)
        return f"{parts.scheme}://{parts.netloc}/" if parts.netloc else ""


class UserProfile(models.Model):
    """Links a demo login to its FHIR identity (Practitioner/... or Patient/...)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fhir")
    fhir_user = models.CharField(max_length=200)
    display = models.CharField(max_length=200)

    class Meta:
        app_label = "sandbox"

    def __str__(self) -> str:
        return self.fhir_user

    @property
    def is_patient(self) -> bool:
        return self.fhir_user.startswith("Patient/")


class Resource(models.Model):
    """A FHIR resource stored as JSON text, with the columns searches filter and sort on."""

    rtype = models.CharField(max_length=40)
    rid = models.CharField(max_length=64)
    patient_id = models.CharField(max_length=64, blank=True, default="")
    encounter_id = models.CharField(max_length=64, blank=True, default="")
    date = models.CharField(max_length=32, null=True, blank=True, help_text="UTC ISO instant")  # noqa: DJ001 - NULL = no date
    codes = models.TextField(blank=True, default="", help_text="' system|code ' tokens")
    categories = models.TextField(blank=True, default="")
    status = models.CharField(max_length=40, blank=True, default="")
    clinical_status = models.CharField(max_length=40, blank=True, default="")
    text = models.CharField(max_length=300, blank=True, default="", help_text="lowercased names")
    last_updated = models.CharField(max_length=32)
    body = models.TextField()

    class Meta:
        app_label = "sandbox"
        constraints = [models.UniqueConstraint(fields=["rtype", "rid"], name="sandbox_resource_unique")]
        indexes = [
            models.Index(fields=["rtype", "patient_id", "date"], name="sandbox_res_pat_date"),
            models.Index(fields=["rtype", "encounter_id"], name="sandbox_res_enc"),
            models.Index(fields=["rtype", "date"], name="sandbox_res_date"),
            # $lastn ranks a patient's observations per code by date: this index holds every
            # column it reads, so 10,000 readings are ranked without touching their bodies.
            models.Index(
                fields=["rtype", "patient_id", "codes", "date", "categories"], name="sandbox_res_pat_codes"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rtype}/{self.rid}"


class Deletion(models.Model):
    """A deleted resource, kept for the `deleted` files of `_since` exports (a tombstone)."""

    rtype = models.CharField(max_length=40)
    rid = models.CharField(max_length=64)
    patient_id = models.CharField(max_length=64, blank=True, default="")
    groups = models.CharField(
        max_length=200, blank=True, default="", help_text="' grp-htn grp-dm ': its patient's Groups then"
    )
    deleted_at = models.CharField(max_length=32, help_text="UTC ISO instant to the microsecond")

    class Meta:
        app_label = "sandbox"
        indexes = [models.Index(fields=["deleted_at"], name="sandbox_deletion_at")]

    def __str__(self) -> str:
        return f"{self.rtype}/{self.rid} (deleted)"


class LaunchContext(models.Model):
    """An EHR launch token: opaque, single use, short lived, bound to one client."""

    token_hash = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    patient_id = models.CharField(max_length=64, blank=True, default="")
    encounter_id = models.CharField(max_length=64, blank=True, default="")
    fhir_user = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "sandbox"

    def __str__(self) -> str:
        return f"launch for {self.patient_id or '-'}"


class AuthCode(models.Model):
    """An authorization code: single use, valid 60 s, PKCE-bound."""

    code_hash = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    redirect_uri = models.CharField(max_length=500)
    scope = models.TextField()
    code_challenge = models.CharField(max_length=128)
    nonce = models.CharField(max_length=500, blank=True, default="")
    patient_id = models.CharField(max_length=64, blank=True, default="")
    encounter_id = models.CharField(max_length=64, blank=True, default="")
    fhir_user = models.CharField(max_length=200, blank=True, default="")
    need_patient_banner = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "sandbox"

    def __str__(self) -> str:
        return f"code for {self.client_id}"


class Token(models.Model):
    """An access or refresh token; `grant_id` ties together the tokens of one authorization."""

    class Kind(models.TextChoices):
        ACCESS = "access"
        REFRESH = "refresh"

    token_hash = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    grant_id = models.CharField(max_length=32, db_index=True)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    scope = models.TextField()
    patient_id = models.CharField(max_length=64, blank=True, default="")
    encounter_id = models.CharField(max_length=64, blank=True, default="")
    fhir_user = models.CharField(max_length=200, blank=True, default="")
    need_patient_banner = models.BooleanField(default=True)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked = models.BooleanField(default=False)

    class Meta:
        app_label = "sandbox"

    def __str__(self) -> str:
        return f"{self.kind} token ({self.grant_id})"

    def is_active(self) -> bool:
        return not self.revoked and self.expires_at > timezone.now()


class SeenJti(models.Model):
    """client_assertion jti values already used (replay protection) until they expire."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        app_label = "sandbox"
        constraints = [models.UniqueConstraint(fields=["client", "jti"], name="sandbox_jti_unique")]

    def __str__(self) -> str:
        return self.jti


class SigningKey(models.Model):
    """The sandbox's RSA key for id_tokens (published at jwks_uri)."""

    kid = models.CharField(max_length=64, unique=True)
    private_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "sandbox"

    def __str__(self) -> str:
        return self.kid
