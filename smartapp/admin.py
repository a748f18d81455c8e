"""Admin for the EHR registry: write-only client secret, read-only discovery, a configuration check."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from smartapp import backend, discovery
from smartapp.models import BackendRegistration, Ehr


def _formfield(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"  # EHR endpoints are TLS; also Django 6's default
    return field.formfield(**kwargs)


class EhrForm(forms.ModelForm):
    """The client secret is write-only: never rendered back; blank keeps the stored one."""

    client_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Encrypted at rest and never shown. Leave blank to keep the current secret.",
    )
    clear_client_secret = forms.BooleanField(
        required=False, help_text="Remove the stored secret (e.g. after switching to private_key_jwt)."
    )

    class Meta:
        model = Ehr
        formfield_callback = _formfield
        fields = (
            "name",
            "slug",
            "iss",
            "enabled",
            "client_id",
            "auth_method",
            "client_secret",
            "ehr_launch_scope",
            "standalone_scope",
            "frame_ancestors",
            "authorize_url_override",
            "token_url_override",
        )
        widgets = {
            "ehr_launch_scope": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "standalone_scope": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "frame_ancestors": forms.Textarea(attrs={"rows": 2, "cols": 80}),
        }
        # Help in the form, not the model, so rewording it needs no migration.
        help_texts = {
            "name": "What users see on the start page and in messages, e.g. \u201cCity Hospital Epic\u201d.",
            "slug": "Short name in the standalone launch URL, /standalone/this-name/: letters, digits, "
            "hyphens.",
            "iss": "The FHIR base URL the EHR sends as iss when it launches the app (https; http only for "
            "localhost). Must match exactly; a trailing slash is dropped.",
            "enabled": "Untick to stop all launches from this EHR and end its open launches.",
            "client_id": "The client ID this EHR issued to the app when it was registered there.",
            "auth_method": "How the app proves its identity at the EHR's token endpoint. private_key_jwt "
            "uses the app's key pair (JWKS URL /.well-known/jwks.json) and needs no secret.",
            "ehr_launch_scope": "Space-separated scopes asked for when the EHR launches the app; "
            "\u201claunch\u201d is added if missing. Prefilled with what the dashboard needs.",
            "standalone_scope": "Space-separated scopes asked for when a user starts the app from its "
            "start page.",
            "frame_ancestors": "The EHR's web origins allowed to show the app in an iframe, space-separated "
            "(https://ehr.example.org; http only for localhost). Without one, an embedded launch shows "
            "a blank frame.",
            "authorize_url_override": "Leave blank to use the authorization endpoint from discovery.",
            "token_url_override": "Leave blank to use the token endpoint from discovery.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["client_secret"] = ""

    def clean(self):
        cleaned = super().clean()
        secret = cleaned.get("client_secret") or ""
        if cleaned.get("clear_client_secret"):
            cleaned["client_secret"] = ""
        elif not secret:
            cleaned["client_secret"] = self.instance.client_secret if self.instance.pk else ""
        method = cleaned.get("auth_method")
        if method and method != Ehr.AuthMethod.PRIVATE_KEY_JWT and not cleaned["client_secret"]:
            self.add_error("client_secret", f"{method} needs a client secret.")
        return cleaned


# Two apps' worth of models do not need a permanent 300 px navigation column beside every list:
# without it the EHR list and its filters fit a 1280 px screen (Home and breadcrumbs still lead out).
admin.site.enable_nav_sidebar = False

_SHORT_AUTH = {
    Ehr.AuthMethod.CLIENT_SECRET_BASIC: "secret (basic)",
    Ehr.AuthMethod.CLIENT_SECRET_POST: "secret (post)",
    Ehr.AuthMethod.PRIVATE_KEY_JWT: "private key JWT",
}


@admin.register(Ehr)
class EhrAdmin(admin.ModelAdmin):
    form = EhrForm
    # Fits 1280 px: long values wrap (css/admin_ehr.css), discovery and embedding are one badge.
    list_display = ("name", "iss", "auth", "enabled", "status")
    list_display_links = ("name",)
    list_filter = ("enabled", "auth_method")
    search_fields = ("name", "slug", "iss", "client_id")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "embedding_status",
        "framing_refused_at",
        "discovery_status",
        "discovery_problems",
        "discovered_at",
        "discovery",
        "created_at",
        "updated_at",
    )
    actions = ["check_configuration"]
    fieldsets = (
        (
            "Identity",
            {
                "fields": ("name", "slug", "iss", "enabled"),
                "description": "Which EHR this is, and the FHIR server it launches the app with.",
            },
        ),
        (
            "Client authentication",
            {
                "fields": ("client_id", "auth_method", "client_secret", "clear_client_secret"),
                "description": "What the EHR issued to the app when it was registered there.",
            },
        ),
        ("Scopes", {"fields": ("ehr_launch_scope", "standalone_scope")}),
        (
            "Embedding",
            {
                "fields": ("frame_ancestors", "embedding_status", "framing_refused_at"),
                "description": "EHRs usually show the app inside their own page (an iframe). The browser "
                "allows that only for the origins listed here.",
            },
        ),
        (
            "Discovery (read-only)",
            {
                "fields": (
                    "discovery_status", "discovery_problems", "discovered_at", "created_at", "updated_at",
                ),
                "description": "What the app last read from the EHR's .well-known/smart-configuration. "
                "Refresh it with the Check configuration action on the EHR list.",
            },
        ),
        (
            "Endpoint overrides (rarely needed)",
            {"fields": ("authorize_url_override", "token_url_override"), "classes": ("collapse",)},
        ),
        ("Discovery document", {"fields": ("discovery",), "classes": ("collapse",)}),
    )

    class Media:
        css = {"all": ("css/admin_ehr.css",)}

    def get_fieldsets(self, request: HttpRequest, obj=None):
        """View-only staff get read-only fields, which would render the decrypted secret: show
        only whether one is stored."""
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        hidden = {"client_secret", "clear_client_secret"}
        return [
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in hidden)
                    + (("client_secret_status",) if "client_secret" in opts["fields"] else ())})
            for name, opts in fieldsets
        ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if self.has_change_permission(request, obj) else (*fields, "client_secret_status")

    @admin.display(description="client auth", ordering="auth_method")
    def auth(self, obj: Ehr) -> str:
        return _SHORT_AUTH.get(obj.auth_method, obj.auth_method)

    @staticmethod
    def _discovery_summary(obj: Ehr) -> tuple[str, str]:
        """(level, words): level is ok, warn, error or none."""
        if obj.discovered_at is None:
            return "none", "not checked yet"
        errors = sum(1 for p in obj.discovery_problems if p.startswith("Error"))
        warnings = len(obj.discovery_problems) - errors
        if errors:
            return "error", f"{errors} error{'s' if errors > 1 else ''}"
        if warnings:
            return "warn", f"{warnings} warning{'s' if warnings > 1 else ''}"
        return "ok", "OK"

    @admin.display(description="status")
    def status(self, obj: Ehr):
        """One short badge: embedding refused first (users see a blank frame), then discovery."""
        level, words = self._discovery_summary(obj)
        title = f"Discovery: {words}"
        if obj.discovered_at:
            title += f", fetched {obj.discovered_at:%Y-%m-%d %H:%M}"
        if obj.framing_refused_at is not None:
            level, words = "error", "embedding refused"
            when = f"{obj.framing_refused_at:%Y-%m-%d %H:%M}"
            title = f"The EHR tried to embed the app on {when} UTC; no frame ancestor allows it. {title}"
        return format_html('<span class="ehr-badge ehr-badge-{}" title="{}">{}</span>', level, title, words)

    @admin.display(description="discovery")
    def discovery_status(self, obj: Ehr):
        level, words = self._discovery_summary(obj)
        return format_html('<span class="ehr-badge ehr-badge-{}">{}</span>', level, words)

    @admin.display(description="embedding")
    def embedding_status(self, obj: Ehr):
        if obj is None or obj.pk is None:
            return "—"
        if obj.framing_refused_at is not None:
            return format_html(
                '<span class="ehr-badge ehr-badge-error">refused</span> This EHR tried to show the app in '
                "an iframe on {} UTC and the browser refused it{}. Add the EHR\u2019s origin above.",
                f"{obj.framing_refused_at:%Y-%m-%d %H:%M}",
                "" if obj.frame_ancestors.strip() else ": no frame ancestor is registered",
            )
        if not obj.frame_ancestors.strip():
            return format_html(
                '<span class="ehr-badge ehr-badge-warn">standalone only</span> No frame ancestor: the EHR '
                "cannot show the app inside its own page."
            )
        return format_html('<span class="ehr-badge ehr-badge-ok">OK</span> {}', obj.frame_ancestors)

    @admin.display(description="client secret")
    def client_secret_status(self, obj: Ehr) -> str:
        return "stored (encrypted, never shown)" if obj and obj.client_secret else "none"

    def save_model(self, request: HttpRequest, obj: Ehr, form, change: bool) -> None:
        if "frame_ancestors" in form.changed_data:
            obj.framing_refused_at = None  # judged afresh against the new origins
        super().save_model(request, obj, form, change)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.action(description="Check configuration (fetch SMART discovery)")
    def check_configuration(self, request: HttpRequest, queryset):
        reports = [discovery.check_configuration(ehr) for ehr in queryset]
        for report in reports:  # the backend-services token, asked for afresh, where registered
            registration = BackendRegistration.objects.filter(ehr=report.ehr, enabled=True).first()
            report.backend = backend.check(registration) if registration else None
        return TemplateResponse(
            request,
            "smartapp/admin_check_configuration.html",
            {
                **self.admin_site.each_context(request),
                "title": "EHR configuration check",
                "reports": reports,
                "opts": self.model._meta,
            },
        )


# The read-only audit trail and the backend-services registrations.
from smartapp import audit_admin, backend_admin  # noqa: E402, F401
